/*
 * fuzz_lsmt: the layer opener chain the daemon runs on every lower
 * (bdev_file_unwrap, lsmt_open_ro, bdev_open) and reads through the
 * merged device, on arbitrary bytes held in a memory file.  Reads cover
 * the start and end of the device and the first bytes of up to 64 mapped
 * runs found with bdev_map_status.  Oracle: a read of a mapped run either
 * succeeds or fails with -EIO/-EINVAL, never anything else.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "blockdev/bdev.h"
#include "common/common.h"

static void check(int rc)
{
	if (rc != 0 && rc != -EIO && rc != -EINVAL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *buf;
	struct bdev_file *raw, *v;
	struct lsmt_layer *l;
	struct bdev *d;
	uint64_t off = 0, dsize;

	if (!buf) {
		log_open("/dev/null");
		buf = malloc(1 << 16);
	}
	if (bdev_file_open_mem(data, size, &raw))
		abort();
	if (bdev_file_unwrap(raw, &v))
		return 0;
	if (lsmt_open_ro(v, &l))
		return 0;
	if (bdev_open(&l, 1, NULL, &d))
		return 0;
	dsize = bdev_size(d);
	if (dsize >= 1 << 16) {
		check(bdev_pread(d, buf, 1 << 16, 0));
		check(bdev_pread(d, buf, 1 << 16, (dsize - (1 << 16)) & ~511ull));
	}
	for (int i = 0; i < 64 && off < dsize; i++) {
		uint64_t len = 0;
		bool mapped = false;

		if (bdev_map_status(d, off, &len, &mapped) || len == 0)
			break;
		if (mapped) {
			uint64_t n = len < (1 << 16) ? len : 1 << 16;

			check(bdev_pread(d, buf, n & ~511ull, off));
		}
		off += len;
	}
	bdev_close(d);
	return 0;
}
