/*
 * crc32c: CRC-32C register update.  The SSE4.2 crc32 instruction computes
 * exactly the raw (non-inverted) update, which is what ZFile stores
 * (zfile.md section 4); the table path gives the same values on CPUs
 * without it.
 */
#include "common.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

static uint32_t crc_table[8][256];
static int crc_hw;

/*
 * The crc32 instruction has a latency of three cycles and a throughput of
 * one, so long buffers run three independent chains over three adjacent
 * stretches of CRC_STRIDE bytes and join them: by linearity,
 * crc(s, A|B) = shift(crc(s, A), |B|) ^ crc(0, B), where shift() advances
 * the register over zero bytes.  crc_shift[] is shift() over CRC_STRIDE
 * bytes, one table per byte of the register.
 */
#define CRC_STRIDE 256
static uint32_t crc_shift[4][256];

/* Built before main() so worker threads never race on the tables. */
__attribute__((constructor)) static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
	for (int bit = 0; bit < 32; bit++) {
		uint32_t c = 1u << bit;

		for (int n = 0; n < CRC_STRIDE; n++)
			c = crc_table[0][c & 0xff] ^ (c >> 8);
		for (uint32_t v = 0; v < 256; v++)
			if (v & (1u << (bit % 8)))
				crc_shift[bit / 8][v] ^= c;
	}
#if defined(__x86_64__)
	{
		unsigned int a, b, c, d;

		crc_hw = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
	}
#else
	crc_hw = 0;
#endif
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		v ^= crc;
		crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^
		      crc_table[5][(v >> 16) & 0xff] ^ crc_table[4][(v >> 24) & 0xff] ^
		      crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
		      crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
static inline uint32_t crc_shift_stride(uint32_t c)
{
	return crc_shift[0][c & 0xff] ^ crc_shift[1][(c >> 8) & 0xff] ^
	       crc_shift[2][(c >> 16) & 0xff] ^ crc_shift[3][c >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len >= 3 * CRC_STRIDE) {
		uint64_t c1 = 0, c2 = 0;

		for (size_t i = 0; i < CRC_STRIDE; i += 8) {
			uint64_t v0, v1, v2;

			memcpy(&v0, p + i, 8);
			memcpy(&v1, p + CRC_STRIDE + i, 8);
			memcpy(&v2, p + 2 * CRC_STRIDE + i, 8);
			c = __builtin_ia32_crc32di(c, v0);
			c1 = __builtin_ia32_crc32di(c1, v1);
			c2 = __builtin_ia32_crc32di(c2, v2);
		}
		c = crc_shift_stride(crc_shift_stride((uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * CRC_STRIDE;
		len -= 3 * CRC_STRIDE;
	}
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

uint32_t crc32c_raw(uint32_t seed, const void *buf, size_t len)
{
#if defined(__x86_64__)
	if (crc_hw)
		return crc_sse42(seed, buf, len);
#endif
	return crc_sw(seed, buf, len);
}
