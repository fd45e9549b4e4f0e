/*
 * cache_file: one cached blob.  <dir>/<origin>/<digest> is a sparse file
 * at blob offsets; <dir>/<origin>/<digest>.map records which fill units
 * hold durable data (docs/cache.md).
 * A miss claims its missing units (others that need them wait: single
 * flight), fetches each run in one request, writes it, and marks it present
 * in memory; the on-disk bit follows only after fdatasync of the data, so a
 * kill -9 or power loss at any point leaves at worst units to fetch again.
 * Each unit carries a CRC-32C (cache_int.h), checked on its first read per
 * open, so a damaged cache file is fetched again rather than served.
 * Sequential readers get read-ahead by growing their fetch runs.
 */
#include "cache_int.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Flush durability at least this often while filling. */
#define FLUSH_BYTES (16u << 20)
#define FLUSH_MS 1000u
/* One fetch covers at most this much (bounds memory per reader). */
#define RUN_MAX (8u << 20)
/* Read-ahead grows from 1 MiB to 16 MiB for a sequential reader: two runs
 * in flight ahead of it. */
#define RA_MIN (1u << 20)
#define RA_MAX (16u << 20)
#define BYPASS_MS 10000u

uint64_t cache_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool cache_digest_ok(const char *d)
{
	const char *colon = strchr(d, ':');

	if (!colon || colon == d || !colon[1] || strlen(d) > 200)
		return false;
	for (const char *p = d; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      (p == colon) || *p == '_' || *p == '-' || *p == '+' || *p == '.'))
			return false;
	return true;
}

void cache_ns_name(const char *origin, char ns[CACHE_NS_LEN + 1])
{
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned int hl = 0;

	EVP_Digest(origin, strlen(origin), h, &hl, EVP_sha256(), NULL);
	for (unsigned i = 0; i < CACHE_NS_LEN / 2; i++)
		snprintf(ns + 2 * i, 3, "%02x", h[i]);
}

bool cache_ns_ok(const char *name)
{
	size_t n = strspn(name, "0123456789abcdef");

	return n == CACHE_NS_LEN && !name[n];
}

int cache_blob_paths(struct cache_store *s, const char *ns, const char *digest, char *data,
		     char *map, size_t len)
{
	if (!cache_digest_ok(digest) || !cache_ns_ok(ns))
		return -EINVAL;
	if ((size_t)snprintf(data, len, "%s/%s/%s", s->dir, ns, digest) >= len ||
	    (size_t)snprintf(map, len, "%s/%s/%s.map", s->dir, ns, digest) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* The origin's subdirectory, made on its first blob: a real directory, not
 * a link someone put in its place. */
static int make_ns_dir(struct cache_store *s, const char *ns)
{
	char path[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", s->dir, ns) >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	if (lstat(path, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static void warn_unwritable(struct cache_blob *b, int err)
{
	struct cache_store *s = b->s;
	uint64_t now = cache_now_ms();

	__atomic_store_n(&b->bypass_until, now + BYPASS_MS, __ATOMIC_RELAXED);
	pthread_mutex_lock(&s->lock);
	if (!s->warned_ms || now - s->warned_ms > 60000) {
		s->warned_ms = now;
		log_warn("cache: cannot write to %s (%s): reading from the registry directly",
			 s->dir, strerror(-err));
	}
	pthread_mutex_unlock(&s->lock);
	cache_evict_kick(s);
}

/* Persist the bits of units whose data is written: data first, then their
 * CRCs, then the bits. */
int cache_blob_flush(struct cache_blob *b)
{
	uint64_t lo, hi, u0, nu;
	uint32_t *crcs = NULL;
	uint8_t *snap;
	int err = 0;

	pthread_mutex_lock(&b->flush);
	pthread_mutex_lock(&b->lock);
	lo = b->dirty_lo;
	hi = b->dirty_hi;
	b->dirty_lo = UINT64_MAX;
	b->dirty_hi = 0;
	__atomic_store_n(&b->pending, 0, __ATOMIC_RELAXED);
	b->pending_since = 0;
	pthread_mutex_unlock(&b->lock);
	if (lo >= hi) {
		pthread_mutex_unlock(&b->flush);
		return 0;
	}
	u0 = lo * 8;
	nu = (hi * 8 < b->nunits ? hi * 8 : b->nunits) - u0;
	snap = malloc(hi - lo);
	crcs = malloc(nu * sizeof(*crcs));
	if (!snap || !crcs) {
		err = -ENOMEM;
		goto undo;
	}
	if (fdatasync(b->fd)) {
		err = -errno;
		goto undo;
	}
	pthread_mutex_lock(&b->lock);
	/* Only bits still present: eviction may have cleared some meanwhile
	 * (it writes its own cleared bits durably before punching). */
	for (uint64_t i = lo; i < hi; i++)
		b->dmap[i] = b->map[i];
	memcpy(snap, b->dmap + lo, hi - lo);
	memcpy(crcs, b->crc + u0, nu * sizeof(*crcs));
	pthread_mutex_unlock(&b->lock);
	/* No sync between the two: a bit that outlives its CRC (power loss)
	 * fails the check and the unit is fetched again. */
	if (pwrite(b->map_fd, crcs, nu * sizeof(*crcs),
		   cache_map_crc_off(b->nunits) + u0 * sizeof(*crcs)) !=
		    (ssize_t)(nu * sizeof(*crcs)) ||
	    pwrite(b->map_fd, snap, hi - lo, CACHE_MAP_HDR + lo) != (ssize_t)(hi - lo)) {
		err = errno ? -errno : -EIO;
		goto undo;
	}
	free(crcs);
	free(snap);
	pthread_mutex_unlock(&b->flush);
	return 0;
undo:
	free(crcs);
	free(snap);
	pthread_mutex_lock(&b->lock);
	if (lo < b->dirty_lo)
		b->dirty_lo = lo;
	if (hi > b->dirty_hi)
		b->dirty_hi = hi;
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&b->flush);
	return err;
}

/* Eviction of an open blob: caller holds b->evict for writing. */
int cache_blob_punch(struct cache_blob *b)
{
	uint64_t mlen = (b->nunits + 7) / 8;
	int err = 0;

	pthread_mutex_lock(&b->flush);
	pthread_mutex_lock(&b->lock);
	memset(b->map, 0, mlen);
	memset(b->dmap, 0, mlen);
	memset(b->verified, 0, mlen);
	b->dirty_lo = UINT64_MAX;
	b->dirty_hi = 0;
	__atomic_store_n(&b->pending, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&b->lock);
	/* The cleared bits must be on disk before the data goes. */
	if (pwrite(b->map_fd, b->dmap, mlen, CACHE_MAP_HDR) != (ssize_t)mlen || fdatasync(b->map_fd))
		err = errno ? -errno : -EIO;
	else if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, b->size))
		err = -errno;
	pthread_mutex_unlock(&b->flush);
	return err;
}

static int load_map(struct cache_blob *b, const char *data, const char *map)
{
	struct cache_map_hdr h;
	uint64_t mlen = (b->nunits + 7) / 8, clen = b->nunits * sizeof(*b->crc);
	uint64_t crc_off = cache_map_crc_off(b->nunits);
	bool fresh = true;
	struct stat st;

	/* Never through a link planted in the cache dir (cache_store.c). */
	b->map_fd = open(map, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (b->map_fd < 0)
		return -errno;
	if (fstat(b->map_fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (pread(b->map_fd, &h, sizeof(h), 0) == sizeof(h) &&
	    !memcmp(h.magic, CACHE_MAP_MAGIC, 8) && h.unit == b->s->unit && h.size == b->size &&
	    pread(b->map_fd, b->dmap, mlen, CACHE_MAP_HDR) == (ssize_t)mlen &&
	    pread(b->map_fd, b->crc, clen, crc_off) == (ssize_t)clen)
		fresh = false;
	b->fd = open(data, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (b->fd < 0)
		return -errno;
	if (fstat(b->fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (fresh || (uint64_t)st.st_size != b->size) {
		/* Unknown state: start empty.  Drop the data before the map
		 * claims anything about it. */
		memset(b->dmap, 0, mlen);
		memset(b->crc, 0, clen);
		if (ftruncate(b->fd, 0) || ftruncate(b->fd, b->size))
			return -errno;
		memset(&h, 0, sizeof(h));
		memcpy(h.magic, CACHE_MAP_MAGIC, 8);
		h.unit = b->s->unit;
		h.size = b->size;
		/* No sync: a lost header only loses the (empty) map, and
		 * stale data never counts without its bit. */
		if (ftruncate(b->map_fd, 0) ||
		    pwrite(b->map_fd, &h, sizeof(h), 0) != sizeof(h) ||
		    ftruncate(b->map_fd, crc_off + clen))
			return errno ? -errno : -EIO;
	}
	memcpy(b->map, b->dmap, mlen);
	return 0;
}

static uint64_t count_bits(const uint8_t *m, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t i = 0; i < (n + 7) / 8; i++)
		c += __builtin_popcount(m[i]);
	return c;
}

int cache_blob_open(struct cache_store *s, const char *origin, const char *digest, uint64_t size,
		    struct cache_blob **out)
{
	char data[PATH_MAX], map[PATH_MAX], ns[CACHE_NS_LEN + 1];
	struct cache_blob *b;
	uint64_t mlen;
	int err;

	cache_ns_name(origin, ns);
	err = cache_blob_paths(s, ns, digest, data, map, sizeof(data));
	if (!err)
		err = make_ns_dir(s, ns);
	if (err)
		return err;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		for (b = s->blobs; b; b = b->next)
			if (!strcmp(b->digest, digest) && !strcmp(b->ns, ns))
				break;
		/* Two devices open one layer at once, or one opens it while
		 * another's last close tears it down: until that settles the
		 * entry has no maps or fds to share.  Wait, then look again,
		 * since a failed open or an eviction may have dropped it. */
		if (!b || !(b->opening || b->closing))
			break;
		pthread_cond_wait(&s->settled, &s->lock);
	}
	if (b && b->refs) {
		/* One blob opened twice (two devices share a layer): the
		 * second user shares the first one's state. */
		if (b->size != size) {
			pthread_mutex_unlock(&s->lock);
			return -EINVAL;
		}
		b->refs++;
		pthread_mutex_unlock(&s->lock);
		*out = b;
		return 0;
	}
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b || !(b->digest = strdup(digest))) {
			free(b);
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
		b->s = s;
		memcpy(b->ns, ns, sizeof(b->ns));
		b->next = s->blobs;
		s->blobs = b;
	}
	/* The entry is ours until refs says otherwise: eviction skips
	 * entries with refs, so take the ref before the slow part. */
	b->refs = 1;
	b->opening = true;
	b->size = size;
	b->nunits = (size + s->unit - 1) / s->unit;
	b->fd = b->map_fd = -1;
	b->atime_ms = cache_now_ms();
	s->usage -= b->bytes;
	b->bytes = 0;
	pthread_mutex_unlock(&s->lock);

	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cv, NULL);
	{
		pthread_rwlockattr_t ra;

		/* Eviction must not starve behind a stream of readers. */
		pthread_rwlockattr_init(&ra);
		pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&b->evict, &ra);
		pthread_rwlockattr_destroy(&ra);
	}
	pthread_mutex_init(&b->flush, NULL);
	b->dirty_lo = UINT64_MAX;
	b->dirty_hi = 0;
	b->pending = b->pending_since = 0;
	memset(b->seq_ends, 0, sizeof(b->seq_ends));
	b->seq_next = 0;
	b->ra_units = 0;
	b->ra_jobs = 0;
	b->bypass_until = 0;
	mlen = (b->nunits + 7) / 8;
	b->map = calloc(1, mlen + 1);
	b->dmap = calloc(1, mlen + 1);
	b->filling = calloc(1, mlen + 1);
	b->verified = calloc(1, mlen + 1);
	b->crc = calloc(b->nunits + 1, sizeof(*b->crc));
	b->bad_logged = 0;
	err = b->map && b->dmap && b->filling && b->verified && b->crc ? load_map(b, data, map)
								   : -ENOMEM;
	if (err) {
		cache_blob_close(b);
		return err;
	}
	pthread_mutex_lock(&s->lock);
	b->bytes = count_bits(b->map, b->nunits) * s->unit;
	s->usage += b->bytes;
	b->opening = false;
	pthread_cond_broadcast(&s->settled);
	pthread_mutex_unlock(&s->lock);
	*out = b;
	return 0;
}

void cache_blob_free(struct cache_blob *b)
{
	free(b->digest);
	free(b);
}

void cache_blob_close(struct cache_blob *b)
{
	struct cache_store *s = b->s;

	/* Read-ahead runs may carry this opener's fetch context. */
	cache_ra_cancel(b);
	pthread_mutex_lock(&s->lock);
	if (b->refs > 1) {
		b->refs--;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	/* Keep the ref while tearing down so eviction leaves us alone;
	 * a punch already under way finishes first. */
	b->closing = true;
	while (b->evicting)
		pthread_cond_wait(&s->evict_done, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (b->fd >= 0 && b->map_fd >= 0 && cache_blob_flush(b))
		log_warn("cache: %s: could not persist the last fills", b->digest);
	if (b->fd >= 0)
		close(b->fd);
	if (b->map_fd >= 0)
		close(b->map_fd);
	b->fd = b->map_fd = -1;
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cv);
	pthread_rwlock_destroy(&b->evict);
	pthread_mutex_destroy(&b->flush);
	free(b->map);
	free(b->dmap);
	free(b->filling);
	free(b->verified);
	free(b->crc);
	b->map = b->dmap = b->filling = b->verified = NULL;
	b->crc = NULL;
	pthread_mutex_lock(&s->lock);
	b->atime_ms = cache_now_ms();
	b->closing = false;
	b->opening = false;
	b->refs = 0;
	pthread_cond_broadcast(&s->settled);
	pthread_mutex_unlock(&s->lock);
}

void cache_blob_stats(struct cache_blob *b, uint64_t *present, uint64_t *total)
{
	pthread_mutex_lock(&b->lock);
	*present = count_bits(b->map, b->nunits);
	*total = b->nunits;
	pthread_mutex_unlock(&b->lock);
}

static int read_file(struct cache_blob *b, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(b->fd, (char *)buf + done, len - done, off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return 0;
}

static int write_file(struct cache_blob *b, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(b->fd, (const char *)buf + done, len - done, off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENOSPC;
		done += n;
	}
	return 0;
}

int cache_fill_run(struct cache_blob *b, uint64_t u, uint64_t n, cache_fetch_fn fetch, void *ctx)
{
	uint64_t unit = b->s->unit, off = u * unit, len = n * unit, lo, hi;
	uint32_t *crcs;
	char *buf;
	ssize_t got;
	int err = 0;
	bool flush = false;

	if (off + len > b->size)
		len = b->size - off;
	buf = malloc(len);
	crcs = malloc(n * sizeof(*crcs));
	if (!buf || !crcs) {
		free(buf);
		free(crcs);
		return -ENOMEM;
	}
	got = fetch(ctx, buf, len, off);
	if (got != (ssize_t)len)
		err = got < 0 ? (int)got : -EIO;
	else if ((err = write_file(b, buf, len, off)))
		warn_unwritable(b, err);
	for (uint64_t i = 0; !err && i < n; i++)
		crcs[i] = crc32c(buf + i * unit, i + 1 < n ? unit : len - i * unit);
	free(buf);
	pthread_mutex_lock(&b->lock);
	for (uint64_t i = u; i < u + n; i++) {
		bit_clear(b->filling, i);
		if (!err) {
			b->crc[i] = crcs[i - u];
			bit_set(b->map, i);
			bit_set(b->verified, i);
		}
	}
	if (!err) {
		lo = u >> 3;
		hi = ((u + n - 1) >> 3) + 1;
		if (lo < b->dirty_lo)
			b->dirty_lo = lo;
		if (hi > b->dirty_hi)
			b->dirty_hi = hi;
		if (!b->pending_since)
			b->pending_since = cache_now_ms();
		__atomic_add_fetch(&b->pending, len, __ATOMIC_RELAXED);
		flush = b->pending >= FLUSH_BYTES ||
			cache_now_ms() - b->pending_since >= FLUSH_MS;
	}
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->lock);
	free(crcs);
	if (!err) {
		struct cache_store *s = b->s;
		bool over;

		pthread_mutex_lock(&s->lock);
		b->bytes += n * unit;
		s->usage += n * unit;
		over = s->usage > s->limit;
		pthread_mutex_unlock(&s->lock);
		/* Durability is the store thread's job: a reader never waits
		 * for fdatasync. */
		if (over || flush)
			cache_evict_kick(s);
	}
	/* A write failure is not the reader's problem: it will bypass. */
	return err && got != (ssize_t)len ? err : 0;
}

/*
 * Make units [u0, u1] present.  With RA, missing units up to RA past u1
 * nobody fetches yet are claimed too: extending this reader's demand run
 * (the same request), or as whole runs queued for the read-ahead threads.
 * Returns 0 when all of [u0, u1] are present, -EAGAIN when the cache could
 * not store them, or the origin's error.
 */
static int ensure(struct cache_blob *b, uint64_t u0, uint64_t u1, uint64_t ra,
		  cache_fetch_fn fetch, void *ctx)
{
	uint64_t last = b->nunits - 1;
	uint64_t max_run = RUN_MAX / b->s->unit ? RUN_MAX / b->s->unit : 1;

	for (;;) {
		uint64_t run_u = 0, run_n = 0, end = u1 + ra < last ? u1 + ra : last;
		bool waiting = false;
		int err;

		pthread_mutex_lock(&b->lock);
		for (uint64_t i = u0; i <= end; i++) {
			if (bit_get(b->map, i))
				continue;
			if (bit_get(b->filling, i)) {
				if (i <= u1)
					waiting = true;
				if (run_n)
					break;
				continue;
			}
			/* Read-ahead starts at the first unit nobody fetches
			 * within the window, and is a whole run: never a
			 * trickle of small requests. */
			if (i > u1 && !run_n)
				end = i + max_run - 1 < last ? i + max_run - 1 : last;
			if (run_n && (i != run_u + run_n || run_n >= max_run))
				break;
			if (!run_n)
				run_u = i;
			bit_set(b->filling, i);
			run_n++;
		}
		if (!run_n) {
			if (!waiting) {
				pthread_mutex_unlock(&b->lock);
				return 0;
			}
			/* Others fetch what we need: wait for one to finish. */
			pthread_cond_wait(&b->cv, &b->lock);
			pthread_mutex_unlock(&b->lock);
			continue;
		}
		pthread_mutex_unlock(&b->lock);
		/* Pure read-ahead goes to the pool: this command does not wait
		 * for a fetch it does not need.  Then look again for what we
		 * need. */
		if (run_u > u1 && !cache_ra_queue(b, run_u, run_n, fetch, ctx)) {
			/* One run per read: a stream keeps reading, so it
			 * keeps the window full, while a reader that jumps
			 * around does not scatter small runs over the blob. */
			ra = 0;
			continue;
		}
		err = cache_fill_run(b, run_u, run_n, fetch, ctx);
		if (err) {
			/* Read-ahead failing is not this read's failure. */
			if (run_u > u1)
				return 0;
			return err;
		}
		if (__atomic_load_n(&b->bypass_until, __ATOMIC_RELAXED) > cache_now_ms())
			return -EAGAIN;
	}
}

/* Mismatches logged per blob and open: a wholly damaged file is one story. */
#define BAD_LOG_MAX 8u

/* Unit I failed its CRC: forget it, in memory now and on disk with the
 * next flush, so the next ensure() fetches it again.  b->lock held. */
static void drop_bad_unit(struct cache_blob *b, uint64_t i)
{
	bit_clear(b->map, i);
	if ((i >> 3) < b->dirty_lo)
		b->dirty_lo = i >> 3;
	if ((i >> 3) + 1 > b->dirty_hi)
		b->dirty_hi = (i >> 3) + 1;
	if (!b->pending_since)
		b->pending_since = cache_now_ms();
	__atomic_add_fetch(&b->pending, 1, __ATOMIC_RELAXED);
}

/*
 * Check the units of [u0, u1] that are present but not yet checked since
 * the open against their CRCs.  0 when all match; 1 when some did not
 * (dropped, to be fetched again); -errno when the cache file cannot be
 * read.  Each unit is read whole once per open, then trusted.
 */
static int verify(struct cache_blob *b, uint64_t u0, uint64_t u1)
{
	struct cache_store *s = b->s;
	uint64_t unit = s->unit;
	char *buf = NULL;
	int bad = 0;

	for (uint64_t i = u0; i <= u1; i++) {
		uint64_t off = i * unit, len = off + unit > b->size ? b->size - off : unit;
		bool check, dropped;
		unsigned logged = 0;
		uint32_t sum;
		int err;

		pthread_mutex_lock(&b->lock);
		check = bit_get(b->map, i) && !bit_get(b->verified, i);
		pthread_mutex_unlock(&b->lock);
		if (!check)
			continue;
		if (!buf && !(buf = malloc(unit)))
			return -ENOMEM;
		err = read_file(b, buf, len, off);
		if (err) {
			free(buf);
			return err;
		}
		sum = crc32c(buf, len);
		dropped = false;
		pthread_mutex_lock(&b->lock);
		/* A fill or another reader's check since our read settled it:
		 * what we read may predate a refetch. */
		if (bit_get(b->map, i) && !bit_get(b->verified, i)) {
			if (sum == b->crc[i]) {
				bit_set(b->verified, i);
			} else {
				drop_bad_unit(b, i);
				dropped = true;
				logged = b->bad_logged++;
			}
		}
		pthread_mutex_unlock(&b->lock);
		if (!dropped)
			continue;
		bad = 1;
		pthread_mutex_lock(&s->lock);
		b->bytes -= unit;
		s->usage -= unit;
		pthread_mutex_unlock(&s->lock);
		if (logged < BAD_LOG_MAX)
			log_warn("cache: %s: bytes %" PRIu64 "+%" PRIu64 " do not match their CRC; "
				 "fetching them again%s", b->digest, off, unit,
				 logged + 1 == BAD_LOG_MAX ? " (further mismatches not logged)" : "");
	}
	free(buf);
	if (bad)
		cache_evict_kick(s);
	return bad;
}

static bool all_present(struct cache_blob *b, uint64_t u0, uint64_t u1)
{
	bool ok = true;

	pthread_mutex_lock(&b->lock);
	for (uint64_t i = u0; i <= u1 && ok; i++)
		ok = bit_get(b->map, i);
	pthread_mutex_unlock(&b->lock);
	return ok;
}

ssize_t cache_blob_read_cached(struct cache_blob *b, void *buf, size_t len, uint64_t off)
{
	uint64_t unit = b->s->unit;
	ssize_t ret = 0;

	if (off >= b->size || !len)
		return 0;
	if (len > b->size - off)
		len = b->size - off;
	if (pthread_rwlock_tryrdlock(&b->evict))
		return 0;
	if (all_present(b, off / unit, (off + len - 1) / unit) &&
	    !verify(b, off / unit, (off + len - 1) / unit) && !read_file(b, buf, len, off))
		ret = len;
	pthread_rwlock_unlock(&b->evict);
	return ret;
}

int cache_blob_prefetch(struct cache_blob *b, uint64_t off, uint64_t len, cache_fetch_fn fetch,
			void *ctx)
{
	uint64_t unit = b->s->unit;
	int err;

	if (off >= b->size || !len)
		return 0;
	if (len > b->size - off)
		len = b->size - off;
	pthread_rwlock_rdlock(&b->evict);
	err = ensure(b, off / unit, (off + len - 1) / unit, 0, fetch, ctx);
	pthread_rwlock_unlock(&b->evict);
	/* A cache that cannot store is not an origin failure: the reads
	 * that follow go to the origin themselves. */
	return err == -EAGAIN ? 0 : err;
}

ssize_t cache_blob_pread(struct cache_blob *b, void *buf, size_t len, uint64_t off,
			 cache_fetch_fn fetch, void *ctx)
{
	uint64_t unit = b->s->unit, u0, u1, ra = 0;
	int err;

	if (off >= b->size || !len)
		return 0;
	if (len > b->size - off)
		len = b->size - off;
	u0 = off / unit;
	u1 = (off + len - 1) / unit;
	__atomic_store_n(&b->atime_ms, cache_now_ms(), __ATOMIC_RELAXED);

	pthread_mutex_lock(&b->lock);
	/* Sequential if some recent read ended where this one starts: an
	 * initiator's queue reaches us reordered across worker threads, so
	 * one remembered end is not enough.  Then double the read-ahead up
	 * to RA_MAX. */
	bool exact = false, near = false;

	for (unsigned i = 0; i < CACHE_SEQ_SLOTS && off; i++) {
		uint64_t e = b->seq_ends[i];

		exact |= e == off;
		near |= e && off + RA_MAX >= e && off <= e + RA_MAX;
	}
	if (exact) {
		b->ra_units = b->ra_units ? b->ra_units * 2 : RA_MIN / unit;
		if (b->ra_units > RA_MAX / unit)
			b->ra_units = RA_MAX / unit;
	} else if (!near) {
		b->ra_units = 0; /* a jump: no stream any more */
	}
	ra = b->ra_units;
	b->seq_ends[b->seq_next++ % CACHE_SEQ_SLOTS] = off + len;
	pthread_mutex_unlock(&b->lock);

	pthread_rwlock_rdlock(&b->evict);
	if (__atomic_load_n(&b->bypass_until, __ATOMIC_RELAXED) > cache_now_ms() &&
	    !all_present(b, u0, u1)) {
		err = -EAGAIN;
	} else {
		/* A unit dropped by verify() comes back from a fill, which
		 * marks it checked, so the next round serves it; the bound
		 * only guards against an eviction racing every refill. */
		for (int round = 0;; round++) {
			int bad;

			err = ensure(b, u0, u1, ra, fetch, ctx);
			if (err)
				break;
			bad = verify(b, u0, u1);
			if (!bad && (err = read_file(b, buf, len, off)))
				bad = err;
			if (bad < 0) {
				warn_unwritable(b, bad);
				err = -EAGAIN;
				break;
			}
			if (!bad)
				break;
			if (round == 2) {
				err = -EIO;
				break;
			}
		}
	}
	pthread_rwlock_unlock(&b->evict);
	/* The cache failed us (full, unwritable): the origin may not. */
	if (err == -EAGAIN)
		return fetch(ctx, buf, len, off);
	return err ? err : (ssize_t)len;
}
