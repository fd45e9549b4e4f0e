/*
 * registry: on-demand reads of layer blobs from an OCI registry
 * (config.md sections 3-6, issue 4).
 *
 * Owns the HTTP client (libcurl multi driven by the caller's libev loop, so
 * one thread carries every transfer), registry authentication, redirects to
 * storage back ends, retries, and the glue to the disk cache (cache/) and
 * the background download.  Blobs are exposed as read-only struct bdev_file
 * whose pread blocks the calling worker thread while the loop does the
 * network work.  It must never block the loop thread: every blocking entry
 * point below is for worker threads (or tools) only.
 */
#ifndef OBD_REGISTRY_H
#define OBD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct bdev_file;
struct reg_ctx;

struct reg_config {
	const char *cache_dir;      /* registryCacheDir; NULL = no disk cache */
	uint64_t cache_size;        /* bytes (registryCacheSizeGB) */
	const char *cred_file;      /* credentialFilePath or NULL */
	const char *ca_file, *client_cert, *client_key; /* optional TLS */
	const char *proxy;          /* optional HTTP(S) proxy */
	unsigned timeout_sec;       /* retry deadline per read, default 30 */
	uint32_t refill_size;       /* cache fill unit, default 256 KiB */
	/* Extensions (zero = default). */
	unsigned max_host_conns;    /* connections per registry host, default 8 */
	uint64_t cache_free_floor;  /* evict when the cache disk has less free, default 1 GiB */
	const char *user_agent;     /* default "overlaybd-iscsid" */
};

/*
 * LOOP is the loop that will carry the transfers; call from its thread
 * before or while it runs.  LOOP == NULL: the context makes its own loop
 * and runs it on a private thread (tools, tests).
 */
int reg_ctx_create(struct ev_loop *loop, const struct reg_config *cfg, struct reg_ctx **out);
/* All blobs must be closed first.  Call from the loop thread (or any thread
 * when the context owns its loop). */
void reg_ctx_destroy(struct reg_ctx *c);

/*
 * Open blob DIGEST (SIZE bytes, 0 = probe) at REPO_BLOB_URL "/" DIGEST as a
 * read-only bdev_file read through the cache.  BLOCKS until the first
 * metadata is known: call it from a worker thread, never from the loop
 * thread (the transfers run on the loop).  Its pread is thread-safe and also
 * blocks (worker threads only).  On failure ERR gets the reason in the
 * reference's words (config.md 1.4), e.g. "failed to open remote file
 * /URL: Authentication failed".
 */
int reg_blob_open(struct reg_ctx *c, const char *repo_blob_url, const char *digest,
		  uint64_t size, struct bdev_file **out, char *err, size_t errlen);

struct reg_download_opts {
	bool enable;
	unsigned delay_sec, delay_extra_sec, max_mbps, try_cnt;
	uint32_t block_size;
};

/*
 * Background download of an open remote blob into DIR/.download, then
 * DIR/overlaybd.commit, switching F's reads to the local copy (config.md 6).
 * Runs on the loop + threads.  Returns 0 when queued (or nothing to do:
 * not enabled, not remote).  The job stops when F is closed.
 */
int reg_download_start(struct reg_ctx *c, struct bdev_file *f, const char *dir,
		       const struct reg_download_opts *o);

/* For `status`: one line about F (remote/cached/downloaded, bytes, progress). */
void reg_blob_describe(struct bdev_file *f, char *buf, size_t len);
/* True when F was opened by reg_blob_open (whatever it reads from now). */
bool reg_is_remote(struct bdev_file *f);

/*
 * Extensions for tools and tests.
 * reg_download_wait: block until F's download job finished (0 = the file is
 * now local, -errno = gave up).  TIMEOUT_MS 0 = forever; -ETIMEDOUT.
 */
int reg_download_wait(struct bdev_file *f, unsigned timeout_ms);

#endif
