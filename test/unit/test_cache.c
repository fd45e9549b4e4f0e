/*
 * test_cache: the disk cache (cache/) against an in-memory origin: reads
 * are right cold and warm, the map survives a reopen, a process killed in
 * the middle of fills never gets wrong bytes after a restart, data without
 * its map bit is never trusted, concurrent misses fetch once, eviction
 * keeps to the limit without corrupting an open blob, an unwritable cache
 * still serves reads, the background download checks its digest, and a
 * unit damaged on disk is fetched again, never served.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cache/cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT 4096u
#define BLOB (1u << 20) /* 256 units */
#define DIGEST "sha256:0000000000000000000000000000000000000000000000000000000000000001"
#define ORIGIN "http://registry.test:80/v2/ns/repo/blobs"

struct origin {
	uint8_t *data;
	size_t size;
	unsigned delay_us;
	int calls;
	uint64_t bytes;
	bool fail;
};

static ssize_t origin_fetch(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct origin *o = ctx;

	__atomic_add_fetch(&o->calls, 1, __ATOMIC_RELAXED);
	if (o->delay_us)
		usleep(o->delay_us);
	if (o->fail)
		return -EIO;
	if (off + len > o->size)
		return -EINVAL;
	memcpy(buf, o->data + off, len);
	__atomic_add_fetch(&o->bytes, len, __ATOMIC_RELAXED);
	return len;
}

static void origin_init(struct origin *o, size_t size, unsigned seed)
{
	memset(o, 0, sizeof(*o));
	o->size = size;
	o->data = malloc(size);
	assert_non_null(o->data);
	for (size_t i = 0; i < size; i++)
		o->data[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

static char *tmpdir(void)
{
	char *d = strdup("/tmp/test_cache.XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

/* Where the cache keeps DIGEST (plus SUFFIX) for ORIGIN under DIR. */
static void blob_file(char *out, size_t len, const char *dir, const char *digest,
		      const char *suffix)
{
	char ns[CACHE_NS_LEN + 1];

	cache_ns_name(ORIGIN, ns);
	snprintf(out, len, "%s/%s/%s%s", dir, ns, digest, suffix);
}

static void rmrf(const char *d)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
}

static struct cache_store *store_open(const char *dir, uint64_t limit)
{
	struct cache_store_opts o = { .dir = dir, .limit = limit, .free_floor = 1, .unit = UNIT,
				      .scan_ms = 3600000 };
	struct cache_store *s = NULL;
	int rc = cache_store_open(&o, &s);

	if (rc)
		fail_msg("cache_store_open: expected 0, got %d", rc);
	return s;
}

static struct cache_blob *blob_open(struct cache_store *s, const char *digest, struct origin *o)
{
	struct cache_blob *b = NULL;
	int rc = cache_blob_open(s, ORIGIN, digest, o->size, &b);

	if (rc)
		fail_msg("cache_blob_open(%s): expected 0, got %d", digest, rc);
	return b;
}

static void expect_read(struct cache_blob *b, struct origin *o, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len);
	ssize_t n;

	assert_non_null(buf);
	n = cache_blob_pread(b, buf, len, off, origin_fetch, o);
	if (n != (ssize_t)(off + len > o->size ? o->size - off : len))
		fail_msg("pread(%llu, %zu): expected %zu bytes, got %zd", (unsigned long long)off,
			 len, len, n);
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != o->data[off + i])
			fail_msg("byte %llu: expected 0x%02x, got 0x%02x",
				 (unsigned long long)(off + i), o->data[off + i], buf[i]);
	free(buf);
}

static void test_cold_warm_reopen(void **state)
{
	char *dir = tmpdir();
	struct origin o;
	struct cache_store *s;
	struct cache_blob *b;
	uint64_t present, total;

	origin_init(&o, BLOB - 1000, 1); /* last unit partial */
	s = store_open(dir, 64 << 20);
	b = blob_open(s, DIGEST, &o);
	expect_read(b, &o, 0, 512);
	expect_read(b, &o, 5000, 10000);
	expect_read(b, &o, o.size - 100, 4096); /* short at the end */
	int cold = o.calls;

	expect_read(b, &o, 0, 512);
	expect_read(b, &o, 6000, 100);
	if (o.calls != cold)
		fail_msg("warm reads: expected %d fetches, got %d", cold, o.calls);
	cache_blob_stats(b, &present, &total);
	assert_int_equal(total, 256);
	cache_blob_close(b);
	cache_store_close(s);

	/* Reopen: the map was flushed at close, nothing is fetched again. */
	s = store_open(dir, 64 << 20);
	assert_int_equal(cache_store_usage(s), present * UNIT);
	b = blob_open(s, DIGEST, &o);
	o.calls = 0;
	expect_read(b, &o, 5000, 10000);
	expect_read(b, &o, o.size - 100, 100);
	if (o.calls)
		fail_msg("after reopen: expected 0 fetches, got %d", o.calls);
	/* Everything else still reads right. */
	expect_read(b, &o, 0, o.size);
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

/* Child: fill units one by one and die by SIGKILL at a random moment. */
static void fill_and_die(const char *dir, struct origin *o, unsigned seed)
{
	struct cache_store *s = store_open(dir, 64 << 20);
	struct cache_blob *b = blob_open(s, DIGEST, o);
	uint8_t buf[UNIT];

	/* Killed by the clock, not after so many reads (read-ahead makes
	 * reads cheaper): past the first durability flush (every second),
	 * so flushed units exist, and with fetches slow enough that units
	 * not yet flushed, or not fetched at all, exist too. */
	uint64_t kill_at = cache_now_ms() + 1300 + 300 * seed;

	o->delay_us = 30000;
	srandom(seed);
	while (cache_now_ms() < kill_at)
		cache_blob_pread(b, buf, UNIT, (random() % 256) * UNIT, origin_fetch, o);
	kill(getpid(), SIGKILL);
	abort();
}

static void test_kill9_mid_fill(void **state)
{
	char *dir = tmpdir();
	struct origin o;

	int vouched = 0;

	origin_init(&o, BLOB, 2);
	for (unsigned round = 0; round < 2; round++) {
		struct origin wrong;
		struct cache_store *s;
		struct cache_blob *b;
		pid_t pid;
		int st;

		/* After the kill, scribble over every unit the map does not
		 * vouch for, as a torn or lost write would: none of it may
		 * be served. */
		rmrf(dir);
		assert_int_equal(mkdir(dir, 0755), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (!pid)
			fill_and_die(dir, &o, round);
		waitpid(pid, &st, 0);
		assert_true(WIFSIGNALED(st));

		origin_init(&wrong, BLOB, 99);
		{
			char data[512], map[512];
			struct cache_map_hdr h;
			uint8_t bits[32];
			int dfd, mfd;

			blob_file(data, sizeof(data), dir, DIGEST, "");
			blob_file(map, sizeof(map), dir, DIGEST, ".map");
			dfd = open(data, O_RDWR);
			mfd = open(map, O_RDONLY);
			assert_true(dfd >= 0 && mfd >= 0);
			assert_int_equal(pread(mfd, &h, sizeof(h), 0), sizeof(h));
			assert_int_equal(pread(mfd, bits, sizeof(bits), CACHE_MAP_HDR), sizeof(bits));
			for (int u = 0; u < 256; u++)
				if (bit_get(bits, u))
					vouched++;
				else
					assert_int_equal(pwrite(dfd, wrong.data + u * UNIT, UNIT,
								u * UNIT), UNIT);
			close(dfd);
			close(mfd);
		}
		free(wrong.data);
		s = store_open(dir, 64 << 20);
		b = blob_open(s, DIGEST, &o);
		expect_read(b, &o, 0, BLOB);
		cache_blob_close(b);
		cache_store_close(s);
	}
	if (!vouched || vouched >= 2 * 256)
		fail_msg("kill -9 rounds: expected some but not all units flushed before the "
			 "kill, got %d of %d", vouched, 2 * 256);
	free(o.data);
	rmrf(dir);
	free(dir);
}

static void test_foreign_map_discarded(void **state)
{
	char *dir = tmpdir();
	struct origin o, other;
	struct cache_store *s;
	struct cache_blob *b;

	origin_init(&o, BLOB, 3);
	s = store_open(dir, 64 << 20);
	b = blob_open(s, DIGEST, &o);
	expect_read(b, &o, 0, BLOB);
	cache_blob_close(b);
	/* Same digest reopened with another size: the old state is dropped. */
	origin_init(&other, BLOB / 2, 4);
	b = blob_open(s, DIGEST, &other);
	other.calls = 0;
	expect_read(b, &other, 0, BLOB / 2);
	if (!other.calls)
		fail_msg("size change: expected fetches, got none");
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	free(other.data);
	rmrf(dir);
	free(dir);
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void expect_file(const char *dir, const char *name, const char *want)
{
	char path[600], buf[256] = "";
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("%s: expected it kept with \"%s\", got %s", name, want, strerror(errno));
	assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
	close(fd);
	if (strcmp(buf, want))
		fail_msg("%s: expected \"%s\", got \"%s\"", name, want, buf);
}

static void expect_gone(const char *dir, const char *name)
{
	char path[600];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!lstat(path, &st))
		fail_msg("%s: expected removed by the scan, still there", name);
}

/* One digest from two origins (security round 2, item 4): each origin
 * gets its own entry and its own bytes, and what one origin put in the
 * cache is never known, nor served, to the other. */
static void test_origins_separate(void **state)
{
	static const char *const other = "http://elsewhere.test:5000/v2/ns/repo/blobs";
	char *dir = tmpdir();
	struct origin good, bad;
	struct cache_store *s;
	struct cache_blob *b;
	uint64_t size;
	int rc;

	origin_init(&bad, BLOB, 60);
	origin_init(&good, BLOB, 61);
	s = store_open(dir, 64 << 20);
	assert_int_equal(cache_blob_open(s, other, DIGEST, BLOB, &b), 0);
	bad.calls = 0;
	expect_read(b, &bad, 0, BLOB);
	cache_blob_close(b);
	rc = cache_known_size(s, ORIGIN, DIGEST, &size);
	if (rc != -ENOENT)
		fail_msg("size known to another origin: expected %d, got %d", -ENOENT, rc);
	for (int round = 0; round < 2; round++) {
		/* Round 1: the same after a restart (the entries come from
		 * the scan). */
		b = blob_open(s, DIGEST, &good);
		good.calls = 0;
		expect_read(b, &good, 0, BLOB);
		if (!round && !good.calls)
			fail_msg("same digest, other origin: expected fetches, got none");
		cache_blob_close(b);
		assert_int_equal(cache_blob_open(s, other, DIGEST, BLOB, &b), 0);
		expect_read(b, &bad, 0, BLOB);
		cache_blob_close(b);
		cache_store_close(s);
		s = store_open(dir, 64 << 20);
	}
	cache_store_close(s);
	free(good.data);
	free(bad.data);
	rmrf(dir);
	free(dir);
}

/* A cache of the flat layout (<dir>/<digest>, no origin) is dropped by the
 * first scan and never served. */
static void test_flat_layout_dropped(void **state)
{
	char *dir = tmpdir(), from[600], to[600];
	struct origin o;
	struct cache_store *s;
	struct cache_blob *b;
	struct stat st;
	uint64_t size;

	origin_init(&o, BLOB, 62);
	s = store_open(dir, 64 << 20);
	b = blob_open(s, DIGEST, &o);
	expect_read(b, &o, 0, BLOB);
	cache_blob_close(b);
	cache_store_close(s);
	/* Move the entry to where the old layout kept it. */
	for (int k = 0; k < 2; k++) {
		blob_file(from, sizeof(from), dir, DIGEST, k ? ".map" : "");
		snprintf(to, sizeof(to), "%s/%s%s", dir, DIGEST, k ? ".map" : "");
		assert_int_equal(rename(from, to), 0);
	}
	s = store_open(dir, 64 << 20);
	for (int k = 0; k < 2; k++) {
		snprintf(to, sizeof(to), "%s/%s%s", dir, DIGEST, k ? ".map" : "");
		if (!lstat(to, &st))
			fail_msg("old layout %s: expected removed by the scan, still there", to);
	}
	if (!cache_known_size(s, ORIGIN, DIGEST, &size))
		fail_msg("old layout: expected its size unknown, got %llu",
			 (unsigned long long)size);
	b = blob_open(s, DIGEST, &o);
	o.calls = 0;
	expect_read(b, &o, 0, BLOB);
	if (!o.calls)
		fail_msg("old layout: expected fetches from the origin, got none");
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

/* Plant a symlink DIR/NAME -> VDIR/TARGET. */
static void plant_link(const char *dir, const char *name, const char *vdir, const char *target)
{
	char path[600], to[600];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(to, sizeof(to), "%s/%s", vdir, target);
	assert_int_equal(symlink(to, path), 0);
}

/* The scan at start-up removes only names the cache gives its files, and
 * never follows a symlink (security round 2, item S). */
static void test_scan_only_own_files(void **state)
{
	char *dir = tmpdir(), *vdir = tmpdir(), ns[CACHE_NS_LEN + 1], nsdir[600];
	struct cache_store *s;

	cache_ns_name(ORIGIN, ns);
	snprintf(nsdir, sizeof(nsdir), "%s/%s", dir, ns);
	assert_int_equal(mkdir(nsdir, 0755), 0);
	put_file(dir, "notes.txt", "not the cache's");
	put_file(nsdir, "README", "nor this");
	put_file(vdir, "victim", "victim");
	put_file(vdir, "victim.map", "victim map");
	/* A leftover data file with no map: the cache's own name, it goes. */
	put_file(nsdir, DIGEST, "leftover");
	/* Links named like cache files: their names may go, never the
	 * files they point to. */
	plant_link(nsdir, "sha256:0002", vdir, "victim");
	plant_link(nsdir, "sha256:0003.map", vdir, "victim.map");
	put_file(nsdir, "sha256:0003", "data of a linked map");
	plant_link(dir, "sha256:0005.map", vdir, "victim.map");
	s = store_open(dir, 64 << 20);
	/* A link planted at a blob's data name after the scan: the open
	 * refuses it rather than truncate what it points to. */
	{
		struct origin o;
		struct cache_blob *b = NULL;
		const char *d4 = "sha256:0004";

		origin_init(&o, BLOB, 5);
		plant_link(nsdir, d4, vdir, "victim");
		if (!cache_blob_open(s, ORIGIN, d4, o.size, &b)) {
			expect_read(b, &o, 0, 8192);
			cache_blob_close(b);
		}
		free(o.data);
	}
	cache_store_close(s);
	expect_file(dir, "notes.txt", "not the cache's");
	expect_file(nsdir, "README", "nor this");
	expect_file(vdir, "victim", "victim");
	expect_file(vdir, "victim.map", "victim map");
	expect_gone(nsdir, DIGEST);
	expect_gone(nsdir, "sha256:0003.map");
	expect_gone(nsdir, "sha256:0003");
	rmrf(dir);
	rmrf(vdir);
	free(dir);
	free(vdir);
}

static void corrupt(const char *dir, uint64_t off)
{
	char path[512];
	uint8_t c;
	int fd;

	blob_file(path, sizeof(path), dir, DIGEST, "");
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void expect_calls(struct origin *o, int want, const char *what)
{
	if (o->calls != want)
		fail_msg("%s: expected %d origin fetches, got %d", what, want, o->calls);
}

static void test_corrupt_unit_refetched(void **state)
{
	char *dir = tmpdir(), map[512];
	uint64_t nunits = (BLOB - 1000 + UNIT - 1) / UNIT, last = (nunits - 1) * UNIT;
	struct cache_store *s;
	struct cache_blob *b;
	struct origin o;
	uint8_t buf[UNIT];
	ssize_t n;
	int fd;

	origin_init(&o, BLOB - 1000, 11); /* last unit partial */
	s = store_open(dir, 64 << 20);
	b = blob_open(s, DIGEST, &o);
	expect_read(b, &o, 0, o.size);
	cache_blob_close(b);
	cache_store_close(s);

	/* A restart counts the bitmap only, not the CRCs after it. */
	s = store_open(dir, 64 << 20);
	if (cache_store_usage(s) != nunits * UNIT)
		fail_msg("usage after restart: expected %llu, got %llu",
			 (unsigned long long)(nunits * UNIT),
			 (unsigned long long)cache_store_usage(s));
	/* Damage behind the map's back: a bit says present, the bytes lie. */
	corrupt(dir, 5 * UNIT + 100);
	corrupt(dir, last + 7);
	b = blob_open(s, DIGEST, &o);
	o.calls = 0;
	expect_read(b, &o, 5 * UNIT + 90, 20);
	expect_calls(&o, 1, "damaged unit 5");
	expect_read(b, &o, 6 * UNIT, UNIT);
	expect_calls(&o, 1, "intact unit 6");
	n = cache_blob_read_cached(b, buf, 100, last);
	if (n != 0)
		fail_msg("read_cached of the damaged last unit: expected 0, got %zd", n);
	expect_read(b, &o, last, o.size - last);
	expect_calls(&o, 2, "damaged partial last unit");
	n = cache_blob_read_cached(b, buf, UNIT, 7 * UNIT);
	if (n != UNIT || memcmp(buf, o.data + 7 * UNIT, UNIT))
		fail_msg("read_cached of intact unit 7: expected %u right bytes, got %zd", UNIT, n);
	cache_blob_close(b);

	/* The refetched units were made durable with their new CRCs. */
	b = blob_open(s, DIGEST, &o);
	o.calls = 0;
	expect_read(b, &o, 0, o.size);
	expect_calls(&o, 0, "after repair and reopen");
	cache_blob_close(b);

	/* Damaged while the origin is down: an error, never the bytes. */
	corrupt(dir, 9 * UNIT);
	b = blob_open(s, DIGEST, &o);
	o.fail = true;
	n = cache_blob_pread(b, buf, UNIT, 9 * UNIT, origin_fetch, &o);
	if (n >= 0)
		fail_msg("damaged unit, origin down: expected an error, got %zd bytes", n);
	o.fail = false;
	expect_read(b, &o, 9 * UNIT, UNIT);
	cache_blob_close(b);

	/* A map from before the CRCs (OBDCMAP1) vouches for nothing. */
	blob_file(map, sizeof(map), dir, DIGEST, ".map");
	fd = open(map, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "OBDCMAP1", 8, 0), 8);
	close(fd);
	b = blob_open(s, DIGEST, &o);
	o.calls = 0;
	expect_read(b, &o, 0, UNIT);
	expect_calls(&o, 1, "version 1 map");
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

static void test_shared_blob(void **state)
{
	char *dir = tmpdir();
	struct origin o1, o2;
	struct cache_store *s;
	struct cache_blob *a, *b;

	/* Two specs name the same layer: one cache blob, each reader
	 * fetching through its own origin, either may close first. */
	origin_init(&o1, BLOB, 8);
	origin_init(&o2, BLOB, 8);
	s = store_open(dir, 64 << 20);
	a = blob_open(s, DIGEST, &o1);
	b = blob_open(s, DIGEST, &o2);
	assert_ptr_equal(a, b);
	expect_read(a, &o1, 0, UNIT);
	cache_blob_close(a);
	free(o1.data);
	o1.data = NULL;
	expect_read(b, &o2, 0, BLOB);
	if (o2.calls == 0)
		fail_msg("second opener: expected its own fetches, got none");
	cache_blob_close(b);
	cache_store_close(s);
	free(o2.data);
	rmrf(dir);
	free(dir);
}

struct opener {
	struct cache_store *s;
	struct origin *o;
	pthread_barrier_t *go;
	unsigned id;
	int rounds;
	char err[160];
};

static void *open_thread(void *arg)
{
	struct opener *p = arg;
	uint8_t buf[UNIT];

	/* Every thread passes both barriers of every round, error or not. */
	for (int r = 0; r < p->rounds; r++) {
		uint64_t off = (uint64_t)((r * 7 + p->id * 13) % (p->o->size / UNIT)) * UNIT;
		struct cache_blob *b = NULL;
		ssize_t n;
		int rc;

		pthread_barrier_wait(p->go);
		rc = cache_blob_open(p->s, ORIGIN, DIGEST, p->o->size, &b);
		if (rc) {
			if (!p->err[0])
				snprintf(p->err, sizeof(p->err), "round %d: open: expected 0, got %d",
					 r, rc);
			pthread_barrier_wait(p->go);
			continue;
		}
		n = cache_blob_pread(b, buf, UNIT, off, origin_fetch, p->o);
		if ((n != UNIT || memcmp(buf, p->o->data + off, UNIT)) && !p->err[0])
			snprintf(p->err, sizeof(p->err),
				 "round %d: read at %llu: expected %u right bytes, got %zd%s", r,
				 (unsigned long long)off, UNIT, n, n == UNIT ? " (wrong)" : "");
		/* Odd threads close at once, so their closes race the others'
		 * opens of the next round. */
		if (p->id & 1) {
			cache_blob_close(b);
			pthread_barrier_wait(p->go);
		} else {
			pthread_barrier_wait(p->go);
			cache_blob_close(b);
		}
	}
	return NULL;
}

static void test_concurrent_open(void **state)
{
	enum { THREADS = 4, ROUNDS = 300 };
	char *dir = tmpdir();
	struct opener op[THREADS];
	pthread_barrier_t go;
	pthread_t th[THREADS];
	struct origin o;
	struct cache_store *s;

	/* Two devices with a layer in common start together (the daemon
	 * opens specs in parallel): a second opener must not get the blob
	 * before the first has loaded its map, nor while a last close tears
	 * it down.  A larger blob makes the first open's work longer. */
	origin_init(&o, 64u << 20, 9);
	s = store_open(dir, 256 << 20);
	pthread_barrier_init(&go, NULL, THREADS);
	for (unsigned i = 0; i < THREADS; i++) {
		op[i] = (struct opener){ .s = s, .o = &o, .go = &go, .id = i, .rounds = ROUNDS };
		assert_int_equal(pthread_create(&th[i], NULL, open_thread, &op[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (unsigned i = 0; i < THREADS; i++)
		if (op[i].err[0])
			fail_msg("thread %u: %s", i, op[i].err);
	pthread_barrier_destroy(&go);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

struct reader {
	struct cache_blob *b;
	struct origin *o;
	uint64_t off;
	int bad;
};

static void *read_thread(void *arg)
{
	struct reader *r = arg;
	uint8_t buf[UNIT];

	if (cache_blob_pread(r->b, buf, UNIT, r->off, origin_fetch, r->o) != UNIT ||
	    memcmp(buf, r->o->data + r->off, UNIT))
		r->bad = 1;
	return NULL;
}

static void test_single_flight(void **state)
{
	char *dir = tmpdir();
	struct origin o;
	struct cache_store *s;
	struct cache_blob *b;
	pthread_t th[8];
	struct reader rd[8];

	origin_init(&o, BLOB, 5);
	o.delay_us = 100000;
	s = store_open(dir, 64 << 20);
	b = blob_open(s, DIGEST, &o);
	for (int i = 0; i < 8; i++) {
		rd[i] = (struct reader){ b, &o, 7 * UNIT, 0 };
		pthread_create(&th[i], NULL, read_thread, &rd[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		if (rd[i].bad)
			fail_msg("reader %d: wrong bytes", i);
	}
	if (o.calls != 1)
		fail_msg("8 concurrent misses of one unit: expected 1 fetch, got %d", o.calls);
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

static void test_readahead(void **state)
{
	char *dir = tmpdir();
	struct origin o;
	struct cache_store *s;
	struct cache_blob *b;

	origin_init(&o, 16u << 20, 6);
	s = store_open(dir, 64 << 20);
	b = blob_open(s, DIGEST, &o);
	for (uint64_t off = 0; off < o.size; off += 65536)
		expect_read(b, &o, off, 65536);
	/* 256 sequential 64 KiB reads need far fewer fetches than reads. */
	if (o.calls > 16)
		fail_msg("sequential 16 MiB in 64 KiB reads: expected <= 16 fetches, got %d",
			 o.calls);
	cache_blob_close(b);
	/* A queue reordered across threads (pairs swapped) is still a stream. */
	b = blob_open(s, "sha256:0000000000000000000000000000000000000000000000000000000000000002",
		      &o);
	o.calls = 0;
	for (uint64_t off = 0; off < o.size; off += 2 * 65536) {
		expect_read(b, &o, off + 65536, 65536);
		expect_read(b, &o, off, 65536);
	}
	if (o.calls > 40)
		fail_msg("reordered sequential 16 MiB: expected <= 40 fetches, got %d", o.calls);
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

static void test_prefetch(void **state)
{
	char *dir = tmpdir();
	struct origin o;
	struct cache_store *s;
	struct cache_blob *b;
	int rc;

	origin_init(&o, BLOB + 100, 8);
	s = store_open(dir, 64 << 20);
	b = blob_open(s, DIGEST, &o);
	/* Units 1..3 and the short last one, each range one request. */
	rc = cache_blob_prefetch(b, UNIT + 5, 3 * UNIT - 10, origin_fetch, &o);
	assert_int_equal(rc, 0);
	rc = cache_blob_prefetch(b, BLOB - 10, 4096, origin_fetch, &o);
	assert_int_equal(rc, 0);
	if (o.calls != 2 || o.bytes != 3 * UNIT + UNIT + 100)
		fail_msg("two prefetches: expected 2 fetches of %u bytes, got %d of %llu",
			 4 * UNIT + 100, o.calls, (unsigned long long)o.bytes);
	o.calls = 0;
	expect_read(b, &o, UNIT, 3 * UNIT);
	expect_read(b, &o, BLOB - UNIT, UNIT + 100);
	if (o.calls)
		fail_msg("reads of prefetched units: expected 0 fetches, got %d", o.calls);
	/* Nothing is prefetched past the range, and a failure is the origin's. */
	o.fail = true;
	assert_int_equal(cache_blob_prefetch(b, 0, 1, origin_fetch, &o), -EIO);
	assert_int_equal(cache_blob_prefetch(b, UNIT, UNIT, origin_fetch, &o), 0);
	assert_int_equal(cache_blob_prefetch(b, BLOB + 100, 1, origin_fetch, &o), 0);
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

static void test_origin_error(void **state)
{
	char *dir = tmpdir();
	struct origin o;
	struct cache_store *s;
	struct cache_blob *b;
	uint8_t buf[100];

	origin_init(&o, BLOB, 7);
	s = store_open(dir, 64 << 20);
	b = blob_open(s, DIGEST, &o);
	o.fail = true;
	assert_int_equal(cache_blob_pread(b, buf, sizeof(buf), 0, origin_fetch, &o), -EIO);
	assert_int_equal(cache_blob_read_cached(b, buf, sizeof(buf), 0), 0);
	/* Back again: the failed unit is fetched now, not remembered. */
	o.fail = false;
	expect_read(b, &o, 0, 100);
	assert_int_equal(cache_blob_read_cached(b, buf, sizeof(buf), 0), sizeof(buf));
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

static void test_evict_lru_closed(void **state)
{
	char *dir = tmpdir(), name[128], path[512];
	struct origin o[4];
	struct cache_store *s = store_open(dir, 2 * BLOB + BLOB / 2);
	struct stat st;

	for (int i = 0; i < 4; i++) {
		struct cache_blob *b;

		origin_init(&o[i], BLOB, 10 + i);
		snprintf(name, sizeof(name), "sha256:%064d", i);
		b = blob_open(s, name, &o[i]);
		expect_read(b, &o[i], 0, BLOB);
		cache_blob_close(b);
		usleep(2000);
	}
	cache_store_evict(s);
	if (cache_store_usage(s) > 2 * BLOB + BLOB / 2)
		fail_msg("usage after eviction: expected <= %u, got %llu", 2 * BLOB + BLOB / 2,
			 (unsigned long long)cache_store_usage(s));
	/* Oldest went first, newest stayed. */
	snprintf(name, sizeof(name), "sha256:%064d", 0);
	blob_file(path, sizeof(path), dir, name, "");
	if (!stat(path, &st))
		fail_msg("LRU blob 0: expected evicted, still there");
	snprintf(name, sizeof(name), "sha256:%064d", 3);
	blob_file(path, sizeof(path), dir, name, ".map");
	if (stat(path, &st))
		fail_msg("newest blob 3: expected kept, gone");
	cache_store_close(s);
	for (int i = 0; i < 4; i++)
		free(o[i].data);
	rmrf(dir);
	free(dir);
}

static void test_evict_open_blob(void **state)
{
	char *dir = tmpdir();
	struct origin o;
	struct cache_store *s = store_open(dir, BLOB / 2);
	struct cache_blob *b;

	origin_init(&o, BLOB, 20);
	b = blob_open(s, DIGEST, &o);
	expect_read(b, &o, 0, BLOB);
	cache_store_evict(s);
	if (cache_store_usage(s) > BLOB / 2)
		fail_msg("open blob over limit: expected usage <= %u, got %llu", BLOB / 2,
			 (unsigned long long)cache_store_usage(s));
	/* Still right: punched units are fetched again, never read as zeros. */
	o.calls = 0;
	expect_read(b, &o, 0, BLOB);
	if (!o.calls)
		fail_msg("after punching: expected refetches, got none");
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

static void test_unwritable_serves(void **state)
{
	char *dir = tmpdir(), path[512];
	struct origin o;
	struct cache_store *s;
	struct cache_blob *b;
	int fd;

	origin_init(&o, BLOB, 30);
	s = store_open(dir, 64 << 20);
	b = blob_open(s, DIGEST, &o);
	/* Tests run as root, who ignores permissions: swap the data fd
	 * for a read-only one instead, so every fill write fails. */
	blob_file(path, sizeof(path), dir, DIGEST, "");
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	dup2(fd, b->fd);
	close(fd);
	expect_read(b, &o, 0, 3 * UNIT);
	expect_read(b, &o, 100 * UNIT, BLOB - 100 * UNIT);
	cache_blob_close(b);
	cache_store_close(s);
	free(o.data);
	rmrf(dir);
	free(dir);
}

struct dl_ctx {
	struct origin *o;
	uint64_t cached_below; /* bytes under this offset count as cached */
	char path[512];
	int done_calls;
};

static ssize_t dl_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return origin_fetch(((struct dl_ctx *)ctx)->o, buf, len, off);
}

static ssize_t dl_read_cached(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct dl_ctx *d = ctx;

	if (off + len > d->cached_below)
		return 0;
	memcpy(buf, d->o->data + off, len);
	return len;
}

static int dl_done(void *ctx, const char *path)
{
	struct dl_ctx *d = ctx;

	snprintf(d->path, sizeof(d->path), "%s", path);
	d->done_calls++;
	return 0;
}

static void digest_of(struct origin *o, char *out)
{
	unsigned char h[32];

	EVP_Digest(o->data, o->size, h, NULL, EVP_sha256(), NULL);
	strcpy(out, "sha256:");
	for (int i = 0; i < 32; i++)
		sprintf(out + 7 + 2 * i, "%02x", h[i]);
}

static void test_download(void **state)
{
	char *dir = tmpdir(), digest[80], path[600];
	struct origin o;
	struct cache_dl *d;
	struct cache_dl_job *j;
	struct dl_ctx ctx = { 0 };
	struct cache_dl_src src;
	struct cache_dl_opts opts = { .max_mbps = 4, .block_size = 65536, .try_cnt = 2 };
	struct stat st;
	uint64_t t0;
	int rc, fd;

	origin_init(&o, 2u << 20, 40);
	digest_of(&o, digest);
	ctx.o = &o;
	src = (struct cache_dl_src){
		.digest = digest, .size = o.size, .read = dl_read, .done = dl_done, .ctx = &ctx
	};
	assert_int_equal(cache_dl_create(&d), 0);
	t0 = cache_now_ms();
	assert_int_equal(cache_dl_add(d, &src, dir, &opts, &j), 0);
	rc = cache_dl_wait(j, 20000);
	if (rc)
		fail_msg("download: expected 0, got %d", rc);
	/* 2 MiB at 4 MiB/s: about 0.5 s (less one group of burst); the
	 * upper bound only guards against a stall on this shared machine. */
	uint64_t ms = cache_now_ms() - t0;

	if (ms < 430 || ms > 2000)
		fail_msg("throttled 2 MiB at 4 MiB/s: expected ~500 ms, got %llu ms",
			 (unsigned long long)ms);
	snprintf(path, sizeof(path), "%s/overlaybd.commit", dir);
	if (strcmp(ctx.path, path))
		fail_msg("switch path: expected %s, got %s", path, ctx.path);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	{
		char got[80];

		assert_int_equal(cache_sha256_fd(fd, o.size, got, sizeof(got)), 0);
		if (strcmp(got, digest))
			fail_msg("downloaded file: expected %s, got %s", digest, got);
	}
	close(fd);
	cache_dl_remove(j);

	/* Wrong digest: discarded, attempts counted, then given up. */
	rmrf(dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	src.digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	opts.max_mbps = 0;
	ctx.done_calls = 0;
	assert_int_equal(cache_dl_add(d, &src, dir, &opts, &j), 0);
	rc = cache_dl_wait(j, 20000);
	if (rc != -EBADMSG)
		fail_msg("tampered download: expected %d, got %d", -EBADMSG, rc);
	assert_int_equal(ctx.done_calls, 0);
	snprintf(path, sizeof(path), "%s/.download", dir);
	if (!stat(path, &st))
		fail_msg("mismatched .download: expected discarded, still there");
	snprintf(path, sizeof(path), "%s/overlaybd.commit", dir);
	if (!stat(path, &st))
		fail_msg("mismatch: expected no overlaybd.commit, found one");
	cache_dl_remove(j);

	/* Resume and cache: a quarter already in .download (from a run
	 * that died), the next quarter in the cache: only the second half
	 * is fetched. */
	rmrf(dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/.download", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, o.data, o.size / 4, 0), (ssize_t)(o.size / 4));
	close(fd);
	digest_of(&o, digest);
	src.digest = digest;
	src.read_cached = dl_read_cached;
	ctx.cached_below = o.size / 2;
	o.bytes = 0;
	assert_int_equal(cache_dl_add(d, &src, dir, &opts, &j), 0);
	rc = cache_dl_wait(j, 20000);
	if (rc)
		fail_msg("resumed download: expected 0, got %d", rc);
	if (o.bytes != o.size / 2)
		fail_msg("resumed download: expected %zu bytes fetched, got %llu", o.size / 2,
			 (unsigned long long)o.bytes);
	cache_dl_remove(j);

	/* An odd size, and a block size that is no multiple of the O_DIRECT
	 * alignment: those writes go through the page cache, the rest
	 * direct; the file is the blob either way. */
	free(o.data);
	origin_init(&o, (1u << 20) + 1000, 41);
	digest_of(&o, digest);
	src = (struct cache_dl_src){
		.digest = digest, .size = o.size, .read = dl_read, .done = dl_done, .ctx = &ctx
	};
	for (int k = 0; k < 2; k++) {
		char got[80];

		rmrf(dir);
		assert_int_equal(mkdir(dir, 0755), 0);
		opts.block_size = k ? 3000 : 65536;
		assert_int_equal(cache_dl_add(d, &src, dir, &opts, &j), 0);
		rc = cache_dl_wait(j, 20000);
		if (rc)
			fail_msg("download, block size %u: expected 0, got %d", opts.block_size, rc);
		snprintf(path, sizeof(path), "%s/overlaybd.commit", dir);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0 && fstat(fd, &st) == 0);
		assert_int_equal(cache_sha256_fd(fd, o.size, got, sizeof(got)), 0);
		if ((uint64_t)st.st_size != o.size || strcmp(got, digest))
			fail_msg("download, block size %u: expected %zu bytes with %s, got %llu with %s",
				 opts.block_size, o.size, digest, (unsigned long long)st.st_size, got);
		close(fd);
		cache_dl_remove(j);
	}
	cache_dl_destroy(d);
	free(o.data);
	rmrf(dir);
	free(dir);
}

/* Someone who can write a layer's dir plants DIR/.download as a symlink,
 * then as a hard link, to a file of theirs choosing, and overlaybd.commit
 * as a symlink: the download completes, the victim is untouched (security
 * round 2, item 8). */
static void test_download_planted_links(void **state)
{
	static const char victim_text[] = "victim: must never be written by the download\n";
	char *dir = tmpdir(), *vdir = tmpdir(), digest[80], path[600], victim[600], got[80];
	struct origin o;
	struct cache_dl *d;
	struct cache_dl_job *j;
	struct dl_ctx ctx = { 0 };
	struct cache_dl_src src;
	struct cache_dl_opts opts = { .block_size = 65536, .try_cnt = 1 };
	struct stat st;
	int rc, fd;

	origin_init(&o, 300000, 42);
	digest_of(&o, digest);
	ctx.o = &o;
	src = (struct cache_dl_src){
		.digest = digest, .size = o.size, .read = dl_read, .done = dl_done, .ctx = &ctx
	};
	snprintf(victim, sizeof(victim), "%s/victim", vdir);
	assert_int_equal(cache_dl_create(&d), 0);
	static const char *const what[] = { ".download as a symlink", ".download as a hard link",
					    "overlaybd.commit as a symlink" };

	for (int k = 0; k < 3; k++) {
		char buf[sizeof(victim_text) + 16] = "";

		rmrf(dir);
		assert_int_equal(mkdir(dir, 0755), 0);
		fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, victim_text, strlen(victim_text)),
				 (ssize_t)strlen(victim_text));
		close(fd);
		snprintf(path, sizeof(path), "%s/%s", dir, k < 2 ? ".download" : "overlaybd.commit");
		assert_int_equal(k == 1 ? link(victim, path) : symlink(victim, path), 0);
		snprintf(path, sizeof(path), "%s/overlaybd.commit", dir);
		assert_int_equal(cache_dl_add(d, &src, dir, &opts, &j), 0);
		rc = cache_dl_wait(j, 20000);
		if (rc)
			fail_msg("download over a planted %s: expected 0, got %d", what[k], rc);
		fd = open(victim, O_RDONLY);
		assert_true(fd >= 0 && fstat(fd, &st) == 0);
		assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
		close(fd);
		if (strcmp(buf, victim_text))
			fail_msg("planted %s: expected the victim unchanged (%zu bytes), got %llu "
				 "bytes", what[k], strlen(victim_text),
				 (unsigned long long)st.st_size);
		fd = open(path, O_RDONLY | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode))
			fail_msg("planted %s: expected overlaybd.commit a regular file, got %s",
				 what[k], fd < 0 ? strerror(errno) : "another kind");
		assert_int_equal(cache_sha256_fd(fd, o.size, got, sizeof(got)), 0);
		if (strcmp(got, digest))
			fail_msg("planted %s: expected overlaybd.commit with %s, got %s", what[k],
				 digest, got);
		close(fd);
		cache_dl_remove(j);
	}
	cache_dl_destroy(d);
	free(o.data);
	rmrf(dir);
	rmrf(vdir);
	free(dir);
	free(vdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cold_warm_reopen),
		cmocka_unit_test(test_kill9_mid_fill),
		cmocka_unit_test(test_foreign_map_discarded),
		cmocka_unit_test(test_corrupt_unit_refetched),
		cmocka_unit_test(test_shared_blob),
		cmocka_unit_test(test_concurrent_open),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_readahead),
		cmocka_unit_test(test_prefetch),
		cmocka_unit_test(test_origin_error),
		cmocka_unit_test(test_evict_lru_closed),
		cmocka_unit_test(test_evict_open_blob),
		cmocka_unit_test(test_unwritable_serves),
		cmocka_unit_test(test_download),
		cmocka_unit_test(test_download_planted_links),
		cmocka_unit_test(test_scan_only_own_files),
		cmocka_unit_test(test_origins_separate),
		cmocka_unit_test(test_flat_layout_dropped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
