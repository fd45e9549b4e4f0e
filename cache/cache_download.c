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
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DL_DEFAULT_TRIES 5
#define DL_DEFAULT_BLOCK (256u * 1024)
#define DL_RETRY_PAUSE_MS 1000

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

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

static bool cancelled(struct cache_dl_job *j)
{
	bool c;

	pthread_mutex_lock(&j->d->lock);
	c = j->cancel || j->d->stop;
	pthread_mutex_unlock(&j->d->lock);
	return c;
}

/* One attempt; 0 when DIR/overlaybd.commit holds the verified blob. */
static int download_once(struct cache_dl_job *j, const char *tmp, const char *final)
{
	uint64_t size = j->src.size, bs = j->o.block_size, rate, t0, off;
	char *buf = NULL, sum[80];
	int fd, err = 0;

	if (!access(final, F_OK))
		return 0;
	fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		log_warn("download: cannot create %s: %s", tmp, strerror(errno));
		return err;
	}
	if (ftruncate(fd, size)) {
		err = -errno;
		goto out;
	}
	buf = malloc(bs);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	/* Token bucket: bytes may run ahead of rate * elapsed by one block. */
	rate = (uint64_t)j->o.max_mbps << 20;
	t0 = now_ms();
	for (off = 0; off < size; off += bs) {
		uint64_t len = size - off < bs ? size - off : bs;
		ssize_t n;

		if (cancelled(j)) {
			err = -ECANCELED;
			goto out;
		}
		if (!block_present(fd, off, len)) {
			if (rate) {
				uint64_t due = t0 + (j->done_bytes * 1000) / rate;
				uint64_t now = now_ms();

				if (due > now + 1)
					sleep_ms(due - now);
			}
			n = j->src.read(j->src.ctx, buf, len, off);
			if (n != (ssize_t)len) {
				err = n < 0 ? (int)n : -EIO;
				goto out;
			}
			if (pwrite(fd, buf, len, off) != (ssize_t)len) {
				err = -errno ? -errno : -EIO;
				goto out;
			}
		}
		pthread_mutex_lock(&j->d->lock);
		j->done_bytes = off + len;
		pthread_mutex_unlock(&j->d->lock);
	}
	if (fdatasync(fd)) {
		err = -errno;
		goto out;
	}
	err = cache_sha256_fd(fd, size, sum, sizeof(sum));
	if (err)
		goto out;
	if (strcmp(sum, j->digest)) {
		log_error("download: %s: sha256 mismatch (got %s), discarding", j->digest, sum);
		unlink(tmp);
		err = -EBADMSG;
		goto out;
	}
	if (rename(tmp, final)) {
		err = -errno;
		goto out;
	}
	sync_dir(j->dir);
out:
	if (err && err != -ECANCELED && err != -EBADMSG)
		log_warn("download: %s into %s: %s", j->digest, j->dir, strerror(-err));
	free(buf);
	close(fd);
	return err;
}

static void run_job(struct cache_dl_job *j)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	int err;

	snprintf(tmp, sizeof(tmp), "%s/.download", j->dir);
	snprintf(final, sizeof(final), "%s/overlaybd.commit", j->dir);
	log_info("download: %s into %s (attempt %u of %u)", j->digest, j->dir, j->attempts + 1,
		 j->o.try_cnt);
	err = download_once(j, tmp, final);
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

static void *dl_thread(void *arg)
{
	struct cache_dl *d = arg;

	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		struct cache_dl_job *j, *pick = NULL;
		uint64_t now = now_ms();

		for (j = d->jobs; j; j = j->next)
			if (j->state == DL_WAITING && !j->cancel &&
			    (!pick || j->start_ms < pick->start_ms))
				pick = j;
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
	err = pthread_create(&d->thread, NULL, dl_thread, d);
	if (err) {
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
	struct cache_dl_job **pp;

	if (!j)
		return;
	d = j->d;
	pthread_mutex_lock(&d->lock);
	j->cancel = true;
	while (d->running == j)
		pthread_cond_wait(&d->cv, &d->lock);
	for (pp = &d->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->lock);
	free(j->digest);
	free(j->dir);
	free(j);
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
