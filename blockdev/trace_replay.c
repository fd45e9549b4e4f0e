/*
 * trace_replay: read a trace's ranges back through the layer views on
 * threads of the trace's own (docs/trace.md, "Replay").
 *
 * One lead thread first resolves a file list into ranges when the trace is
 * one (the resolver is the caller's: the block engine does not read
 * filesystems), checks every range against its layer, then starts the
 * helpers and reads with them.  Runs are taken in the trace's order, so
 * what the start read first is fetched first.  A view being closed waits
 * for the replay reads that use it (trace.c, tf_close).
 */
#include "trace_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int trace_add_run(struct bdev_trace *t, uint32_t layer, uint64_t off, uint64_t len)
{
	struct trace_rec *last = t->nrecs ? &t->recs[t->nrecs - 1] : NULL;

	t->total_records++;
	if (last && last->layer == layer && last->off + last->len == off &&
	    last->len + len <= TRACE_RUN_MAX) {
		last->len += len;
		last->nrecs++;
		return 0;
	}
	return trace_recs_push(t, (struct trace_rec){ .layer = layer, .off = off, .len = len,
						     .nrecs = 1 });
}

int bdev_trace_add_range(struct bdev_trace *t, uint32_t layer, uint64_t off, uint64_t len)
{
	while (len > 0 && !atomic_load(&t->stop)) {
		uint64_t n = len < TRACE_REC_MAX_COUNT ? len : TRACE_REC_MAX_COUNT;
		int rc;

		if (t->total_records >= TRACE_MAX_RECORDS)
			return -E2BIG;
		rc = trace_add_run(t, layer, off, n);
		if (rc)
			return rc;
		off += n;
		len -= n;
	}
	return atomic_load(&t->stop) ? -ECANCELED : 0;
}

static struct bdev_file *layer_get(struct bdev_trace *t, uint32_t layer)
{
	struct bdev_file *f;

	pthread_mutex_lock(&t->mu);
	f = layer < BDEV_MAX_LAYERS ? t->layers[layer] : NULL;
	if (f)
		t->layer_busy[layer]++;
	pthread_mutex_unlock(&t->mu);
	return f;
}

static void layer_put(struct bdev_trace *t, uint32_t layer)
{
	pthread_mutex_lock(&t->mu);
	if (--t->layer_busy[layer] == 0)
		pthread_cond_broadcast(&t->idle);
	pthread_mutex_unlock(&t->mu);
}

static void replay_run(struct bdev_trace *t, const struct trace_rec *r, uint8_t *buf)
{
	struct bdev_file *f = layer_get(t, r->layer);
	int rc;

	if (!f)
		return;
	rc = bdev_file_pread_full(f, buf, r->len, r->off);
	layer_put(t, r->layer);
	if (rc) {
		if (atomic_fetch_add(&t->errors, 1) == 0)
			log_warn("trace %s: replay read of layer %u at %llu failed: %s "
				 "(further failures are counted, not logged)", t->path, r->layer,
				 (unsigned long long)r->off, strerror(-rc));
		return;
	}
	atomic_fetch_add(&t->bytes, r->len);
}

static void *replay_worker(void *arg)
{
	struct bdev_trace *t = arg;
	uint8_t *buf = malloc(TRACE_RUN_MAX);

	while (buf && !atomic_load(&t->stop)) {
		size_t i = atomic_fetch_add(&t->next_run, 1);

		if (i >= t->nrecs)
			break;
		replay_run(t, &t->recs[i], buf);
		atomic_fetch_add(&t->done_records, t->recs[i].nrecs);
	}
	free(buf);
	return NULL;
}

/* Every run must lie inside its layer; a trace that names anything else was
 * made for another image, and is not used at all. */
static int check_runs(struct bdev_trace *t)
{
	for (size_t i = 0; i < t->nrecs; i++) {
		const struct trace_rec *r = &t->recs[i];
		struct bdev_file *f = r->layer < BDEV_MAX_LAYERS ? t->layers[r->layer] : NULL;

		if (!f || r->off + r->len > f->size) {
			log_warn("trace %s: a read of layer %u at %llu+%llu is outside the image "
				 "(%u layers); the trace is not used", t->path, r->layer,
				 (unsigned long long)r->off, (unsigned long long)r->len, t->nlayers);
			return -EINVAL;
		}
	}
	return 0;
}

static int prepare_runs(struct bdev_trace *t)
{
	int rc = 0;

	if (t->resolve) {
		atomic_store(&t->resolving, true);
		rc = t->resolve(t, t->resolve_arg);
		atomic_store(&t->resolving, false);
		if (rc && rc != -E2BIG)
			return rc;
	}
	rc = check_runs(t);
	if (rc)
		t->ignored = true;
	return rc;
}

static void *replay_lead(void *arg)
{
	struct bdev_trace *t = arg;
	pthread_t helpers[TRACE_THREADS_MAX];
	unsigned nhelpers = 0;

	if (prepare_runs(t) == 0) {
		log_info("trace %s: replaying %llu records as %zu reads, %u at a time", t->path,
			 (unsigned long long)t->total_records, t->nrecs, t->concurrency);
		for (unsigned i = 1; i < t->concurrency; i++) {
			if (pthread_create(&helpers[nhelpers], NULL, replay_worker, t) != 0)
				break;
			nhelpers++;
		}
		replay_worker(t);
		for (unsigned i = 0; i < nhelpers; i++)
			pthread_join(helpers[i], NULL);
		log_info("trace %s: replay %s, %llu of %llu records, %llu bytes read, %u failed",
			 t->path, atomic_load(&t->stop) ? "stopped" : "done",
			 (unsigned long long)atomic_load(&t->done_records),
			 (unsigned long long)t->total_records,
			 (unsigned long long)atomic_load(&t->bytes), atomic_load(&t->errors));
	}
	atomic_store(&t->running, false);
	return NULL;
}

void bdev_trace_set_resolver(struct bdev_trace *t,
			     int (*fn)(struct bdev_trace *t, void *arg), void *arg)
{
	t->resolve = fn;
	t->resolve_arg = arg;
}

int bdev_trace_replay(struct bdev_trace *t, unsigned concurrency)
{
	int rc;

	if ((t->mode != BDEV_TRACE_REPLAY && t->mode != BDEV_TRACE_FILELIST) || t->lead_started)
		return -EINVAL;
	if (!t->resolve) {
		/* A recorded trace is checked now, so its caller hears of it. */
		rc = check_runs(t);
		if (rc) {
			t->ignored = true;
			return rc;
		}
	}
	if (concurrency > TRACE_THREADS_MAX)
		concurrency = TRACE_THREADS_MAX;
	t->concurrency = concurrency ? concurrency : 1;
	atomic_store(&t->running, true);
	if (pthread_create(&t->lead, NULL, replay_lead, t) != 0) {
		atomic_store(&t->running, false);
		return -EAGAIN;
	}
	t->lead_started = true;
	return 0;
}

void trace_replay_join(struct bdev_trace *t)
{
	atomic_store(&t->stop, true);
	if (t->lead_started)
		pthread_join(t->lead, NULL);
	t->lead_started = false;
}
