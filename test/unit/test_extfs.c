/*
 * test_extfs: files of an ext4 image made here with mke2fs -d, mapped to
 * device ranges through a byte source (extfs/): the ranges of a file hold
 * its bytes, a directory walk finds every file below it, a missing path is
 * -ENOENT, and what is not ext4 is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "extfs/extfs.h"

#define BIG_SIZE (300 * 1024 + 123)

struct fixture {
	char dir[64];
	char img[96];
	uint8_t *image;
	size_t image_size;
	uint8_t *big;
	unsigned reads;
};

static void put_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char path[160], cmd[512];
	unsigned seed = 7;
	struct stat st;
	FILE *f;

	strcpy(fx->dir, "/tmp/test_extfs.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	fx->big = malloc(BIG_SIZE);
	for (size_t i = 0; i < BIG_SIZE; i++)
		fx->big[i] = rand_r(&seed);
	snprintf(path, sizeof(path), "%s/root", fx->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/root/usr", fx->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/root/usr/lib", fx->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/root/usr/lib/big.so", fx->dir);
	put_file(path, fx->big, BIG_SIZE);
	snprintf(path, sizeof(path), "%s/root/usr/lib/small.py", fx->dir);
	put_file(path, "print('hello')\n", 15);
	snprintf(path, sizeof(path), "%s/root/etc", fx->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/root/etc/motd", fx->dir);
	put_file(path, "hello\n", 6);
	snprintf(fx->img, sizeof(fx->img), "%s/fs.img", fx->dir);
	snprintf(cmd, sizeof(cmd), "mke2fs -q -F -t ext4 -d %s/root %s 16M >/dev/null 2>&1",
		 fx->dir, fx->img);
	if (system(cmd) != 0)
		return -1;
	if (stat(fx->img, &st) < 0)
		return -1;
	fx->image_size = st.st_size;
	fx->image = malloc(fx->image_size);
	f = fopen(fx->img, "rb");
	if (!f || fread(fx->image, 1, fx->image_size, f) != fx->image_size)
		return -1;
	fclose(f);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx->image);
	free(fx->big);
	free(fx);
	return 0;
}

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct fixture *fx = ctx;

	if (off > fx->image_size || len > fx->image_size - off)
		return -EIO;
	memcpy(buf, fx->image + off, len);
	fx->reads++;
	return 0;
}

struct collect {
	uint8_t *bytes;
	size_t len, cap;
	unsigned ranges;
	const uint8_t *image;
};

static int collect_cb(void *arg, uint64_t off, uint64_t len)
{
	struct collect *c = arg;

	if (c->len + len > c->cap) {
		c->cap = (c->len + len) * 2;
		c->bytes = realloc(c->bytes, c->cap);
	}
	memcpy(c->bytes + c->len, c->image + off, len);
	c->len += len;
	c->ranges++;
	return 0;
}

static struct extfs *open_fs(struct fixture *fx)
{
	struct extfs_source src = { .pread = mem_pread, .ctx = fx, .size = fx->image_size };
	struct extfs *fs = NULL;

	assert_int_equal(extfs_open(&src, &fs), 0);
	assert_true(fx->reads > 0); /* everything came through the callback */
	return fs;
}

static void test_file_ranges(void **state)
{
	struct fixture *fx = *state;
	struct extfs *fs = open_fs(fx);
	struct collect c = { .image = fx->image };

	assert_int_equal(extfs_file_ranges(fs, "/usr/lib/big.so", 0, collect_cb, &c), 0);
	if (c.len < BIG_SIZE || c.len >= BIG_SIZE + 4096)
		fail_msg("expected %u bytes in whole blocks, got %zu", BIG_SIZE, c.len);
	assert_memory_equal(c.bytes, fx->big, BIG_SIZE);
	free(c.bytes);

	memset(&c, 0, sizeof(c));
	c.image = fx->image;
	assert_int_equal(extfs_file_ranges(fs, "/etc/motd", 0, collect_cb, &c), 0);
	assert_true(c.len == 0 || memcmp(c.bytes, "hello\n", 6) == 0); /* or inline */
	free(c.bytes);
	extfs_close(fs);
}

static void test_walk(void **state)
{
	struct fixture *fx = *state;
	struct extfs *fs = open_fs(fx);
	struct collect c = { .image = fx->image };

	/* not recursive: a directory gives nothing */
	assert_int_equal(extfs_file_ranges(fs, "/usr", 0, collect_cb, &c), 0);
	assert_int_equal(c.len, 0);
	assert_int_equal(extfs_file_ranges(fs, "/usr", 1, collect_cb, &c), 0);
	if (c.len < BIG_SIZE + 15)
		fail_msg("expected big.so and small.py below /usr, got %zu bytes", c.len);
	free(c.bytes);
	assert_int_equal(extfs_file_ranges(fs, "/usr/lib/none", 0, collect_cb, &c), -ENOENT);
	assert_int_equal(extfs_file_ranges(fs, "/no/such/dir", 1, collect_cb, &c), -ENOENT);
	extfs_close(fs);
}

static void test_not_ext4(void **state)
{
	struct fixture *fx = *state;
	struct extfs_source src = { .pread = mem_pread, .ctx = fx, .size = fx->image_size };
	struct extfs *fs = NULL;

	memset(fx->image + 1024, 0, 1024); /* the superblock */
	assert_true(extfs_open(&src, &fs) < 0);
	src.size = 512; /* too small to hold one */
	assert_true(extfs_open(&src, &fs) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_ext4, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
