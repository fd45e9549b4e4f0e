/*
 * test_stack: the merged device (blockdev/stack.c, pool.c) over the stack-a
 * vectors: every stack reads back to MANIFEST.md's hashes from sealed
 * blobs and with a writable top, map status, and I/O through the pool.
 */
#include "lsmt_helpers.h"

#include <poll.h>
#include <sys/stat.h>

static struct bdev *open_stack(const char *const *files, int n, struct lsmt_layer *upper)
{
	struct lsmt_layer *l[8];
	struct bdev *d = NULL;
	int rc;

	for (int i = 0; i < n; i++)
		l[i] = open_ro(files[i]);
	rc = bdev_open(l, n, upper, &d);
	if (rc)
		fail_msg("bdev_open: expected 0, got %d", rc);
	return d;
}

static void test_sealed_stacks(void **state)
{
	static const char *const files[] = { VEC "l1.lsmt", VEC "l2.lsmt", VEC "l3.lsmt" };
	static const char *const full[] = { L1_FULL, L12_FULL, L123_FULL };
	static const char *const m32[] = { L1_32M, L12_32M, L123_32M };
	static const char *const last[] = { L1_LAST64K, L12_LAST64K, L12_LAST64K };

	for (int n = 1; n <= 3; n++) {
		struct bdev *d = open_stack(files, n, NULL);

		assert_int_equal(bdev_size(d), GiB);
		assert_false(bdev_writable(d));
		assert_int_equal(bdev_nlayers(d), n);
		expect_sha(d, 0, 32 * MiB, m32[n - 1], "first 32 MiB");
		expect_sha(d, GiB - 65536, 65536, last[n - 1], "last 64 KiB");
		expect_sha(d, 0, GiB, full[n - 1], "whole device");
		assert_int_equal(bdev_flush(d), 0);
		assert_int_equal(bdev_pwrite(d, "x", 0, 0), -EROFS);
		bdev_close(d);
	}
}

static void test_merged_blob(void **state)
{
	static const char *const files[] = { VEC "merged123.lsmt" };
	struct bdev *d = open_stack(files, 1, NULL);

	expect_sha(d, 0, GiB, L123_FULL, "merged123.lsmt");
	bdev_close(d);
}

static void test_writable_top(void **state)
{
	static const char *const files[] = { VEC "l1.lsmt", VEC "l2.lsmt" };
	char *t = make_tmpdir();
	struct bdev *d;

	copy_file(VEC "l1.data", path_in(t, "l1.data"));
	copy_file(VEC "l1.index", path_in(t, "l1.index"));
	d = open_stack(files, 0, open_rw(path_in(t, "l1.data"), path_in(t, "l1.index")));
	assert_true(bdev_writable(d));
	expect_sha(d, 0, GiB, L1_FULL, "l1.data+l1.index alone");
	bdev_close(d);

	copy_file(VEC "l3.data", path_in(t, "l3.data"));
	copy_file(VEC "l3.index", path_in(t, "l3.index"));
	d = open_stack(files, 2, open_rw(path_in(t, "l3.data"), path_in(t, "l3.index")));
	assert_int_equal(bdev_nlayers(d), 3);
	expect_sha(d, 0, GiB, L123_FULL, "l3 writable over l1, l2");
	bdev_close(d);
	rm_tmpdir(t);
}

static void test_no_lowers(void **state)
{
	char *t = make_tmpdir();
	struct bdev_file *df = open_file(path_in(t, "d"), O_RDWR | O_CREAT);
	struct bdev_file *xf = open_file(path_in(t, "i"), O_RDWR | O_CREAT);
	struct bdev *d = NULL;
	uint8_t buf[8192], back[8192];

	assert_int_equal(lsmt_create_rw(df, xf, 64 * MiB, NULL), 0);
	bdev_file_close(df);
	bdev_file_close(xf);
	assert_int_equal(bdev_open(NULL, 0, open_rw(path_in(t, "d"), path_in(t, "i")), &d), 0);
	assert_int_equal(bdev_size(d), 64 * MiB);
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(bdev_pwrite(d, buf, 4096, 8192), 0);
	assert_int_equal(bdev_pread(d, back, 8192, 4096), 0);
	for (int i = 0; i < 8192; i++)
		if (back[i] != (i >= 4096 ? 0xab : 0))
			fail_msg("byte %d: expected %#x, got %#x", i, i >= 4096 ? 0xab : 0, back[i]);
	assert_int_equal(bdev_pwrite(d, buf, 100, 0), -EINVAL);
	assert_int_equal(bdev_pwrite(d, buf, 512, 7), -EINVAL);
	assert_int_equal(bdev_discard(d, 8192 + 512, 1024), 0);
	assert_int_equal(bdev_flush(d), 0);
	bdev_close(d);

	assert_int_equal(bdev_open(NULL, 0, open_rw(path_in(t, "d"), path_in(t, "i")), &d), 0);
	assert_int_equal(bdev_pread(d, back, 4096, 8192), 0);
	for (int i = 0; i < 4096; i++)
		if (back[i] != (i >= 512 && i < 1536 ? 0 : 0xab))
			fail_msg("after reopen, byte %d: expected %#x, got %#x", i,
				 i >= 512 && i < 1536 ? 0 : 0xab, back[i]);
	bdev_close(d);
	rm_tmpdir(t);
}

static void put_le64_at(const char *path, uint64_t off, uint64_t v)
{
	uint8_t b[8];
	int fd = open(path, O_WRONLY);

	for (int i = 0; i < 8; i++)
		b[i] = v >> (8 * i);
	if (fd < 0 || pwrite(fd, b, 8, off) != 8)
		fail_msg("patching %s at %llu failed", path, (unsigned long long)off);
	close(fd);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		fail_msg("stat %s failed", path);
	return st.st_size;
}

/*
 * lsmt.md 3: segments hold 50-bit sector numbers.  A lower claiming 2^60
 * bytes used to give its writable upper that size, and a write at LBA
 * 2^51 - 8 wrapped its segment key onto another LBA.  Such a layer is
 * refused at open, as is an upper whose own header claims it.
 */
static void test_vsize_limit(void **state)
{
	char *t = make_tmpdir();
	const char *huge = path_in(t, "huge.lsmt");
	uint64_t vsize = 1ull << 60, at = vsize - 4096;
	struct lsmt_layer *low = NULL, *up = NULL;
	struct bdev_file *df, *xf;
	struct bdev *d = NULL;
	uint8_t buf[4096], back[4096];
	int rc;

	copy_file(VEC "l1.lsmt", huge);
	put_le64_at(huge, file_size(huge) - 4096 + 48, vsize); /* trailer virtual_size */
	df = open_file(path_in(t, "d"), O_RDWR | O_CREAT);
	xf = open_file(path_in(t, "i"), O_RDWR | O_CREAT);
	assert_int_equal(lsmt_create_rw(df, xf, 0, NULL), 0);
	bdev_file_close(df);
	bdev_file_close(xf);
	rc = lsmt_open_ro(open_file(huge, O_RDONLY), &low);
	if (rc == 0) {
		assert_int_equal(bdev_open(&low, 1, open_rw(path_in(t, "d"), path_in(t, "i")), &d), 0);
		memset(buf, 0xcd, sizeof(buf));
		assert_int_equal(bdev_pwrite(d, buf, sizeof(buf), at), 0);
		assert_int_equal(bdev_pread(d, back, sizeof(back), at), 0);
		fail_msg("lower with virtual_size 2^60: expected -EINVAL at open, got 0 (a write "
			 "at byte %llu reads back %s)", (unsigned long long)at,
			 memcmp(buf, back, sizeof(buf)) ? "other bytes" : "the same bytes");
	}
	assert_int_equal(rc, -EINVAL);

	/* The upper's own header, and the creation of one that large. */
	put_le64_at(path_in(t, "d"), 48, vsize);
	rc = lsmt_open_rw(open_file(path_in(t, "d"), O_RDWR), open_file(path_in(t, "i"), O_RDWR),
			  &up);
	if (rc != -EINVAL)
		fail_msg("upper with virtual_size 2^60: expected %d, got %d", -EINVAL, rc);
	df = open_file(path_in(t, "d2"), O_RDWR | O_CREAT);
	xf = open_file(path_in(t, "i2"), O_RDWR | O_CREAT);
	rc = lsmt_create_rw(df, xf, vsize, NULL);
	if (rc != -EINVAL)
		fail_msg("create with virtual_size 2^60: expected %d, got %d", -EINVAL, rc);
	bdev_file_close(df);
	bdev_file_close(xf);
	rm_tmpdir(t);
}

struct status_case {
	uint64_t off, len;
	bool mapped;
};

static void test_map_status(void **state)
{
	static const char *const files[] = { VEC "l1.lsmt", VEC "l2.lsmt", VEC "l3.lsmt" };
	/* MANIFEST.md "Content of the full stack": zeroed/holes unmapped */
	static const struct status_case cases[] = {
		{ 0, 0x1000, false },         /* L3 discard */
		{ 0x1000, 0xf000, true },     /* L1W1, L2W1, L1W1 */
		{ 0x10000, 0x100000 - 0x10000, false },
		{ 0x100000, 0x8000, true },   /* L1W2 up to the L1 discard */
		{ 0x108000, 0x2000, false },  /* L1 discard */
		{ 0x10a000, 0x16000, true },  /* L3W2 L1W2 L2W3 L1W2 */
		{ 0x400200, 0x600, true },
		{ 0x800000, 0x800000, false },
		{ 0x1000000, 0x1000, true },
		{ 0x3fff0000, 0x10000, true },
	};
	struct bdev *d = open_stack(files, 3, NULL);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t len = 0;
		bool mapped = !cases[i].mapped;

		assert_int_equal(bdev_map_status(d, cases[i].off, &len, &mapped), 0);
		if (len != cases[i].len || mapped != cases[i].mapped)
			fail_msg("status at %#llx: expected len %#llx mapped %d, got len %#llx mapped %d",
				 (unsigned long long)cases[i].off, (unsigned long long)cases[i].len,
				 cases[i].mapped, (unsigned long long)len, mapped);
	}
	uint64_t len;
	bool mapped;
	assert_int_equal(bdev_map_status(d, GiB, &len, &mapped), -EINVAL);
	bdev_close(d);
}

static int ndone;

static void on_done(struct bdev_req *r)
{
	ndone++;
	if (r->result)
		fail_msg("pool request: expected 0, got %d", r->result);
}

static void test_pool(void **state)
{
	static const char *const files[] = { VEC "l1.lsmt", VEC "l2.lsmt", VEC "l3.lsmt" };
	struct bdev *d = open_stack(files, 3, NULL);
	struct bdev *ref = open_stack(files, 3, NULL);
	struct bdev_pool *p;
	enum { N = 64 };
	static uint8_t bufs[N][4096];
	struct iovec iov[N];
	struct bdev_req req[N];

	assert_int_equal(bdev_pool_create(4, &p), 0);
	ndone = 0;
	for (int i = 0; i < N; i++) {
		iov[i] = (struct iovec){ bufs[i], 4096 };
		req[i] = (struct bdev_req){ .op = BDEV_OP_READ, .dev = d, .iov = &iov[i], .iovcnt = 1,
					    .off = 0x100000 + i * 4096ull, .done = on_done };
		bdev_submit(p, &req[i]);
	}
	while (ndone < N) {
		struct pollfd pfd = { .fd = bdev_pool_fd(p), .events = POLLIN };

		assert_true(poll(&pfd, 1, 5000) == 1);
		bdev_pool_service(p);
	}
	for (int i = 0; i < N; i++) {
		uint8_t want[4096];

		assert_int_equal(bdev_pread(ref, want, 4096, 0x100000 + i * 4096ull), 0);
		if (memcmp(want, bufs[i], 4096))
			fail_msg("pool read %d: bytes differ from a direct read", i);
	}
	/* a flush on a read-only device succeeds; a write fails */
	struct bdev_req fl = { .op = BDEV_OP_FLUSH, .dev = d, .done = on_done };
	bdev_submit(p, &fl);
	bdev_pool_destroy(p);
	assert_int_equal(ndone, N + 1);
	bdev_close(d);
	bdev_close(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sealed_stacks),
		cmocka_unit_test(test_merged_blob),
		cmocka_unit_test(test_writable_top),
		cmocka_unit_test(test_no_lowers),
		cmocka_unit_test(test_vsize_limit),
		cmocka_unit_test(test_map_status),
		cmocka_unit_test(test_pool),
	};

	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
