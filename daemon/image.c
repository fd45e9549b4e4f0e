/*
 * image: open the layer stack of a spec (config.md 1.1, 1.2) into a
 * struct bdev.
 *
 * Opening may block for a long time (remote lowers wait for the registry,
 * whose transfers run on the event loop), so it never runs on the loop
 * thread: image_open_async() gives each job a worker thread, which opens
 * the lowers in parallel (at most 32 at a time, as the reference does) and
 * hands the result back to the loop through ev_async.
 */
#include "daemon_int.h"
#include "blockdev/bdev.h"
#include "extfs/extfs.h"
#include "registry/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OPEN_PARALLEL 32
/* Devices opened at once; more wait in a queue (a spool of hundreds of
 * specs at start-up must not start hundreds of threads). */
#define IMAGE_JOBS_MAX 8
#define ERR_LEN 512
/* docs/trace.md: replay threads, the reference's prefetchConfig.concurrency
 * default. */
#define TRACE_REPLAY_THREADS 16

struct lower_slot {
	struct lsmt_layer *layer;
	struct image_layer info;
	int rc;
	char err[ERR_LEN];
};

struct open_ctx {
	const struct spec *s;
	const struct image_env *env;
	struct lower_slot *slots;
	struct bdev_trace *trace; /* NULL = none */
	int next; /* next lower to open; atomic */
};

static bool path_exists(const char *p)
{
	struct stat st;

	return p && stat(p, &st) == 0;
}

/* config.md 1.1: file, dir/overlaybd.commit, dir/.commit, dir/overlaybd.sealed. */
static char *local_candidate(const struct spec_lower *l)
{
	static const char *const names[] = { "overlaybd.commit", ".commit", "overlaybd.sealed" };
	char *p;

	if (path_exists(l->file))
		return strdup(l->file);
	if (!l->dir)
		return NULL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (asprintf(&p, "%s/%s", l->dir, names[i]) < 0)
			return NULL;
		if (path_exists(p))
			return p;
		free(p);
	}
	return NULL;
}

static int open_remote(const struct spec *s, const struct spec_lower *l, int idx,
		       const struct image_env *env, struct lower_slot *slot,
		       struct bdev_file **raw)
{
	const char *url = s->repo_blob_url;
	int rc;

	if (!url || !*url) {
		/* config.md 1.4: the reference's words for a lower with no
		 * local file and nowhere to fetch it from. */
		snprintf(slot->err, ERR_LEN, "empty repoBlobUrl");
		log_error("%s: lower %d: no local file (%s%s%s) and no repoBlobUrl", s->name, idx,
			  l->file ? l->file : "", l->file && l->dir ? ", " : "",
			  l->dir ? l->dir : "");
		return -ENOENT;
	}
	if (!l->digest) {
		snprintf(slot->err, ERR_LEN, "failed to open layer %d: no local file and no digest",
			 idx);
		return -ENOENT;
	}
	if (asprintf(&slot->info.desc, "%s%s%s", url, url[strlen(url) - 1] == '/' ? "" : "/",
		     l->digest) < 0) {
		slot->info.desc = NULL;
		return -ENOMEM;
	}
	slot->info.remote = true;
	if (!env->reg) {
		/* Quirk kept from the reference (config.md 1.4): a leading '/'. */
		snprintf(slot->err, ERR_LEN,
			 "failed to open remote file /%s: registry support is not available",
			 slot->info.desc);
		return -ENOTSUP;
	}
	rc = reg_blob_open(env->reg, url, l->digest, l->size, raw, slot->err, ERR_LEN);
	if (rc < 0)
		return rc;
	slot->info.raw = *raw;
	return 0;
}

static int open_lower(const struct open_ctx *c, int idx)
{
	const struct spec_lower *l = &c->s->lowers[idx];
	struct lower_slot *slot = &c->slots[idx];
	struct bdev_file *raw = NULL, *view;
	char *path = local_candidate(l);
	int rc;

	if (path) {
		slot->info.desc = path;
		rc = bdev_file_open_local(path, O_RDONLY, c->env->io_engine, &raw);
		if (rc < 0) {
			snprintf(slot->err, ERR_LEN, "failed to open local file %s", path);
			log_error("%s: lower %d: %s: %s", c->s->name, idx, path, strerror(-rc));
			return rc;
		}
	} else {
		rc = open_remote(c->s, l, idx, c->env, slot, &raw);
		if (rc < 0)
			return rc;
	}
	rc = bdev_file_unwrap(raw, &view);
	/* A trace reads the layers' views; a file list reads the device. */
	if (rc == 0 && c->trace && bdev_trace_mode(c->trace) != BDEV_TRACE_FILELIST)
		rc = bdev_trace_wrap(c->trace, idx, view, &view);
	if (rc == 0)
		rc = lsmt_open_ro(view, &slot->layer);
	if (rc < 0) {
		snprintf(slot->err, ERR_LEN, "failed to open layer %d (%s): %s", idx, slot->info.desc,
			 strerror(-rc));
		return rc;
	}
	return 0;
}

static void *lower_worker(void *arg)
{
	struct open_ctx *c = arg;
	int i;

	while ((i = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED)) < c->s->nlowers)
		c->slots[i].rc = open_lower(c, i);
	return NULL;
}

static void open_lowers(struct open_ctx *c)
{
	int nth = c->s->nlowers < OPEN_PARALLEL ? c->s->nlowers : OPEN_PARALLEL;
	pthread_t th[OPEN_PARALLEL];
	int started = 0;

	/* The calling thread works too, so one lower needs no extra thread. */
	for (int i = 1; i < nth; i++) {
		if (pthread_create(&th[started], NULL, lower_worker, c) != 0)
			break;
		started++;
	}
	lower_worker(c);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
}

static int open_upper(const struct spec *s, const struct image_env *env,
		      struct lsmt_layer **out, char *err, size_t errlen)
{
	struct bdev_file *data = NULL, *index = NULL;
	int rc;

	int mode = env->read_only ? O_RDONLY : O_RDWR;

	rc = bdev_file_open_local(s->upper_data, mode, env->io_engine, &data);
	if (rc < 0) {
		snprintf(err, errlen, "failed to open upper layer data %s: %s", s->upper_data,
			 strerror(-rc));
		return rc;
	}
	rc = bdev_file_open_local(s->upper_index, mode, env->io_engine, &index);
	if (rc < 0) {
		snprintf(err, errlen, "failed to open upper layer index %s: %s", s->upper_index,
			 strerror(-rc));
		bdev_file_close(data);
		return rc;
	}
	rc = lsmt_open_rw(data, index, out);
	if (rc < 0)
		snprintf(err, errlen, "failed to open upper layer %s: %s", s->upper_data,
			 strerror(-rc));
	return rc;
}

/*
 * docs/trace.md: the trace file's state picks the mode.  A missing file
 * means no trace; a bad one has been logged by the trace code, and the
 * device opens without it.
 */
static struct bdev_trace *open_trace(const struct spec *s)
{
	struct bdev_trace *t = NULL;
	int rc;

	if (!s->trace_path)
		return NULL;
	rc = bdev_trace_open(s->trace_path, !s->trace_replay_only, &t);
	if (rc == 0)
		log_info("%s: trace %s: %s", s->name, s->trace_path,
			 bdev_trace_mode(t) == BDEV_TRACE_RECORD ? "recording" : "loaded for replay");
	else if (rc != -ENOENT && rc != -EINVAL)
		log_warn("%s: trace %s: %s; opening without it", s->name, s->trace_path,
			 strerror(-rc));
	return rc == 0 ? t : NULL;
}

static int view_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	return bdev_file_pread_full(ctx, buf, len, off);
}

static int add_range(void *arg, uint64_t off, uint64_t len)
{
	return bdev_trace_add_range(arg, 0, off, len);
}

/*
 * docs/trace.md, "File lists": the paths become the device ranges of their
 * files' data, found in the image's ext4 filesystem read through the device
 * itself.  Runs on the replay's thread, so the device serves meanwhile.
 */
static int resolve_file_list(struct bdev_trace *t, void *arg)
{
	struct image *img = arg;
	struct extfs_source src = { .pread = view_pread, .ctx = img->trace_view,
				    .size = img->trace_view->size };
	size_t n = bdev_trace_npaths(t), found = 0;
	struct extfs *fs;
	int rc = extfs_open(&src, &fs);

	if (rc < 0) {
		log_warn("%s: file list: no ext4 filesystem on the device (%s); no prefetch",
			 img->name, strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		bool recursive;
		const char *p = bdev_trace_path(t, i, &recursive);

		rc = extfs_file_ranges(fs, p, recursive, add_range, t);
		if (rc == -E2BIG || rc == -ECANCELED)
			break;
		found += rc == 0;
	}
	extfs_close(fs);
	log_info("%s: file list: %zu of %zu paths found", img->name, found, n);
	return rc == -ECANCELED ? rc : 0;
}

/* A file list reads the merged device, as layer 0 of the trace. */
static int attach_device_view(struct image *img)
{
	struct bdev_file *view;
	int rc = bdev_file_of_device(img->bdev, &view);

	if (rc == 0)
		rc = bdev_trace_wrap(img->trace, 0, view, &img->trace_view);
	if (rc == 0)
		bdev_trace_set_resolver(img->trace, resolve_file_list, img);
	return rc;
}

static void start_replay(struct image *img)
{
	enum bdev_trace_mode mode;
	int rc = 0;

	if (!img->trace)
		return;
	mode = bdev_trace_mode(img->trace);
	if (mode == BDEV_TRACE_RECORD)
		return;
	if (mode == BDEV_TRACE_FILELIST)
		rc = attach_device_view(img);
	if (rc == 0)
		rc = bdev_trace_replay(img->trace, TRACE_REPLAY_THREADS);
	if (rc < 0)
		log_warn("%s: serving without prefetch", img->name);
}

static void image_free(struct image *img)
{
	for (int i = 0; i < img->nlayers; i++)
		free(img->layers[i].desc);
	free(img->layers);
	free(img->upper_desc);
	free(img->name);
	free(img);
}

int image_open(const struct spec *s, const struct image_env *env, struct image **out,
	       char *err, size_t errlen)
{
	struct open_ctx c = { .s = s, .env = env };
	struct lsmt_layer **layers = NULL, *upper = NULL;
	struct image *img;
	int rc = 0, i;

	img = calloc(1, sizeof(*img));
	c.slots = calloc(s->nlowers ? s->nlowers : 1, sizeof(*c.slots));
	layers = calloc(s->nlowers ? s->nlowers : 1, sizeof(*layers));
	if (!img || !c.slots || !layers) {
		snprintf(err, errlen, "out of memory");
		free(img);
		free(c.slots);
		free(layers);
		return -ENOMEM;
	}
	c.trace = open_trace(s);
	open_lowers(&c);
	/* The first failing lower, in stack order, names the failure. */
	for (i = 0; i < s->nlowers; i++) {
		if (c.slots[i].rc < 0 && !rc) {
			rc = c.slots[i].rc;
			snprintf(err, errlen, "%s", c.slots[i].err);
		}
		layers[i] = c.slots[i].layer;
	}
	if (!rc && s->upper_data)
		rc = open_upper(s, env, &upper, err, errlen);
	img->layers = calloc(s->nlowers ? s->nlowers : 1, sizeof(*img->layers));
	if (!rc && !img->layers) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	if (rc < 0) {
		for (i = 0; i < s->nlowers; i++) {
			if (layers[i])
				lsmt_close(layers[i]);
			free(c.slots[i].info.desc);
		}
		free(layers);
		free(c.slots);
		bdev_trace_discard(c.trace);
		image_free(img);
		return rc;
	}
	for (i = 0; i < s->nlowers; i++)
		img->layers[i] = c.slots[i].info;
	img->nlayers = s->nlowers;
	if (s->upper_data && asprintf(&img->upper_desc, "data %s, index %s", s->upper_data,
				      s->upper_index) < 0)
		img->upper_desc = NULL;
	free(c.slots);
	/* bdev_open owns the layers from here, also on failure. */
	rc = bdev_open(layers, s->nlowers, upper, &img->bdev);
	free(layers);
	if (rc < 0) {
		snprintf(err, errlen, "failed to create overlaybd device: %s", strerror(-rc));
		bdev_trace_discard(c.trace);
		image_free(img);
		return rc;
	}
	img->trace = c.trace;
	img->name = strdup(s->name);
	start_replay(img);
	*out = img;
	return 0;
}

void image_start_downloads(struct image *img, const struct spec *s, struct reg_ctx *reg)
{
	struct reg_download_opts o = {
		.enable = s->download.enable,
		.delay_sec = s->download.delay,
		.delay_extra_sec = s->download.delay_extra,
		.max_mbps = s->download.max_mbps,
		.try_cnt = s->download.try_cnt,
		.block_size = s->download.block_size,
	};
	int rc;

	/* config.md 6: only remote lowers that have a dir, and not while a
	 * trace is being recorded (docs/trace.md), as the reference does. */
	if (!reg || !o.enable)
		return;
	if (img->trace && bdev_trace_mode(img->trace) == BDEV_TRACE_RECORD) {
		log_info("%s: recording a trace: no background download", s->name);
		return;
	}
	for (int i = 0; i < img->nlayers && i < s->nlowers; i++) {
		if (!img->layers[i].remote || !img->layers[i].raw || !s->lowers[i].dir)
			continue;
		rc = reg_download_start(reg, img->layers[i].raw, s->lowers[i].dir, &o);
		if (rc < 0)
			log_warn("%s: lower %d: background download not started: %s", s->name, i,
				 strerror(-rc));
	}
}

int image_close(struct image *img)
{
	int rc = 0;

	if (!img)
		return 0;
	/* Stop the replay and write a recording before the views close. */
	bdev_trace_close(img->trace);
	if (img->trace_view)
		bdev_file_close(img->trace_view);
	if (img->bdev) {
		if (bdev_writable(img->bdev))
			rc = bdev_flush(img->bdev);
		bdev_close(img->bdev);
	}
	image_free(img);
	return rc;
}

struct image_job {
	struct image_runner *r;
	struct spec *spec;      /* an open; NULL for a close */
	struct image_env env;
	image_done_fn done;
	image_closed_fn closed;
	void *arg;
	pthread_t th;
	struct image *img;
	int rc;
	char err[ERR_LEN];
	struct image_job *next;
};

struct image_runner {
	struct ev_loop *loop;
	ev_async async;
	pthread_mutex_t mu;
	struct image_job *finished;
	struct image_job *queue, *queue_tail; /* waiting for a thread */
	int pending;                          /* queued + running */
	int running;
};

static void *job_thread(void *arg)
{
	struct image_job *j = arg;
	struct image_runner *r = j->r;

	if (j->spec)
		j->rc = image_open(j->spec, &j->env, &j->img, j->err, sizeof(j->err));
	else
		j->rc = image_close(j->img);
	pthread_mutex_lock(&r->mu);
	j->next = r->finished;
	r->finished = j;
	pthread_mutex_unlock(&r->mu);
	ev_async_send(r->loop, &r->async);
	return NULL;
}

static void job_finish(struct image_runner *r, struct image_job *j)
{
	r->pending--;
	if (j->spec)
		j->done(j->arg, j->rc < 0 ? NULL : j->img, j->rc, j->err);
	else
		j->closed(j->arg, j->rc);
	free(j);
}

/* Start queued jobs while threads are free (loop thread). */
static void start_queued(struct image_runner *r)
{
	struct image_job *j;
	int rc;

	while (r->running < IMAGE_JOBS_MAX && (j = r->queue)) {
		r->queue = j->next;
		if (!r->queue)
			r->queue_tail = NULL;
		j->next = NULL;
		rc = pthread_create(&j->th, NULL, job_thread, j);
		if (rc) {
			j->rc = -rc;
			snprintf(j->err, ERR_LEN, "cannot start the open job: %s", strerror(rc));
			job_finish(r, j);
			continue;
		}
		r->running++;
	}
}

static void runner_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct image_runner *r = w->data;
	struct image_job *list, *j;

	pthread_mutex_lock(&r->mu);
	list = r->finished;
	r->finished = NULL;
	pthread_mutex_unlock(&r->mu);
	while ((j = list)) {
		list = j->next;
		pthread_join(j->th, NULL);
		r->running--;
		job_finish(r, j);
	}
	start_queued(r);
}

int image_runner_create(struct ev_loop *loop, struct image_runner **out)
{
	struct image_runner *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->loop = loop;
	pthread_mutex_init(&r->mu, NULL);
	ev_async_init(&r->async, runner_cb);
	r->async.data = r;
	ev_async_start(loop, &r->async);
	/* Pending jobs alone must not keep the loop from ending. */
	ev_unref(loop);
	*out = r;
	return 0;
}

void image_runner_destroy(struct image_runner *r)
{
	if (!r)
		return;
	while (r->pending > 0) {
		usleep(10000);
		runner_cb(r->loop, &r->async, 0);
	}
	ev_ref(r->loop);
	ev_async_stop(r->loop, &r->async);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int image_runner_pending(const struct image_runner *r)
{
	return r->pending;
}

static void queue_job(struct image_runner *r, struct image_job *j)
{
	j->r = r;
	r->pending++;
	if (r->queue_tail)
		r->queue_tail->next = j;
	else
		r->queue = j;
	r->queue_tail = j;
	start_queued(r);
}

int image_open_async(struct image_runner *r, struct spec *s, const struct image_env *env,
		     image_done_fn done, void *arg)
{
	struct image_job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->spec = s;
	j->env = *env;
	j->done = done;
	j->arg = arg;
	queue_job(r, j);
	return 0;
}

/*
 * Closing waits for what the image's layers have in flight, and a remote
 * layer's fetches are driven by the loop thread: closed on the loop, a
 * remote image with a read-ahead under way would wait for a transfer that
 * the waiting loop can never finish.  So a close, like an open, runs on a
 * job thread.  Without memory for the job it closes here, as before.
 */
void image_close_async(struct image_runner *r, struct image *img, image_closed_fn done,
		       void *arg)
{
	struct image_job *j;

	/* As image_close(NULL): nothing to close, so no job either. */
	if (!img) {
		done(arg, 0);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		done(arg, image_close(img));
		return;
	}
	j->img = img;
	j->closed = done;
	j->arg = arg;
	queue_job(r, j);
}
