/*
 * extfs: open an ext2/3/4 image through a caller's byte source and map
 * files to the device ranges that hold their data (extfs.h).
 */
#include "extfs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Directories below a listed one are walked this deep at most, so a
 * crafted image cannot recurse without end. */
#define WALK_DEPTH_MAX 64

struct extfs {
	ext2_filsys fs;
	struct extfs_source src;
};

/* libext2fs's errors are errno values or its own codes (com_err); ours
 * are -errno, with its own codes as "not a filesystem we can read". */
static int to_errno(errcode_t e)
{
	if (e > 0 && e < 4096)
		return -(int)e;
	return -EINVAL;
}

int extfs_open(const struct extfs_source *src, struct extfs **out)
{
	struct extfs *x = calloc(1, sizeof(*x));
	char name[64];
	errcode_t e;

	if (!x)
		return -ENOMEM;
	x->src = *src;
	snprintf(name, sizeof(name), EXTFS_CHANNEL_PREFIX "%p", (void *)&x->src);
	e = ext2fs_open2(name, NULL, EXT2_FLAG_64BITS, 0, 0, extfs_io_manager, &x->fs);
	if (e) {
		free(x);
		return to_errno(e);
	}
	*out = x;
	return 0;
}

void extfs_close(struct extfs *x)
{
	if (!x)
		return;
	ext2fs_close_free(&x->fs);
	free(x);
}

struct run {
	extfs_range_fn fn;
	void *arg;
	uint64_t block_size;
	blk64_t start; /* physical block of the run */
	e2_blkcnt_t logical;
	uint64_t nblocks;
	int rc;
};

static int run_emit(struct run *r)
{
	if (r->nblocks && !r->rc)
		r->rc = r->fn(r->arg, r->start * r->block_size, r->nblocks * r->block_size);
	r->nblocks = 0;
	return r->rc;
}

static int block_cb(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk,
		    int ref_offset, void *priv)
{
	struct run *r = priv;

	if (r->nblocks && *blocknr == r->start + r->nblocks &&
	    blockcnt == r->logical + (e2_blkcnt_t)r->nblocks) {
		r->nblocks++;
		return 0;
	}
	if (run_emit(r))
		return BLOCK_ABORT;
	r->start = *blocknr;
	r->logical = blockcnt;
	r->nblocks = 1;
	return 0;
}

static int file_ranges(struct extfs *x, ext2_ino_t ino, extfs_range_fn fn, void *arg)
{
	struct run r = { .fn = fn, .arg = arg, .block_size = x->fs->blocksize };
	errcode_t e;

	e = ext2fs_block_iterate3(x->fs, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, NULL,
				  block_cb, &r);
	if (e == EXT2_ET_INLINE_DATA_CANT_ITERATE)
		return 0; /* the data lives in the inode, read with it */
	if (e)
		return r.rc ? r.rc : to_errno(e);
	return run_emit(&r);
}

struct walk {
	struct extfs *x;
	extfs_range_fn fn;
	void *arg;
	int depth;
	int rc;
};

static int walk_dir(struct walk *w, ext2_ino_t dir);

static int walk_entry(struct walk *w, ext2_ino_t ino)
{
	struct ext2_inode inode;
	errcode_t e = ext2fs_read_inode(w->x->fs, ino, &inode);

	if (e)
		return to_errno(e);
	if (LINUX_S_ISREG(inode.i_mode))
		return file_ranges(w->x, ino, w->fn, w->arg);
	if (LINUX_S_ISDIR(inode.i_mode) && w->depth < WALK_DEPTH_MAX)
		return walk_dir(w, ino);
	return 0;
}

static int dir_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent, int offset,
		  int blocksize, char *buf, void *priv)
{
	struct walk *w = priv;
	int len = ext2fs_dirent_name_len(dirent);

	if ((len == 1 && dirent->name[0] == '.') ||
	    (len == 2 && dirent->name[0] == '.' && dirent->name[1] == '.'))
		return 0;
	w->rc = walk_entry(w, dirent->inode);
	return w->rc ? DIRENT_ABORT : 0;
}

static int walk_dir(struct walk *w, ext2_ino_t dir)
{
	errcode_t e;

	w->depth++;
	e = ext2fs_dir_iterate2(w->x->fs, dir, 0, NULL, dir_cb, w);
	w->depth--;
	if (w->rc)
		return w->rc;
	return e ? to_errno(e) : 0;
}

int extfs_file_ranges(struct extfs *x, const char *path, int recursive, extfs_range_fn fn,
		      void *arg)
{
	struct walk w = { .x = x, .fn = fn, .arg = arg };
	struct ext2_inode inode;
	ext2_ino_t ino;
	errcode_t e;

	e = ext2fs_namei(x->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino);
	if (e)
		return e == EXT2_ET_FILE_NOT_FOUND ? -ENOENT : to_errno(e);
	e = ext2fs_read_inode(x->fs, ino, &inode);
	if (e)
		return to_errno(e);
	if (LINUX_S_ISREG(inode.i_mode))
		return file_ranges(x, ino, fn, arg);
	if (LINUX_S_ISDIR(inode.i_mode) && recursive)
		return walk_dir(&w, ino);
	return 0;
}
