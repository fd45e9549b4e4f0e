/*
 * file: local files as struct bdev_file, one per config ioEngine, and the
 * generic helpers every bdev_file shares.
 *
 * Every engine is synchronous from its caller's point of view: the
 * callers are pool worker threads (blockdev/pool.c) and tools, never the
 * event loop, so an engine may wait for its own I/O.  What differs is how
 * the bytes move:
 *   psync      pread/pwrite from the calling thread through the page cache;
 *   libaio     io_submit on an O_DIRECT descriptor and a wait for that one
 *              completion.  Requests whose buffer, offset and length are
 *              4 KiB aligned go straight to the caller's buffer; other
 *              reads go through an aligned bounce buffer covering the
 *              enclosing 4 KiB blocks.  Unaligned writes use a second,
 *              buffered descriptor (the kernel keeps direct and buffered
 *              I/O coherent), so no read-modify-write races and no write
 *              ever rounds the file size up.  Where O_DIRECT is refused
 *              (tmpfs), both use the buffered descriptor;
 *   posix aio  aio_read/aio_write with aio_suspend (glibc's own threads).
 */
#include "bdev_int.h"
#include "common/common.h"

#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIO_ALIGN 4096u
#define DIO_BOUNCE (1u << 20) /* largest bounce buffer per request */
#define AIO_DEPTH 4           /* events per io_context: one request at a time */

/* One caller's libaio context and bounce buffer, kept for the next call. */
struct aio_ctx {
	io_context_t ctx;
	uint8_t *bounce; /* DIO_BOUNCE bytes, 4 KiB aligned; allocated on first use */
	struct aio_ctx *next;
};

struct local_file {
	struct bdev_file f;
	int fd;      /* buffered */
	int dfd;     /* O_DIRECT (libaio), or -1 */
	enum bdev_io_engine engine;
	char *path;
	pthread_mutex_t ctx_mu;
	struct aio_ctx *ctx_free; /* idle libaio contexts, one per concurrent caller */
};

/* File size only grows; writers may race. */
static void size_grow(struct bdev_file *f, uint64_t end)
{
	for (;;) {
		uint64_t cur = __atomic_load_n(&f->size, __ATOMIC_RELAXED);

		if (end <= cur ||
		    __atomic_compare_exchange_n(&f->size, &cur, end, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			break;
	}
}

static ssize_t local_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct local_file *lf = (struct local_file *)f;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(lf->fd, (char *)buf + done, len - done, off + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/* RWF_NOWAIT (preadv2(2)): served from the page cache or -EAGAIN, never a
 * wait for the disk.  A partly cached range reads short: also -EAGAIN. */
static ssize_t local_pread_nowait(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct local_file *lf = (struct local_file *)f;
	size_t done = 0;

	while (done < len) {
		struct iovec v = { (char *)buf + done, len - done };
		ssize_t n = preadv2(lf->fd, &v, 1, (off_t)(off + done), RWF_NOWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EOPNOTSUPP ? -EAGAIN : -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
		if (done < len && off + done < __atomic_load_n(&f->size, __ATOMIC_RELAXED))
			return -EAGAIN;
	}
	return (ssize_t)done;
}

static ssize_t local_pwrite(struct bdev_file *f, const void *buf, size_t len, uint64_t off)
{
	struct local_file *lf = (struct local_file *)f;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(lf->fd, (const char *)buf + done, len - done, off + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += n;
	}
	size_grow(f, off + len);
	return done;
}

static struct aio_ctx *ctx_get(struct local_file *lf)
{
	struct aio_ctx *c;
	int rc;

	pthread_mutex_lock(&lf->ctx_mu);
	c = lf->ctx_free;
	if (c)
		lf->ctx_free = c->next;
	pthread_mutex_unlock(&lf->ctx_mu);
	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	rc = io_setup(AIO_DEPTH, &c->ctx);
	if (rc < 0) {
		log_error("%s: io_setup: %s", lf->path, strerror(-rc));
		free(c);
		return NULL;
	}
	return c;
}

static void ctx_put(struct local_file *lf, struct aio_ctx *c)
{
	pthread_mutex_lock(&lf->ctx_mu);
	c->next = lf->ctx_free;
	lf->ctx_free = c;
	pthread_mutex_unlock(&lf->ctx_mu);
}

/* One libaio request on FD, waited for.  Bytes moved or -errno. */
static ssize_t laio_once(struct aio_ctx *c, int fd, bool write, void *buf, size_t len,
			 uint64_t off)
{
	struct iocb cb, *cbs[1] = { &cb };
	struct io_event ev;
	long rc;

	if (write)
		io_prep_pwrite(&cb, fd, buf, len, off);
	else
		io_prep_pread(&cb, fd, buf, len, off);
	do
		rc = io_submit(c->ctx, 1, cbs);
	while (rc == -EINTR || rc == -EAGAIN);
	if (rc == 1) {
		do
			rc = io_getevents(c->ctx, 1, 1, &ev, NULL);
		while (rc == -EINTR);
		rc = rc == 1 ? (long)ev.res : rc < 0 ? rc : -EIO;
	} else if (rc >= 0) {
		rc = -EIO;
	}
	return rc;
}

/* Loop one engine primitive until LEN bytes moved or end of file. */
static ssize_t laio_loop(struct local_file *lf, struct aio_ctx *c, int fd, bool write,
			 char *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = laio_once(c, fd, write, buf + done, len - done, off + done);

		if (n < 0)
			return n;
		if (n == 0) {
			if (write)
				return -EIO;
			break;
		}
		done += n;
		/* O_DIRECT moves whole blocks; a partial one means end of file. */
		if (fd == lf->dfd && !write && n % DIO_ALIGN)
			break;
	}
	return done;
}

static bool dio_aligned(const void *buf, size_t len, uint64_t off)
{
	return (((uintptr_t)buf | len | off) & (DIO_ALIGN - 1)) == 0;
}

/* An unaligned read through C's bounce buffer, whole enclosing 4 KiB blocks at a time. */
static ssize_t laio_bounce_read(struct local_file *lf, struct aio_ctx *c, uint8_t *buf,
				size_t len, uint64_t off)
{
	size_t done = 0;

	if (!c->bounce && posix_memalign((void **)&c->bounce, DIO_ALIGN, DIO_BOUNCE))
		return -ENOMEM;
	while (done < len) {
		uint64_t pos = off + done, a0 = pos & ~(uint64_t)(DIO_ALIGN - 1);
		size_t want = len - done, lead = pos - a0, got, span;
		ssize_t n;

		if (want > DIO_BOUNCE - DIO_ALIGN - lead)
			want = DIO_BOUNCE - DIO_ALIGN - lead;
		span = (lead + want + DIO_ALIGN - 1) & ~(size_t)(DIO_ALIGN - 1);
		n = laio_loop(lf, c, lf->dfd, false, (char *)c->bounce, span, a0);
		if (n < 0)
			return n;
		if ((size_t)n <= lead)
			break;
		got = (size_t)n - lead < want ? (size_t)n - lead : want;
		memcpy(buf + done, c->bounce + lead, got);
		done += got;
		if (got < want)
			break;
	}
	return done;
}

static ssize_t laio_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct local_file *lf = (struct local_file *)f;
	struct aio_ctx *c = ctx_get(lf);
	ssize_t n;

	if (!c)
		return -ENOMEM;
	if (lf->dfd < 0)
		n = laio_loop(lf, c, lf->fd, false, buf, len, off);
	else if (dio_aligned(buf, len, off))
		n = laio_loop(lf, c, lf->dfd, false, buf, len, off);
	else
		n = laio_bounce_read(lf, c, buf, len, off);
	ctx_put(lf, c);
	return n;
}

static ssize_t laio_pwrite(struct bdev_file *f, const void *buf, size_t len, uint64_t off)
{
	struct local_file *lf = (struct local_file *)f;
	int fd = lf->dfd >= 0 && dio_aligned(buf, len, off) ? lf->dfd : lf->fd;
	struct aio_ctx *c = ctx_get(lf);
	ssize_t n;

	if (!c)
		return -ENOMEM;
	n = laio_loop(lf, c, fd, true, (char *)buf, len, off);
	ctx_put(lf, c);
	if (n >= 0)
		size_grow(f, off + len);
	return n;
}

/* One POSIX aio request, waited for. */
static ssize_t paio_once(int fd, bool write, void *buf, size_t len, uint64_t off)
{
	struct aiocb cb = {
		.aio_fildes = fd,
		.aio_buf = buf,
		.aio_nbytes = len,
		.aio_offset = off,
	};
	const struct aiocb *list[1] = { &cb };
	int err;

	if ((write ? aio_write(&cb) : aio_read(&cb)) < 0)
		return -errno;
	while ((err = aio_error(&cb)) == EINPROGRESS)
		aio_suspend(list, 1, NULL);
	if (err)
		return -err;
	return aio_return(&cb);
}

static ssize_t paio_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct local_file *lf = (struct local_file *)f;
	size_t done = 0;

	while (done < len) {
		ssize_t n = paio_once(lf->fd, false, (char *)buf + done, len - done, off + done);

		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

static ssize_t paio_pwrite(struct bdev_file *f, const void *buf, size_t len, uint64_t off)
{
	struct local_file *lf = (struct local_file *)f;
	size_t done = 0;

	while (done < len) {
		ssize_t n = paio_once(lf->fd, true, (char *)buf + done, len - done, off + done);

		if (n < 0)
			return n;
		if (n == 0)
			return -EIO;
		done += n;
	}
	size_grow(f, off + len);
	return done;
}

static int local_sync(struct bdev_file *f)
{
	struct local_file *lf = (struct local_file *)f;

	return fdatasync(lf->fd) < 0 ? -errno : 0;
}

static const char *local_name(struct bdev_file *f)
{
	return ((struct local_file *)f)->path;
}

static void local_close(struct bdev_file *f)
{
	struct local_file *lf = (struct local_file *)f;

	while (lf->ctx_free) {
		struct aio_ctx *c = lf->ctx_free;

		lf->ctx_free = c->next;
		io_destroy(c->ctx);
		free(c->bounce);
		free(c);
	}
	pthread_mutex_destroy(&lf->ctx_mu);
	if (lf->dfd >= 0)
		close(lf->dfd);
	close(lf->fd);
	free(lf->path);
	free(lf);
}

/* [engine][writable] */
static const struct bdev_file_ops local_ops[3][2] = {
	[BDEV_IO_PSYNC] = {
		{ .pread = local_pread, .pread_nowait = local_pread_nowait, .name = local_name,
		  .close = local_close },
		{ .pread = local_pread, .pread_nowait = local_pread_nowait, .pwrite = local_pwrite,
		  .sync = local_sync, .name = local_name, .close = local_close },
	},
	[BDEV_IO_LIBAIO] = {
		{ .pread = laio_pread, .name = local_name, .close = local_close },
		{ .pread = laio_pread, .pwrite = laio_pwrite, .sync = local_sync,
		  .name = local_name, .close = local_close },
	},
	[BDEV_IO_POSIX_AIO] = {
		{ .pread = paio_pread, .name = local_name, .close = local_close },
		{ .pread = paio_pread, .pwrite = paio_pwrite, .sync = local_sync,
		  .name = local_name, .close = local_close },
	},
};

int bdev_file_open_local(const char *path, int flags, enum bdev_io_engine engine,
			 struct bdev_file **out)
{
	struct local_file *lf;
	struct stat st;
	int fd, dfd = -1;
	bool writable = (flags & O_ACCMODE) != O_RDONLY;

	if ((unsigned)engine > BDEV_IO_POSIX_AIO)
		return -EINVAL;
	fd = open(path, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int err = S_ISREG(st.st_mode) ? -errno : -EINVAL;

		close(fd);
		return err;
	}
	if (engine == BDEV_IO_LIBAIO) {
		dfd = open(path, (flags & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_DIRECT | O_CLOEXEC);
		if (dfd < 0)
			log_debug("%s: no O_DIRECT (%s); libaio uses the page cache", path,
				  strerror(errno));
	}
	lf = calloc(1, sizeof(*lf));
	if (!lf || !(lf->path = strdup(path))) {
		free(lf);
		if (dfd >= 0)
			close(dfd);
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&lf->ctx_mu, NULL);
	lf->fd = fd;
	lf->dfd = dfd;
	lf->engine = engine;
	lf->f.size = st.st_size;
	lf->f.ops = &local_ops[engine][writable];
	*out = &lf->f;
	return 0;
}

int bdev_file_reserve(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

int bdev_file_local_fd(struct bdev_file *f)
{
	const struct bdev_file_ops *o = f->ops;

	if (o < &local_ops[0][0] || o > &local_ops[BDEV_IO_POSIX_AIO][1])
		return -EINVAL;
	return ((struct local_file *)f)->fd;
}

int bdev_file_pread_full(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	ssize_t n = f->ops->pread(f, buf, len, off);

	if (n < 0)
		return n;
	return (size_t)n == len ? 0 : -EIO;
}

void bdev_file_close(struct bdev_file *f)
{
	if (f)
		f->ops->close(f);
}

const char *bdev_file_name(struct bdev_file *f)
{
	const char *n = f->ops->name ? f->ops->name(f) : NULL;

	return n ? n : "(anonymous)";
}
