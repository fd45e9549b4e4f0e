/*
 * blockdev: the overlay block engine.
 *
 * Owns the overlaybd on-disk formats (LSMT layers, ZFile compression, tar
 * wrapping; see spec/lsmt.md and spec/zfile.md), the merged view of a stack
 * of layers, the writable upper layer, and the worker pool that runs all of
 * this off the event loop.  It knows nothing of SCSI or iSCSI, and it never
 * blocks the caller's event loop: every call below that touches a file is
 * either synchronous (for tools and worker threads) or goes through
 * bdev_submit(), which runs it on a pool thread and hands the completion
 * back through an eventfd.
 *
 * All offsets and lengths are bytes.  Device I/O must be 512-byte aligned
 * (lsmt.md section 1); anything else is -EINVAL.
 */
#ifndef OBD_BDEV_H
#define OBD_BDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define BDEV_SECTOR 512u
#define BDEV_MAX_LAYERS 255

/*
 * A byte source: a local file, a tar member, a ZFile's decompressed view,
 * or (from registry/ and cache/) a remote blob.  Every method may block and
 * must be safe to call from several threads at once.
 */
struct bdev_file;

struct bdev_file_ops {
	/* Read up to LEN bytes at OFF.  Returns bytes read (short only at end
	 * of file) or -errno. */
	ssize_t (*pread)(struct bdev_file *f, void *buf, size_t len, uint64_t off);
	/* NULL for read-only sources.  Returns LEN or -errno. */
	ssize_t (*pwrite)(struct bdev_file *f, const void *buf, size_t len, uint64_t off);
	/* Make completed writes durable (fdatasync).  NULL = nothing to do. */
	int (*sync)(struct bdev_file *f);
	/* Optional: like pread, but only from memory (the page cache): -EAGAIN
	 * instead of waiting for a device.  For the loop thread's fast path. */
	ssize_t (*pread_nowait)(struct bdev_file *f, void *buf, size_t len, uint64_t off);
	/* Optional: short description for logs and status ("/path", "zfile(/path)"). */
	const char *(*name)(struct bdev_file *f);
	void (*close)(struct bdev_file *f);
};

struct bdev_file {
	const struct bdev_file_ops *ops;
	uint64_t size; /* bytes; kept current by writers */
};

static inline ssize_t bdev_file_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	return f->ops->pread(f, buf, len, off);
}

/* Read exactly LEN bytes or fail: -EIO on a short read. */
int bdev_file_pread_full(struct bdev_file *f, void *buf, size_t len, uint64_t off);
void bdev_file_close(struct bdev_file *f);
const char *bdev_file_name(struct bdev_file *f);

/* Config ioEngine values (config.md section 2). */
enum bdev_io_engine {
	BDEV_IO_PSYNC = 0,
	BDEV_IO_LIBAIO = 1, /* O_DIRECT with 4 KiB-aligned bounce buffers */
	BDEV_IO_POSIX_AIO = 2,
};

/*
 * A tool's temporary output: create PATH as a new empty file, mode 0644,
 * never over an existing file nor through a symlink (-EEXIST), so a name
 * planted in the output's directory is refused instead of written through.
 */
int bdev_file_reserve(const char *path);
/* Open a local file with the given engine.  FLAGS is O_RDONLY or O_RDWR
 * (O_CREAT allowed, mode 0644). */
int bdev_file_open_local(const char *path, int flags, enum bdev_io_engine engine,
			 struct bdev_file **out);

/* A growable in-memory file holding a copy of DATA (LEN bytes; may be 0). */
int bdev_file_open_mem(const void *data, size_t len, struct bdev_file **out);
/* The buffer of a memory file (valid until the next write), else NULL. */
const void *bdev_file_mem_data(struct bdev_file *f);

/*
 * Unwrap a read-only layer blob: tar (lsmt.md section 8) then ZFile
 * (zfile.md), in that order.  Takes ownership of RAW in all cases.  *OUT is
 * the view whose bytes are the plain LSMT blob.
 */
int bdev_file_unwrap(struct bdev_file *raw, struct bdev_file **out);

/* tar: view of the first member of a ustar archive; -EINVAL if not tar.
 * tar_open and zfile_open take ownership of RAW, also on failure. */
bool tar_is_tar(const void *first512);
int tar_open(struct bdev_file *raw, struct bdev_file **out);
/* Write LEN bytes of SRC into the empty DST as the one member of a tar
 * archive, the form `overlaybd-commit -t` pushes (lsmt.md 8). */
int tar_wrap(struct bdev_file *src, uint64_t len, struct bdev_file *dst);

/* ZFile (zfile.md). */
bool zfile_is_zfile(const void *first512);
int zfile_open(struct bdev_file *raw, struct bdev_file **out);

enum zfile_algo { ZFILE_LZ4 = 1, ZFILE_ZSTD = 2 };

struct zfile_opts {
	enum zfile_algo algo;   /* default lz4 */
	uint32_t block_size;    /* 4096..65536, power of two; default 4096 */
	bool verify;            /* per-block CRC; the tools always set it */
	bool overwrite_header;  /* zfile.md 7.5, as overlaybd-commit -z does */
};

/* Compress SRC (LEN bytes from offset 0) into DST, which must be empty. */
int zfile_compress(struct bdev_file *src, uint64_t len, struct bdev_file *dst,
		   const struct zfile_opts *opts);
/* The options a ZFile was written with and its uncompressed size;
 * overwrite_header reports an authoritative header.  -EINVAL if RAW is
 * not a valid ZFile.  RAW stays the caller's. */
int zfile_info(struct bdev_file *raw, struct zfile_opts *opts, uint64_t *size);
/* Decompress a ZFile into DST (from offset 0), checking every block; with
 * DST NULL nothing is written (overlaybd-zfile --verify). */
int zfile_decompress(struct bdev_file *src, struct bdev_file *dst);

/*
 * LSMT layers.  A read-only layer is a sealed blob (lsmt.md 4.1, 4.3); a
 * writable layer is a data file plus an append-only index log (4.2).
 */
struct lsmt_layer;

struct lsmt_info {
	uint64_t virtual_size;
	char uuid[37];
	char parent_uuid[37];
	char user_tag[257];
	uint64_t nentries; /* real (non-padding) index entries */
};

/* Open a sealed blob from an already-unwrapped file; takes ownership of F. */
int lsmt_open_ro(struct bdev_file *f, struct lsmt_layer **out);
/*
 * Open a writable layer; replays the index log (torn tail ignored, warned).
 * When DATA or INDEX is open for writing, both are locked for this writer
 * alone: -EBUSY while another open holds them (lsmt_rw.c).
 */
int lsmt_open_rw(struct bdev_file *data, struct bdev_file *index, struct lsmt_layer **out);
/* A reader that needs a stable snapshot of writable layer L (commit, merge):
 * -EBUSY while a writer holds it, and no writer gets it until L closes. */
int lsmt_lock_snapshot(struct lsmt_layer *l);
/* overlaybd-create: new writable layer files. VSIZE in bytes. */
int lsmt_create_rw(struct bdev_file *data, struct bdev_file *index, uint64_t vsize,
		   const char *parent_uuid);
/* overlaybd-create -s: a sparse writable layer (lsmt.md 4.4); DATA must be
 * a local file, INDEX stays empty. */
int lsmt_create_sparse(struct bdev_file *data, struct bdev_file *index, uint64_t vsize,
		       const char *parent_uuid);
/* overlaybd-commit --seal (lsmt.md 4.3): append the writable layer's index
 * and a trailer to its data file, which then opens with lsmt_open_ro. */
int lsmt_seal(struct lsmt_layer *l);
void lsmt_info(const struct lsmt_layer *l, struct lsmt_info *out);
void lsmt_close(struct lsmt_layer *l);

struct lsmt_commit_opts {
	const char *uuid;        /* NULL or invalid = null uuid (lsmt.md 7.1) */
	const char *parent_uuid; /* NULL = from the source */
	const char *user_tag;    /* NULL = empty; > 256 bytes = -EINVAL */
};

/*
 * Compact a stack (bottom first; a single writable layer for
 * overlaybd-commit) into a sealed blob written to DST from offset 0
 * (lsmt.md section 7).  TAG_BY_LAYER gives overlaybd-merge's entry tags.
 */
int lsmt_commit(struct lsmt_layer **layers, int n, struct bdev_file *dst,
		const struct lsmt_commit_opts *opts, bool tag_by_layer);

/*
 * The block device: lowers[0] is the base, the writable upper (optional)
 * sits on top.  bdev_open takes ownership of every layer, also on failure.
 */
struct bdev;

int bdev_open(struct lsmt_layer **lowers, int nlowers, struct lsmt_layer *upper,
	      struct bdev **out);
void bdev_close(struct bdev *d);
uint64_t bdev_size(const struct bdev *d);
bool bdev_writable(const struct bdev *d);
int bdev_nlayers(const struct bdev *d);
/* Memory held by the merged index, for status output. */
size_t bdev_index_bytes(const struct bdev *d);

/* Synchronous I/O; safe from any thread, concurrently. 0 or -errno. */
int bdev_preadv(struct bdev *d, const struct iovec *iov, int iovcnt, uint64_t off);
int bdev_pread(struct bdev *d, void *buf, size_t len, uint64_t off);
/* The same read, done only if no byte has to wait for a device (every piece
 * in a file with pread_nowait, and in the page cache): 0, -EAGAIN (IOV then
 * holds nothing useful) or another -errno.  Cheap enough for the loop. */
int bdev_try_preadv(struct bdev *d, const struct iovec *iov, int iovcnt, uint64_t off);
int bdev_pwritev(struct bdev *d, const struct iovec *iov, int iovcnt, uint64_t off);
int bdev_pwrite(struct bdev *d, const void *buf, size_t len, uint64_t off);
int bdev_discard(struct bdev *d, uint64_t off, uint64_t len);
int bdev_flush(struct bdev *d);

/* The device as a read-only byte source (any alignment).  It borrows D,
 * which must outlive it. */
int bdev_file_of_device(struct bdev *d, struct bdev_file **out);

/*
 * Mapping status of [OFF, ...): *LEN gets the length of the run that starts
 * at OFF and has one state; *MAPPED is true where some layer holds data
 * (zeroed entries and holes are unmapped).  Used by GET LBA STATUS.
 */
int bdev_map_status(struct bdev *d, uint64_t off, uint64_t *len, bool *mapped);

/*
 * Asynchronous I/O: a pool of worker threads runs requests; completions are
 * queued and delivered by bdev_pool_service() in the thread that calls it
 * (the event loop), after bdev_pool_fd() becomes readable.  A small read
 * that bdev_try_preadv() can serve is done in bdev_submit() itself, and its
 * completion is queued the same way.
 */
struct bdev_pool;

enum bdev_op {
	BDEV_OP_READ,
	BDEV_OP_WRITE,
	BDEV_OP_DISCARD,
	BDEV_OP_FLUSH,
};

struct bdev_req {
	enum bdev_op op;
	struct bdev *dev;
	const struct iovec *iov; /* READ/WRITE */
	int iovcnt;
	uint64_t off;
	uint64_t len; /* DISCARD; READ/WRITE take it from iov */
	bool fua;     /* WRITE: durable before completion */
	int result;   /* 0 or -errno, set before done() */
	void (*done)(struct bdev_req *req);
	void *priv;
	struct bdev_req *next; /* owned by the pool while queued */
};

int bdev_pool_create(int nthreads, struct bdev_pool **out);
void bdev_pool_destroy(struct bdev_pool *p); /* waits for queued work */
int bdev_pool_fd(struct bdev_pool *p);
void bdev_pool_service(struct bdev_pool *p);
void bdev_submit(struct bdev_pool *p, struct bdev_req *req);

/*
 * Access traces (docs/trace.md), in the reference's file format: the reads
 * an image start makes, recorded per layer, and replayed when the image
 * opens again so that remote blocks are fetched before they are asked for.
 * A trace never fails a device: a bad one is logged once and not used.
 */
struct bdev_trace;

enum bdev_trace_mode {
	BDEV_TRACE_RECORD = 1,
	BDEV_TRACE_REPLAY = 2,
	BDEV_TRACE_FILELIST = 3, /* a list of paths in the image's filesystem */
};

struct bdev_trace_stats {
	enum bdev_trace_mode mode;
	const char *state; /* recording, recorded, loaded, resolving, replaying, done,
			    * stopped, ignored */
	uint64_t records_done, records_total;
	uint64_t bytes; /* read by the replay */
	unsigned errors;
};

/*
 * Open the trace file PATH (never through a symlink).  An empty file starts
 * a recording when MAY_RECORD (PATH.lock is created; removing it, or closing
 * the trace, writes the trace, then PATH.ok); a trace is loaded for replay;
 * anything else of up to 64 KiB is a file list (BDEV_TRACE_FILELIST).
 * -ENOENT without the file;
 * -EINVAL, logged, for a bad trace.
 */
int bdev_trace_open(const char *path, bool may_record, struct bdev_trace **out);
enum bdev_trace_mode bdev_trace_mode(const struct bdev_trace *t);
/*
 * Put layer LAYER's unwrapped view INNER (what lsmt_open_ro reads) behind
 * the trace.  Recording notes its full reads; replay reads through it.
 * Takes ownership of INNER, also on failure.  The trace lives until it and
 * every wrapper are closed.
 */
int bdev_trace_wrap(struct bdev_trace *t, uint32_t layer, struct bdev_file *inner,
		    struct bdev_file **out);
/*
 * Start the replay on CONCURRENCY threads of its own (at most 64), once every
 * layer is wrapped.  A trace naming a layer that is not there, or a range
 * past a layer's end, is logged and not used (-EINVAL).
 */
int bdev_trace_replay(struct bdev_trace *t, unsigned concurrency);
/*
 * A file list has no ranges until RESOLVE, run on the replay's first
 * thread before any read, turns its paths into ranges of a view (layer 0:
 * the merged device) with bdev_trace_add_range.  bdev_trace_paths lists
 * them.  A resolver that fails leaves the trace unused.
 */
void bdev_trace_set_resolver(struct bdev_trace *t,
			     int (*resolve)(struct bdev_trace *t, void *arg), void *arg);
size_t bdev_trace_npaths(const struct bdev_trace *t);
const char *bdev_trace_path(const struct bdev_trace *t, size_t i, bool *recursive);
/* Split at 1 MiB; -E2BIG past 1 Mi records, -ECANCELED once the trace stops. */
int bdev_trace_add_range(struct bdev_trace *t, uint32_t layer, uint64_t off, uint64_t len);
/* Recording: has PATH.lock gone?  Then the trace is written now.  The
 * daemon calls this every second. */
int bdev_trace_poll(struct bdev_trace *t);
void bdev_trace_stats(struct bdev_trace *t, struct bdev_trace_stats *s);
/* Stop a replay (waits for its reads) or finish a recording, and let go.
 * NULL is allowed. */
void bdev_trace_close(struct bdev_trace *t);
/* Let go without writing anything: the device never opened.  A recording's
 * lock file is removed and the trace file stays empty, for the next try. */
void bdev_trace_discard(struct bdev_trace *t);

#endif
