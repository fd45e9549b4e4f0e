/*
 * Internal declarations shared by the cache/ files.
 */
#ifndef OBD_CACHE_INT_H
#define OBD_CACHE_INT_H

#include "cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * <digest>.map: a 64-byte header, one bit per fill unit, then (from
 * cache_map_crc_off) one CRC-32C per unit of the unit's bytes, in host
 * order.  A bit is set only once the unit's data in <digest> is durable
 * (fdatasync before the bit is written), and the unit's CRC is written
 * before its bit.  The CRC catches what the bit cannot: data damaged
 * after it was written (media, another program).  A unit is checked on
 * its first read after each open; a mismatch drops the unit, which is
 * then fetched again.  The header pins unit and size: a mismatch, or a
 * map of another version (OBDCMAP1 had no CRCs), discards the blob.
 */
#define CACHE_MAP_MAGIC "OBDCMAP2"
#define CACHE_MAP_HDR 64u
#define CACHE_SEQ_SLOTS 8u
/* Read-ahead threads (cache_ra.c).  Two runs in flight keep a stream
 * ahead of a reader: one fetching while the other is written out. */
#define CACHE_RA_THREADS 2

struct cache_map_hdr {
	char magic[8];
	uint32_t unit;
	uint32_t reserved;
	uint64_t size;
};

static inline uint64_t cache_map_crc_off(uint64_t nunits)
{
	return CACHE_MAP_HDR + (((nunits + 7) / 8 + 7) & ~(uint64_t)7);
}

/* An origin's subdirectory: this many hex digits of its sha256. */
#define CACHE_NS_LEN 32u

/* One cached blob, open or not: the store keeps every one for LRU. */
struct cache_blob {
	struct cache_store *s;
	struct cache_blob *next;
	char ns[CACHE_NS_LEN + 1]; /* origin subdirectory */
	char *digest;
	uint64_t size;
	uint64_t nunits;
	uint64_t atime_ms;      /* last use, for LRU (CLOCK_MONOTONIC) */
	uint64_t bytes;         /* cached bytes counted against the limit */
	int refs;               /* opens; under the store lock */
	bool opening;           /* first open setting up; under the store lock */
	bool closing;           /* last close tearing down; under the store lock */
	bool evicting;          /* eviction or a flush holds it; under the store lock */
	bool flush_seen;        /* flush_open visited it this round; store lock */

	/* Valid while refs > 0. */
	int fd, map_fd;
	pthread_mutex_t lock;   /* map, filling, verified, crc, dmap, dirty range */
	pthread_cond_t cv;      /* a fill finished */
	pthread_rwlock_t evict; /* readers share; eviction punches exclusively */
	pthread_mutex_t flush;  /* one durability flush at a time */
	uint8_t *map;           /* units present (in memory: written, maybe not durable) */
	uint8_t *dmap;          /* units whose bit is on disk */
	uint8_t *filling;       /* units being fetched by some reader */
	uint8_t *verified;      /* units whose bytes matched their CRC since open */
	uint32_t *crc;          /* per unit; on disk up to the dmap bits */
	unsigned bad_logged;    /* CRC mismatches logged since open */
	uint64_t dirty_lo, dirty_hi; /* map bytes differing from dmap */
	uint64_t pending;       /* bytes written since the last flush; b->lock,
				 * atomic for flush_open()'s unlocked peek */
	uint64_t pending_since;
	uint64_t seq_ends[CACHE_SEQ_SLOTS]; /* where recent reads ended */
	unsigned seq_next;
	unsigned ra_units;
	unsigned ra_jobs;       /* read-ahead runs queued or running; b->lock */
	uint64_t bypass_until;  /* cache unwritable: straight to the origin */
};

struct cache_store {
	char *dir;
	uint64_t limit, free_floor;
	uint32_t unit;
	unsigned scan_ms;
	pthread_mutex_t lock;   /* blobs list, usage, refs */
	pthread_cond_t cv;      /* wakes the eviction thread */
	pthread_cond_t evict_done; /* an open blob's punch finished */
	pthread_cond_t settled; /* a blob's first open or last close finished */
	pthread_t thread;
	bool thread_started;
	bool stop;
	bool kick;
	struct cache_blob *blobs;
	uint64_t usage;
	uint64_t warned_ms;

	pthread_mutex_t ra_lock; /* the read-ahead queue */
	pthread_cond_t ra_cv;
	struct cache_ra_job *ra_head, *ra_tail;
	pthread_t ra_threads[CACHE_RA_THREADS];
	unsigned ra_nthreads;
	bool ra_stop;
};

static inline bool bit_get(const uint8_t *m, uint64_t i)
{
	return m[i >> 3] & (1u << (i & 7));
}

static inline void bit_set(uint8_t *m, uint64_t i)
{
	m[i >> 3] |= 1u << (i & 7);
}

static inline void bit_clear(uint8_t *m, uint64_t i)
{
	m[i >> 3] &= ~(1u << (i & 7));
}

uint64_t cache_now_ms(void);
/* cache_file.c */
/* "algo:hex" in the characters a digest may hold: the only names the
 * cache gives its files (plus ".map"), so the only ones it removes. */
bool cache_digest_ok(const char *d);
void cache_blob_free(struct cache_blob *b);
int cache_blob_flush(struct cache_blob *b);
/* The subdirectory name of ORIGIN's entries (CACHE_NS_LEN hex digits). */
void cache_ns_name(const char *origin, char ns[CACHE_NS_LEN + 1]);
bool cache_ns_ok(const char *name);
int cache_blob_paths(struct cache_store *s, const char *ns, const char *digest, char *data,
		     char *map, size_t len);
/* Drop an open blob's cached data: bits cleared durably, then holes. */
int cache_blob_punch(struct cache_blob *b);
/* Fetch units [U, U+N), claimed (filling) by the caller, into the cache
 * file; the caller holds b->evict for reading.  0, or the origin's error. */
int cache_fill_run(struct cache_blob *b, uint64_t u, uint64_t n, cache_fetch_fn fetch, void *ctx);
/* cache_ra.c */
int cache_ra_start(struct cache_store *s);
void cache_ra_stop(struct cache_store *s);
/* Fill a claimed run in the background: 0, or -errno (the caller fills it). */
int cache_ra_queue(struct cache_blob *b, uint64_t u, uint64_t n, cache_fetch_fn fetch, void *ctx);
/* Drop B's queued runs and wait for its running ones. */
void cache_ra_cancel(struct cache_blob *b);
/* cache_evict.c */
int cache_evict_start(struct cache_store *s);
void cache_evict_stop(struct cache_store *s);
void cache_evict_kick(struct cache_store *s);

#endif
