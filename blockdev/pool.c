/*
 * pool: runs block requests on worker threads so the event loop never
 * blocks on file I/O.  Workers take requests from one FIFO; finished
 * requests go on a completion FIFO, and the eventfd is written only when
 * that FIFO goes from empty to non-empty, so a busy loop pays one read per
 * batch.  bdev_pool_service() (loop thread) delivers the completions.
 *
 * A small read is first tried right in bdev_submit(), on the loop thread,
 * with bdev_try_preadv(): when its bytes are all in the page cache that
 * costs a memcpy, where the hand-off to a worker and back costs two thread
 * wake-ups (most of the CPU time of a 4 KiB read, and of its latency).
 * Anything that could wait for a device still goes to the workers, and
 * large reads do too, so the loop never stalls on a long copy.
 */
#include "bdev.h"
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define INLINE_READ_MAX (128u << 10) /* bytes a loop-thread read may copy */

struct bdev_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct bdev_req *head, *tail; /* submitted */
	bool stop;
	int nthreads;
	pthread_t *threads;

	pthread_mutex_t done_mu;
	struct bdev_req *dhead, *dtail; /* completed */
	int efd;
};

static void run(struct bdev_req *r)
{
	int err;

	switch (r->op) {
	case BDEV_OP_READ:
		r->result = bdev_preadv(r->dev, r->iov, r->iovcnt, r->off);
		break;
	case BDEV_OP_WRITE:
		err = bdev_pwritev(r->dev, r->iov, r->iovcnt, r->off);
		if (!err && r->fua)
			err = bdev_flush(r->dev);
		r->result = err;
		break;
	case BDEV_OP_DISCARD:
		r->result = bdev_discard(r->dev, r->off, r->len);
		break;
	case BDEV_OP_FLUSH:
		r->result = bdev_flush(r->dev);
		break;
	default:
		r->result = -EINVAL;
	}
}

static void complete(struct bdev_pool *p, struct bdev_req *r)
{
	bool was_empty;

	r->next = NULL;
	pthread_mutex_lock(&p->done_mu);
	was_empty = p->dhead == NULL;
	if (p->dtail)
		p->dtail->next = r;
	else
		p->dhead = r;
	p->dtail = r;
	pthread_mutex_unlock(&p->done_mu);
	if (was_empty) {
		uint64_t one = 1;

		while (write(p->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
}

static void *worker(void *arg)
{
	struct bdev_pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->head)
			break;
		struct bdev_req *r = p->head;

		p->head = r->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		run(r);
		complete(p, r);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int bdev_pool_create(int nthreads, struct bdev_pool **out)
{
	struct bdev_pool *p = calloc(1, sizeof(*p));
	int err;

	if (nthreads < 1)
		nthreads = 1;
	if (!p)
		return -ENOMEM;
	p->threads = calloc(nthreads, sizeof(*p->threads));
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!p->threads || p->efd < 0) {
		err = p->threads ? -errno : -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_mutex_init(&p->done_mu, NULL);
	for (p->nthreads = 0; p->nthreads < nthreads; p->nthreads++) {
		err = -pthread_create(&p->threads[p->nthreads], NULL, worker, p);
		if (err) {
			log_error("bdev pool: cannot start a worker: %s", strerror(-err));
			bdev_pool_destroy(p);
			return err;
		}
	}
	*out = p;
	return 0;

fail:
	if (p->efd >= 0)
		close(p->efd);
	free(p->threads);
	free(p);
	return err;
}

void bdev_pool_destroy(struct bdev_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	/* Work queued before destroy has run; hand its completions back. */
	bdev_pool_service(p);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->done_mu);
	close(p->efd);
	free(p->threads);
	free(p);
}

int bdev_pool_fd(struct bdev_pool *p)
{
	return p->efd;
}

void bdev_pool_service(struct bdev_pool *p)
{
	uint64_t v;
	struct bdev_req *r;

	while (read(p->efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&p->done_mu);
	r = p->dhead;
	p->dhead = p->dtail = NULL;
	pthread_mutex_unlock(&p->done_mu);
	while (r) {
		struct bdev_req *next = r->next;

		r->done(r);
		r = next;
	}
}

static bool inline_read(struct bdev_req *r)
{
	size_t len = 0;

	if (r->op != BDEV_OP_READ)
		return false;
	for (int i = 0; i < r->iovcnt; i++)
		len += r->iov[i].iov_len;
	if (len > INLINE_READ_MAX)
		return false;
	r->result = bdev_try_preadv(r->dev, r->iov, r->iovcnt, r->off);
	return r->result != -EAGAIN;
}

void bdev_submit(struct bdev_pool *p, struct bdev_req *req)
{
	if (inline_read(req)) {
		complete(p, req);
		return;
	}
	req->next = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = req;
	else
		p->head = req;
	p->tail = req;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}
