/*
 * test_nowait: bdev_try_preadv(), the loop thread's page-cache read
 * (blockdev/stack.c, file.c), against bdev_preadv() on the stack-a vectors:
 * same bytes wherever it answers; an LZ4 ZFile block decoded on the spot,
 * a zstd one -EAGAIN until it is in the block cache; and reads through a
 * writable top.
 */
#include "lsmt_helpers.h"

static struct bdev *open_files(const char *const *files, int n, struct lsmt_layer *upper)
{
	struct lsmt_layer *l[4];
	struct bdev *d = NULL;
	int rc;

	for (int i = 0; i < n; i++)
		l[i] = open_ro(files[i]);
	rc = bdev_open(l, n, upper, &d);
	if (rc)
		fail_msg("bdev_open: expected 0, got %d", rc);
	return d;
}

/* Start of the mapped runs of D (the vectors are mostly holes, which read
 * as zeros without touching a file). */
static int mapped_runs(struct bdev *d, uint64_t *starts, int max)
{
	uint64_t off = 0, len;
	bool mapped;
	int n = 0;

	while (off < bdev_size(d) && n < max) {
		assert_int_equal(bdev_map_status(d, off, &len, &mapped), 0);
		if (mapped)
			starts[n++] = off;
		off += len;
	}
	if (!n)
		fail_msg("expected mapped data in the vectors, got none");
	return n;
}

/* Compare try_preadv with preadv on N ranges that start where data is
 * mapped; returns how many answered. */
static int compare_ranges(struct bdev *d, int n)
{
	static uint8_t a[65536], b[65536];
	static uint64_t starts[4096];
	int nruns = mapped_runs(d, starts, 4096);
	uint64_t seed = 12345;
	int answered = 0;

	for (int i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		size_t len = (size_t)((seed >> 20) % 128 + 1) * 512;
		uint64_t off = starts[(seed >> 33) % nruns];

		if (off + len > bdev_size(d))
			off = bdev_size(d) - len;
		/* two vectors, split inside a sector run, as the transport may pass */
		struct iovec v[2] = { { a, len / 2 / 512 * 512 }, { a + len / 2 / 512 * 512, 0 } };

		v[1].iov_len = len - v[0].iov_len;
		memset(a, 0xa5, sizeof(a));
		assert_int_equal(bdev_pread(d, b, len, off), 0);
		int rc = bdev_try_preadv(d, v, 2, off);

		if (rc == -EAGAIN)
			continue;
		if (rc)
			fail_msg("try_preadv at %llu: expected 0 or -EAGAIN, got %d",
				 (unsigned long long)off, rc);
		if (memcmp(a, b, len))
			fail_msg("try_preadv at %llu+%zu: bytes differ from preadv",
				 (unsigned long long)off, len);
		answered++;
	}
	return answered;
}

static void test_sealed(void **state)
{
	static const char *const files[] = { VEC "l1.lsmt", VEC "l2.lsmt", VEC "l3.lsmt" };
	struct bdev *d = open_files(files, 3, NULL);
	int n;

	/* the first pass reads everything once, so the second finds it cached */
	compare_ranges(d, 400);
	n = compare_ranges(d, 400);
	if (n < 300)
		fail_msg("cached sealed layers: expected most of 400 reads answered, got %d", n);
	bdev_close(d);
}

/* Read PATH once, so its pages are in the page cache. */
static void warm(const char *path)
{
	char b[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	while ((n = read(fd, b, sizeof(b))) > 0)
		;
	close(fd);
}

/*
 * A small LZ4 block whose stored bytes are in the page cache decodes on the
 * loop thread; a zstd block is -EAGAIN until a worker's read puts it in the
 * decompressed-block cache.  Either way the bytes are bdev_pread's.
 */
static void test_zfile(void **state)
{
	static const char *const files[] = { VEC "l1.lz4.zfile", VEC "l1.zstd.zfile" };

	for (int k = 0; k < 2; k++) {
		struct lsmt_layer *l;
		struct bdev_file *f;
		struct bdev *d;
		uint8_t buf[4096], want[4096];
		struct iovec v = { buf, sizeof(buf) };
		uint64_t off = 0, len;
		bool mapped = false;
		int rc;

		warm(files[k]);
		assert_int_equal(bdev_file_unwrap(open_file(files[k], O_RDONLY), &f), 0);
		assert_int_equal(lsmt_open_ro(f, &l), 0);
		assert_int_equal(bdev_open(&l, 1, NULL, &d), 0);
		/* somewhere with data, so the read needs the layer file */
		while (off < bdev_size(d)) {
			assert_int_equal(bdev_map_status(d, off, &len, &mapped), 0);
			if (mapped)
				break;
			off += len;
		}
		assert_true(mapped);
		rc = bdev_try_preadv(d, &v, 1, off);
		if (k == 0 && rc)
			fail_msg("%s: LZ4 block, stored bytes cached: expected 0, got %d", files[k], rc);
		if (k == 1 && rc != -EAGAIN)
			fail_msg("%s: zstd block not decoded yet: expected -EAGAIN (%d), got %d",
				 files[k], -EAGAIN, rc);
		if (k == 1) {
			/* a worker's read of part of a block decodes it into the
			 * block cache; then the loop thread may read that part */
			assert_int_equal(bdev_pread(d, want, 512, off), 0);
			v.iov_len = 512;
			memset(buf, 0x5a, sizeof(buf));
			rc = bdev_try_preadv(d, &v, 1, off);
			if (rc)
				fail_msg("%s: block in the cache: expected 0, got %d", files[k], rc);
		}
		assert_int_equal(bdev_pread(d, want, v.iov_len, off), 0);
		if (memcmp(buf, want, v.iov_len))
			fail_msg("%s: loop-thread read: bytes differ from bdev_pread", files[k]);
		bdev_close(d);
	}
}

static void test_writable_top(void **state)
{
	static const char *const files[] = { VEC "l1.lsmt", VEC "l2.lsmt" };
	char *t = make_tmpdir();
	struct bdev *d;
	int n;

	copy_file(VEC "l3.data", path_in(t, "l3.data"));
	copy_file(VEC "l3.index", path_in(t, "l3.index"));
	d = open_files(files, 2, open_rw(path_in(t, "l3.data"), path_in(t, "l3.index")));
	compare_ranges(d, 300);
	n = compare_ranges(d, 300);
	if (n < 200)
		fail_msg("cached stack with writable top: expected most of 300 answered, got %d", n);
	bdev_close(d);
	rm_tmpdir(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sealed),
		cmocka_unit_test(test_zfile),
		cmocka_unit_test(test_writable_top),
	};

	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
