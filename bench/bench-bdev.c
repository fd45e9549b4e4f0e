/*
 * bench-bdev: the block engine's own speed (issue 2, "Speed").
 *
 *  1. Merged-index lookups per second on 1K, 100K and 1M segments: the
 *     device's merged table (mtable_find, Eytzinger order) beside a
 *     branch-free binary search (seg_find, used by the writable map) and a
 *     plain lower_bound on the same segments, all measured here.
 *  2. 4 KiB random and 1 MiB sequential reads of a 3-layer stack against
 *     the same bytes read from the flattened raw file with the same engine
 *     (psync, page cache warm).  Goal: at least 0.9x.
 *  3. The same with a writable upper on top holding 64K small entries:
 *     4 KiB random write rate, and 4 KiB random reads through its map.
 *
 * The stack is built with our own writer and commit, in the layout
 * bench/run.sh uses: layer 1 holds all of the data, layers 2 and 3 rewrite
 * every 3rd 64 KiB chunk (phases 1 and 2) with the same bytes, so the
 * merged device equals the raw file (checked) while every 64 KiB a read
 * crosses into another layer.
 *
 *   bench-bdev [--mb N] [--runs N] [--dir DIR]
 */
#include "blockdev/bdev.h"
#include "blockdev/bdev_int.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	/* CPU time of this thread: the machine is shared, wall time is noise. */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t xs(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

/* The textbook lower_bound the reference's plain index uses, for comparison. */
static size_t plain_find(const struct seg *a, size_t n, uint64_t lba)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (seg_end(&a[mid]) <= lba)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static double time_lookups(int which, const struct seg *a, const struct mtable *t, size_t n,
			   const uint64_t *q, size_t nq, int runs)
{
	double best = 1e9;
	size_t sink = 0;

	for (int r = 0; r < runs; r++) {
		double tm = now();

		if (which == 0)
			for (size_t i = 0; i < nq; i++)
				sink += mtable_find(t, q[i]);
		else if (which == 1)
			for (size_t i = 0; i < nq; i++)
				sink += seg_find(a, n, q[i]);
		else
			for (size_t i = 0; i < nq; i++)
				sink += plain_find(a, n, q[i]);
		tm = now() - tm;
		if (tm < best)
			best = tm;
	}
	__asm__ volatile("" : : "r"(sink));
	return nq / best / 1e6;
}

static void bench_lookup(size_t n, int runs)
{
	struct seg *a = calloc(n, sizeof(*a));
	enum { Q = 1 << 20 };
	uint64_t *q = malloc(Q * sizeof(*q)), x = 88172645463325252ull, lba = 0;
	struct mtable t;

	if (!a || !q) {
		fprintf(stderr, "bench-bdev: out of memory\n");
		exit(1);
	}

	for (size_t i = 0; i < n; i++) {
		lba += xs(&x) % 64;
		uint32_t len = 1 + xs(&x) % 128;

		a[i] = seg_make(lba, len, 8 + i * 128, false, i % 3);
		lba += len;
	}
	if (mtable_build(a, n, &t)) {
		fprintf(stderr, "bench-bdev: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < Q; i++)
		q[i] = xs(&x) % lba;
	for (size_t i = 0; i < Q; i++) {
		size_t p = plain_find(a, n, q[i]), k = mtable_find(&t, q[i]);

		if (seg_find(a, n, q[i]) != p || (p == n ? k != 0 : !k || t.key[k] != a[p].key)) {
			fprintf(stderr, "bench-bdev: lookups disagree with lower_bound at %llu\n",
				(unsigned long long)q[i]);
			exit(1);
		}
	}
	double e = time_lookups(0, a, &t, n, q, Q, runs);
	double b = time_lookups(1, a, &t, n, q, Q, runs);
	double p = time_lookups(2, a, &t, n, q, Q, runs);

	printf("%-10zu | %10.1f | %10.1f | %10.1f | %5.2fx\n", n, e, b, p, e / p);
	mtable_free(&t);
	free(a);
	free(q);
}

static struct bdev_file *must_open(const char *path, int flags)
{
	struct bdev_file *f;
	int err = bdev_file_open_local(path, flags, BDEV_IO_PSYNC, &f);

	if (err) {
		fprintf(stderr, "bench-bdev: cannot open %s: %s\n", path, strerror(-err));
		exit(1);
	}
	return f;
}

static void fill(uint8_t *d, size_t len)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = xs(&x);

		/* half text-like, half random: content does not matter for psync */
		memcpy(d + i, i % 4096 < 2048 ? (const void *)"overlaybd-bench!" : (void *)&v, 8);
	}
}

/* Write every STEP-th CHUNK of DATA from chunk PHASE into a new layer; seal it. */
static void make_layer(const char *dir, int k, const uint8_t *data, uint64_t size,
		       uint64_t chunk, uint64_t step, uint64_t phase)
{
	char d[512], i[512], out[512];
	struct lsmt_layer *l;
	struct bdev *dev;

	snprintf(d, sizeof(d), "%s/l%d.data", dir, k);
	snprintf(i, sizeof(i), "%s/l%d.index", dir, k);
	snprintf(out, sizeof(out), "%s/l%d.lsmt", dir, k);
	struct bdev_file *df = must_open(d, O_RDWR | O_CREAT | O_TRUNC);
	struct bdev_file *xf = must_open(i, O_RDWR | O_CREAT | O_TRUNC);
	if (lsmt_create_rw(df, xf, size, NULL) || lsmt_open_rw(df, xf, &l) ||
	    bdev_open(NULL, 0, l, &dev)) {
		fprintf(stderr, "bench-bdev: cannot make layer %d\n", k);
		exit(1);
	}
	for (uint64_t off = phase * chunk; off < size; off += chunk * step)
		if (bdev_pwrite(dev, data + off, chunk, off)) {
			fprintf(stderr, "bench-bdev: write failed\n");
			exit(1);
		}
	bdev_close(dev);
	df = must_open(d, O_RDONLY);
	xf = must_open(i, O_RDONLY);
	struct bdev_file *of = must_open(out, O_RDWR | O_CREAT | O_TRUNC);
	if (lsmt_open_rw(df, xf, &l) || lsmt_commit(&l, 1, of, NULL, false)) {
		fprintf(stderr, "bench-bdev: commit of layer %d failed\n", k);
		exit(1);
	}
	lsmt_close(l);
	bdev_file_close(of);
	unlink(d);
	unlink(i);
}

typedef int (*read_fn)(void *ctx, void *buf, size_t len, uint64_t off);

static int read_stack(void *ctx, void *buf, size_t len, uint64_t off)
{
	return bdev_pread(ctx, buf, len, off);
}

static int read_raw(void *ctx, void *buf, size_t len, uint64_t off)
{
	return bdev_file_pread_full(ctx, buf, len, off);
}

/* MB/s of LEN-byte reads: random offsets when RANDOM, else front to back. */
static double run_reads(read_fn fn, void *ctx, uint64_t size, size_t len, bool random,
			int runs)
{
	uint8_t *buf = aligned_alloc(4096, len);
	uint64_t total = random ? 256ull << 20 : size, n = total / len;
	double best = 1e9;

	for (int r = 0; r < runs; r++) {
		uint64_t x = 0x2545F4914F6CDD1Dull + r;
		double t = now();

		for (uint64_t i = 0; i < n; i++) {
			uint64_t off = random ? xs(&x) % (size / len) * len : i * len;

			if (fn(ctx, buf, len, off)) {
				fprintf(stderr, "bench-bdev: read at %llu failed\n", (unsigned long long)off);
				exit(1);
			}
		}
		t = now() - t;
		if (t < best)
			best = t;
	}
	free(buf);
	return n * len / best / 1e6;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mb", required_argument, NULL, 'm' },
		{ "runs", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t mb = 256;
	int runs = 3, c;
	const char *base = "/tmp";

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mb = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'd':
			base = optarg;
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"usage: bench-bdev [--mb N] [--runs N] [--dir DIR]\n");
			return c == 'h' ? 0 : 1;
		}
	}
	if (mb < 16 || runs < 1) {
		fprintf(stderr, "bench-bdev: --mb must be >= 16 and --runs >= 1\n");
		return 1;
	}
	log_set_level(LOG_LVL_WARN);

	printf("Merged-index lookups, best of %d (million lookups/s; reference: 18M/s..5.6M/s plain "
	       "lower_bound, 220M..57M/s SIMD B+tree)\n", runs);
	printf("%-10s | %10s | %10s | %10s | %6s\n", "segments", "merged", "branchfree",
	       "lower_bnd", "merged/lower_bnd");
	bench_lookup(1000, runs);
	bench_lookup(100000, runs);
	bench_lookup(1000000, runs);

	char dir[512], raw[600];
	uint64_t size = mb << 20;
	uint8_t *data = malloc(size);

	snprintf(dir, sizeof(dir), "%s/bench-bdev.XXXXXX", base);
	if (!data || !mkdtemp(dir)) {
		fprintf(stderr, "bench-bdev: no memory or no temp dir under %s\n", base);
		return 1;
	}
	fill(data, size);
	snprintf(raw, sizeof(raw), "%s/raw", dir);
	struct bdev_file *rf = must_open(raw, O_RDWR | O_CREAT | O_TRUNC);
	/* 1 MiB writes, as commit writes the layers: page cache folio sizes
	 * follow write sizes, and they change copy speed by several times. */
	for (uint64_t off = 0; off < size; off += 1 << 20)
		if (rf->ops->pwrite(rf, data + off, 1 << 20, off) != 1 << 20) {
			fprintf(stderr, "bench-bdev: cannot write %s\n", raw);
			return 1;
		}
	make_layer(dir, 1, data, size, 1 << 20, 1, 0);
	make_layer(dir, 2, data, size, 64 << 10, 3, 1);
	make_layer(dir, 3, data, size, 64 << 10, 3, 2);

	struct lsmt_layer *l[3];
	struct bdev *d;
	for (int k = 0; k < 3; k++) {
		char p[600];

		snprintf(p, sizeof(p), "%s/l%d.lsmt", dir, k + 1);
		if (lsmt_open_ro(must_open(p, O_RDONLY), &l[k])) {
			fprintf(stderr, "bench-bdev: cannot open %s\n", p);
			return 1;
		}
	}
	if (bdev_open(l, 3, NULL, &d)) {
		fprintf(stderr, "bench-bdev: cannot open the stack\n");
		return 1;
	}
	/* The stack must be the raw file, and this also warms the page cache. */
	uint8_t *chk = malloc(1 << 20);
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		if (bdev_pread(d, chk, 1 << 20, off) || memcmp(chk, data + off, 1 << 20)) {
			fprintf(stderr, "bench-bdev: the stack differs from the raw file at %llu\n",
				(unsigned long long)off);
			return 1;
		}
		bdev_file_pread_full(rf, chk, 1 << 20, off);
	}
	free(chk);

	printf("\n3-layer stack (%zu merged segments) vs the flattened raw file, %llu MiB, psync, "
	       "page cache warm, best of %d (MB/s; goal >= 0.9x)\n",
	       bdev_index_bytes(d) / 16, (unsigned long long)mb, runs);
	printf("%-16s | %10s | %10s | %6s\n", "workload", "stack", "raw file", "ratio");
	static const struct { const char *name; size_t len; bool random; } wl[] = {
		{ "4 KiB random", 4096, true },
		{ "1 MiB sequential", 1 << 20, false },
	};
	for (int w = 0; w < 2; w++) {
		double s = run_reads(read_stack, d, size, wl[w].len, wl[w].random, runs);
		double r = run_reads(read_raw, rf, size, wl[w].len, wl[w].random, runs);

		printf("%-16s | %10.0f | %10.0f | %5.2fx\n", wl[w].name, s, r, s / r);
	}
	bdev_close(d);

	/* A writable upper over the same stack: 4 KiB random writes fill it
	 * with 64K small entries, then 4 KiB random reads go through its map. */
	char ud[600], ui[600];
	struct lsmt_layer *up;
	uint64_t nw = 65536, x = 0x1234567ull;
	snprintf(ud, sizeof(ud), "%s/up.data", dir);
	snprintf(ui, sizeof(ui), "%s/up.index", dir);
	struct bdev_file *udf = must_open(ud, O_RDWR | O_CREAT | O_TRUNC);
	struct bdev_file *uif = must_open(ui, O_RDWR | O_CREAT | O_TRUNC);
	for (int k = 0; k < 3; k++) {
		char p[600];

		snprintf(p, sizeof(p), "%s/l%d.lsmt", dir, k + 1);
		lsmt_open_ro(must_open(p, O_RDONLY), &l[k]);
	}
	if (lsmt_create_rw(udf, uif, 0, NULL) || lsmt_open_rw(udf, uif, &up) ||
	    bdev_open(l, 3, up, &d)) {
		fprintf(stderr, "bench-bdev: cannot open the writable stack\n");
		return 1;
	}
	double t = now();
	for (uint64_t i = 0; i < nw; i++) {
		uint64_t off = xs(&x) % (size / 4096) * 4096;

		if (bdev_pwrite(d, data + off, 4096, off)) {
			fprintf(stderr, "bench-bdev: write failed\n");
			return 1;
		}
	}
	t = now() - t;
	double s = run_reads(read_stack, d, size, 4096, true, runs);
	double r = run_reads(read_raw, rf, size, 4096, true, runs);
	struct lsmt_info ui_info;
	lsmt_info(up, &ui_info);
	printf("\nWritable upper (%llu entries after %llu 4 KiB random writes) over the stack\n",
	       (unsigned long long)ui_info.nentries, (unsigned long long)nw);
	printf("%-16s | %10.0f IOPS (CPU time of the writer, no flush)\n", "4 KiB rand write",
	       nw / t);
	printf("%-16s | %10.0f | %10.0f | %5.2fx\n", "4 KiB rand read", s, r, s / r);
	bdev_close(d);
	bdev_file_close(rf);
	free(data);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? 1 : 0;
}
