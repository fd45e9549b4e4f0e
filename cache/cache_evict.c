/*
 * cache_evict: keep the cache under its size limit and the disk above its
 * free-space floor (config.md 5).  Least recently used whole blobs go
 * first; files nobody has open are simply unlinked.  When only open blobs
 * are left, the least recently used one loses all its cached data: its
 * bits are cleared durably before the holes are punched, and readers are
 * excluded meanwhile, so it is refetched, never read wrong.  Whole blobs
 * rather than extents: a layer is read in bursts (boot, then little), so
 * the blob is the unit of reuse, and it keeps bookkeeping per file.
 */
#include "cache_int.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* Fills become durable within this time. */
#define FLUSH_PERIOD_MS 1000u
/* Evict down to this share of the limit, so eviction runs in batches. */
#define LOW_WATER_PCT 90

static uint64_t disk_free(struct cache_store *s)
{
	struct statvfs v;

	if (statvfs(s->dir, &v))
		return UINT64_MAX;
	return (uint64_t)v.f_bavail * v.f_frsize;
}

static bool over(struct cache_store *s, uint64_t target)
{
	return s->usage > target || (s->usage && disk_free(s) < s->free_floor);
}

/* Remove the LRU closed blob; true when one went.  Store lock held. */
static bool drop_closed(struct cache_store *s)
{
	struct cache_blob **pp, **victim = NULL, *b;
	char data[PATH_MAX], map[PATH_MAX];

	for (pp = &s->blobs; *pp; pp = &(*pp)->next)
		if (!(*pp)->refs && (!victim || (*pp)->atime_ms < (*victim)->atime_ms))
			victim = pp;
	if (!victim)
		return false;
	b = *victim;
	*victim = b->next;
	s->usage -= b->bytes;
	if (!cache_blob_paths(s, b->ns, b->digest, data, map, sizeof(data))) {
		struct stat st;
		int fd;

		/* Map first: a data file without a map is never trusted.
		 * Truncate before the unlink frees the space even while
		 * someone holds the file open; never through a link. */
		unlink(map);
		fd = open(data, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0) {
			if (!fstat(fd, &st) && S_ISREG(st.st_mode) && ftruncate(fd, 0))
				log_warn("cache: cannot truncate %s: %s", data, strerror(errno));
			close(fd);
		}
		unlink(data);
	}
	log_info("cache: evicted %s (%" PRIu64 " KiB)", b->digest, b->bytes >> 10);
	cache_blob_free(b);
	return true;
}

/* Empty the LRU open blob that is not busy; true when one was. */
static bool drop_open(struct cache_store *s)
{
	struct cache_blob *b, *victim = NULL;
	struct timespec ts;
	uint64_t freed;
	int busy;

	for (b = s->blobs; b; b = b->next)
		if (b->refs && !b->opening && !b->closing && b->bytes &&
		    (!victim || b->atime_ms < victim->atime_ms))
			victim = b;
	if (!victim)
		return false;
	/* Readers in flight hold it; new ones queue behind us (writer
	 * preference), so this waits at most for the reads under way. */
	victim->evicting = true; /* holds off its last close */
	pthread_mutex_unlock(&s->lock);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	busy = pthread_rwlock_timedwrlock(&victim->evict, &ts);
	if (!busy) {
		pthread_mutex_lock(&s->lock);
		freed = victim->bytes;
		victim->bytes = 0;
		s->usage -= freed;
		pthread_mutex_unlock(&s->lock);
		if (cache_blob_punch(victim))
			log_warn("cache: could not punch %s", victim->digest);
		pthread_rwlock_unlock(&victim->evict);
		log_info("cache: dropped %" PRIu64 " KiB of open %s", freed >> 10, victim->digest);
	}
	pthread_mutex_lock(&s->lock);
	victim->evicting = false;
	pthread_cond_broadcast(&s->evict_done);
	return !busy;
}

void cache_store_evict(struct cache_store *s)
{
	uint64_t target;

	pthread_mutex_lock(&s->lock);
	if (!over(s, s->limit)) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	target = s->limit / 100 * LOW_WATER_PCT;
	while (over(s, target) && drop_closed(s))
		;
	while (over(s, target) && drop_open(s))
		;
	pthread_mutex_unlock(&s->lock);
}

/*
 * Make fills durable: fdatasync each open blob's data, then write its new
 * bits (cache_blob_flush), at most FLUSH_PERIOD_MS after the fill.  The
 * blob is held against its last close as eviction holds it.  Store lock
 * held on entry and exit.
 */
static void flush_open(struct cache_store *s)
{
	for (;;) {
		struct cache_blob *b;

		for (b = s->blobs; b; b = b->next)
			if (b->refs && !b->opening && !b->closing && !b->evicting &&
			    __atomic_load_n(&b->pending, __ATOMIC_RELAXED) && !b->flush_seen)
				break;
		if (!b)
			break;
		b->evicting = true;
		b->flush_seen = true;
		pthread_mutex_unlock(&s->lock);
		if (cache_blob_flush(b))
			log_warn("cache: %s: could not make fills durable", b->digest);
		pthread_mutex_lock(&s->lock);
		b->evicting = false;
		pthread_cond_broadcast(&s->evict_done);
	}
	for (struct cache_blob *b = s->blobs; b; b = b->next)
		b->flush_seen = false;
}

static void *evict_thread(void *arg)
{
	struct cache_store *s = arg;
	uint64_t next_scan = cache_now_ms() + s->scan_ms;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct timespec ts;
		uint64_t now = cache_now_ms();

		if (!s->kick) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)FLUSH_PERIOD_MS * 1000000;
			while (ts.tv_nsec >= 1000000000)
				ts.tv_sec++, ts.tv_nsec -= 1000000000;
			pthread_cond_timedwait(&s->cv, &s->lock, &ts);
		}
		if (s->stop)
			break;
		flush_open(s);
		now = cache_now_ms();
		if (!s->kick && now < next_scan)
			continue;
		s->kick = false;
		next_scan = now + s->scan_ms;
		pthread_mutex_unlock(&s->lock);
		cache_store_evict(s);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int cache_evict_start(struct cache_store *s)
{
	int err = pthread_create(&s->thread, NULL, evict_thread, s);

	s->thread_started = !err;
	return -err;
}

void cache_evict_stop(struct cache_store *s)
{
	if (!s->thread_started)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
}

void cache_evict_kick(struct cache_store *s)
{
	pthread_mutex_lock(&s->lock);
	s->kick = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->lock);
}
