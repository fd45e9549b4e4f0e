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
__attribute__((target("sse4.2")))
static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

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
