/*
 * lsmt_seal: seal a writable layer in place (lsmt.md 4.3, the reference's
 * close_seal): its replayed index and a trailer are appended to the data
 * file, which then reads as a sealed blob (lsmt.md 4.1 reader) and can be
 * compacted by overlaybd-commit --commit_sealed.
 */
#include "bdev_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int lsmt_seal(struct lsmt_layer *l)
{
	struct bdev_file *f = l->data;
	const struct seg *segs;
	size_t n;
	bool owned;
	int err;

	if (!lsmt_is_rw(l) || !f->ops->pwrite)
		return -EINVAL;
	err = lsmt_segments(l, &segs, &n, &owned);
	if (err)
		return err;
	/* lsmt.md 4.3: entries padded to 512 bytes (the pad slots are never
	 * read: index_size counts the real entries only), then the trailer */
	uint64_t ioff = f->size, ibytes = ((uint64_t)n * 16 + 511) / 512 * 512;
	uint8_t *buf = calloc(1, ibytes + LSMT_HT_SIZE);
	struct lsmt_ht t = {
		.flags = HT_DATA | HT_SEALED,
		.index_offset = ioff,
		.index_size = n,
		.virtual_size = l->info.virtual_size,
	};

	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t w0 = seg_lba(&segs[i]) | (uint64_t)seg_len(&segs[i]) << 50;
		uint64_t w1 = segs[i].val;

		for (int b = 0; b < 8; b++) {
			buf[16 * i + b] = w0 >> (8 * b);
			buf[16 * i + 8 + b] = w1 >> (8 * b);
		}
	}
	memcpy(t.uuid, l->info.uuid, 37);
	memcpy(t.parent_uuid, l->info.parent_uuid, 37);
	lsmt_ht_encode(&t, buf + ibytes);
	ssize_t w = f->ops->pwrite(f, buf, ibytes + LSMT_HT_SIZE, ioff);

	if (w != (ssize_t)(ibytes + LSMT_HT_SIZE))
		err = w < 0 ? (int)w : -EIO;
	if (!err && f->ops->sync)
		err = f->ops->sync(f);
	if (err)
		log_error("%s: sealing failed: %s", bdev_file_name(f), strerror(-err));
out:
	free(buf);
	if (owned)
		free((void *)segs);
	return err;
}
