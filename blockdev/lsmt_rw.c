/*
 * lsmt_rw: the writable layer (lsmt.md 4.2): a data file that only grows
 * and an append-only index log, replayed into an interval map at open.
 *
 * Concurrency: payload bytes are appended at a position reserved with an
 * atomic add, so writers never wait for each other's data I/O.  Payload
 * bytes never change once written, which lets readers drop the map lock
 * before their I/O.  LOG_MU makes the log order equal the map-insert order
 * (replay must give the same map), and the rwlock is held for writing only
 * around the in-memory insert.
 *
 * One writer per layer: the data end and the log position live in this
 * process's memory (lsmt.md 4.2), so a second writer, in this daemon or
 * another, or a tool, would interleave appends and corrupt both files.  A
 * writable open takes an exclusive flock on the data and index files
 * without waiting.  A read-only open takes none, so overlaybd-cat can read
 * a live upper: payload bytes never change once written and each log entry
 * is appended after its data, so a reader replays a consistent prefix.
 * Readers that publish what they read (commit, merge) take a shared lock
 * instead, which a writer's exclusive one excludes both ways.
 */
#include "bdev_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#define REPLAY_BATCH 65536 /* entries read per pread while replaying */

static void put_entry(uint8_t *p, const struct seg *s)
{
	uint64_t w0 = seg_lba(s) | (uint64_t)seg_len(s) << 50;
	uint64_t w1 = s->val;

	for (int i = 0; i < 8; i++) {
		p[i] = w0 >> (8 * i);
		p[8 + i] = w1 >> (8 * i);
	}
}

static int write_full(struct bdev_file *f, const void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	if (!f->ops->pwrite)
		return -EROFS;
	n = f->ops->pwrite(f, buf, len, off);
	if (n < 0)
		return n;
	return (size_t)n == len ? 0 : -EIO;
}

int lsmt_create_rw(struct bdev_file *data, struct bdev_file *index, uint64_t vsize,
		   const char *parent_uuid)
{
	uint8_t *buf = malloc(LSMT_HT_SIZE);
	struct lsmt_ht h = { .flags = HT_HEADER | HT_DATA, .virtual_size = vsize };
	int err;

	if (!buf)
		return -ENOMEM;
	err = lsmt_check_vsize(bdev_file_name(data), vsize);
	if (err) {
		free(buf);
		return err;
	}
	lsmt_uuid_generate(h.uuid);
	/* lsmt.md 4.2: parent from -u, the null uuid when absent or invalid */
	memcpy(h.parent_uuid, lsmt_uuid_valid(parent_uuid) ? parent_uuid : lsmt_null_uuid, 37);
	lsmt_ht_encode(&h, buf);
	err = write_full(data, buf, LSMT_HT_SIZE, 0);
	if (!err) {
		h.flags = HT_HEADER;
		h.index_offset = LSMT_HT_SIZE;
		lsmt_ht_encode(&h, buf);
		err = write_full(index, buf, LSMT_HT_SIZE, 0);
	}
	if (!err && data->ops->sync)
		err = data->ops->sync(data);
	if (!err && index->ops->sync)
		err = index->ops->sync(index);
	free(buf);
	return err;
}

/* flock F with OP without waiting; files with no descriptor (memory) have
 * no other opener to exclude. */
static int lock_file(struct bdev_file *f, int op)
{
	int fd = bdev_file_local_fd(f), err;

	if (fd < 0 || flock(fd, op | LOCK_NB) == 0)
		return 0;
	err = -errno;
	if (err == -EWOULDBLOCK) {
		log_error("%s: in use by %s (locked); refusing to open it %s", bdev_file_name(f),
			  op == LOCK_EX ? "another reader or writer" : "a writer",
			  op == LOCK_EX ? "for writing" : "as a snapshot");
		return -EBUSY;
	}
	log_error("%s: cannot lock: %s", bdev_file_name(f), strerror(-err));
	return err;
}

static int lock_both(struct bdev_file *data, struct bdev_file *index, int op)
{
	int err = lock_file(data, op);

	return err ? err : lock_file(index, op);
}

int lsmt_lock_snapshot(struct lsmt_layer *l)
{
	if (!lsmt_is_rw(l))
		return 0;
	return lock_both(l->data, l->index, LOCK_SH);
}

static int replay(struct lsmt_layer *l, uint64_t nent)
{
	const char *name = bdev_file_name(l->index);
	uint8_t *raw = malloc(REPLAY_BATCH * 16);
	uint64_t end = l->data->size / BDEV_SECTOR;
	int err = 0;

	if (!raw)
		return -ENOMEM;
	for (uint64_t i = 0; i < nent && !err; i += REPLAY_BATCH) {
		size_t n = nent - i < REPLAY_BATCH ? nent - i : REPLAY_BATCH;

		err = bdev_file_pread_full(l->index, raw, n * 16, LSMT_HT_SIZE + i * 16);
		if (err) {
			log_error("%s: read failed: %s", name, strerror(-err));
			break;
		}
		for (size_t k = 0; k < n; k++) {
			uint64_t w0 = 0, w1 = 0;

			for (int b = 7; b >= 0; b--) {
				w0 = w0 << 8 | raw[16 * k + b];
				w1 = w1 << 8 | raw[16 * k + 8 + b];
			}
			if ((w0 & LSMT_INVALID_OFF) == LSMT_INVALID_OFF)
				continue;
			/* lsmt.md 3: tags are ignored on load */
			struct seg s = seg_make(w0 & LSMT_INVALID_OFF, w0 >> 50, w1 & SEG_MOFF_MASK,
						w1 & SEG_ZEROED, 0);
			uint64_t moff = seg_moff(&s);

			if (seg_len(&s) == 0 || seg_end(&s) > LSMT_MAX_SECTORS ||
			    moff < LSMT_HT_SIZE / BDEV_SECTOR ||
			    (seg_zeroed(&s) ? moff > end : moff + seg_len(&s) > end)) {
				log_error("%s: log entry %llu is invalid or points past the data file",
					  name, (unsigned long long)(i + k));
				err = -EINVAL;
				break;
			}
			err = umap_insert(&l->map, s);
			if (err)
				break;
		}
	}
	free(raw);
	return err;
}

int lsmt_open_rw(struct bdev_file *data, struct bdev_file *index, struct lsmt_layer **out)
{
	uint8_t *buf = malloc(LSMT_HT_SIZE);
	struct lsmt_layer *l = calloc(1, sizeof(*l));
	struct lsmt_ht dh, ih;
	uint64_t nent;
	int err;

	if (!buf || !l) {
		err = -ENOMEM;
		goto fail;
	}
	umap_init(&l->map);
	if (data->ops->pwrite || index->ops->pwrite) {
		err = lock_both(data, index, LOCK_EX);
		if (err)
			goto fail;
	}
	err = bdev_file_pread_full(data, buf, LSMT_HT_SIZE, 0);
	if (err || lsmt_ht_decode(buf, &dh) || !(dh.flags & HT_HEADER)) {
		log_error("%s: not an LSMT writable data file", bdev_file_name(data));
		err = -EINVAL;
		goto fail;
	}
	err = lsmt_check_vsize(bdev_file_name(data), dh.virtual_size);
	if (err)
		goto fail;
	if (dh.flags & HT_SPARSE) {
		/* lsmt.md 4.4: the index file is not used */
		l->data = data;
		l->index = index;
		l->sparse = true;
		err = lsmt_sparse_load(l);
		if (err) {
			l->data = l->index = NULL;
			goto fail;
		}
		nent = 0;
		goto opened;
	}
	/* lsmt.md 4.2: index header: header bit, index type, not sealed, offset 4096 */
	err = bdev_file_pread_full(index, buf, LSMT_HT_SIZE, 0);
	if (err || lsmt_ht_decode(buf, &ih) || !(ih.flags & HT_HEADER) || (ih.flags & HT_DATA) ||
	    (ih.flags & HT_SEALED) || ih.index_offset != LSMT_HT_SIZE) {
		log_error("%s: not an LSMT index log", bdev_file_name(index));
		err = -EINVAL;
		goto fail;
	}
	nent = (index->size - LSMT_HT_SIZE) / 16;
	if ((index->size - LSMT_HT_SIZE) % 16)
		/* lsmt.md 9.9: a torn last entry; never read past the whole ones */
		log_warn("%s: ignoring a torn last index entry (%llu stray bytes)",
			 bdev_file_name(index),
			 (unsigned long long)((index->size - LSMT_HT_SIZE) % 16));
	if (nent > LSMT_MAX_RW_ENTRIES) {
		log_error("%s: index log too large (%llu entries)", bdev_file_name(index),
			  (unsigned long long)nent);
		err = -EINVAL;
		goto fail;
	}
	l->data = data;
	l->index = index;
	err = replay(l, nent);
	if (err) {
		l->data = l->index = NULL;
		goto fail;
	}
opened:;
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* Writers must not starve under a steady stream of reads. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&l->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&l->log_mu, NULL);
	l->hdr_flags = dh.flags;
	lsmt_info_from_ht(&l->info, &dh);
	l->info.user_tag[0] = 0;
	/* A torn payload tail must not shift the next append off a sector. */
	l->data_end = (data->size + BDEV_SECTOR - 1) / BDEV_SECTOR * BDEV_SECTOR;
	l->index_end = LSMT_HT_SIZE + nent * 16;
	free(buf);
	*out = l;
	return 0;

fail:
	if (l)
		umap_free(&l->map);
	free(l);
	free(buf);
	bdev_file_close(data);
	bdev_file_close(index);
	return err;
}

/* Log N entries and apply them to the map, in that order, atomically. */
static int log_and_apply(struct lsmt_layer *l, const struct seg *s, size_t n)
{
	uint8_t raw[16 * 64];
	int err = 0;

	pthread_mutex_lock(&l->log_mu);
	for (size_t i = 0; i < n && !err; i += 64) {
		size_t k = n - i < 64 ? n - i : 64;

		for (size_t j = 0; j < k; j++)
			put_entry(raw + 16 * j, &s[i + j]);
		err = write_full(l->index, raw, 16 * k, l->index_end);
		if (err)
			break;
		l->index_end += 16 * k;
		pthread_rwlock_wrlock(&l->lock);
		for (size_t j = 0; j < k && !err; j++)
			err = umap_insert(&l->map, s[i + j]);
		pthread_rwlock_unlock(&l->lock);
	}
	pthread_mutex_unlock(&l->log_mu);
	return err;
}

int lsmt_rw_write(struct lsmt_layer *l, const struct iovec *iov, int iovcnt, uint64_t off,
		  size_t len)
{
	int i = 0;
	size_t ioff = 0;

	if (l->sparse)
		return lsmt_sparse_write(l, iov, iovcnt, off, len);

	/* lsmt.md 4.2: each piece of at most 4 MiB is appended and logged */
	while (len > 0) {
		size_t piece = len < LSMT_WRITE_PIECE ? len : LSMT_WRITE_PIECE;
		uint64_t moff = __atomic_fetch_add(&l->data_end, piece, __ATOMIC_RELAXED);
		size_t done = 0;
		int err;

		while (done < piece) {
			size_t n = iov[i].iov_len - ioff;

			if (n > piece - done)
				n = piece - done;
			err = write_full(l->data, (const char *)iov[i].iov_base + ioff, n, moff + done);
			if (err) {
				log_error("%s: write failed: %s", bdev_file_name(l->data), strerror(-err));
				return err;
			}
			done += n;
			ioff += n;
			if (ioff == iov[i].iov_len) {
				i++;
				ioff = 0;
			}
		}
		struct seg s = seg_make(off / BDEV_SECTOR, piece / BDEV_SECTOR, moff / BDEV_SECTOR,
					false, 0);
		err = log_and_apply(l, &s, 1);
		if (err) {
			log_error("%s: index append failed: %s", bdev_file_name(l->index),
				  strerror(-err));
			return err;
		}
		off += piece;
		len -= piece;
	}
	return 0;
}

int lsmt_rw_discard(struct lsmt_layer *l, uint64_t off, uint64_t len)
{
	uint64_t lba = off / BDEV_SECTOR, n = len / BDEV_SECTOR;
	struct seg s[64];

	if (l->sparse)
		return lsmt_sparse_discard(l, off, len);
	/* lsmt.md 4.2: pieces of at most 16383 sectors, moffset = data end */
	while (n > 0) {
		size_t k = 0;
		/* The file's size, not the reservation mark: replay checks against it. */
		uint64_t moff = __atomic_load_n(&l->data->size, __ATOMIC_RELAXED) / BDEV_SECTOR;

		while (n > 0 && k < 64) {
			uint32_t piece = n < LSMT_MAX_LEN ? n : LSMT_MAX_LEN;

			s[k++] = seg_make(lba, piece, moff, true, 0);
			lba += piece;
			n -= piece;
		}
		int err = log_and_apply(l, s, k);
		if (err) {
			log_error("%s: index append failed: %s", bdev_file_name(l->index),
				  strerror(-err));
			return err;
		}
	}
	return 0;
}

int lsmt_rw_sync(struct lsmt_layer *l)
{
	int err = 0;

	/* Data before index: a durable log entry never names missing bytes. */
	if (l->data->ops->sync)
		err = l->data->ops->sync(l->data);
	/* lsmt.md 4.4: a sparse layer has no log to sync */
	if (!err && !l->sparse && l->index->ops->sync)
		err = l->index->ops->sync(l->index);
	if (err)
		log_error("%s: sync failed: %s", bdev_file_name(l->data), strerror(-err));
	return err;
}

int lsmt_rw_set_vsize(struct lsmt_layer *l, uint64_t vsize)
{
	uint8_t le[8];
	int err = lsmt_check_vsize(bdev_file_name(l->data), vsize);

	if (err)
		return err;
	if (l->sparse)
		return lsmt_sparse_set_vsize(l, vsize);
	for (int i = 0; i < 8; i++)
		le[i] = vsize >> (8 * i);
	/* lsmt.md 2: virtual_size at byte 48 of both headers */
	err = write_full(l->data, le, 8, 48);
	if (!err)
		err = write_full(l->index, le, 8, 48);
	if (err)
		return err;
	l->info.virtual_size = vsize;
	return 0;
}
