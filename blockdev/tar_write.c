/*
 * tar_write: wrap a blob as the one member of a tar archive, the form
 * `overlaybd-commit -t` pushes (lsmt.md 8): a pax header `overlaybd.pax`
 * carrying the real size, a ustar header `overlaybd.commit` with size 0,
 * the payload padded to 512 bytes, and two zero blocks.  Field formats
 * follow the reference's output byte for byte.
 */
#include "bdev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAR_BLOCK 512u
#define TAR_COPY (1u << 20)

/* Octal NUMBER right-aligned in DIGITS characters and a space; an 8-byte
 * field keeps its last byte NUL (the reference's "%6o \0" / "%11o "). */
static void tar_field(uint8_t *p, int digits, uint64_t number)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%*llo ", digits, (unsigned long long)number);
	memcpy(p, tmp, digits + 1);
}

static void tar_checksum(uint8_t *h)
{
	unsigned sum = 0;

	memset(h + 148, ' ', 8);
	for (unsigned i = 0; i < TAR_BLOCK; i++)
		sum += h[i];
	tar_field(h + 148, 6, sum);
	h[155] = 0;
}

static void tar_headers(uint8_t *b, uint64_t size)
{
	char rec[64];
	int len, n = 0;

	memset(b, 0, 3 * TAR_BLOCK);
	/* pax record "LEN size=N\n", where LEN counts its own digits. */
	do {
		len = n;
		n = snprintf(rec, sizeof(rec), "%d size=%llu\n", len, (unsigned long long)size);
	} while (len != n);
	memcpy(b + TAR_BLOCK, rec, n);

	strcpy((char *)b, "overlaybd.pax");
	tar_field(b + 124, 11, n);
	b[156] = 'x';
	memcpy(b + 257, "ustar\0" "00", 8);
	tar_checksum(b);

	uint8_t *h = b + 2 * TAR_BLOCK;

	strcpy((char *)h, "overlaybd.commit");
	tar_field(h + 100, 6, 0100644);
	tar_field(h + 108, 6, 0);
	tar_field(h + 116, 6, 0);
	tar_field(h + 124, 11, 0);
	tar_field(h + 136, 11, 0);
	h[156] = '0';
	memcpy(h + 257, "ustar\0" "00", 8);
	strcpy((char *)h + 265, "root");
	strcpy((char *)h + 297, "root");
	tar_checksum(h);
}

static int put(struct bdev_file *dst, const void *buf, size_t len, uint64_t off)
{
	ssize_t n = dst->ops->pwrite(dst, buf, len, off);

	return n < 0 ? (int)n : (size_t)n == len ? 0 : -EIO;
}

int tar_wrap(struct bdev_file *src, uint64_t len, struct bdev_file *dst)
{
	uint8_t *buf = malloc(TAR_COPY);
	uint64_t pos = 3 * TAR_BLOCK, pad;
	int rc;

	if (!buf)
		return -ENOMEM;
	if (!dst->ops->pwrite || dst->size) {
		free(buf);
		return -EINVAL;
	}
	tar_headers(buf, len);
	rc = put(dst, buf, 3 * TAR_BLOCK, 0);
	for (uint64_t off = 0; rc == 0 && off < len; off += TAR_COPY) {
		size_t n = len - off < TAR_COPY ? len - off : TAR_COPY;

		rc = bdev_file_pread_full(src, buf, n, off);
		if (rc == 0)
			rc = put(dst, buf, n, pos + off);
	}
	if (rc == 0) {
		pos += len;
		pad = (TAR_BLOCK - len % TAR_BLOCK) % TAR_BLOCK + 2 * TAR_BLOCK;
		memset(buf, 0, pad);
		rc = put(dst, buf, pad, pos);
	}
	free(buf);
	return rc;
}
