/*
 * test_trace: access traces (blockdev/trace.c, docs/trace.md).  Recording
 * through wrapped layer views, the lock/ok protocol, the bytes on disk
 * against the reference's in-memory record layout, reload and replay with
 * the reads it makes, and every kind of bad trace left unused.
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
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "blockdev/bdev.h"
#include "common/common.h"

#define LAYER_SIZE (8u << 20)

/*
 * The reference writes its C++ structs as they lie in memory on x86-64
 * (docs/trace.md); these mirror them so the test can compare bytes.
 */
struct ref_header {
	uint32_t magic;
	size_t data_size;
	uint32_t checksum;
};

struct ref_record {
	char op;
	uint32_t layer_index;
	size_t count;
	off_t offset;
};

/* A layer view that counts the reads it serves. */
struct counting_file {
	struct bdev_file f;
	atomic_uint reads;
	atomic_ullong bytes;
};

static ssize_t cf_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct counting_file *cf = (struct counting_file *)f;

	if (off >= f->size)
		return 0;
	if (len > f->size - off)
		len = f->size - off;
	memset(buf, (int)(off >> 12), len);
	atomic_fetch_add(&cf->reads, 1);
	atomic_fetch_add(&cf->bytes, len);
	return len;
}

static void cf_close(struct bdev_file *f)
{
	(void)f; /* the test owns it */
}

static const struct bdev_file_ops cf_ops = { .pread = cf_pread, .close = cf_close };

static void cf_init(struct counting_file *cf)
{
	memset(cf, 0, sizeof(*cf));
	cf->f.ops = &cf_ops;
	cf->f.size = LAYER_SIZE;
}

struct fixture {
	char dir[64];
	char path[96];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	strcpy(fx->dir, "/tmp/test_trace.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/trace", fx->dir);
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
	free(fx);
	return 0;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, cap);
	close(fd);
	assert_true(n >= 0);
	return n;
}

static bool exists(const char *path, const char *suffix)
{
	char p[128];

	snprintf(p, sizeof(p), "%s%s", path, suffix);
	return access(p, F_OK) == 0;
}

static void read_through(struct bdev_file *f, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len);

	assert_int_equal(bdev_file_pread(f, buf, len, off), (ssize_t)len);
	free(buf);
}

/* Record three reads over two layers (one 3 MiB read becomes three records
 * of at most 1 MiB), end the recording by removing the lock file (the
 * trace's watcher thread notices), and compare the file with the
 * reference's layout. */
static void test_record(void **state)
{
	struct fixture *fx = *state;
	struct counting_file l0, l1;
	struct bdev_file *w0, *w1;
	struct bdev_trace *t;
	struct bdev_trace_stats st;
	static uint8_t buf[4096];
	char lock[128];
	const struct ref_record want[] = {
		{ 'R', 1, 4096, 8192 },
		{ 'R', 0, 1 << 20, 0 },
		{ 'R', 0, 1 << 20, 1 << 20 },
		{ 'R', 0, 1 << 20, 2 << 20 },
		{ 'R', 0, 512, 5 << 20 },
	};
	struct ref_header hdr;
	uint8_t recs[sizeof(want)];
	size_t n;

	write_file(fx->path, "", 0);
	assert_int_equal(bdev_trace_open(fx->path, true, &t), 0);
	assert_int_equal(bdev_trace_mode(t), BDEV_TRACE_RECORD);
	assert_true(exists(fx->path, ".lock"));
	cf_init(&l0);
	cf_init(&l1);
	assert_int_equal(bdev_trace_wrap(t, 0, &l0.f, &w0), 0);
	assert_int_equal(bdev_trace_wrap(t, 1, &l1.f, &w1), 0);
	read_through(w1, 8192, 4096);
	read_through(w0, 0, 3 << 20);
	read_through(w0, 5 << 20, 512);
	/* a short read at the end of the layer is not recorded */
	assert_int_equal(bdev_file_pread(w0, buf, sizeof(buf), LAYER_SIZE - 100), 100);

	assert_int_equal(bdev_trace_poll(t), 0);
	assert_false(exists(fx->path, ".ok")); /* the lock is still there */
	snprintf(lock, sizeof(lock), "%s.lock", fx->path);
	assert_int_equal(unlink(lock), 0);
	/* the trace's own watcher notices within a second or so */
	for (int i = 0; i < 300 && !exists(fx->path, ".ok"); i++)
		usleep(10000);
	if (!exists(fx->path, ".ok"))
		fail_msg("expected %s.ok within 3 s of removing the lock, got none", fx->path);
	bdev_trace_stats(t, &st);
	assert_string_equal(st.state, "recorded");
	read_through(w0, 0, 4096); /* after the recording: passed through, not noted */
	bdev_trace_close(t);
	bdev_file_close(w0);
	bdev_file_close(w1);

	{
		uint8_t file[4096];

		n = read_file(fx->path, file, sizeof(file));
		assert_int_equal(n, sizeof(hdr) + sizeof(want));
		memcpy(&hdr, file, sizeof(hdr));
		memcpy(recs, file + sizeof(hdr), sizeof(recs));
	}
	assert_int_equal(hdr.magic, 3270449184u);
	assert_int_equal(hdr.data_size, sizeof(want));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct ref_record r;

		memcpy(&r, recs + i * sizeof(r), sizeof(r));
		if (r.op != want[i].op || r.layer_index != want[i].layer_index ||
		    r.count != want[i].count || r.offset != want[i].offset)
			fail_msg("record %zu: expected %c layer %u %zu@%lld, got %c layer %u %zu@%lld", i,
				 want[i].op, want[i].layer_index, want[i].count,
				 (long long)want[i].offset, r.op, r.layer_index, r.count,
				 (long long)r.offset);
	}
	assert_int_equal(hdr.checksum, crc32c_raw(0, recs, sizeof(recs)));
}

/* Write a trace the way the reference does: its structs as they lie in
 * memory, the checksum over them. */
static void write_ref_trace(const char *path, const struct ref_record *r, size_t n)
{
	size_t bytes = sizeof(struct ref_header) + n * sizeof(*r);
	uint8_t *buf = calloc(1, bytes);
	struct ref_header h = { .magic = 3270449184u, .data_size = n * sizeof(*r) };

	memcpy(buf + sizeof(h), r, n * sizeof(*r));
	h.checksum = crc32c_raw(0, buf + sizeof(h), n * sizeof(*r));
	memcpy(buf, &h, sizeof(h));
	write_file(path, buf, bytes);
	free(buf);
}

static void wait_replay(struct bdev_trace *t, struct bdev_trace_stats *st)
{
	for (int i = 0; i < 500; i++) {
		bdev_trace_stats(t, st);
		if (strcmp(st->state, "replaying") != 0)
			return;
		usleep(10000);
	}
	fail_msg("replay still running after 5 s");
}

/* A reference trace replays through the wrapped views: adjacent records of
 * one layer are read as one run, writes are skipped.  The records are set
 * one by one after a memset, as padding bytes count in the checksum. */
static void test_replay(void **state)
{
	struct fixture *fx = *state;
	struct ref_record recs[6];
	struct counting_file l0, l1;
	struct bdev_file *w0, *w1;
	struct bdev_trace *t;
	struct bdev_trace_stats st;

	memset(recs, 0, sizeof(recs));
	recs[0] = (struct ref_record){ 'R', 0, 4096, 0 };
	recs[1] = (struct ref_record){ 'R', 0, 4096, 4096 };
	recs[2] = (struct ref_record){ 'R', 1, 65536, 1 << 20 };
	recs[3] = (struct ref_record){ 'W', 1, 4096, 0 };
	recs[4] = (struct ref_record){ 'R', 1, 4096, (1 << 20) + 65536 };
	recs[5] = (struct ref_record){ 'R', 1, 512, 7 << 20 };
	write_ref_trace(fx->path, recs, 6);
	assert_int_equal(bdev_trace_open(fx->path, true, &t), 0);
	assert_int_equal(bdev_trace_mode(t), BDEV_TRACE_REPLAY);
	cf_init(&l0);
	cf_init(&l1);
	assert_int_equal(bdev_trace_wrap(t, 0, &l0.f, &w0), 0);
	assert_int_equal(bdev_trace_wrap(t, 1, &l1.f, &w1), 0);
	assert_int_equal(bdev_trace_replay(t, 2), 0);
	wait_replay(t, &st);
	assert_string_equal(st.state, "done");
	assert_int_equal(st.records_total, 5);
	assert_int_equal(st.records_done, 5);
	assert_int_equal(st.bytes, 8192 + 65536 + 4096 + 512);
	/* runs: layer 0 [0, 8 KiB), layer 1 [1 MiB, +68 KiB), layer 1 [7 MiB, +512) */
	assert_int_equal(atomic_load(&l0.reads), 1);
	assert_int_equal(atomic_load(&l1.reads), 2);
	assert_int_equal(atomic_load(&l1.bytes), 65536 + 4096 + 512);
	bdev_trace_close(t);
	bdev_file_close(w0);
	bdev_file_close(w1);
}

/* Every bad trace is refused at open or at replay, and reads nothing. */
static void test_bad_traces(void **state)
{
	struct fixture *fx = *state;
	struct ref_record rec = { 'R', 0, 4096, 0 };
	struct counting_file l0;
	struct bdev_file *w0;
	struct bdev_trace *t;
	struct bdev_trace_stats st;
	uint8_t buf[256];
	size_t n;

	assert_int_equal(bdev_trace_open(fx->path, true, &t), -ENOENT);

	write_file(fx->path, "", 0);
	assert_int_equal(bdev_trace_open(fx->path, false, &t), -EINVAL); /* may not record */

	write_ref_trace(fx->path, &rec, 1);
	n = read_file(fx->path, buf, sizeof(buf));
	buf[0] ^= 1; /* magic */
	write_file(fx->path, buf, n);
	assert_int_equal(bdev_trace_open(fx->path, true, &t), -EINVAL);
	buf[0] ^= 1;
	buf[n - 1] ^= 1; /* checksum */
	write_file(fx->path, buf, n);
	assert_int_equal(bdev_trace_open(fx->path, true, &t), -EINVAL);
	buf[n - 1] ^= 1;
	write_file(fx->path, buf, n - 1); /* size */
	assert_int_equal(bdev_trace_open(fx->path, true, &t), -EINVAL);
	rec.op = 'X';
	write_ref_trace(fx->path, &rec, 1);
	assert_int_equal(bdev_trace_open(fx->path, true, &t), -EINVAL);

	/* past the end of its layer, and a layer that is not there */
	for (int i = 0; i < 2; i++) {
		rec = i ? (struct ref_record){ 'R', 3, 4096, 0 }
			: (struct ref_record){ 'R', 0, 4096, LAYER_SIZE - 512 };
		write_ref_trace(fx->path, &rec, 1);
		assert_int_equal(bdev_trace_open(fx->path, true, &t), 0);
		cf_init(&l0);
		assert_int_equal(bdev_trace_wrap(t, 0, &l0.f, &w0), 0);
		assert_int_equal(bdev_trace_replay(t, 4), -EINVAL);
		bdev_trace_stats(t, &st);
		assert_string_equal(st.state, "ignored");
		assert_int_equal(atomic_load(&l0.reads), 0);
		bdev_trace_close(t);
		bdev_file_close(w0);
	}

	/* a symlink is not followed */
	unlink(fx->path);
	assert_int_equal(symlink("/etc/hostname", fx->path), 0);
	assert_int_equal(bdev_trace_open(fx->path, true, &t), -ELOOP);
}

/* Closing the device's views while the replay runs waits for its reads. */
static void test_close_during_replay(void **state)
{
	struct fixture *fx = *state;
	struct ref_record *recs = calloc(1000, sizeof(*recs));
	struct counting_file l0;
	struct bdev_file *w0;
	struct bdev_trace *t;

	for (int i = 0; i < 1000; i++)
		recs[i] = (struct ref_record){ 'R', 0, 4096, (off_t)(i * 2) * 4096 };
	write_ref_trace(fx->path, recs, 1000);
	free(recs);
	assert_int_equal(bdev_trace_open(fx->path, true, &t), 0);
	cf_init(&l0);
	assert_int_equal(bdev_trace_wrap(t, 0, &l0.f, &w0), 0);
	assert_int_equal(bdev_trace_replay(t, 4), 0);
	bdev_file_close(w0);
	bdev_trace_close(t);
}

static int resolve_two(struct bdev_trace *t, void *arg)
{
	int *calls = arg;

	(*calls)++;
	assert_int_equal(bdev_trace_add_range(t, 0, 1 << 20, 3 << 20), 0); /* split at 1 MiB */
	assert_int_equal(bdev_trace_add_range(t, 0, 0, 4096), 0);
	return 0;
}

/* A file list: its paths as the reference reads them, ranges from the
 * caller's resolver on the replay's thread, and lists that are not. */
static void test_file_list(void **state)
{
	struct fixture *fx = *state;
	const char *list = "/usr/lib/libc.so.6\n  usr/bin/python3 \n/usr/lib/python3/*\n"
			   "/etc/\n\n/a/../../etc/shadow\n";
	struct counting_file dev;
	struct bdev_file *w;
	struct bdev_trace *t;
	struct bdev_trace_stats st;
	bool rec;
	int calls = 0;
	char *big;

	write_file(fx->path, list, strlen(list));
	assert_int_equal(bdev_trace_open(fx->path, true, &t), 0);
	assert_int_equal(bdev_trace_mode(t), BDEV_TRACE_FILELIST);
	assert_int_equal(bdev_trace_npaths(t), 4);
	assert_string_equal(bdev_trace_path(t, 0, &rec), "/usr/lib/libc.so.6");
	assert_false(rec);
	assert_string_equal(bdev_trace_path(t, 1, &rec), "/usr/bin/python3");
	assert_false(rec);
	assert_string_equal(bdev_trace_path(t, 2, &rec), "/usr/lib/python3");
	assert_true(rec);
	assert_string_equal(bdev_trace_path(t, 3, &rec), "/etc");
	assert_true(rec);
	cf_init(&dev);
	assert_int_equal(bdev_trace_wrap(t, 0, &dev.f, &w), 0);
	bdev_trace_set_resolver(t, resolve_two, &calls);
	assert_int_equal(bdev_trace_replay(t, 3), 0);
	wait_replay(t, &st);
	assert_string_equal(st.state, "done");
	assert_int_equal(calls, 1);
	assert_int_equal(st.records_total, 4);
	assert_int_equal(st.bytes, (3 << 20) + 4096);
	bdev_trace_close(t);
	bdev_file_close(w);

	/* nothing usable, or more than 64 KiB: not a list */
	write_file(fx->path, "\n/a/..\n\x01\n", 9);
	assert_int_equal(bdev_trace_open(fx->path, true, &t), -EINVAL);
	big = malloc(65 * 1024);
	memset(big, 'a', 65 * 1024);
	write_file(fx->path, big, 65 * 1024);
	free(big);
	assert_int_equal(bdev_trace_open(fx->path, true, &t), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_traces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_during_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_list, setup, teardown),
	};

	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
