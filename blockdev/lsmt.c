/*
 * lsmt: the LSMT header/trailer block and sealed (read-only) layers
 * (lsmt.md 2-4.1, 4.3).  A sealed layer is validated completely at open, so
 * the read path never meets an entry that points outside its blob.
 */
#include "bdev_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* lsmt.md 2: magic0 and magic1 */
static const uint8_t magic0[8] = { 0x4c, 0x53, 0x4d, 0x54, 0x00, 0x01, 0x02, 0x00 };
static const uint8_t magic1[16] = { 0x65, 0x7e, 0x63, 0xd2, 0x94, 0x44, 0x08, 0x4c,
				    0xa2, 0xd2, 0xc8, 0xec, 0x4f, 0xcf, 0xae, 0x8a };

const char lsmt_null_uuid[37] = "00000000-0000-0000-0000-000000000000";

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

bool lsmt_uuid_valid(const char *s)
{
	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
			return false;
	}
	return true;
}

void lsmt_uuid_generate(char out[37])
{
	uint8_t b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n > 0)
			got += n;
	}
	b[6] = (b[6] & 0x0f) | 0x40; /* RFC 4122 version 4, variant 1 */
	b[8] = (b[8] & 0x3f) | 0x80;
	char *p = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		p += sprintf(p, "%02X", b[i]);
	}
}

void lsmt_ht_encode(const struct lsmt_ht *h, uint8_t out[LSMT_HT_SIZE])
{
	memset(out, 0, LSMT_HT_SIZE);
	memcpy(out, magic0, 8);
	memcpy(out + 8, magic1, 16);
	put_le32(out + 24, 390);
	put_le32(out + 28, h->flags);
	put_le64(out + 32, h->index_offset);
	put_le64(out + 40, h->index_size);
	put_le64(out + 48, h->virtual_size);
	memcpy(out + 56, lsmt_uuid_valid(h->uuid) ? h->uuid : lsmt_null_uuid, 36);
	memcpy(out + 93, lsmt_uuid_valid(h->parent_uuid) ? h->parent_uuid : lsmt_null_uuid, 36);
	out[132] = 1; /* version */
	out[133] = 1; /* sub_version */
	/* user_tag: NUL-padded, unterminated when exactly 256 bytes */
	memcpy(out + 134, h->user_tag, strnlen(h->user_tag, 256));
}

int lsmt_ht_decode(const uint8_t in[LSMT_HT_SIZE], struct lsmt_ht *h)
{
	if (memcmp(in, magic0, 8) || memcmp(in + 8, magic1, 16))
		return -EINVAL;
	h->flags = get_le32(in + 28);
	h->index_offset = get_le64(in + 32);
	h->index_size = get_le64(in + 40);
	h->virtual_size = get_le64(in + 48);
	memcpy(h->uuid, in + 56, 36);
	h->uuid[36] = 0;
	memcpy(h->parent_uuid, in + 93, 36);
	h->parent_uuid[36] = 0;
	memcpy(h->user_tag, in + 134, 256);
	h->user_tag[256] = 0;
	return 0;
}

size_t seg_find(const struct seg *a, size_t n, uint64_t lba)
{
	/*
	 * Branch-free upper bound on KEY for the last segment starting at or
	 * before LBA; the one after it is the answer unless that one still
	 * covers LBA.
	 */
	uint64_t k = lba << 14 | 0x3fff;
	const struct seg *base = a;
	size_t len = n;

	if (n == 0)
		return 0;
	while (len > 1) {
		size_t half = len / 2;

		__builtin_prefetch(&base[half / 2]);
		__builtin_prefetch(&base[half + half / 2]);
		base = base[half - 1].key <= k ? base + half : base;
		len -= half;
	}
	size_t i = (base - a) + (base->key <= k);
	/* i = number of segments with start <= lba */
	if (i > 0 && seg_end(&a[i - 1]) > lba)
		return i - 1;
	return i;
}

int lsmt_check_vsize(const char *name, uint64_t vsize)
{
	if (vsize <= LSMT_MAX_VSIZE)
		return 0;
	log_error("%s: virtual size %llu is past the %llu bytes (2^50 - 1 sectors) an LSMT layer can address",
		  name, (unsigned long long)vsize, (unsigned long long)LSMT_MAX_VSIZE);
	return -EINVAL;
}

int lsmt_check_range(uint64_t off, uint64_t len)
{
	return off > LSMT_MAX_VSIZE || len > LSMT_MAX_VSIZE - off ? -EINVAL : 0;
}

static int validate(const char *name, const struct seg *s, size_t n, uint64_t begin,
		    uint64_t end)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t moff = seg_moff(&s[i]);

		if (seg_len(&s[i]) == 0) {
			log_error("%s: index entry %zu has length 0", name, i);
			return -EINVAL;
		}
		/* A clip of a segment reaching past the range would wrap its key. */
		if (seg_end(&s[i]) > LSMT_MAX_SECTORS) {
			log_error("%s: index entry %zu ends past sector 2^50 - 1", name, i);
			return -EINVAL;
		}
		if (i > 0 && seg_end(&s[i - 1]) > seg_lba(&s[i])) {
			log_error("%s: index entry %zu overlaps or is out of order", name, i);
			return -EINVAL;
		}
		if (moff < begin || (seg_zeroed(&s[i]) ? moff > end : moff + seg_len(&s[i]) > end)) {
			log_error("%s: index entry %zu points outside the data (%llu+%u, data %llu..%llu)",
				  name, i, (unsigned long long)moff, seg_len(&s[i]),
				  (unsigned long long)begin, (unsigned long long)end);
			return -EINVAL;
		}
	}
	return 0;
}

/* Decode raw entries, dropping padding and tags (lsmt.md 3). */
static size_t decode_entries(const uint8_t *raw, size_t n, struct seg *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t w0 = get_le64(raw + 16 * i), w1 = get_le64(raw + 16 * i + 8);
		uint64_t off = w0 & LSMT_INVALID_OFF;

		if (off == LSMT_INVALID_OFF)
			continue;
		out[k++] = seg_make(off, w0 >> 50, w1 & SEG_MOFF_MASK, w1 & SEG_ZEROED, 0);
	}
	return k;
}

void lsmt_info_from_ht(struct lsmt_info *info, const struct lsmt_ht *h)
{
	info->virtual_size = h->virtual_size;
	memcpy(info->uuid, h->uuid, 37);
	memcpy(info->parent_uuid, h->parent_uuid, 37);
	memcpy(info->user_tag, h->user_tag, 257);
}

int lsmt_open_ro(struct bdev_file *f, struct lsmt_layer **out)
{
	const char *name = bdev_file_name(f);
	uint8_t *buf = malloc(LSMT_HT_SIZE);
	struct lsmt_ht hdr, trl;
	struct lsmt_layer *l = NULL;
	uint8_t *raw = NULL;
	uint64_t toff;
	int err;

	if (!buf) {
		err = -ENOMEM;
		goto fail;
	}
	if (f->size < 2 * LSMT_HT_SIZE) {
		log_error("%s: too small for an LSMT blob (%llu bytes)", name,
			  (unsigned long long)f->size);
		err = -EINVAL;
		goto fail;
	}
	/* lsmt.md 4.1: header needs magic, header and data bits */
	err = bdev_file_pread_full(f, buf, LSMT_HT_SIZE, 0);
	if (err)
		goto fail_io;
	if (lsmt_ht_decode(buf, &hdr) || !(hdr.flags & HT_HEADER) || !(hdr.flags & HT_DATA)) {
		log_error("%s: not an LSMT data blob (bad header)", name);
		err = -EINVAL;
		goto fail;
	}
	toff = f->size - LSMT_HT_SIZE;
	err = bdev_file_pread_full(f, buf, LSMT_HT_SIZE, toff);
	if (err)
		goto fail_io;
	if (lsmt_ht_decode(buf, &trl) || (trl.flags & HT_HEADER) || !(trl.flags & HT_DATA) ||
	    !(trl.flags & HT_SEALED)) {
		log_error("%s: not a sealed LSMT blob (bad trailer)", name);
		err = -EINVAL;
		goto fail;
	}
	if (trl.index_size > LSMT_MAX_RO_ENTRIES || trl.index_offset < LSMT_HT_SIZE ||
	    trl.index_offset > toff || trl.index_size * 16 > toff - trl.index_offset) {
		log_error("%s: index (%llu entries at %llu) does not fit the blob", name,
			  (unsigned long long)trl.index_size,
			  (unsigned long long)trl.index_offset);
		err = -EINVAL;
		goto fail;
	}
	err = lsmt_check_vsize(name, trl.virtual_size);
	if (err)
		goto fail;
	l = calloc(1, sizeof(*l));
	raw = malloc(trl.index_size * 16 + 1);
	if (!l || !raw) {
		err = -ENOMEM;
		goto fail;
	}
	l->segs = malloc(trl.index_size * sizeof(struct seg) + 1);
	if (!l->segs) {
		err = -ENOMEM;
		goto fail;
	}
	err = bdev_file_pread_full(f, raw, trl.index_size * 16, trl.index_offset);
	if (err)
		goto fail_io;
	l->nsegs = decode_entries(raw, trl.index_size, l->segs);
	err = validate(name, l->segs, l->nsegs, LSMT_HT_SIZE / BDEV_SECTOR,
		       trl.index_offset / BDEV_SECTOR);
	if (err)
		goto fail;
	l->data = f;
	l->hdr_flags = hdr.flags;
	lsmt_info_from_ht(&l->info, &trl);
	l->info.nentries = l->nsegs;
	free(raw);
	free(buf);
	*out = l;
	return 0;

fail_io:
	log_error("%s: read failed: %s", name, strerror(-err));
fail:
	if (l)
		free(l->segs);
	free(l);
	free(raw);
	free(buf);
	bdev_file_close(f);
	return err;
}

void lsmt_info(const struct lsmt_layer *l, struct lsmt_info *out)
{
	*out = l->info;
	if (lsmt_is_rw(l))
		out->nentries = __atomic_load_n(&l->map.count, __ATOMIC_RELAXED);
}

int lsmt_segments(struct lsmt_layer *l, const struct seg **out, size_t *n, bool *owned)
{
	if (!lsmt_is_rw(l)) {
		*out = l->segs;
		*n = l->nsegs;
		*owned = false;
		return 0;
	}
	struct seg *s;
	int err;

	pthread_rwlock_rdlock(&l->lock);
	err = umap_export(&l->map, &s, n);
	pthread_rwlock_unlock(&l->lock);
	if (err)
		return err;
	*out = s;
	*owned = true;
	return 0;
}

void lsmt_close(struct lsmt_layer *l)
{
	if (!l)
		return;
	if (lsmt_is_rw(l)) {
		umap_free(&l->map);
		pthread_rwlock_destroy(&l->lock);
		pthread_mutex_destroy(&l->log_mu);
		bdev_file_close(l->index);
	}
	free(l->segs);
	bdev_file_close(l->data);
	free(l);
}
