/*
 * test_lsmt: layer opening and the writable layer.  Bad blobs of every kind
 * fail with -EINVAL/-EIO and never crash; a torn index log tail is skipped;
 * and a property test drives random writes and discards against a plain
 * in-memory model, comparing after reopen, after commit and after stacking.
 */
#include "lsmt_helpers.h"
#include "blockdev/bdev_int.h"

#include <pthread.h>
#include <sys/stat.h>

static uint8_t *slurp(const char *path, size_t *len)
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

static void spill(const char *path, const void *b, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(b, 1, len, f) != len || fclose(f))
		fail_msg("cannot write %s", path);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Open BLOB (LEN bytes) as a sealed layer; if it opens, read all of it. */
static int try_open_blob(const char *dir, const uint8_t *blob, size_t len)
{
	struct lsmt_layer *l = NULL;
	struct bdev *d = NULL;
	int rc;

	spill(path_in(dir, "bad"), blob, len);
	rc = lsmt_open_ro(open_file(path_in(dir, "bad"), O_RDONLY), &l);
	if (rc)
		return rc;
	assert_int_equal(bdev_open(&l, 1, NULL, &d), 0);
	uint64_t pos = 0, n;
	bool m;
	char buf[65536];
	while (pos < bdev_size(d) && bdev_map_status(d, pos, &n, &m) == 0) {
		if (n == 0)
			fail_msg("map status at %llu: expected a non-empty run, got %llu",
				 (unsigned long long)pos, (unsigned long long)n);
		if (m)
			for (uint64_t k = 0; k < n; k += sizeof(buf))
				bdev_pread(d, buf, n - k < sizeof(buf) ? n - k : sizeof(buf), pos + k);
		pos += n;
	}
	bdev_close(d);
	return 0;
}

struct bad_case {
	const char *what;
	int want;
};

static void expect_rc(int got, const struct bad_case *c)
{
	if (got != c->want)
		fail_msg("%s: expected %d, got %d", c->what, c->want, got);
}

static void test_bad_blobs(void **state)
{
	char *t = make_tmpdir();
	size_t len;
	uint8_t *orig = slurp(VEC "l1.lsmt", &len), *b = malloc(len);
	size_t trl = len - 4096;
	uint64_t ioff = get64(orig + trl + 32);
	uint8_t *ent = b + ioff; /* first entries of the index */

	assert_int_equal(try_open_blob(t, orig, len), 0);

	static const size_t cuts[] = { 0, 100, 4096, 8191, 8192, 12288 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		expect_rc(try_open_blob(t, orig, cuts[i]), &(struct bad_case){ "truncated", -EINVAL });
	expect_rc(try_open_blob(t, orig, len - 1), &(struct bad_case){ "trailer cut", -EINVAL });

	memcpy(b, orig, len);
	b[0] ^= 1;
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "header magic", -EINVAL });
	memcpy(b, orig, len);
	b[trl + 10] ^= 1;
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "trailer magic", -EINVAL });
	memcpy(b, orig, len);
	b[trl + 28] &= ~0x04;
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "not sealed", -EINVAL });

	memcpy(b, orig, len);
	put64(b + trl + 40, 100000);
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "index_size beyond file", -EINVAL });
	memcpy(b, orig, len);
	put64(b + trl + 40, 2000000);
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "index_size > 1e6", -EINVAL });
	memcpy(b, orig, len);
	put64(b + trl + 32, trl + 4096);
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "index_offset past trailer", -EINVAL });
	memcpy(b, orig, len);
	put64(b + trl + 32, 0);
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "index_offset in header", -EINVAL });

	/* entry 0 = (0,128,8): point its data past the index */
	memcpy(b, orig, len);
	put64(ent + 8, ioff / 512);
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "data past the end", -EINVAL });
	memcpy(b, orig, len);
	put64(ent + 8, 3);
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "data in the header", -EINVAL });
	memcpy(b, orig, len);
	put64(ent, 0 | 3000ull << 50); /* overlaps entry 1 at 2048 */
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "overlapping entries", -EINVAL });
	memcpy(b, orig, len);
	memcpy(ent, orig + ioff + 16, 16);
	memcpy(ent + 16, orig + ioff, 16);
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "unsorted entries", -EINVAL });
	memcpy(b, orig, len);
	put64(ent, 0);
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "zero-length entry", -EINVAL });

	/* lsmt.md 3: the last entry moved to end past sector 2^50 - 1, where a
	 * clip by an upper layer would wrap its key */
	memcpy(b, orig, len);
	size_t last = 0;
	while ((get64(ent + 16 * (last + 1)) & ((1ull << 50) - 1)) != (1ull << 50) - 1)
		last++;
	put64(ent + 16 * last, ((1ull << 50) - 2) | (get64(ent + 16 * last) >> 50) << 50);
	expect_rc(try_open_blob(t, b, len), &(struct bad_case){ "entry past 2^50 sectors", -EINVAL });

	/* non-zero tags are ignored (lsmt.md 3) */
	memcpy(b, orig, len);
	b[ioff + 15] = 7;
	assert_int_equal(try_open_blob(t, b, len), 0);

	/* random corruption of the metadata never crashes */
	srand(12345);
	for (int i = 0; i < 2000; i++) {
		memcpy(b, orig, len);
		for (int k = 0; k < 1 + rand() % 4; k++) {
			size_t at = rand() % 3 == 0 ? (size_t)rand() % 200 : rand() % 3 == 0 ? trl + rand() % 200
				: ioff + rand() % 256;
			b[at] = rand();
		}
		try_open_blob(t, b, len);
	}
	free(b);
	free(orig);
	rm_tmpdir(t);
}

static ssize_t eio_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	return -EIO;
}

static void eio_close(struct bdev_file *f)
{
	free(f);
}

static const struct bdev_file_ops eio_ops = { .pread = eio_pread, .close = eio_close };

static void test_read_error(void **state)
{
	struct bdev_file *f = calloc(1, sizeof(*f));
	struct lsmt_layer *l = NULL;

	f->ops = &eio_ops;
	f->size = 1 << 20;
	assert_int_equal(lsmt_open_ro(f, &l), -EIO);
}

static void test_bad_writable(void **state)
{
	char *t = make_tmpdir();
	struct lsmt_layer *l = NULL;
	size_t len;
	uint8_t *x = slurp(VEC "l1.index", &len);

	copy_file(VEC "l1.data", path_in(t, "d"));
	/* torn last entry: ignored with a warning, the rest reads as L1 */
	uint8_t *torn = malloc(len + 7);
	memcpy(torn, x, len);
	memset(torn + len, 0x5a, 7);
	spill(path_in(t, "i"), torn, len + 7);
	struct bdev *d = NULL;
	assert_int_equal(bdev_open(NULL, 0, open_rw(path_in(t, "d"), path_in(t, "i")), &d), 0);
	expect_sha(d, 0, 32 * MiB, L1_32M, "torn log");
	/* the next append overwrites the torn bytes */
	char sec[512];
	memset(sec, 1, sizeof(sec));
	assert_int_equal(bdev_pwrite(d, sec, 512, 0), 0);
	bdev_close(d);
	struct stat st;
	assert_int_equal(stat(path_in(t, "i"), &st), 0);
	assert_int_equal(st.st_size, len + 16);
	free(torn);

	/* data index header as index, sealed flag, bad offset */
	static const struct { size_t at; uint8_t val; const char *what; } bad[] = {
		{ 0, 0, "index magic" }, { 28, 0x03, "data type" }, { 28, 0x05, "sealed" },
		{ 33, 0x20, "index_offset" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *y = malloc(len);

		memcpy(y, x, len);
		y[bad[i].at] = bad[i].val;
		spill(path_in(t, "i"), y, len);
		int rc = lsmt_open_rw(open_file(path_in(t, "d"), O_RDWR),
				      open_file(path_in(t, "i"), O_RDWR), &l);
		if (rc != -EINVAL)
			fail_msg("%s: expected %d, got %d", bad[i].what, -EINVAL, rc);
		free(y);
	}
	/* a log entry that points past the data file */
	uint8_t *y = malloc(len);
	memcpy(y, x, len);
	put64(y + 4096 + 8, 1000000);
	spill(path_in(t, "i"), y, len);
	assert_int_equal(lsmt_open_rw(open_file(path_in(t, "d"), O_RDWR),
				      open_file(path_in(t, "i"), O_RDWR), &l), -EINVAL);
	/* a log entry that ends past sector 2^50 - 1 (lsmt.md 3) */
	memcpy(y, x, len);
	put64(y + 4096, ((1ull << 50) - 2) | 16ull << 50);
	spill(path_in(t, "i"), y, len);
	int rc = lsmt_open_rw(open_file(path_in(t, "d"), O_RDWR),
			      open_file(path_in(t, "i"), O_RDWR), &l);
	if (rc != -EINVAL)
		fail_msg("log entry past 2^50 sectors: expected %d, got %d", -EINVAL, rc);
	free(y);
	free(x);
	rm_tmpdir(t);
}

static int try_open_rw(const char *data, const char *index, int mode, struct lsmt_layer **l)
{
	*l = NULL;
	return lsmt_open_rw(open_file(data, mode), open_file(index, mode), l);
}

static void expect_open(const char *what, int want, int got, struct lsmt_layer *l)
{
	if (got != want)
		fail_msg("%s: expected %d, got %d", what, want, got);
	if (got == 0 && want != 0)
		lsmt_close(l);
}

/* lsmt.md 4.2: one writer per writable layer; a live reader needs no lock,
 * a snapshot reader (commit, merge) excludes writers and is excluded. */
static void test_writer_lock(void **state)
{
	char *t = make_tmpdir();
	const char *d = path_in(t, "d"), *x = path_in(t, "x");
	struct lsmt_layer *w, *w2, *r;
	int rc;

	copy_file(VEC "l1.data", d);
	copy_file(VEC "l1.index", x);
	expect_open("first writer", 0, try_open_rw(d, x, O_RDWR, &w), w);
	rc = try_open_rw(d, x, O_RDWR, &w2);
	expect_open("second writer", -EBUSY, rc, w2);
	expect_open("live reader beside a writer", 0, try_open_rw(d, x, O_RDONLY, &r), r);
	expect_open("snapshot beside a writer", -EBUSY, lsmt_lock_snapshot(r), NULL);
	lsmt_close(r);
	lsmt_close(w);

	expect_open("reader", 0, try_open_rw(d, x, O_RDONLY, &r), r);
	expect_open("snapshot with no writer", 0, lsmt_lock_snapshot(r), NULL);
	rc = try_open_rw(d, x, O_RDWR, &w2);
	expect_open("writer beside a snapshot", -EBUSY, rc, w2);
	lsmt_close(r);
	expect_open("writer after the snapshot closed", 0, try_open_rw(d, x, O_RDWR, &w), w);
	lsmt_close(w);
	rm_tmpdir(t);
}

#define PSIZE (32 * MiB)

static uint64_t rnd(uint64_t n)
{
	return ((uint64_t)rand() << 31 ^ rand()) % n;
}

/* Compare the device and the model over the whole size, via random iovecs. */
static void compare_all(struct bdev *d, const uint8_t *model, const char *when)
{
	size_t chunk = 1 << 20;
	uint8_t *buf = malloc(chunk);

	assert_int_equal(bdev_size(d), PSIZE);
	for (uint64_t off = 0; off < PSIZE; off += chunk) {
		struct iovec iov[3];
		size_t a = rnd(chunk / 512) * 512, b2 = a + rnd((chunk - a) / 512 + 1) * 512;

		iov[0] = (struct iovec){ buf, a };
		iov[1] = (struct iovec){ buf + a, b2 - a };
		iov[2] = (struct iovec){ buf + b2, chunk - b2 };
		memset(buf, 0xee, chunk);
		assert_int_equal(bdev_preadv(d, iov, 3, off), 0);
		if (memcmp(buf, model + off, chunk)) {
			size_t i = 0;

			while (buf[i] == model[off + i])
				i++;
			fail_msg("%s: byte %llu: expected %#x, got %#x", when,
				 (unsigned long long)(off + i), model[off + i], buf[i]);
		}
	}
	free(buf);
}

static struct bdev *open_prop(const char *dir, bool with_lower)
{
	struct lsmt_layer *lo = with_lower ? open_ro(VEC "l1.lsmt") : NULL;
	struct bdev *d = NULL;

	assert_int_equal(bdev_open(&lo, with_lower, open_rw(path_in(dir, "d"), path_in(dir, "i")),
				   &d), 0);
	return d;
}

static void test_property(void **state)
{
	char *t = make_tmpdir();
	uint8_t *model = calloc(1, PSIZE), *buf = malloc(9 * MiB);
	struct bdev *d;

	/* base content: L1's first 32 MiB */
	struct lsmt_layer *l1 = open_ro(VEC "l1.lsmt");
	assert_int_equal(bdev_open(&l1, 1, NULL, &d), 0);
	assert_int_equal(bdev_pread(d, model, PSIZE, 0), 0);
	bdev_close(d);

	struct bdev_file *df = open_file(path_in(t, "d"), O_RDWR | O_CREAT);
	struct bdev_file *xf = open_file(path_in(t, "i"), O_RDWR | O_CREAT);
	assert_int_equal(lsmt_create_rw(df, xf, PSIZE, "A1000000-0000-4000-8000-000000000001"), 0);
	bdev_file_close(df);
	bdev_file_close(xf);

	srand(777);
	d = open_prop(t, true);
	for (int op = 0; op < 3000; op++) {
		int kind = rnd(10);
		/* mostly small ranges, clustered, so entries cut each other */
		uint64_t off = (rnd(4) ? rnd(2 * MiB / 512) : rnd(PSIZE / 512)) * 512;
		uint64_t len = (rnd(16) ? 1 + rnd(64) : 1 + rnd(18 * 1024)) * 512;

		if (off + len > PSIZE)
			len = PSIZE - off;
		if (kind < 6) {
			if (len > 9 * MiB)
				len = 9 * MiB;
			uint64_t x = rand() | 1;
			for (uint64_t i = 0; i < len; i += 8) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				memcpy(buf + i, &x, 8);
			}
			struct iovec iov[2] = { { buf, len / 1024 * 512 },
						{ buf + len / 1024 * 512, len - len / 1024 * 512 } };
			assert_int_equal(bdev_pwritev(d, iov, 2, off), 0);
			memcpy(model + off, buf, len);
		} else if (kind < 8) {
			assert_int_equal(bdev_discard(d, off, len), 0);
			memset(model + off, 0, len);
		} else if (kind < 9) {
			if (len > 9 * MiB)
				len = 9 * MiB;
			assert_int_equal(bdev_pread(d, buf, len, off), 0);
			if (memcmp(buf, model + off, len))
				fail_msg("op %d: read [%llu,+%llu) differs from the model", op,
					 (unsigned long long)off, (unsigned long long)len);
		} else if (rnd(10) == 0) {
			assert_int_equal(bdev_flush(d), 0);
		}
	}
	compare_all(d, model, "after the ops");
	bdev_close(d);

	d = open_prop(t, true);
	compare_all(d, model, "after reopen");
	bdev_close(d);

	/* commit the upper, stack it on L1 */
	struct lsmt_layer *up = open_rw(path_in(t, "d"), path_in(t, "i"));
	struct bdev_file *out = open_file(path_in(t, "c"), O_RDWR | O_CREAT | O_TRUNC);
	assert_int_equal(lsmt_commit(&up, 1, out, NULL, false), 0);
	bdev_file_close(out);
	lsmt_close(up);
	struct lsmt_layer *st[2] = { open_ro(VEC "l1.lsmt"), open_ro(path_in(t, "c")) };
	assert_int_equal(bdev_open(st, 2, NULL, &d), 0);
	compare_all(d, model, "committed upper stacked on L1");
	bdev_close(d);

	/* merge L1 and the writable upper into one blob */
	struct lsmt_layer *mg[2] = { open_ro(VEC "l1.lsmt"), open_rw(path_in(t, "d"), path_in(t, "i")) };
	out = open_file(path_in(t, "m"), O_RDWR | O_CREAT | O_TRUNC);
	assert_int_equal(lsmt_commit(mg, 2, out, NULL, true), 0);
	bdev_file_close(out);
	lsmt_close(mg[0]);
	lsmt_close(mg[1]);
	struct lsmt_layer *m = open_ro(path_in(t, "m"));
	assert_int_equal(bdev_open(&m, 1, NULL, &d), 0);
	compare_all(d, model, "merged blob");
	bdev_close(d);

	free(model);
	free(buf);
	rm_tmpdir(t);
}

struct worker {
	struct bdev *d;
	int id, err;
};

/* Each thread owns a 1 MiB region: write, read back, discard, read back. */
static void *hammer(void *arg)
{
	struct worker *w = arg;
	uint8_t a[8192], b[8192];
	unsigned seed = w->id;

	for (int i = 0; i < 400 && !w->err; i++) {
		uint64_t off = w->id * MiB + rand_r(&seed) % (MiB / 8192) * 8192;

		for (size_t k = 0; k < sizeof(a); k++)
			a[k] = rand_r(&seed);
		if (bdev_pwrite(w->d, a, sizeof(a), off) || bdev_pread(w->d, b, sizeof(b), off) ||
		    memcmp(a, b, sizeof(a)))
			w->err = 1;
		if (i % 7 == 0) {
			memset(a, 0, sizeof(a));
			if (bdev_discard(w->d, off, sizeof(a)) || bdev_pread(w->d, b, sizeof(b), off) ||
			    memcmp(a, b, sizeof(a)))
				w->err = 2;
		}
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	char *t = make_tmpdir();
	struct bdev_file *df = open_file(path_in(t, "d"), O_RDWR | O_CREAT);
	struct bdev_file *xf = open_file(path_in(t, "i"), O_RDWR | O_CREAT);
	struct bdev *d = NULL;
	pthread_t th[4];
	struct worker w[4];

	assert_int_equal(lsmt_create_rw(df, xf, 8 * MiB, NULL), 0);
	bdev_file_close(df);
	bdev_file_close(xf);
	assert_int_equal(bdev_open(NULL, 0, open_rw(path_in(t, "d"), path_in(t, "i")), &d), 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .d = d, .id = i };
		pthread_create(&th[i], NULL, hammer, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (w[i].err)
			fail_msg("thread %d: expected its own bytes back, got a mismatch (%d)", i, w[i].err);
	}
	bdev_close(d);
	rm_tmpdir(t);
}

/*
 * The writable layer's interval map against a per-sector model, with
 * enough entries to split and empty many chunks: each sector must map to
 * the newest insert's moffset (plus its distance into that insert).
 */
static void test_umap_model(void **state)
{
	enum { SECTORS = 200000, INSERTS = 60000 };
	uint64_t *model = calloc(SECTORS, sizeof(*model)); /* 0 = unmapped, else moff + 1 */
	struct seg *out = malloc(SECTORS * sizeof(*out));
	struct umap m;

	umap_init(&m);
	srand(4242);
	for (int i = 0; i < INSERTS; i++) {
		uint64_t lba = rnd(SECTORS - 300), len = 1 + (rnd(50) ? rnd(16) : rnd(300));
		uint64_t moff = 8 + rnd(1ull << 40);
		bool zeroed = rnd(5) == 0;

		assert_int_equal(umap_insert(&m, seg_make(lba, len, moff, zeroed, 0)), 0);
		for (uint64_t k = 0; k < len; k++)
			model[lba + k] = zeroed ? UINT64_MAX : moff + k + 1;
		if (i % 10000 != 9999 && i != INSERTS - 1)
			continue;
		size_t n = umap_collect(&m, 0, SECTORS, out, SECTORS);
		uint64_t pos = 0;

		assert_int_equal(n, m.count);
		for (size_t j = 0; j < n; j++) {
			for (; pos < seg_lba(&out[j]); pos++)
				if (model[pos])
					fail_msg("insert %d: sector %llu: expected mapped, got a hole", i,
						 (unsigned long long)pos);
			for (uint32_t k = 0; k < seg_len(&out[j]); k++, pos++) {
				uint64_t want = model[pos];
				uint64_t got = seg_zeroed(&out[j]) ? UINT64_MAX : seg_moff(&out[j]) + k + 1;

				if (want != got)
					fail_msg("insert %d: sector %llu: expected %llx, got %llx", i,
						 (unsigned long long)pos, (unsigned long long)want,
						 (unsigned long long)got);
			}
		}
		for (; pos < SECTORS; pos++)
			if (model[pos])
				fail_msg("insert %d: sector %llu: expected mapped, got a hole", i,
					 (unsigned long long)pos);
		/* a collect from the middle starts clipped */
		uint64_t mid = SECTORS / 2 + 3;
		n = umap_collect(&m, mid, mid + 1, out, 1);
		if (model[mid] && (n != 1 || seg_lba(&out[0]) != mid || seg_len(&out[0]) != 1))
			fail_msg("collect at %llu: expected one sector, got %zu", (unsigned long long)mid, n);
	}
	assert_true(m.nchunks > 4);
	umap_free(&m);
	free(model);
	free(out);
}

/* The merged index (Eytzinger order) finds and walks like the sorted array. */
static void test_mtable(void **state)
{
	static const size_t sizes[] = { 0, 1, 2, 3, 7, 8, 9, 100, 1000, 4097 };

	srand(99);
	for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		size_t n = sizes[z];
		struct seg *a = calloc(n + 1, sizeof(*a));
		uint64_t lba = rnd(10);
		struct mtable t;

		for (size_t i = 0; i < n; i++) {
			lba += rnd(3) ? rnd(20) : 0;
			uint32_t len = 1 + rnd(40);

			a[i] = seg_make(lba, len, 8 + i, false, i % 7);
			lba += len;
		}
		assert_int_equal(mtable_build(a, n, &t), 0);
		size_t k = mtable_find(&t, 0);
		for (size_t i = 0; i < n; i++, k = mtable_next(&t, k))
			if (!k || t.key[k] != a[i].key || t.val[k] != a[i].val)
				fail_msg("n=%zu: walk position %zu: expected key %llx, got %s", n, i,
					 (unsigned long long)a[i].key, k ? "another" : "the end");
		assert_int_equal(k, 0);
		for (uint64_t q = 0; q <= lba + 2; q++) {
			size_t want = seg_find(a, n, q);

			k = mtable_find(&t, q);
			if (want == n ? k != 0 : !k || t.key[k] != a[want].key)
				fail_msg("n=%zu: find(%llu): expected segment %zu, got position %zu", n,
					 (unsigned long long)q, want, k);
		}
		mtable_free(&t);
		free(a);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_blobs),
		cmocka_unit_test(test_read_error),
		cmocka_unit_test(test_bad_writable),
		cmocka_unit_test(test_writer_lock),
		cmocka_unit_test(test_property),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_umap_model),
		cmocka_unit_test(test_mtable),
	};

	log_open("/dev/null"); /* the bad inputs log on purpose */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
