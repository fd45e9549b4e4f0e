/*
 * extfs_io: a libext2fs io_manager over a struct extfs_source, so the
 * filesystem is read through the caller's callback.  libext2fs opens a
 * channel by name; the name carries the source's address, which only this
 * file makes and reads.  Writes are refused: the filesystem is opened
 * read-only and must stay so.
 */
#include "extfs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct src_channel {
	const struct extfs_source *src;
};

static struct struct_io_manager extfs_io_manager_s;

static errcode_t src_open(const char *name, int flags, io_channel *channel)
{
	struct src_channel *priv;
	io_channel ch;
	void *p = NULL;

	if (flags & IO_FLAG_RW)
		return EROFS;
	if (sscanf(name, EXTFS_CHANNEL_PREFIX "%p", &p) != 1 || !p)
		return EINVAL;
	ch = calloc(1, sizeof(*ch));
	priv = calloc(1, sizeof(*priv));
	if (!ch || !priv || !(ch->name = strdup(name))) {
		free(ch);
		free(priv);
		return ENOMEM;
	}
	priv->src = p;
	ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	ch->manager = &extfs_io_manager_s;
	ch->block_size = 1024; /* libext2fs's start; set_blksize follows */
	ch->refcount = 1;
	ch->private_data = priv;
	*channel = ch;
	return 0;
}

static errcode_t src_close(io_channel ch)
{
	if (--ch->refcount > 0)
		return 0;
	free(ch->private_data);
	free(ch->name);
	free(ch);
	return 0;
}

static errcode_t src_set_blksize(io_channel ch, int blksize)
{
	ch->block_size = blksize;
	return 0;
}

/* libext2fs: a negative COUNT is a byte count, a positive one blocks. */
static errcode_t src_read_blk64(io_channel ch, unsigned long long block, int count, void *data)
{
	const struct extfs_source *src = ((struct src_channel *)ch->private_data)->src;
	uint64_t len = count < 0 ? (uint64_t)-count : (uint64_t)count * ch->block_size;
	uint64_t off = block * (uint64_t)ch->block_size;
	int rc;

	if (off > src->size || len > src->size - off)
		return EXT2_ET_SHORT_READ;
	rc = src->pread(src->ctx, data, len, off);
	return rc ? (errcode_t)-rc : 0;
}

static errcode_t src_read_blk(io_channel ch, unsigned long block, int count, void *data)
{
	return src_read_blk64(ch, block, count, data);
}

static errcode_t src_write_blk64(io_channel ch, unsigned long long block, int count,
				 const void *data)
{
	return EROFS;
}

static errcode_t src_write_blk(io_channel ch, unsigned long block, int count, const void *data)
{
	return EROFS;
}

static errcode_t src_flush(io_channel ch)
{
	return 0;
}

static struct struct_io_manager extfs_io_manager_s = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "overlaybd-iscsid extfs source",
	.open = src_open,
	.close = src_close,
	.set_blksize = src_set_blksize,
	.read_blk = src_read_blk,
	.write_blk = src_write_blk,
	.flush = src_flush,
	.read_blk64 = src_read_blk64,
	.write_blk64 = src_write_blk64,
};

io_manager extfs_io_manager = &extfs_io_manager_s;
