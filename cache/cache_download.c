/*
 * cache_download: background download of whole blobs (config.md 6).  One
 * thread works through the jobs in start-time order, so downloads never
 * compete with each other, only (throttled) with foreground reads.  The
 * partial file DIR/.download survives restarts: blocks already written are
 * found with SEEK_HOLE and skipped.  Nothing is used before its sha256
 * matches the digest; a mismatch discards the file and costs one attempt.
 */
#include "cache.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libaio.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DL_DEFAULT_TRIES 5
#define DL_DEFAULT_BLOCK (256u * 1024)
#define DL_RETRY_PAUSE_MS 1000
#define GROUP_MAX (16u << 20)
/* O_DIRECT alignment of offsets, lengths and buffers (the common logical
 * block size; a device with larger blocks makes writes fall back). */
#define DIRECT_ALIGN 4096u
/* Names inside the layer's dir (config.md 6). */
#define DL_TMP_NAME ".download"
#define DL_FINAL_NAME "overlaybd.commit"

enum dl_state { DL_WAITING, DL_RUNNING, DL_DONE, DL_FAILED };

struct cache_dl_job {
	struct cache_dl *d;
	struct cache_dl_job *next;
	struct cache_dl_src src;
	char *digest, *dir;
	struct cache_dl_opts o;
	uint64_t start_ms;
	unsigned attempts;
	enum dl_state state;
	int result;
	bool cancel;
	uint64_t done_bytes;
	bool queued;
};

struct cache_dl {
	pthread_mutex_t lock;
	pthread_cond_t cv;     /* queue changed, or a job changed state */
	pthread_t thread;
	bool stop;
	struct cache_dl_job *jobs;
	struct cache_dl_job *running;
	/* For the running download's writes; made once, as io_destroy
	 * waits for an RCU grace period (tens of milliseconds). */
	io_context_t aio;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int cache_sha256_fd(int fd, uint64_t size, char *out, size_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[32];
	uint64_t off = 0;
	char *buf = malloc(1 << 20);
	int err = 0;

	if (!md || !buf || len < 72) {
		EVP_MD_CTX_free(md);
		free(buf);
		return -ENOMEM;
	}
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while (off < size) {
		size_t want = size - off < (1 << 20) ? size - off : (1 << 20);
		ssize_t n = pread(fd, buf, want, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			break;
		}
		EVP_DigestUpdate(md, buf, n);
		off += n;
	}
	EVP_DigestFinal_ex(md, h, NULL);
	EVP_MD_CTX_free(md);
	free(buf);
	if (err)
		return err;
	strcpy(out, "sha256:");
	for (int i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", h[i]);
	return 0;
}

/* SEEK_HOLE says whether [off, off+len) was written by an earlier run. */
static bool block_present(int fd, uint64_t off, uint64_t len)
{
	off_t data = lseek(fd, off, SEEK_DATA), hole;

	if (data < 0 || (uint64_t)data != off)
		return false;
	hole = lseek(fd, off, SEEK_HOLE);
	return hole >= 0 && (uint64_t)hole >= off + len;
}

/*
 * The layer's dir may be writable by others than us (root): every name in
 * it is opened relative to a descriptor of the dir itself, never
 * following a symlink, so a planted DIR/.download -> /etc/shadow (or a
 * hard link to it) cannot make us truncate and overwrite another file.
 */
static int open_layer_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0)
		log_warn("download: cannot open the layer dir %s: %s", dir, strerror(errno));
	return dfd < 0 ? -errno : dfd;
}

/* Only a regular file with one link that we own holds an earlier run's
 * bytes; anything else in its place was put there by someone else. */
static bool ours(int fd)
{
	struct stat st;

	return !fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
	       st.st_uid == geteuid();
}

/* DIR/.download for writing: the partial file of an earlier run, or a new
 * one in place of whatever else has the name.  fd or -errno. */
static int open_partial(int dfd, const char *dir)
{
	int fd = openat(dfd, DL_TMP_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd >= 0 && ours(fd))
		return fd;
	if (fd >= 0)
		close(fd);
	/* A symlink (ELOOP), a hard link, a fifo or another user's file:
	 * drop the name, not what it points to, and start afresh. */
	log_warn("download: %s/%s is not a file of ours: replacing it", dir, DL_TMP_NAME);
	if (unlinkat(dfd, DL_TMP_NAME, 0) && errno != ENOENT) {
		log_warn("download: cannot remove %s/%s: %s", dir, DL_TMP_NAME, strerror(errno));
		return -errno;
	}
	fd = openat(dfd, DL_TMP_NAME, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		log_warn("download: cannot create %s/%s: %s", dir, DL_TMP_NAME, strerror(errno));
	return fd < 0 ? -errno : fd;
}

/* A second descriptor of FD's file for O_DIRECT writes, or -1: reopened by
 * name, so it must turn out to be the same file. */
static int open_direct(int dfd, int fd)
{
	struct stat a, b;
	int dio = openat(dfd, DL_TMP_NAME, O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC);

	if (dio < 0)
		return -1;
	if (fstat(fd, &a) || fstat(dio, &b) || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		close(dio);
		return -1;
	}
	return dio;
}

static bool cancelled(struct cache_dl_job *j)
{
	bool c;

	pthread_mutex_lock(&j->d->lock);
	c = j->cancel || j->d->stop;
	pthread_mutex_unlock(&j->d->lock);
	return c;
}

/*
 * The download runs as a two-stage pipeline: this thread fetches group N+1
 * while a helper hashes and writes group N, so the sha256 costs no second
 * pass over the file and no time on top of the network.  Groups are handed
 * over in offset order through two buffers.
 */
struct dl_pipe {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	char *buf[2];
	uint64_t off[2], len[2];
	bool full[2], write[2];
	int next_fill, fd, dfd, err;
	io_context_t aio;  /* the O_DIRECT write runs while the group is hashed */
	struct iocb iocb;
	bool stop;
	EVP_MD_CTX *md;
};

/* The leading bytes of a write at OFF that O_DIRECT can take. */
static uint64_t direct_part(uint64_t len, uint64_t off)
{
	return off % DIRECT_ALIGN == 0 ? len / DIRECT_ALIGN * DIRECT_ALIGN : 0;
}

static int pwrite_all(int fd, const char *buf, uint64_t len, uint64_t off, uint64_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t n = pwrite(fd, buf + *done, len - *done, off + *done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		*done += n;
	}
	return 0;
}

/*
 * Write a group.  Through the O_DIRECT descriptor when there is one: a
 * blob is written once and read back by nobody soon, so it has no business
 * in the page cache, and on this kind of machine filling fresh page-cache
 * pages is several times slower than the disk itself.  The unaligned tail
 * of the blob, or a filesystem that refuses O_DIRECT, goes through the
 * page cache; fdatasync covers both.
 */
static int pipe_write(struct dl_pipe *p, const char *buf, uint64_t len, uint64_t off)
{
	uint64_t direct = p->dfd >= 0 ? direct_part(len, off) : 0, done = 0;
	int err = direct ? pwrite_all(p->dfd, buf, direct, off, &done) : 0;

	if (err == -EINVAL) {
		/* O_DIRECT refused after all: the page cache from here on. */
		close(p->dfd);
		p->dfd = -1;
		err = 0;
	}
	if (err)
		return err;
	return pwrite_all(p->fd, buf + done, len - done, off + done, &done);
}

/* Start the aligned part of a group's write: the bytes submitted, 0 if
 * none (pipe_write then writes it all). */
static uint64_t write_submit(struct dl_pipe *p, const char *buf, uint64_t len, uint64_t off)
{
	uint64_t direct = direct_part(len, off);
	struct iocb *cb = &p->iocb;

	if (!p->aio || p->dfd < 0 || !direct)
		return 0;
	io_prep_pwrite(cb, p->dfd, (void *)buf, direct, off);
	return io_submit(p->aio, 1, &cb) == 1 ? direct : 0;
}

/* Wait for write_submit's write: bytes written, or -errno. */
static int64_t write_reap(struct dl_pipe *p)
{
	struct io_event ev;
	int n;

	while ((n = io_getevents(p->aio, 1, 1, &ev, NULL)) == -EINTR)
		;
	if (n != 1)
		return n < 0 ? n : -EIO;
	return (int64_t)ev.res;
}

static void *pipe_thread(void *arg)
{
	struct dl_pipe *p = arg;

	for (int i = 0;; i ^= 1) {
		pthread_mutex_lock(&p->lock);
		while (!p->full[i] && !p->stop)
			pthread_cond_wait(&p->cv, &p->lock);
		if (!p->full[i]) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		pthread_mutex_unlock(&p->lock);
		bool write = p->write[i] && !p->err;
		uint64_t sub = write ? write_submit(p, p->buf[i], p->len[i], p->off[i]) : 0;
		int64_t done = 0;

		EVP_DigestUpdate(p->md, p->buf[i], p->len[i]);
		if (sub)
			done = write_reap(p);
		if (write) {
			/* The rest, a short write's remainder, or a refused one
			 * (-EINVAL makes pipe_write give up on O_DIRECT). */
			int err = done < 0 && done != -EINVAL ? (int)done : 0;

			if (done < 0)
				done = 0;
			if (!err)
				err = pipe_write(p, p->buf[i] + done, p->len[i] - done,
						 p->off[i] + done);

			if (err) {
				pthread_mutex_lock(&p->lock);
				p->err = err;
				pthread_mutex_unlock(&p->lock);
			}
		}
		pthread_mutex_lock(&p->lock);
		p->full[i] = false;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->lock);
	}
}

static int pipe_start(struct dl_pipe *p, int fd, int dio, uint64_t group, io_context_t aio)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->dfd = dio;
	p->aio = aio;
	p->md = EVP_MD_CTX_new();
	if (posix_memalign((void **)&p->buf[0], DIRECT_ALIGN, group))
		p->buf[0] = NULL;
	if (posix_memalign((void **)&p->buf[1], DIRECT_ALIGN, group))
		p->buf[1] = NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (!p->md || !p->buf[0] || !p->buf[1] || !EVP_DigestInit_ex(p->md, EVP_sha256(), NULL) ||
	    pthread_create(&p->thread, NULL, pipe_thread, p)) {
		EVP_MD_CTX_free(p->md);
		free(p->buf[0]);
		free(p->buf[1]);
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->lock);
		if (p->dfd >= 0)
			close(p->dfd);
		return -ENOMEM;
	}
	return 0;
}

/* The next buffer to fill, once the helper is done with it. */
static char *pipe_get(struct dl_pipe *p, int *err)
{
	int i = p->next_fill;

	pthread_mutex_lock(&p->lock);
	while (p->full[i])
		pthread_cond_wait(&p->cv, &p->lock);
	*err = p->err;
	pthread_mutex_unlock(&p->lock);
	return p->buf[i];
}

static void pipe_put(struct dl_pipe *p, uint64_t off, uint64_t len, bool write)
{
	int i = p->next_fill;

	pthread_mutex_lock(&p->lock);
	p->off[i] = off;
	p->len[i] = len;
	p->write[i] = write;
	p->full[i] = true;
	p->next_fill ^= 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->lock);
}

/* Drain and stop; SUM gets "sha256:<hex>" of everything put. */
static int pipe_finish(struct dl_pipe *p, char *sum)
{
	unsigned char h[32];
	int err;

	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	err = p->err;
	EVP_DigestFinal_ex(p->md, h, NULL);
	EVP_MD_CTX_free(p->md);
	free(p->buf[0]);
	free(p->buf[1]);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->lock);
	if (p->dfd >= 0)
		close(p->dfd);
	strcpy(sum, "sha256:");
	for (int i = 0; i < 32; i++)
		snprintf(sum + 7 + 2 * i, 3, "%02x", h[i]);
	return err;
}

static ssize_t read_full(int fd, char *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return done;
}

enum blk_kind { BLK_PRESENT, BLK_CACHED, BLK_FETCH };

static enum blk_kind blk_kind(struct cache_dl_job *j, int fd, char *buf, uint64_t b, uint64_t off)
{
	if (block_present(fd, off, b))
		return BLK_PRESENT;
	if (j->src.read_cached && j->src.read_cached(j->src.ctx, buf, b, off) == (ssize_t)b)
		return BLK_CACHED;
	return BLK_FETCH;
}

/* One attempt; 0 when DIR/overlaybd.commit holds the verified blob. */
static int download_once(struct cache_dl_job *j, int dirfd)
{
	uint64_t size = j->src.size, bs = j->o.block_size, rate, t0, t1, t2, off, group;
	uint64_t fetched = 0;
	char sum[80];
	struct dl_pipe p;
	struct stat st;
	int fd, err = 0, perr;

	/* A symlink or other non-file there is replaced by the rename. */
	if (!fstatat(dirfd, DL_FINAL_NAME, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode))
		return 0;
	fd = open_partial(dirfd, j->dir);
	if (fd < 0)
		return fd;
	if (ftruncate(fd, size)) {
		err = -errno;
		goto out;
	}
	/* Token bucket: bytes may run ahead of rate * elapsed by one group.
	 * Runs of blocks go in one request (per-request cost dominates
	 * below a few MiB); throttled, a group is at most 1/10 s worth so
	 * the rate holds within 10%. */
	rate = (uint64_t)j->o.max_mbps << 20;
	group = GROUP_MAX;
	if (rate && rate / 10 < group)
		group = rate / 10 > bs ? rate / 10 / bs * bs : bs;
	if (group < bs)
		group = bs;
	{
		int dio = open_direct(dirfd, fd);

		err = pipe_start(&p, fd, dio, group, j->d->aio);
		if (err)
			goto out;
	}
	t0 = now_ms();
	for (off = 0; off < size && !err;) {
		uint64_t b = size - off < bs ? size - off : bs, len;
		char *buf;
		enum blk_kind kind;
		ssize_t n;

		if (cancelled(j)) {
			err = -ECANCELED;
			break;
		}
		buf = pipe_get(&p, &err);
		if (err)
			break;
		/* A run of blocks of one kind: written by an earlier run
		 * (resume), in the cache, or to fetch. */
		kind = blk_kind(j, fd, buf, b, off);
		for (len = b; off + len < size;) {
			uint64_t nb = size - off - len < bs ? size - off - len : bs;

			if (len + nb > group || blk_kind(j, fd, buf + len, nb, off + len) != kind)
				break;
			len += nb;
		}
		if (kind == BLK_PRESENT) {
			n = read_full(fd, buf, len, off);
		} else if (kind == BLK_CACHED) {
			n = len;
		} else {
			if (rate) {
				uint64_t due = t0 + (fetched * 1000) / rate;
				uint64_t now = now_ms();

				if (due > now + 1)
					sleep_ms(due - now);
			}
			n = j->src.read(j->src.ctx, buf, len, off);
			fetched += len;
		}
		if (n != (ssize_t)len) {
			err = n < 0 ? (int)n : -EIO;
			break;
		}
		pipe_put(&p, off, len, kind != BLK_PRESENT);
		off += len;
		pthread_mutex_lock(&j->d->lock);
		j->done_bytes = off;
		pthread_mutex_unlock(&j->d->lock);
	}
	perr = pipe_finish(&p, sum);
	if (err || (err = perr))
		goto out;
	t1 = now_ms();
	if (fdatasync(fd)) {
		err = -errno;
		goto out;
	}
	t2 = now_ms();
	log_info("download: %s: %" PRIu64 " KiB fetched and hashed in %" PRIu64
		 " ms, synced in %" PRIu64 " ms", j->digest, fetched >> 10, t1 - t0, t2 - t1);
	if (strcmp(sum, j->digest)) {
		log_error("download: %s: sha256 mismatch (got %s), discarding", j->digest, sum);
		unlinkat(dirfd, DL_TMP_NAME, 0);
		err = -EBADMSG;
		goto out;
	}
	/* renameat replaces a symlink at the final name, never its target. */
	if (renameat(dirfd, DL_TMP_NAME, dirfd, DL_FINAL_NAME)) {
		err = -errno;
		goto out;
	}
	fsync(dirfd);
out:
	if (err && err != -ECANCELED && err != -EBADMSG)
		log_warn("download: %s into %s: %s", j->digest, j->dir, strerror(-err));
	close(fd);
	return err;
}

static void run_job(struct cache_dl_job *j)
{
	char final[PATH_MAX];
	int err, dirfd;

	snprintf(final, sizeof(final), "%s/" DL_FINAL_NAME, j->dir);
	log_info("download: %s into %s (attempt %u of %u)", j->digest, j->dir, j->attempts + 1,
		 j->o.try_cnt);
	dirfd = open_layer_dir(j->dir);
	err = dirfd < 0 ? dirfd : download_once(j, dirfd);
	if (dirfd >= 0)
		close(dirfd);
	if (!err && cancelled(j))
		err = -ECANCELED;
	if (!err) {
		err = j->src.done(j->src.ctx, final);
		if (!err)
			log_info("download: %s complete, reads now use %s", j->digest, final);
	}
	pthread_mutex_lock(&j->d->lock);
	j->attempts++;
	if (!err) {
		j->state = DL_DONE;
		j->result = 0;
	} else if (err == -ECANCELED || j->attempts >= j->o.try_cnt) {
		j->state = DL_FAILED;
		j->result = err;
		if (err != -ECANCELED)
			log_error("download: %s: giving up after %u attempts", j->digest,
				  j->attempts);
	} else {
		j->state = DL_WAITING;
		j->start_ms = now_ms() + DL_RETRY_PAUSE_MS;
		j->done_bytes = 0;
	}
	pthread_mutex_unlock(&j->d->lock);
}

static void job_free(struct cache_dl_job *j)
{
	if (j->src.release)
		j->src.release(j->src.ctx);
	free(j->digest);
	free(j->dir);
	free(j);
}

static void *dl_thread(void *arg)
{
	struct cache_dl *d = arg;

	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		struct cache_dl_job *j, *pick = NULL, **pp;
		uint64_t now = now_ms();

		/* Removed jobs are released here, never under a caller's feet:
		 * the owner may be the event loop our reads depend on. */
		for (pp = &d->jobs; *pp;) {
			j = *pp;
			if (!j->cancel) {
				pp = &j->next;
				continue;
			}
			*pp = j->next;
			pthread_mutex_unlock(&d->lock);
			job_free(j);
			pthread_mutex_lock(&d->lock);
			pp = &d->jobs;
		}
		for (j = d->jobs; j; j = j->next)
			if (j->state == DL_WAITING && !j->cancel &&
			    (!pick || j->start_ms < pick->start_ms))
				pick = j;
		if (d->stop)
			break; /* may have been set while the lock was dropped */
		if (!pick) {
			pthread_cond_wait(&d->cv, &d->lock);
			continue;
		}
		if (pick->start_ms > now) {
			struct timespec ts;
			uint64_t wait = pick->start_ms - now;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000)
				ts.tv_sec++, ts.tv_nsec -= 1000000000;
			pthread_cond_timedwait(&d->cv, &d->lock, &ts);
			continue;
		}
		pick->state = DL_RUNNING;
		d->running = pick;
		pthread_mutex_unlock(&d->lock);
		run_job(pick);
		pthread_mutex_lock(&d->lock);
		d->running = NULL;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int cache_dl_create(struct cache_dl **out)
{
	struct cache_dl *d = calloc(1, sizeof(*d));
	pthread_condattr_t ca;
	int err;

	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (io_setup(1, &d->aio))
		d->aio = 0; /* writes then wait, without overlapping the hash */
	err = pthread_create(&d->thread, NULL, dl_thread, d);
	if (err) {
		if (d->aio)
			io_destroy(d->aio);
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->lock);
		free(d);
		return -err;
	}
	*out = d;
	return 0;
}

void cache_dl_destroy(struct cache_dl *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	while (d->jobs) {
		struct cache_dl_job *j = d->jobs;

		d->jobs = j->next;
		job_free(j);
	}
	if (d->aio)
		io_destroy(d->aio);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int cache_dl_add(struct cache_dl *d, const struct cache_dl_src *src, const char *dir,
		 const struct cache_dl_opts *o, struct cache_dl_job **out)
{
	struct cache_dl_job *j = calloc(1, sizeof(*j));
	uint64_t delay;

	if (!j)
		return -ENOMEM;
	j->d = d;
	j->src = *src;
	j->o = *o;
	if (!j->o.try_cnt)
		j->o.try_cnt = DL_DEFAULT_TRIES;
	if (!j->o.block_size)
		j->o.block_size = DL_DEFAULT_BLOCK;
	j->digest = strdup(src->digest);
	j->dir = strdup(dir);
	if (!j->digest || !j->dir) {
		free(j->digest);
		free(j->dir);
		free(j);
		return -ENOMEM;
	}
	delay = (uint64_t)o->delay_sec * 1000;
	if (o->delay_extra_sec)
		delay += (uint64_t)(random() % o->delay_extra_sec) * 1000;
	j->start_ms = now_ms() + delay;
	j->state = DL_WAITING;
	pthread_mutex_lock(&d->lock);
	j->next = d->jobs;
	d->jobs = j;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->lock);
	*out = j;
	return 0;
}

void cache_dl_remove(struct cache_dl_job *j)
{
	struct cache_dl *d;

	if (!j)
		return;
	d = j->d;
	pthread_mutex_lock(&d->lock);
	j->cancel = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->lock);
}

int cache_dl_wait(struct cache_dl_job *j, unsigned timeout_ms)
{
	struct cache_dl *d = j->d;
	uint64_t until = now_ms() + timeout_ms;
	int ret;

	pthread_mutex_lock(&d->lock);
	while (j->state != DL_DONE && j->state != DL_FAILED) {
		struct timespec ts;

		if (timeout_ms && now_ms() >= until) {
			pthread_mutex_unlock(&d->lock);
			return -ETIMEDOUT;
		}
		/* Poll-wait: state changes are broadcast, but bound the sleep. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000;
		if (ts.tv_nsec >= 1000000000)
			ts.tv_sec++, ts.tv_nsec -= 1000000000;
		pthread_cond_timedwait(&d->cv, &d->lock, &ts);
	}
	ret = j->result;
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void cache_dl_describe(struct cache_dl_job *j, char *buf, size_t len)
{
	struct cache_dl *d = j->d;

	pthread_mutex_lock(&d->lock);
	switch (j->state) {
	case DL_WAITING:
		snprintf(buf, len, "download waiting (attempt %u of %u)", j->attempts + 1,
			 j->o.try_cnt);
		break;
	case DL_RUNNING:
		snprintf(buf, len, "download running %" PRIu64 "%%",
			 j->src.size ? j->done_bytes * 100 / j->src.size : 100);
		break;
	case DL_DONE:
		snprintf(buf, len, "downloaded to %s/overlaybd.commit", j->dir);
		break;
	case DL_FAILED:
		snprintf(buf, len, "download failed (%s)", strerror(-j->result));
		break;
	}
	pthread_mutex_unlock(&d->lock);
}
