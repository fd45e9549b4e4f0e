/*
 * lsmt_sparse: the sparse writable layer (lsmt.md 4.4).  One data file:
 * the header, then the device itself, logical byte X at file offset
 * 4096 + X.  There is no log; the map is rebuilt at open from the host
 * file's allocated extents, and kept current in memory by writes and
 * discards.
 *
 * Concurrency follows lsmt_rw.c: the rwlock is held for writing only
 * around map inserts.  Unlike the log-structured layer, payload bytes are
 * overwritten in place, so a read that overlaps a concurrent write of the
 * same range may see either version of each sector (as on a disk).  A
 * data segment's moffset depends only on its LBA, so concurrent writes
 * insert the same mapping in any order and need no log ordering.
 */
#include "bdev_int.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA_SECTOR0 (LSMT_HT_SIZE / BDEV_SECTOR) /* moffset of LBA 0 */

/* Map [lba, lba+n) as data or zeroed, in entries of at most 16383 sectors. */
static int map_range(struct lsmt_layer *l, uint64_t lba, uint64_t n, bool zeroed)
{
	int err = 0;

	while (n > 0 && !err) {
		uint32_t piece = n < LSMT_MAX_LEN ? n : LSMT_MAX_LEN;

		err = umap_insert(&l->map, seg_make(lba, piece, lba + DATA_SECTOR0, zeroed, 0));
		lba += piece;
		n -= piece;
	}
	return err;
}

static int sparse_fd(struct lsmt_layer *l)
{
	int fd = bdev_file_local_fd(l->data);

	if (fd < 0)
		log_error("%s: a sparse layer must be a local file", bdev_file_name(l->data));
	return fd < 0 ? -ENOTSUP : fd;
}

int lsmt_create_sparse(struct bdev_file *data, struct bdev_file *index, uint64_t vsize,
		       const char *parent_uuid)
{
	struct lsmt_ht h = { .flags = HT_HEADER | HT_DATA | HT_SPARSE, .virtual_size = vsize };
	uint8_t *buf = malloc(LSMT_HT_SIZE);
	int fd = bdev_file_local_fd(data), err = 0;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	if (fd < 0 || !data->ops->pwrite) {
		free(buf);
		return -ENOTSUP;
	}
	err = lsmt_check_vsize(bdev_file_name(data), vsize);
	if (err) {
		free(buf);
		return err;
	}
	lsmt_uuid_generate(h.uuid);
	memcpy(h.parent_uuid, lsmt_uuid_valid(parent_uuid) ? parent_uuid : lsmt_null_uuid, 37);
	lsmt_ht_encode(&h, buf);
	n = data->ops->pwrite(data, buf, LSMT_HT_SIZE, 0);
	if (n != LSMT_HT_SIZE)
		err = n < 0 ? (int)n : -EIO;
	/* lsmt.md 4.4: the file spans the whole device; the index stays empty */
	if (!err && ftruncate(fd, LSMT_HT_SIZE + vsize) < 0)
		err = -errno;
	if (!err)
		data->size = LSMT_HT_SIZE + vsize;
	if (!err && data->ops->sync)
		err = data->ops->sync(data);
	if (!err && index->ops->sync)
		err = index->ops->sync(index);
	free(buf);
	return err;
}

int lsmt_sparse_load(struct lsmt_layer *l)
{
	const char *name = bdev_file_name(l->data);
	int fd = sparse_fd(l);
	off_t pos = LSMT_HT_SIZE, end = l->data->size;

	struct stat st;

	if (fd < 0)
		return fd;
	/* lsmt.md 4.4: every extent maps as a segment, so the file may not
	 * reach past what segments can address. */
	if (l->data->size > LSMT_HT_SIZE + LSMT_MAX_VSIZE) {
		log_error("%s: %llu bytes, past the %llu an LSMT layer can address", name,
			  (unsigned long long)l->data->size,
			  (unsigned long long)(LSMT_HT_SIZE + LSMT_MAX_VSIZE));
		return -EINVAL;
	}
	/* The host's block: the mapping granularity after a reopen. */
	l->sparse_bs = 4096;
	if (!fstat(fd, &st) && st.st_blksize >= (blksize_t)BDEV_SECTOR &&
	    st.st_blksize <= (1 << 20) && !(st.st_blksize & (st.st_blksize - 1)))
		l->sparse_bs = st.st_blksize;
	/* lsmt.md 4.4: every allocated extent from 4096 on is data */
	while (pos < end) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;

		if (d < 0 && errno == ENXIO)
			break;
		if (d >= 0)
			h = lseek(fd, d, SEEK_HOLE);
		if (d < 0 || h < 0) {
			log_error("%s: cannot list allocated extents: %s", name, strerror(errno));
			return -errno;
		}
		if (h > end)
			h = end;
		uint64_t s = d / BDEV_SECTOR, e = h / BDEV_SECTOR;
		int err = e > s ? map_range(l, s - DATA_SECTOR0, e - s, false) : 0;

		if (err)
			return err;
		pos = h > d ? h : d + BDEV_SECTOR;
	}
	return 0;
}

int lsmt_sparse_write(struct lsmt_layer *l, const struct iovec *iov, int iovcnt, uint64_t off,
		      size_t len)
{
	uint64_t pos = LSMT_HT_SIZE + off;
	size_t left = len;
	int err;

	for (int i = 0; i < iovcnt && left > 0; i++) {
		size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
		ssize_t n = l->data->ops->pwrite(l->data, iov[i].iov_base, k, pos);

		if (n != (ssize_t)k) {
			err = n < 0 ? (int)n : -EIO;
			log_error("%s: write failed: %s", bdev_file_name(l->data), strerror(-err));
			return err;
		}
		pos += k;
		left -= k;
	}
	pthread_rwlock_wrlock(&l->lock);
	err = map_range(l, off / BDEV_SECTOR, len / BDEV_SECTOR, false);
	pthread_rwlock_unlock(&l->lock);
	return err;
}

/*
 * lsmt.md 4.4: after a reopen every allocated host block maps as data, so
 * a write that covers a host block only in part would make the rest of
 * that block (a hole until now, reading as zeros) hide the lower layers.
 * Such a write is widened to whole host blocks, the added parts filled
 * with what the device shows there now.  LOG_MU (unused otherwise by a
 * sparse layer) serialises these read-modify-writes, so two partial writes
 * into one block never drop each other's sectors.
 */
int lsmt_sparse_write_dev(struct bdev *d, struct lsmt_layer *l, const struct iovec *iov,
			  int iovcnt, uint64_t off, size_t len)
{
	uint64_t bs = l->sparse_bs, s = off / bs * bs, e = (off + len + bs - 1) / bs * bs;
	uint64_t dsize = (bdev_size(d) + BDEV_SECTOR - 1) / BDEV_SECTOR * BDEV_SECTOR;
	int err;

	if (e > dsize)
		e = dsize > off + len ? dsize : off + len;
	if (s == off && e == off + len)
		return lsmt_sparse_write(l, iov, iovcnt, off, len);

	struct iovec *v = malloc((iovcnt + 2) * sizeof(*v));
	uint8_t *head = malloc(bs), *tail = malloc(bs);
	int n = 0;

	if (!v || !head || !tail) {
		err = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&l->log_mu);
	err = s < off ? bdev_pread(d, head, off - s, s) : 0;
	if (!err && e > off + len)
		err = bdev_pread(d, tail, e - off - len, off + len);
	if (!err) {
		if (s < off)
			v[n++] = (struct iovec){ head, off - s };
		memcpy(v + n, iov, iovcnt * sizeof(*v));
		n += iovcnt;
		if (e > off + len)
			v[n++] = (struct iovec){ tail, e - off - len };
		err = lsmt_sparse_write(l, v, n, s, e - s);
	} else {
		log_error("%s: reading around a partial block write failed: %s",
			  bdev_file_name(l->data), strerror(-err));
	}
	pthread_mutex_unlock(&l->log_mu);
out:
	free(v);
	free(head);
	free(tail);
	return err;
}

int lsmt_sparse_discard(struct lsmt_layer *l, uint64_t off, uint64_t len)
{
	int fd = sparse_fd(l), err;

	if (fd < 0)
		return fd;
	/* lsmt.md 4.4: discard punches a hole in the data file */
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, LSMT_HT_SIZE + off, len) < 0) {
		err = -errno;
		log_error("%s: punching a hole failed: %s", bdev_file_name(l->data), strerror(-err));
		return err;
	}
	/*
	 * The hole reads as zeros; the map says so for the rest of this open.
	 * A reopen sees no extent there (the range then falls through to the
	 * lower layers, as with the reference).
	 */
	pthread_rwlock_wrlock(&l->lock);
	err = map_range(l, off / BDEV_SECTOR, len / BDEV_SECTOR, true);
	pthread_rwlock_unlock(&l->lock);
	return err;
}

int lsmt_sparse_set_vsize(struct lsmt_layer *l, uint64_t vsize)
{
	uint8_t le[8];
	int fd = sparse_fd(l);
	ssize_t n;

	if (fd < 0)
		return fd;
	for (int i = 0; i < 8; i++)
		le[i] = vsize >> (8 * i);
	/* lsmt.md 2: virtual_size at byte 48; 4.4: the file covers the device */
	n = l->data->ops->pwrite ? l->data->ops->pwrite(l->data, le, 8, 48) : -EROFS;
	if (n != 8)
		return n < 0 ? (int)n : -EIO;
	if (l->data->size < LSMT_HT_SIZE + vsize) {
		if (ftruncate(fd, LSMT_HT_SIZE + vsize) < 0)
			return -errno;
		l->data->size = LSMT_HT_SIZE + vsize;
	}
	l->info.virtual_size = vsize;
	return 0;
}
