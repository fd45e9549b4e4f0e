/*
 * test_file: local files through all three I/O engines (blockdev/file.c)
 * and the in-memory file: aligned and unaligned reads (libaio's bounce
 * buffers), short reads at end of file, writes mirrored into a model,
 * concurrent readers.
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
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "blockdev/bdev.h"

#define FSIZE ((1u << 20) * 3 + 1234) /* not a multiple of 4 KiB on purpose */

static const char *const engine_name[] = { "psync", "libaio", "posix aio" };

struct fixture {
	char dir[64];
	char path[96];
	uint8_t *data;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	unsigned seed = 42;
	FILE *fp;

	strcpy(fx->dir, "/tmp/test_file.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/f", fx->dir);
	fx->data = malloc(FSIZE);
	for (size_t i = 0; i < FSIZE; i++)
		fx->data[i] = rand_r(&seed);
	fp = fopen(fx->path, "wb");
	if (!fp || fwrite(fx->data, 1, FSIZE, fp) != FSIZE || fclose(fp))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	unlink(fx->path);
	rmdir(fx->dir);
	free(fx->data);
	free(fx);
	return 0;
}

static struct bdev_file *open_engine(const char *path, int flags, int engine)
{
	struct bdev_file *f = NULL;
	int rc = bdev_file_open_local(path, flags, engine, &f);

	if (rc)
		fail_msg("open %s with %s: expected 0, got %d", path, engine_name[engine], rc);
	return f;
}

/* Read LEN at OFF into a buffer at misalignment MIS and compare. */
static void check_read(struct bdev_file *f, const uint8_t *model, uint64_t msize, uint64_t off,
		       size_t len, size_t mis, const char *what)
{
	uint8_t *raw = aligned_alloc(4096, (len + 8192) & ~4095ul), *buf = raw + mis;
	size_t exp = off >= msize ? 0 : len < msize - off ? len : msize - off;
	ssize_t n = bdev_file_pread(f, buf, len, off);

	if (n != (ssize_t)exp)
		fail_msg("%s: read %zu at %llu (buffer +%zu): expected %zu, got %zd", what, len,
			 (unsigned long long)off, mis, exp, n);
	if (exp && memcmp(buf, model + off, exp)) {
		size_t i = 0;

		while (buf[i] == model[off + i])
			i++;
		fail_msg("%s: read %zu at %llu (buffer +%zu): byte %zu: expected 0x%02x, got 0x%02x",
			 what, len, (unsigned long long)off, mis, i, model[off + i], buf[i]);
	}
	free(raw);
}

static void test_reads(void **state)
{
	struct fixture *fx = *state;

	for (int e = 0; e < 3; e++) {
		struct bdev_file *f = open_engine(fx->path, O_RDONLY, e);
		unsigned seed = e + 1;

		assert_int_equal(f->size, FSIZE);
		assert_null(f->ops->pwrite);
		/* Aligned, unaligned offset, unaligned length, unaligned buffer. */
		check_read(f, fx->data, FSIZE, 0, 4096, 0, engine_name[e]);
		check_read(f, fx->data, FSIZE, 8192, 1 << 20, 0, engine_name[e]);
		check_read(f, fx->data, FSIZE, 512, 4096, 0, engine_name[e]);
		check_read(f, fx->data, FSIZE, 4096, 1000, 0, engine_name[e]);
		check_read(f, fx->data, FSIZE, 4096, 4096, 512, engine_name[e]);
		check_read(f, fx->data, FSIZE, 1, 1, 3, engine_name[e]);
		check_read(f, fx->data, FSIZE, 4095, 2, 0, engine_name[e]);
		check_read(f, fx->data, FSIZE, 77, (2 << 20) + 5, 1, engine_name[e]);
		/* Short reads at the end of file, aligned and not. */
		check_read(f, fx->data, FSIZE, FSIZE - 1234, 4096, 0, engine_name[e]);
		check_read(f, fx->data, FSIZE, FSIZE - 1234, 8192, 0, engine_name[e]);
		check_read(f, fx->data, FSIZE, FSIZE - 100, 4096, 7, engine_name[e]);
		check_read(f, fx->data, FSIZE, FSIZE - 5000, 1 << 20, 0, engine_name[e]);
		check_read(f, fx->data, FSIZE, FSIZE, 4096, 0, engine_name[e]);
		check_read(f, fx->data, FSIZE, FSIZE + 4096, 4096, 0, engine_name[e]);
		for (int i = 0; i < 200; i++) {
			uint64_t off = rand_r(&seed) % FSIZE;
			size_t len = rand_r(&seed) % 300000 + 1;

			if (i & 1)
				off &= ~4095ull;
			check_read(f, fx->data, FSIZE, off, len, rand_r(&seed) % 2 ? 0 : 512,
				   engine_name[e]);
		}
		bdev_file_close(f);
	}
}

static void test_writes(void **state)
{
	struct fixture *fx = *state;
	char path[128];

	snprintf(path, sizeof(path), "%s/w", fx->dir);
	for (int e = 0; e < 3; e++) {
		size_t cap = 2 << 20;
		uint8_t *model = calloc(1, cap), *src = aligned_alloc(4096, 256 << 10);
		uint64_t msize = 0;
		unsigned seed = 100 + e;
		struct bdev_file *f = open_engine(path, O_RDWR | O_CREAT | O_TRUNC, e);

		assert_int_equal(f->size, 0);
		for (int i = 0; i < 300; i++) {
			uint64_t off = rand_r(&seed) % (cap - (256 << 10));
			size_t len = rand_r(&seed) % (64 << 10) + 1;
			ssize_t n;

			if (i % 3 == 0) { /* aligned: the O_DIRECT path */
				off &= ~4095ull;
				len = (len + 4095) & ~4095ul;
			} else if (i % 3 == 1) { /* a 16-byte log append */
				off = msize;
				len = 16;
			}
			for (size_t k = 0; k < len; k++)
				src[k] = rand_r(&seed);
			n = f->ops->pwrite(f, src, len, off);
			if (n != (ssize_t)len)
				fail_msg("%s: write %zu at %llu: expected %zu, got %zd", engine_name[e],
					 len, (unsigned long long)off, len, n);
			memcpy(model + off, src, len);
			if (off + len > msize)
				msize = off + len;
			if (f->size != msize)
				fail_msg("%s: size after write: expected %llu, got %llu",
					 engine_name[e], (unsigned long long)msize,
					 (unsigned long long)f->size);
			if (i % 10 == 0)
				check_read(f, model, msize, off & ~511ull, len + 600, 0, engine_name[e]);
		}
		assert_int_equal(f->ops->sync(f), 0);
		bdev_file_close(f);
		/* Reopened with every engine, the file holds the model. */
		for (int r = 0; r < 3; r++) {
			f = open_engine(path, O_RDONLY, r);
			assert_int_equal(f->size, msize);
			check_read(f, model, msize, 0, msize, 0, engine_name[r]);
			bdev_file_close(f);
		}
		free(model);
		free(src);
	}
	unlink(path);
}

struct par_arg {
	struct bdev_file *f;
	const uint8_t *data;
	unsigned seed;
	int bad;
};

static void *par_reader(void *p)
{
	struct par_arg *a = p;
	uint8_t *buf = aligned_alloc(4096, 128 << 10);

	for (int i = 0; i < 500 && !a->bad; i++) {
		uint64_t off = rand_r(&a->seed) % FSIZE;
		size_t len = rand_r(&a->seed) % (128 << 10) + 1;
		size_t exp = len < FSIZE - off ? len : FSIZE - off;

		if (i & 1) {
			off &= ~4095ull;
			len = (len + 4095) & ~4095ul;
			exp = len < FSIZE - off ? len : FSIZE - off;
		}
		if (bdev_file_pread(a->f, buf, len, off) != (ssize_t)exp ||
		    memcmp(buf, a->data + off, exp))
			a->bad = 1;
	}
	free(buf);
	return NULL;
}

static void test_concurrent(void **state)
{
	struct fixture *fx = *state;

	for (int e = 0; e < 3; e++) {
		struct bdev_file *f = open_engine(fx->path, O_RDONLY, e);
		struct par_arg a[4];
		pthread_t th[4];

		for (int t = 0; t < 4; t++) {
			a[t] = (struct par_arg){ .f = f, .data = fx->data, .seed = 7 * t + e };
			pthread_create(&th[t], NULL, par_reader, &a[t]);
		}
		for (int t = 0; t < 4; t++) {
			pthread_join(th[t], NULL);
			if (a[t].bad)
				fail_msg("%s: concurrent reader %d saw wrong bytes", engine_name[e], t);
		}
		bdev_file_close(f);
	}
}

static void test_open_errors(void **state)
{
	struct fixture *fx = *state;
	struct bdev_file *f = NULL;

	assert_int_equal(bdev_file_open_local("/nonexistent/x", O_RDONLY, BDEV_IO_PSYNC, &f),
			 -ENOENT);
	assert_int_equal(bdev_file_open_local(fx->dir, O_RDONLY, BDEV_IO_LIBAIO, &f), -EINVAL);
	assert_int_equal(bdev_file_open_local(fx->path, O_RDONLY, 3, &f), -EINVAL);
}

static void test_mem(void **state)
{
	struct bdev_file *f = NULL;
	char buf[16];

	assert_int_equal(bdev_file_open_mem("hello", 5, &f), 0);
	assert_int_equal(bdev_file_pread(f, buf, 16, 0), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(bdev_file_pread(f, buf, 16, 5), 0);
	assert_int_equal(f->ops->pwrite(f, "XY", 2, 10000), 2);
	assert_int_equal(f->size, 10002);
	assert_int_equal(bdev_file_pread(f, buf, 4, 9999), 3);
	assert_memory_equal(buf, "\0XY", 3);
	assert_memory_equal(bdev_file_mem_data(f), "hello\0", 6);
	bdev_file_close(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads),
		cmocka_unit_test(test_writes),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_mem),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
