/*
 * fuzz_tar: bdev_file_unwrap (tar, then ZFile; blockdev/tar.c, unwrap.c)
 * on arbitrary bytes.  With bit 0 of the first byte set, the harness
 * repairs the checksums of the first three 512-byte headers, so mutations
 * reach the pax and size parsing.  Oracle: the member view never claims
 * more bytes than the archive holds, and reads of it never fail on a
 * plain tar member.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/bdev.h"
#include "common/common.h"

static void repair(uint8_t *b, size_t n)
{
	for (size_t h = 0; h + 512 <= n && h < 1536; h += 512) {
		unsigned sum = 0;
		char tmp[16];

		if (memcmp(b + h + 257, "ustar", 5))
			continue;
		memset(b + h + 148, ' ', 8);
		for (int i = 0; i < 512; i++)
			sum += b[h + i];
		snprintf(tmp, sizeof(tmp), "%06o", sum & 0777777);
		memcpy(b + h + 148, tmp, 7);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct bdev_file *raw, *v;
	uint8_t *b, buf[4096];
	size_t n;

	if (!init) {
		log_open("/dev/null");
		init = true;
	}
	if (size < 1)
		return 0;
	n = size - 1;
	b = malloc(n + 1);
	memcpy(b, data + 1, n);
	if (data[0] & 1)
		repair(b, n);
	if (bdev_file_open_mem(b, n, &raw))
		abort();
	if (n >= 512 && tar_is_tar(b)) {
		struct bdev_file *t;

		if (bdev_file_open_mem(b, n, &t))
			abort();
		if (tar_open(t, &t) == 0) {
			if (t->size > n)
				abort();
			for (uint64_t off = 0; off < t->size; off += sizeof(buf)) {
				size_t k = t->size - off < sizeof(buf) ? t->size - off : sizeof(buf);

				if (bdev_file_pread(t, buf, sizeof(buf), off) != (ssize_t)k)
					abort();
			}
			bdev_file_close(t);
		}
	}
	free(b);
	if (bdev_file_unwrap(raw, &v) == 0) {
		(void)bdev_file_pread(v, buf, sizeof(buf), 0);
		bdev_file_close(v);
	}
	return 0;
}
