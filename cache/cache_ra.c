/*
 * cache_ra: read-ahead runs fetched by the store's own threads.
 *
 * A reader that fetched read-ahead itself held its command for the whole
 * fetch and write, and an initiator streaming at a fixed queue depth then
 * stalled behind that one command once per run.  Here the reader only
 * claims the run (its units marked filling, so nobody fetches them twice)
 * and queues it; a pool thread fills it while the readers go on serving
 * what is cached.  A reader that needs a queued unit waits for it exactly
 * as for another reader's fill.
 *
 * The fetch context belongs to one opener of the blob, so a job must not
 * outlive it: cache_blob_close() drops the blob's queued jobs and waits
 * for its running ones (cache_ra_cancel).
 */
#include "cache_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>

struct cache_ra_job {
	struct cache_blob *b;
	uint64_t u, n;
	cache_fetch_fn fetch;
	void *ctx;
	struct cache_ra_job *next;
};

/* The run's units go back to missing; waiters look again.  b->lock held. */
static void unclaim(struct cache_blob *b, const struct cache_ra_job *j)
{
	for (uint64_t i = j->u; i < j->u + j->n; i++)
		bit_clear(b->filling, i);
	pthread_cond_broadcast(&b->cv);
}

static void job_done(struct cache_blob *b)
{
	pthread_mutex_lock(&b->lock);
	b->ra_jobs--;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->lock);
}

static void *ra_thread(void *arg)
{
	struct cache_store *s = arg;

	for (;;) {
		struct cache_ra_job *j;
		struct cache_blob *b;

		pthread_mutex_lock(&s->ra_lock);
		while (!s->ra_head && !s->ra_stop)
			pthread_cond_wait(&s->ra_cv, &s->ra_lock);
		j = s->ra_head;
		if (!j) {
			pthread_mutex_unlock(&s->ra_lock);
			return NULL;
		}
		s->ra_head = j->next;
		if (!s->ra_head)
			s->ra_tail = NULL;
		pthread_mutex_unlock(&s->ra_lock);

		b = j->b;
		/* Eviction prefers writers: blocking here while a reader that
		 * waits for this run holds its read lock would deadlock with a
		 * waiting evictor.  Give the run back instead; whoever needs
		 * it fetches it on demand. */
		if (pthread_rwlock_tryrdlock(&b->evict) == 0) {
			cache_fill_run(b, j->u, j->n, j->fetch, j->ctx);
			pthread_rwlock_unlock(&b->evict);
		} else {
			pthread_mutex_lock(&b->lock);
			unclaim(b, j);
			pthread_mutex_unlock(&b->lock);
		}
		free(j);
		job_done(b);
	}
}

int cache_ra_start(struct cache_store *s)
{
	for (s->ra_nthreads = 0; s->ra_nthreads < CACHE_RA_THREADS; s->ra_nthreads++) {
		int err = pthread_create(&s->ra_threads[s->ra_nthreads], NULL, ra_thread, s);

		if (err) {
			cache_ra_stop(s);
			return -err;
		}
	}
	return 0;
}

void cache_ra_stop(struct cache_store *s)
{
	pthread_mutex_lock(&s->ra_lock);
	s->ra_stop = true;
	pthread_cond_broadcast(&s->ra_cv);
	pthread_mutex_unlock(&s->ra_lock);
	for (unsigned i = 0; i < s->ra_nthreads; i++)
		pthread_join(s->ra_threads[i], NULL);
	s->ra_nthreads = 0;
}

int cache_ra_queue(struct cache_blob *b, uint64_t u, uint64_t n, cache_fetch_fn fetch, void *ctx)
{
	struct cache_store *s = b->s;
	struct cache_ra_job *j = malloc(sizeof(*j));

	if (!j)
		return -ENOMEM;
	*j = (struct cache_ra_job){ .b = b, .u = u, .n = n, .fetch = fetch, .ctx = ctx };
	pthread_mutex_lock(&b->lock);
	b->ra_jobs++;
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_lock(&s->ra_lock);
	if (s->ra_stop || !s->ra_nthreads) {
		pthread_mutex_unlock(&s->ra_lock);
		free(j);
		job_done(b);
		return -ESHUTDOWN;
	}
	if (s->ra_tail)
		s->ra_tail->next = j;
	else
		s->ra_head = j;
	s->ra_tail = j;
	pthread_cond_signal(&s->ra_cv);
	pthread_mutex_unlock(&s->ra_lock);
	return 0;
}

void cache_ra_cancel(struct cache_blob *b)
{
	struct cache_store *s = b->s;
	struct cache_ra_job *mine = NULL, **pp, *j;

	pthread_mutex_lock(&s->ra_lock);
	s->ra_tail = NULL;
	for (pp = &s->ra_head; (j = *pp);) {
		if (j->b == b) {
			*pp = j->next;
			j->next = mine;
			mine = j;
		} else {
			s->ra_tail = j;
			pp = &j->next;
		}
	}
	pthread_mutex_unlock(&s->ra_lock);
	pthread_mutex_lock(&b->lock);
	while ((j = mine)) {
		mine = j->next;
		unclaim(b, j);
		b->ra_jobs--;
		free(j);
	}
	while (b->ra_jobs)
		pthread_cond_wait(&b->cv, &b->lock);
	pthread_mutex_unlock(&b->lock);
}
