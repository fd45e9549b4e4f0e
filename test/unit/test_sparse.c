/*
 * test_sparse: the sparse writable layer (lsmt.md 4.4) and sealing in
 * place (lsmt.md 4.3).  Random writes and discards on a sparse layer are
 * checked against a plain in-memory model: through the device, in the data
 * file itself (byte X at 4096 + X), after reopen (map rebuilt from the
 * file's extents), after commit, and sealed in place, whose compaction
 * (--commit_sealed) must equal the direct commit byte for byte.
 */
#include "lsmt_helpers.h"
#include "blockdev/bdev_int.h"

#include <pthread.h>
#include <sys/stat.h>

#define VSIZE (16 * MiB)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % n;
}

static uint8_t *slurp_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *b;

	if (!f || fstat(fileno(f), &st))
		fail_msg("cannot open %s", path);
	b = malloc(st.st_size + 1);
	assert_non_null(b);
	if (fread(b, 1, st.st_size, f) != (size_t)st.st_size)
		fail_msg("short read of %s", path);
	fclose(f);
	*len = st.st_size;
	return b;
}

static void create_sparse(const char *data, const char *index, uint64_t vsize)
{
	struct bdev_file *df = open_file(data, O_RDWR | O_CREAT | O_TRUNC);
	struct bdev_file *xf = open_file(index, O_RDWR | O_CREAT | O_TRUNC);
	int rc = lsmt_create_sparse(df, xf, vsize, NULL);

	if (rc)
		fail_msg("lsmt_create_sparse: expected 0, got %d", rc);
	bdev_file_close(df);
	bdev_file_close(xf);
}

static struct bdev *open_dev(struct lsmt_layer *up)
{
	struct bdev *d = NULL;
	int rc = bdev_open(NULL, 0, up, &d);

	if (rc)
		fail_msg("bdev_open: expected 0, got %d", rc);
	return d;
}

/* Every byte of D equals MODEL; WHAT names the stage in the failure. */
static void compare_dev(struct bdev *d, const uint8_t *model, const char *what)
{
	uint8_t *buf = malloc(VSIZE);

	assert_non_null(buf);
	if (bdev_size(d) != VSIZE)
		fail_msg("%s: size expected %llu, got %llu", what, (unsigned long long)VSIZE,
			 (unsigned long long)bdev_size(d));
	int rc = bdev_pread(d, buf, VSIZE, 0);

	if (rc)
		fail_msg("%s: read expected 0, got %d", what, rc);
	for (size_t i = 0; i < VSIZE; i++)
		if (buf[i] != model[i])
			fail_msg("%s: byte %zu expected %u, got %u", what, i, model[i], buf[i]);
	free(buf);
}

static void test_create(void **state)
{
	char *t = make_tmpdir();
	const char *data = path_in(t, "data"), *index = path_in(t, "index");
	uint8_t hdr[LSMT_HT_SIZE];
	struct stat st;

	create_sparse(data, index, VSIZE);
	if (stat(data, &st) || st.st_size != (off_t)(LSMT_HT_SIZE + VSIZE))
		fail_msg("data size expected %llu, got %lld", (unsigned long long)(LSMT_HT_SIZE + VSIZE),
			 (long long)st.st_size);
	/* sparse: only the header is allocated */
	if ((uint64_t)st.st_blocks * 512 > 64 * 1024)
		fail_msg("data file allocated %lld bytes, expected at most 64K",
			 (long long)st.st_blocks * 512);
	if (stat(index, &st) || st.st_size != 0)
		fail_msg("index size expected 0, got %lld", (long long)st.st_size);
	FILE *f = fopen(data, "rb");
	assert_non_null(f);
	assert_int_equal(fread(hdr, 1, sizeof(hdr), f), sizeof(hdr));
	fclose(f);
	/* lsmt.md 2: flags at byte 28, 0x13 for a sparse data file */
	assert_int_equal(hdr[28], 0x13);
	assert_int_equal(hdr[29] | hdr[30] | hdr[31], 0);

	struct lsmt_layer *l = open_rw(data, index);
	struct lsmt_info info;

	lsmt_info(l, &info);
	assert_int_equal(info.nentries, 0);
	assert_int_equal(info.virtual_size, VSIZE);
	lsmt_close(l);
	rm_tmpdir(t);
	(void)state;
}

static void commit_to(struct lsmt_layer *l, const char *out)
{
	struct bdev_file *dst = open_file(out, O_RDWR | O_CREAT | O_TRUNC);
	int rc = lsmt_commit(&l, 1, dst, NULL, false);

	if (rc)
		fail_msg("lsmt_commit to %s: expected 0, got %d", out, rc);
	bdev_file_close(dst);
}

static void seal_layer(const char *data, const char *index)
{
	struct lsmt_layer *l = open_rw(data, index);
	int rc = lsmt_seal(l);

	if (rc)
		fail_msg("lsmt_seal %s: expected 0, got %d", data, rc);
	lsmt_close(l);
}

static void expect_same_file(const char *a, const char *b)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "cmp '%s' '%s'", a, b);
	if (system(cmd) != 0)
		fail_msg("%s and %s differ (expected identical commits)", a, b);
}

/* Random writes and discards, then every stage compared with the model. */
static void test_property(void **state)
{
	char *t = make_tmpdir();
	char data[512], index[512], blob[512], sblob[512];
	uint8_t *model = calloc(1, VSIZE), *buf = malloc(1 << 20);

	assert_non_null(model);
	assert_non_null(buf);
	snprintf(data, sizeof(data), "%s", path_in(t, "data"));
	snprintf(index, sizeof(index), "%s", path_in(t, "index"));
	snprintf(blob, sizeof(blob), "%s", path_in(t, "commit.blob"));
	snprintf(sblob, sizeof(sblob), "%s", path_in(t, "sealed.blob"));
	create_sparse(data, index, VSIZE);

	struct lsmt_layer *l = open_rw(data, index);
	struct bdev *d = open_dev(l);

	for (int op = 0; op < 400; op++) {
		/* 4 KiB-aligned most of the time so discards free host blocks */
		uint64_t unit = rnd(4) ? 4096 : 512;
		uint64_t len = (1 + rnd(256 * 1024 / unit)) * unit;
		uint64_t off = rnd((VSIZE - len) / unit + 1) * unit;
		int rc;

		if (rnd(4)) {
			for (uint64_t i = 0; i < len; i++)
				buf[i] = (uint8_t)(op * 31 + i / 512 + 1);
			rc = bdev_pwrite(d, buf, len, off);
			memcpy(model + off, buf, len);
		} else {
			rc = bdev_discard(d, off, len);
			memset(model + off, 0, len);
		}
		if (rc)
			fail_msg("op %d at %llu+%llu: expected 0, got %d", op, (unsigned long long)off,
				 (unsigned long long)len, rc);
	}
	/* A write wider than 16383 sectors is mapped in several entries. */
	memset(buf, 0xa5, 1 << 20);
	for (int k = 0; k < 9; k++) {
		assert_int_equal(bdev_pwrite(d, buf, 1 << 20, 4 * MiB + k * MiB), 0);
		memset(model + 4 * MiB + k * MiB, 0xa5, 1 << 20);
	}
	compare_dev(d, model, "live");
	assert_int_equal(bdev_flush(d), 0);

	/* lsmt.md 4.4: logical byte X at file offset 4096 + X */
	size_t flen;
	uint8_t *raw = slurp_file(data, &flen);

	assert_int_equal(flen, LSMT_HT_SIZE + VSIZE);
	for (size_t i = 0; i < VSIZE; i++)
		if (raw[LSMT_HT_SIZE + i] != model[i])
			fail_msg("data file byte %zu: expected %u, got %u", LSMT_HT_SIZE + i, model[i],
				 raw[LSMT_HT_SIZE + i]);
	free(raw);
	bdev_close(d);

	/* Reopen: the map comes from the host file's extents. */
	l = open_rw(data, index);
	d = open_dev(l);
	compare_dev(d, model, "reopened");
	bdev_close(d);

	l = open_rw(data, index);
	commit_to(l, blob);
	lsmt_close(l);
	d = NULL;
	assert_int_equal(bdev_open((struct lsmt_layer *[]){ open_ro(blob) }, 1, NULL, &d), 0);
	compare_dev(d, model, "committed");
	bdev_close(d);

	/* lsmt.md 4.3: sealed in place, read by the 4.1 reader, compacts the same */
	seal_layer(data, index);
	struct lsmt_layer *sl = open_ro(data);

	assert_int_equal(bdev_open(&sl, 1, NULL, &d), 0);
	compare_dev(d, model, "sealed in place");
	bdev_close(d);
	sl = open_ro(data);
	commit_to(sl, sblob);
	lsmt_close(sl);
	expect_same_file(blob, sblob);
	free(model);
	free(buf);
	rm_tmpdir(t);
	(void)state;
}

/* A sparse upper over a lower: unwritten ranges fall through. */
static void test_stacked(void **state)
{
	char *t = make_tmpdir();
	char ld[512], li[512], lb[512], ud[512], ui[512];
	uint8_t *buf = malloc(VSIZE), *model = malloc(VSIZE);

	assert_non_null(buf);
	assert_non_null(model);
	snprintf(ld, sizeof(ld), "%s", path_in(t, "ldata"));
	snprintf(li, sizeof(li), "%s", path_in(t, "lindex"));
	snprintf(lb, sizeof(lb), "%s", path_in(t, "lower.blob"));
	snprintf(ud, sizeof(ud), "%s", path_in(t, "udata"));
	snprintf(ui, sizeof(ui), "%s", path_in(t, "uindex"));
	struct bdev_file *df = open_file(ld, O_RDWR | O_CREAT | O_TRUNC);
	struct bdev_file *xf = open_file(li, O_RDWR | O_CREAT | O_TRUNC);

	assert_int_equal(lsmt_create_rw(df, xf, VSIZE, NULL), 0);
	bdev_file_close(df);
	bdev_file_close(xf);
	struct bdev *d = open_dev(open_rw(ld, li));

	memset(model, 0x11, VSIZE);
	assert_int_equal(bdev_pwrite(d, model, VSIZE, 0), 0);
	bdev_close(d);
	struct lsmt_layer *l = open_rw(ld, li);

	commit_to(l, lb);
	lsmt_close(l);

	create_sparse(ud, ui, VSIZE);
	struct lsmt_layer *low = open_ro(lb);

	assert_int_equal(bdev_open(&low, 1, open_rw(ud, ui), &d), 0);
	memset(buf, 0x22, 8192);
	assert_int_equal(bdev_pwrite(d, buf, 8192, 1 * MiB), 0);
	memset(model + 1 * MiB, 0x22, 8192);
	assert_int_equal(bdev_discard(d, 2 * MiB, 4096), 0);
	memset(model + 2 * MiB, 0, 4096);
	/* Partial host blocks: the rest of each block must keep the lower's bytes. */
	memset(buf, 0x33, 1536);
	assert_int_equal(bdev_pwrite(d, buf, 1536, 3 * MiB + 512), 0);
	memset(model + 3 * MiB + 512, 0x33, 1536);
	memset(buf, 0x44, 512);
	assert_int_equal(bdev_pwrite(d, buf, 512, 3 * MiB + 4096 + 3584), 0);
	memset(model + 3 * MiB + 4096 + 3584, 0x44, 512);
	compare_dev(d, model, "stacked");
	uint64_t run;
	bool mapped;

	/*
	 * Over lowers the discard is stored as zeros, not a hole, so the
	 * range stays mapped: a hole would let the lower show through after
	 * a reopen (see discard_as_zeros in stack.c).
	 */
	assert_int_equal(bdev_map_status(d, 2 * MiB, &run, &mapped), 0);
	if (!mapped)
		fail_msg("discarded range over a lower: expected mapped (zeros stored), got unmapped %llu",
			 (unsigned long long)run);
	assert_int_equal(bdev_map_status(d, 1 * MiB, &run, &mapped), 0);
	if (!mapped || run < 8192)
		fail_msg("written range: expected mapped >= 8192 bytes, got %s %llu",
			 mapped ? "mapped" : "unmapped", (unsigned long long)run);
	bdev_close(d);

	/*
	 * Reopened (map from the extents), written ranges still win, the
	 * partial blocks still show the lower around them, and the discarded
	 * block still reads as zeros.
	 */
	low = open_ro(lb);
	assert_int_equal(bdev_open(&low, 1, open_rw(ud, ui), &d), 0);
	compare_dev(d, model, "stacked, reopened");
	bdev_close(d);
	free(buf);
	free(model);
	rm_tmpdir(t);
	(void)state;
}

struct racer {
	struct bdev *d;
	int id; /* writes sector ID of every 4 KiB block in the first MiB */
	int err;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	uint8_t sec[512];

	memset(sec, 0x50 + r->id, sizeof(sec));
	for (uint64_t b = 0; b < MiB && !r->err; b += 4096)
		r->err = bdev_pwrite(r->d, sec, 512, b + 512 * r->id);
	return NULL;
}

/* Partial-block writes from several threads into the same host blocks over
 * a lower: no thread's sectors are lost to another's widening. */
static void test_concurrent_partial(void **state)
{
	char *t = make_tmpdir();
	char ld[512], li[512], lb[512], ud[512], ui[512];
	uint8_t *buf = malloc(MiB), *fill = malloc(MiB);

	assert_non_null(buf);
	assert_non_null(fill);
	snprintf(ld, sizeof(ld), "%s", path_in(t, "ldata"));
	snprintf(li, sizeof(li), "%s", path_in(t, "lindex"));
	snprintf(lb, sizeof(lb), "%s", path_in(t, "lower.blob"));
	snprintf(ud, sizeof(ud), "%s", path_in(t, "udata"));
	snprintf(ui, sizeof(ui), "%s", path_in(t, "uindex"));
	struct bdev_file *df = open_file(ld, O_RDWR | O_CREAT | O_TRUNC);
	struct bdev_file *xf = open_file(li, O_RDWR | O_CREAT | O_TRUNC);

	assert_int_equal(lsmt_create_rw(df, xf, VSIZE, NULL), 0);
	bdev_file_close(df);
	bdev_file_close(xf);
	struct bdev *d = open_dev(open_rw(ld, li));

	memset(fill, 0x11, MiB);
	assert_int_equal(bdev_pwrite(d, fill, MiB, 0), 0);
	bdev_close(d);
	struct lsmt_layer *l = open_rw(ld, li);

	commit_to(l, lb);
	lsmt_close(l);
	create_sparse(ud, ui, VSIZE);

	for (int pass = 0; pass < 2; pass++) {
		struct lsmt_layer *low = open_ro(lb);
		struct racer r[4];
		pthread_t th[4];

		assert_int_equal(bdev_open(&low, 1, open_rw(ud, ui), &d), 0);
		if (pass == 0) {
			for (int i = 0; i < 4; i++) {
				r[i] = (struct racer){ .d = d, .id = 2 * i + 1 };
				assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
			}
			for (int i = 0; i < 4; i++) {
				pthread_join(th[i], NULL);
				if (r[i].err)
					fail_msg("racer %d: expected 0, got %d", i, r[i].err);
			}
		}
		/* pass 1 reads the reopened layer */
		assert_int_equal(bdev_pread(d, buf, MiB, 0), 0);
		for (size_t i = 0; i < MiB; i++) {
			unsigned sector = (i % 4096) / 512;
			uint8_t want = sector % 2 ? 0x50 + sector : 0x11;

			if (buf[i] != want)
				fail_msg("pass %d byte %zu: expected %u, got %u", pass, i, want, buf[i]);
		}
		bdev_close(d);
	}
	free(buf);
	free(fill);
	rm_tmpdir(t);
	(void)state;
}

/* --seal then --commit_sealed of a log-structured layer equals its commit. */
static void test_seal_rw(void **state)
{
	char *t = make_tmpdir();
	char data[512], index[512], blob[512], sblob[512];
	uint8_t *model = calloc(1, VSIZE), *buf = malloc(256 * 1024);

	assert_non_null(model);
	assert_non_null(buf);
	snprintf(data, sizeof(data), "%s", path_in(t, "data"));
	snprintf(index, sizeof(index), "%s", path_in(t, "index"));
	snprintf(blob, sizeof(blob), "%s", path_in(t, "commit.blob"));
	snprintf(sblob, sizeof(sblob), "%s", path_in(t, "sealed.blob"));
	struct bdev_file *df = open_file(data, O_RDWR | O_CREAT | O_TRUNC);
	struct bdev_file *xf = open_file(index, O_RDWR | O_CREAT | O_TRUNC);

	assert_int_equal(lsmt_create_rw(df, xf, VSIZE, NULL), 0);
	bdev_file_close(df);
	bdev_file_close(xf);
	struct bdev *d = open_dev(open_rw(data, index));

	for (int op = 0; op < 300; op++) {
		uint64_t len = (1 + rnd(512)) * 512, off = rnd((VSIZE - len) / 512 + 1) * 512;

		if (rnd(5)) {
			memset(buf, op + 1, len);
			assert_int_equal(bdev_pwrite(d, buf, len, off), 0);
			memcpy(model + off, buf, len);
		} else {
			assert_int_equal(bdev_discard(d, off, len), 0);
			memset(model + off, 0, len);
		}
	}
	bdev_close(d);
	struct lsmt_layer *l = open_rw(data, index);

	commit_to(l, blob);
	lsmt_close(l);
	seal_layer(data, index);
	struct lsmt_layer *sl = open_ro(data);

	assert_int_equal(bdev_open(&sl, 1, NULL, &d), 0);
	compare_dev(d, model, "sealed in place");
	bdev_close(d);
	sl = open_ro(data);
	commit_to(sl, sblob);
	lsmt_close(sl);
	expect_same_file(blob, sblob);
	free(model);
	free(buf);
	rm_tmpdir(t);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_property),
		cmocka_unit_test(test_stacked),
		cmocka_unit_test(test_concurrent_partial),
		cmocka_unit_test(test_seal_rw),
	};

	log_open("/dev/null");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
