/*
 * fuzz_zfile: the ZFile opener and reader (blockdev/zfile.c) on arbitrary
 * bytes held in a memory file.  The first byte is a mode: with bit 0 set
 * the harness first repairs every checksum it can find (header and trailer
 * digests, index CRC, block CRCs) so mutations reach the jump table and
 * the codecs instead of dying at the digest check.  Oracle: whenever a
 * whole-range read succeeds, reading the same range in small pieces must
 * succeed too and give the same bytes (the block cache and readahead must
 * never change what a read returns).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/bdev.h"
#include "blockdev/zfile_int.h"
#include "common/common.h"

#define MAX_CHECK (256u << 10)

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static void set32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void fix_digest(uint8_t *ht)
{
	set32(ht + 28, zfile_ht_digest(ht));
}

/* zfile.md 3, 4: make every checksum match the (mutated) content. */
static void repair(uint8_t *b, size_t n)
{
	uint8_t *ht;
	uint64_t io, ni, pos = ZF_HT_SIZE;

	if (n < 2 * ZF_HT_SIZE || !zfile_is_zfile(b))
		return;
	ht = (b[32] & ZF_FLAG_OVERWRITTEN) ? b : b + n - ZF_HT_SIZE;
	io = get64(ht + 40);
	ni = get64(ht + 48);
	if (io <= n && ni <= (n - io) / 4) {
		for (uint64_t i = 0; i < ni; i++) {
			uint32_t l = get32(b + io + 4 * i);

			if (!b[88] || l < 5 || pos > io || l > io - pos)
				break;
			set32(b + pos + l - 4, crc32c_raw(ZF_BLOCK_CRC_SEED, b + pos, l - 4));
			pos += l;
		}
		set32(ht + 64, crc32c_raw(0, b + io, ni * 4));
	}
	fix_digest(b);
	if (ht != b)
		fix_digest(ht);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *a, *c;
	struct bdev_file *raw, *v;
	uint8_t *b;
	size_t lim, step;
	ssize_t ra;

	if (!a) {
		log_open("/dev/null");
		a = malloc(MAX_CHECK);
		c = malloc(MAX_CHECK);
	}
	if (size < 1)
		return 0;
	b = malloc(size);
	memcpy(b, data + 1, size - 1);
	if (data[0] & 1)
		repair(b, size - 1);
	if (bdev_file_open_mem(b, size - 1, &raw))
		abort();
	free(b);
	if (zfile_open(raw, &v))
		return 0;
	lim = v->size < MAX_CHECK ? v->size : MAX_CHECK;
	step = 512u << (data[0] >> 1 & 7);
	ra = bdev_file_pread(v, a, lim, 0);
	if (ra >= 0 && (size_t)ra != lim)
		abort();
	for (size_t off = 0; off < lim; off += step) {
		size_t k = lim - off < step ? lim - off : step;
		ssize_t r = bdev_file_pread(v, c + off, k, off);

		if (ra >= 0 && (r != (ssize_t)k || memcmp(a + off, c + off, k)))
			abort();
	}
	if (v->size > 4096)
		(void)bdev_file_pread(v, a, 4096, v->size - 4096);
	if (bdev_file_pread(v, a, 512, v->size) != 0)
		abort();
	bdev_file_close(v);
	return 0;
}
