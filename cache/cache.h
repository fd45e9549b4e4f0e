/*
 * cache: the registry's local storage (config.md 5 and 6, issue 4).
 *
 * Owns the disk cache of remote blobs (one sparse file per blob and
 * origin, named by digest, plus a persistent bitmap of fill units that
 * hold verified, durable data; docs/cache.md), its eviction, and the
 * background download of whole blobs to a layer's dir.  It knows nothing
 * of HTTP: bytes it lacks come from a fetch callback.  A unit never counts
 * as present before its data is on disk, so a crash can lose cached data
 * but never serve wrong bytes; and a cache that cannot be written never
 * fails a read.
 */
#ifndef OBD_CACHE_H
#define OBD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cache_store;
struct cache_blob;

/* Read LEN bytes at OFF from the origin: LEN or -errno. */
typedef ssize_t (*cache_fetch_fn)(void *ctx, void *buf, size_t len, uint64_t off);

struct cache_store_opts {
	const char *dir;
	uint64_t limit;      /* bytes of cached data to keep */
	uint64_t free_floor; /* evict while the disk has less free space */
	uint32_t unit;       /* fill unit, power of two, >= 4096 */
	unsigned scan_ms;    /* eviction check period; 0 = 10 s (config.md 5) */
};

/* Creates DIR if missing, rescans the blobs already there. */
int cache_store_open(const struct cache_store_opts *o, struct cache_store **out);
/* All blobs must be closed. */
void cache_store_close(struct cache_store *s);
/* Run one eviction pass now (also done periodically). */
void cache_store_evict(struct cache_store *s);
/* Bytes of cached data (units present) across every blob. */
uint64_t cache_store_usage(struct cache_store *s);

/*
 * Entries are per ORIGIN (docs/cache.md): an opaque string naming where
 * the bytes come from (the registry gives scheme://host:port/repo-path).
 * An origin is trusted to serve the right bytes for a digest only for its
 * own entries: the same digest from two origins is two entries.
 */
/* Size recorded for DIGEST by an earlier open (its map header): 0 or
 * -ENOENT.  Lets a restart open cached blobs while the origin is away. */
int cache_known_size(struct cache_store *s, const char *origin, const char *digest,
		     uint64_t *size);

/* DIGEST is "algo:hex"; SIZE the blob's exact size. */
int cache_blob_open(struct cache_store *s, const char *origin, const char *digest, uint64_t size,
		    struct cache_blob **out);
void cache_blob_close(struct cache_blob *b);
/* Thread-safe, blocking.  Serves from disk, fills missing units through
 * FETCH(CTX, ...) (one fetch per unit however many readers miss it; each
 * opener passes its own origin, as two specs may share a blob).  Returns
 * bytes read (short only at the end of the blob) or -errno from the origin. */
ssize_t cache_blob_pread(struct cache_blob *b, void *buf, size_t len, uint64_t off,
			 cache_fetch_fn fetch, void *ctx);
/* Make [OFF, OFF+LEN) present without copying it anywhere: whole runs of
 * missing units, each one request to FETCH.  0 or -errno from the origin. */
int cache_blob_prefetch(struct cache_blob *b, uint64_t off, uint64_t len, cache_fetch_fn fetch,
			void *ctx);
/* Copy [OFF, OFF+LEN) only if every byte is cached: LEN, or 0 when some
 * unit is missing (nothing fetched). */
ssize_t cache_blob_read_cached(struct cache_blob *b, void *buf, size_t len, uint64_t off);
/* Units present / total, for status. */
void cache_blob_stats(struct cache_blob *b, uint64_t *present, uint64_t *total);

/*
 * Background download (config.md 6): one thread fetches whole blobs into
 * DIR/.download, checks their sha256, renames them to DIR/overlaybd.commit
 * and reports the path so reads can switch to it.
 */
struct cache_dl;
struct cache_dl_job;

struct cache_dl_src {
	const char *digest; /* "sha256:<hex>" */
	uint64_t size;
	/* Bytes for the download: LEN or -errno. */
	ssize_t (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	/* Optional: LEN when the bytes are at hand locally (cache), else 0. */
	ssize_t (*read_cached)(void *ctx, void *buf, size_t len, uint64_t off);
	/* The verified copy is at PATH: switch to it; 0 or -errno. */
	int (*done)(void *ctx, const char *path);
	/* Optional: the job is gone and will not touch CTX again; called
	 * on the download thread (or by cache_dl_destroy). */
	void (*release)(void *ctx);
	void *ctx;
};

struct cache_dl_opts {
	unsigned delay_sec, delay_extra_sec; /* start after delay + rand() % extra */
	unsigned max_mbps;                   /* MiB/s, 0 = unthrottled */
	unsigned try_cnt;                    /* 0 = 5 */
	uint32_t block_size;                 /* 0 = 256 KiB */
};

int cache_dl_create(struct cache_dl **out);
/* Stops the thread (waiting for the read under way) and releases every job. */
void cache_dl_destroy(struct cache_dl *d);
int cache_dl_add(struct cache_dl *d, const struct cache_dl_src *src, const char *dir,
		 const struct cache_dl_opts *o, struct cache_dl_job **out);
/* Cancel the job without waiting: the download thread releases it once
 * its current read returns.  J must not be used afterwards. */
void cache_dl_remove(struct cache_dl_job *j);
/* Wait for the job to finish: 0 switched, -errno gave up, -ETIMEDOUT. */
int cache_dl_wait(struct cache_dl_job *j, unsigned timeout_ms);
/* "download waiting|running 45%|done|failed (...)" */
void cache_dl_describe(struct cache_dl_job *j, char *buf, size_t len);

/* Exposed for tests: sha256 of FD's first SIZE bytes as "sha256:<hex>". */
int cache_sha256_fd(int fd, uint64_t size, char *out, size_t len);

#endif
