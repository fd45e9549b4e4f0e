/*
 * tar: the first member of a ustar archive as a read-only bdev_file
 * (lsmt.md 8).  A layer pushed with `overlaybd-commit -t` is one member,
 * optionally preceded by a pax header whose `size` record overrides the
 * ustar size field.  Only headers are parsed; the payload is never read
 * here, and every offset is checked against the archive's size.
 */
#include "bdev.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAR_BLOCK 512u
#define TAR_PAX_MAX (64u << 10) /* pax records we are willing to parse */

/* POSIX ustar header offsets. */
#define TAR_SIZE_OFF 124
#define TAR_CHKSUM_OFF 148
#define TAR_TYPE_OFF 156
#define TAR_MAGIC_OFF 257

struct tar_file {
	struct bdev_file f;
	struct bdev_file *raw;
	uint64_t off;
	char *name;
};

/* A numeric field: octal digits padded with spaces or NULs, or base-256
 * (high bit of the first byte set) as GNU tar writes large sizes. */
static bool tar_num(const uint8_t *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (p[0] & 0x80) {
		if (p[0] != 0x80)
			return false;
		for (i = 1; i < n; i++) {
			if (v >> 56)
				return false;
			v = v << 8 | p[i];
		}
		*out = v;
		return true;
	}
	while (i < n && (p[i] == ' ' || p[i] == 0))
		i++;
	if (i == n)
		return false;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (v >> 60)
			return false;
		v = v << 3 | (p[i] - '0');
	}
	for (; i < n; i++)
		if (p[i] != ' ' && p[i] != 0)
			return false;
	*out = v;
	return true;
}

bool tar_is_tar(const void *first512)
{
	const uint8_t *h = first512;
	uint64_t want, sum = 0;

	/* lsmt.md 8: "ustar" magic and a valid header checksum. */
	if (memcmp(h + TAR_MAGIC_OFF, "ustar", 5))
		return false;
	if (!tar_num(h + TAR_CHKSUM_OFF, 8, &want))
		return false;
	for (unsigned i = 0; i < TAR_BLOCK; i++)
		sum += (i >= TAR_CHKSUM_OFF && i < TAR_CHKSUM_OFF + 8) ? ' ' : h[i];
	return sum == want;
}

/* The `size` record of a pax extended header (records "LEN key=value\n"). */
static bool pax_size(const char *p, size_t n, uint64_t *out)
{
	bool found = false;

	while (n > 0) {
		uint64_t len = 0;
		size_t i = 0;

		while (i < n && p[i] >= '0' && p[i] <= '9' && len < n)
			len = len * 10 + (p[i++] - '0');
		if (i == 0 || len > n || len <= i + 1 || p[i] != ' ' || p[len - 1] != '\n')
			break;
		if (len - i - 1 > 5 && !memcmp(p + i + 1, "size=", 5)) {
			uint64_t v = 0;
			size_t k = i + 6;

			if (k == len - 1)
				return false;
			for (; k < len - 1; k++) {
				if (p[k] < '0' || p[k] > '9' || v > UINT64_MAX / 10 - 9)
					return false;
				v = v * 10 + (p[k] - '0');
			}
			*out = v;
			found = true;
		}
		p += len;
		n -= len;
	}
	return found;
}

static ssize_t tar_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct tar_file *t = (struct tar_file *)f;

	if (off >= f->size)
		return 0;
	if (len > f->size - off)
		len = f->size - off;
	return bdev_file_pread(t->raw, buf, len, t->off + off);
}

static ssize_t tar_pread_nowait(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct tar_file *t = (struct tar_file *)f;

	if (off >= f->size)
		return 0;
	if (len > f->size - off)
		len = f->size - off;
	return t->raw->ops->pread_nowait(t->raw, buf, len, t->off + off);
}

static const char *tar_name(struct bdev_file *f)
{
	return ((struct tar_file *)f)->name;
}

static void tar_close(struct bdev_file *f)
{
	struct tar_file *t = (struct tar_file *)f;

	bdev_file_close(t->raw);
	free(t->name);
	free(t);
}

static const struct bdev_file_ops tar_ops = {
	.pread = tar_pread,
	.name = tar_name,
	.close = tar_close,
};

/* Over a raw file with a fast path, the member has one too. */
static const struct bdev_file_ops tar_nowait_ops = {
	.pread = tar_pread,
	.pread_nowait = tar_pread_nowait,
	.name = tar_name,
	.close = tar_close,
};

/* Find the first member's payload: offset and size. */
static int tar_locate(struct bdev_file *raw, uint64_t *off, uint64_t *size, const char **why)
{
	uint8_t h[TAR_BLOCK];
	uint64_t pos = 0, hsize, psize = 0;
	bool have_pax = false;
	int rc;

	for (int hdr = 0;; hdr++) {
		if (raw->size < pos + TAR_BLOCK)
			return *why = "truncated header", -EINVAL;
		rc = bdev_file_pread_full(raw, h, TAR_BLOCK, pos);
		if (rc)
			return *why = "cannot read a header", rc;
		if (!tar_is_tar(h))
			return *why = "bad ustar header", -EINVAL;
		if (!tar_num(h + TAR_SIZE_OFF, 12, &hsize))
			return *why = "bad size field", -EINVAL;
		pos += TAR_BLOCK;
		if (h[TAR_TYPE_OFF] != 'x')
			break;
		/* lsmt.md 8: one pax header, then the member's own header. */
		if (hdr > 0)
			return *why = "more than one pax header", -EINVAL;
		if (hsize > TAR_PAX_MAX || raw->size - pos < hsize)
			return *why = "bad pax header size", -EINVAL;
		char *rec = malloc(hsize + 1);

		if (!rec)
			return -ENOMEM;
		rc = bdev_file_pread_full(raw, rec, hsize, pos);
		if (rc == 0)
			have_pax = pax_size(rec, hsize, &psize);
		free(rec);
		if (rc)
			return *why = "cannot read the pax header", rc;
		pos += (hsize + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
	}
	if (h[TAR_TYPE_OFF] != '0' && h[TAR_TYPE_OFF] != 0)
		return *why = "first member is not a regular file", -EINVAL;
	*size = have_pax ? psize : hsize;
	*off = pos;
	if (raw->size - pos < *size)
		return *why = "member extends past the end of the archive", -EINVAL;
	return 0;
}

int tar_open(struct bdev_file *raw, struct bdev_file **out)
{
	struct tar_file *t;
	const char *why = NULL;
	uint64_t off = 0, size = 0;
	int rc = tar_locate(raw, &off, &size, &why);

	if (rc) {
		log_error("%s: not a usable tar layer: %s", bdev_file_name(raw),
			  why ? why : strerror(-rc));
		bdev_file_close(raw);
		return rc;
	}
	t = calloc(1, sizeof(*t));
	if (!t || asprintf(&t->name, "tar(%s)", bdev_file_name(raw)) < 0) {
		free(t);
		bdev_file_close(raw);
		return -ENOMEM;
	}
	t->f.ops = raw->ops->pread_nowait ? &tar_nowait_ops : &tar_ops;
	t->f.size = size;
	t->raw = raw;
	t->off = off;
	*out = &t->f;
	return 0;
}
