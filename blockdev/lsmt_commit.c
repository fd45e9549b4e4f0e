/*
 * lsmt_commit: compaction of a writable layer, or of a whole stack, into a
 * sealed blob (lsmt.md 7), laid out exactly as the reference lays it out so
 * our commit of the same layer gives the same bytes.
 */
#include "bdev_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OUT_BUF (1u << 20)

struct out {
	struct bdev_file *dst;
	uint8_t *buf;
	size_t fill;
	uint64_t off; /* file offset of buf[0] */
};

static int out_flush(struct out *o)
{
	ssize_t n;

	if (!o->fill)
		return 0;
	n = o->dst->ops->pwrite(o->dst, o->buf, o->fill, o->off);
	if (n < 0)
		return n;
	if ((size_t)n != o->fill)
		return -EIO;
	o->off += o->fill;
	o->fill = 0;
	return 0;
}

static int out_write(struct out *o, const void *p, size_t len)
{
	while (len > 0) {
		size_t k = OUT_BUF - o->fill < len ? OUT_BUF - o->fill : len;
		int err;

		memcpy(o->buf + o->fill, p, k);
		o->fill += k;
		p = (const char *)p + k;
		len -= k;
		if (o->fill == OUT_BUF && (err = out_flush(o)))
			return err;
	}
	return 0;
}

/* Copy LEN bytes of SRC at OFF straight into the output buffer. */
static int out_copy(struct out *o, struct bdev_file *src, uint64_t off, uint64_t len)
{
	while (len > 0) {
		size_t k = OUT_BUF - o->fill < len ? OUT_BUF - o->fill : len;
		int err = bdev_file_pread_full(src, o->buf + o->fill, k, off);

		if (err) {
			log_error("%s: read at %llu failed: %s", bdev_file_name(src),
				  (unsigned long long)off, strerror(-err));
			return err;
		}
		o->fill += k;
		off += k;
		len -= k;
		if (o->fill == OUT_BUF && (err = out_flush(o)))
			return err;
	}
	return 0;
}

/* lsmt.md 7.3: merge an entry into its predecessor where the reference does. */
static size_t compress_index(struct seg *s, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (k > 0) {
			struct seg *p = &s[k - 1];
			uint64_t plen = seg_len(p);

			if (seg_end(p) == seg_lba(&s[i]) && seg_zeroed(p) == seg_zeroed(&s[i]) &&
			    seg_tag(p) == seg_tag(&s[i]) &&
			    seg_moff(p) + (seg_zeroed(p) ? 0 : plen) == seg_moff(&s[i]) &&
			    plen + seg_len(&s[i]) < LSMT_MAX_LEN) {
				*p = seg_make(seg_lba(p), plen + seg_len(&s[i]), seg_moff(p),
					      seg_zeroed(p), seg_tag(p));
				continue;
			}
		}
		s[k++] = s[i];
	}
	return k;
}

static void encode_entry(uint8_t *p, const struct seg *s)
{
	uint64_t w0 = seg_lba(s) | (uint64_t)seg_len(s) << 50, w1 = s->val;

	for (int i = 0; i < 8; i++) {
		p[i] = w0 >> (8 * i);
		p[8 + i] = w1 >> (8 * i);
	}
}

int lsmt_commit(struct lsmt_layer **layers, int n, struct bdev_file *dst,
		const struct lsmt_commit_opts *opts, bool tag_by_layer)
{
	const struct seg **lists = calloc(n + 1, sizeof(*lists));
	size_t *counts = calloc(n + 1, sizeof(*counts));
	unsigned *tags = calloc(n + 1, sizeof(*tags));
	bool *owned = calloc(n + 1, sizeof(*owned));
	struct out o = { .dst = dst, .buf = malloc(OUT_BUF) };
	struct seg *segs = NULL;
	struct lsmt_ht h = { .flags = HT_HEADER | HT_DATA | HT_SEALED };
	size_t nsegs = 0;
	int err = 0, got = 0;

	if (!lists || !counts || !tags || !owned || !o.buf) {
		err = -ENOMEM;
		goto out;
	}
	if (n < 1 || n > BDEV_MAX_LAYERS) {
		err = -EINVAL;
		goto out;
	}
	const char *tag = opts && opts->user_tag ? opts->user_tag : "";
	if (strlen(tag) > 256) {
		log_error("commit: user tag longer than 256 bytes");
		err = -EINVAL;
		goto out;
	}
	/* lsmt.md 7.1: metadata of the new blob */
	memcpy(h.user_tag, tag, strlen(tag) + 1);
	h.virtual_size = layers[n - 1]->info.virtual_size;
	memcpy(h.uuid, opts && lsmt_uuid_valid(opts->uuid) ? opts->uuid : lsmt_null_uuid, 37);
	memcpy(h.parent_uuid, opts && lsmt_uuid_valid(opts->parent_uuid) ? opts->parent_uuid
		       : layers[0]->info.parent_uuid, 37);

	for (got = 0; got < n; got++) {
		err = lsmt_segments(layers[got], &lists[got], &counts[got], &owned[got]);
		if (err)
			goto out;
		tags[got] = got;
	}
	err = seg_merge(lists, counts, tags, n, false, &segs, &nsegs);
	if (err)
		goto out;

	uint8_t *ht = malloc(LSMT_HT_SIZE);
	if (!ht) {
		err = -ENOMEM;
		goto out;
	}
	lsmt_ht_encode(&h, ht);
	err = out_write(&o, ht, LSMT_HT_SIZE);

	/* lsmt.md 7.2: data in LBA order from sector 8, zeroed ranges hold none */
	uint64_t cur = LSMT_HT_SIZE / BDEV_SECTOR;
	for (size_t i = 0; i < nsegs && !err; i++) {
		struct seg *s = &segs[i];
		unsigned src = seg_tag(s);
		unsigned otag = tag_by_layer ? (unsigned)(n - 1) - src : 0;

		if (!seg_zeroed(s))
			err = out_copy(&o, layers[src]->data, seg_moff(s) * BDEV_SECTOR,
				       (uint64_t)seg_len(s) * BDEV_SECTOR);
		*s = seg_make(seg_lba(s), seg_len(s), cur, seg_zeroed(s), otag);
		if (!seg_zeroed(s))
			cur += seg_len(s);
	}
	if (err)
		goto out_ht;
	nsegs = compress_index(segs, nsegs);

	/* lsmt.md 7.4: index padded to a multiple of 256 entries, then the trailer */
	size_t padded = (nsegs + 255) / 256 * 256;
	uint8_t ent[16];
	struct seg pad = { .key = LSMT_INVALID_OFF << 14, .val = 0 };

	for (size_t i = 0; i < padded && !err; i++) {
		encode_entry(ent, i < nsegs ? &segs[i] : &pad);
		err = out_write(&o, ent, 16);
	}
	if (!err) {
		h.flags = HT_DATA | HT_SEALED;
		h.index_offset = cur * BDEV_SECTOR;
		h.index_size = padded;
		lsmt_ht_encode(&h, ht);
		err = out_write(&o, ht, LSMT_HT_SIZE);
	}
	if (!err)
		err = out_flush(&o);
	if (err)
		log_error("commit to %s failed: %s", bdev_file_name(dst), strerror(-err));
out_ht:
	free(ht);
out:
	for (int i = 0; i < got; i++)
		if (owned[i])
			free((void *)lists[i]);
	free(lists);
	free(counts);
	free(tags);
	free(owned);
	free(segs);
	free(o.buf);
	return err;
}
