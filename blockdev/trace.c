/*
 * trace: the access trace of an image start, recorded on one host and
 * replayed on the next, so that the blocks a start reads are fetched from
 * the registry before they are asked for (docs/trace.md).
 *
 * A trace sits between a read-only layer's unwrapped view (the plain LSMT
 * blob, after tar and ZFile) and the LSMT reader, one wrapper file per
 * layer.  Recording appends (layer, offset, length) for every full read the
 * wrapper passes through, in the order the reads finished.  Replay reads
 * the same ranges through the same views with a few threads of its own, so
 * a remote layer's cache fills as a side effect.  The file format is the
 * reference's (docs/trace.md, trace_fmt.c), byte for byte, so traces move
 * between its tools and ours in both directions.
 *
 * A trace never fails a device: a bad trace file is logged once and left
 * unused, and a replay read that fails is counted and skipped.
 */
#include "trace_int.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *path_with(const char *path, const char *suffix)
{
	char *s;

	return asprintf(&s, "%s%s", path, suffix) < 0 ? NULL : s;
}

static void trace_unref(struct bdev_trace *t)
{
	bool last;

	pthread_mutex_lock(&t->mu);
	last = --t->refs == 0;
	pthread_mutex_unlock(&t->mu);
	if (!last)
		return;
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->idle);
	pthread_cond_destroy(&t->watch_cv);
	free(t->recs);
	trace_list_free(t);
	free(t->path);
	free(t);
}

int trace_recs_push(struct bdev_trace *t, struct trace_rec r)
{
	if (t->nrecs == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct trace_rec *n = realloc(t->recs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->recs = n;
		t->cap = cap;
	}
	t->recs[t->nrecs++] = r;
	return 0;
}

/* Recording, called by the wrapper after every full read. */
static void trace_record(struct bdev_trace *t, uint32_t layer, uint64_t off, uint64_t len)
{
	pthread_mutex_lock(&t->mu);
	while (!t->record_stopped && len > 0) {
		uint64_t n = len < TRACE_REC_MAX_COUNT ? len : TRACE_REC_MAX_COUNT;

		if (t->nrecs == TRACE_MAX_RECORDS) {
			log_warn("trace %s: %u records, recording stops here", t->path,
				 TRACE_MAX_RECORDS);
			t->record_stopped = true;
			break;
		}
		if (trace_recs_push(t, (struct trace_rec){ .layer = layer, .off = off, .len = n,
						     .nrecs = 1 }) < 0)
			break;
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&t->mu);
}

static struct trace_file *tf_of(struct bdev_file *f)
{
	return (struct trace_file *)f;
}

static ssize_t tf_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct trace_file *tf = tf_of(f);
	ssize_t n = bdev_file_pread(tf->inner, buf, len, off);

	if (n == (ssize_t)len && tf->t->mode == BDEV_TRACE_RECORD)
		trace_record(tf->t, tf->layer, off, len);
	return n;
}

static ssize_t tf_pread_nowait(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct trace_file *tf = tf_of(f);
	ssize_t n;

	if (!tf->inner->ops->pread_nowait)
		return -EAGAIN;
	n = tf->inner->ops->pread_nowait(tf->inner, buf, len, off);
	if (n == (ssize_t)len && tf->t->mode == BDEV_TRACE_RECORD)
		trace_record(tf->t, tf->layer, off, len);
	return n;
}

static const char *tf_name(struct bdev_file *f)
{
	return bdev_file_name(tf_of(f)->inner);
}

/* A replay read may be using the view: wait for it, and keep the next ones
 * away, before the view closes under it. */
static void tf_close(struct bdev_file *f)
{
	struct trace_file *tf = tf_of(f);
	struct bdev_trace *t = tf->t;

	pthread_mutex_lock(&t->mu);
	if (tf->layer < BDEV_MAX_LAYERS && t->layers[tf->layer] == tf->inner) {
		t->layers[tf->layer] = NULL;
		while (t->layer_busy[tf->layer])
			pthread_cond_wait(&t->idle, &t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	bdev_file_close(tf->inner);
	trace_unref(t);
	free(tf);
}

static const struct bdev_file_ops trace_file_ops = {
	.pread = tf_pread,
	.pread_nowait = tf_pread_nowait,
	.name = tf_name,
	.close = tf_close,
};

int bdev_trace_wrap(struct bdev_trace *t, uint32_t layer, struct bdev_file *inner,
		    struct bdev_file **out)
{
	struct trace_file *tf = calloc(1, sizeof(*tf));

	if (!tf) {
		bdev_file_close(inner);
		return -ENOMEM;
	}
	tf->f.ops = &trace_file_ops;
	tf->f.size = inner->size;
	tf->inner = inner;
	tf->t = t;
	tf->layer = layer;
	pthread_mutex_lock(&t->mu);
	t->refs++;
	if (t->mode != BDEV_TRACE_RECORD && layer < BDEV_MAX_LAYERS && !t->layers[layer]) {
		t->layers[layer] = inner;
		t->nlayers++;
	}
	pthread_mutex_unlock(&t->mu);
	*out = &tf->f;
	return 0;
}


static int read_whole(int fd, size_t size, uint8_t **out)
{
	uint8_t *buf = malloc(size ? size : 1);
	size_t got = 0;

	if (!buf)
		return -ENOMEM;
	while (got < size) {
		ssize_t n = pread(fd, buf + got, size - got, got);

		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
		got += n;
	}
	*out = buf;
	return 0;
}

static int parse_records(struct bdev_trace *t, const uint8_t *buf, size_t nrecs)
{
	for (size_t i = 0; i < nrecs; i++) {
		struct trace_fmt_rec r;
		int rc;

		trace_fmt_get(buf, i, &r);
		if (r.op == TRACE_OP_WRITE)
			continue; /* nothing to fetch ahead for a write */
		if (r.op != TRACE_OP_READ || r.count == 0 || r.count > TRACE_RUN_MAX ||
		    r.offset > INT64_MAX - r.count) {
			log_warn("trace %s: record %zu is not a read of 1 byte to 4 MiB; "
				 "the trace is not used", t->path, i);
			return -EINVAL;
		}
		rc = trace_add_run(t, r.layer, r.offset, r.count);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_trace(struct bdev_trace *t, int fd, size_t size)
{
	uint8_t *buf = NULL;
	int rc;

	if (size > TRACE_HDR_SIZE + (size_t)TRACE_MAX_RECORDS * TRACE_REC_SIZE) {
		log_warn("trace %s: %zu bytes is more than %u records; the trace is not used",
			 t->path, size, TRACE_MAX_RECORDS);
		return -EINVAL;
	}
	rc = read_whole(fd, size, &buf);
	if (rc == 0 && !trace_fmt_has_magic(buf, size)) {
		rc = trace_list_parse(t, (const char *)buf, size);
		if (rc == 0)
			t->mode = BDEV_TRACE_FILELIST;
		free(buf);
		return rc;
	}
	if (rc == 0)
		rc = trace_fmt_check(buf, size, t->path);
	if (rc == 0)
		rc = parse_records(t, buf, (size - TRACE_HDR_SIZE) / TRACE_REC_SIZE);
	if (rc == 0)
		t->mode = BDEV_TRACE_REPLAY;
	free(buf);
	return rc;
}

static void *lock_watcher(void *arg);

/* An empty trace file asks for a recording; PATH.lock says one is under way,
 * and removing it ends the recording (docs/trace.md). */
static int start_recording(struct bdev_trace *t)
{
	char *lock = path_with(t->path, ".lock");
	int fd;

	if (!lock)
		return -ENOMEM;
	fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		int rc = -errno;

		log_warn("trace %s: cannot create %s: %s; not recording", t->path, lock,
			 strerror(-rc));
		free(lock);
		return rc;
	}
	close(fd);
	free(lock);
	t->mode = BDEV_TRACE_RECORD;
	t->watching = pthread_create(&t->watcher, NULL, lock_watcher, t) == 0;
	if (!t->watching)
		log_warn("trace %s: no lock watcher; the recording ends when the device closes",
			 t->path);
	return 0;
}

static struct bdev_trace *trace_new(const char *path)
{
	struct bdev_trace *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->path = strdup(path);
	if (!t->path) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->idle, NULL);
	pthread_cond_init(&t->watch_cv, NULL);
	t->refs = 1;
	return t;
}

int bdev_trace_open(const char *path, bool may_record, struct bdev_trace **out)
{
	struct bdev_trace *t;
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		log_warn("trace %s: not a regular file; not used", path);
		return -EINVAL;
	}
	t = trace_new(path);
	if (!t) {
		close(fd);
		return -ENOMEM;
	}
	if (st.st_size == 0)
		rc = may_record ? start_recording(t) : -EINVAL;
	else
		rc = load_trace(t, fd, st.st_size);
	close(fd);
	if (rc) {
		trace_unref(t);
		return rc;
	}
	*out = t;
	return 0;
}

enum bdev_trace_mode bdev_trace_mode(const struct bdev_trace *t)
{
	return t->mode;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static int write_trace(int fd, const struct trace_rec *recs, size_t n)
{
	size_t bytes = TRACE_HDR_SIZE + n * TRACE_REC_SIZE;
	uint8_t *buf = malloc(bytes);
	int rc;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		trace_fmt_put(buf, i, &(struct trace_fmt_rec){ .op = TRACE_OP_READ,
								.layer = recs[i].layer,
								.count = recs[i].len,
								.offset = recs[i].off });
	trace_fmt_put_header(buf, n);
	rc = write_all(fd, buf, bytes);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	free(buf);
	return rc;
}

/* The trace goes to a new file beside PATH that nobody else can have
 * planted (O_EXCL, O_NOFOLLOW), which is then renamed over PATH: a reader
 * sees the empty file or the whole trace, and a symlink at PATH is replaced,
 * never followed. */
static int dump_trace(struct bdev_trace *t)
{
	char *tmp = path_with(t->path, ".tmp");
	int fd, rc;

	if (!tmp)
		return -ENOMEM;
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
	} else {
		rc = write_trace(fd, t->recs, t->nrecs);
		close(fd);
		if (rc == 0 && rename(tmp, t->path) < 0)
			rc = -errno;
		if (rc)
			unlink(tmp);
	}
	if (rc)
		log_warn("trace %s: cannot write the trace: %s", t->path, strerror(-rc));
	free(tmp);
	return rc;
}

/* PATH.ok tells the reference's tooling that the trace is complete. */
static void mark_ok(struct bdev_trace *t)
{
	char *ok = path_with(t->path, ".ok");
	int fd;

	if (!ok)
		return;
	unlink(ok);
	fd = open(ok, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	free(ok);
}

static void finish_recording(struct bdev_trace *t)
{
	char *lock = path_with(t->path, ".lock");
	bool claimed;
	size_t n;

	/* Once record_stopped is set no reader appends, so RECS is stable for
	 * the one caller that claims the dump. */
	pthread_mutex_lock(&t->mu);
	claimed = !t->dump_claimed;
	t->dump_claimed = t->record_stopped = true;
	n = t->nrecs;
	pthread_mutex_unlock(&t->mu);
	if (claimed && dump_trace(t) == 0) {
		if (lock)
			unlink(lock);
		mark_ok(t);
		log_info("trace %s: recorded %zu reads", t->path, n);
	}
	free(lock);
	if (!claimed)
		return;
	pthread_mutex_lock(&t->mu);
	free(t->recs);
	t->recs = NULL;
	t->nrecs = t->cap = 0;
	t->recorded = n;
	pthread_mutex_unlock(&t->mu);
}

int bdev_trace_poll(struct bdev_trace *t)
{
	char *lock;
	bool gone, claimed;

	if (t->mode != BDEV_TRACE_RECORD)
		return 0;
	pthread_mutex_lock(&t->mu);
	claimed = t->dump_claimed;
	pthread_mutex_unlock(&t->mu);
	if (claimed)
		return 0;
	lock = path_with(t->path, ".lock");
	if (!lock)
		return -ENOMEM;
	gone = access(lock, F_OK) < 0 && errno == ENOENT;
	free(lock);
	if (gone)
		finish_recording(t);
	return 0;
}

/* The reference looks for the lock file once a second; so do we, on a
 * thread of the trace's own, so its owner needs no timer. */
static void *lock_watcher(void *arg)
{
	struct bdev_trace *t = arg;
	struct timespec ts;
	bool done = false;

	pthread_mutex_lock(&t->mu);
	while (!t->watch_stop && !done) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += TRACE_LOCK_POLL_SEC;
		pthread_cond_timedwait(&t->watch_cv, &t->mu, &ts);
		if (t->watch_stop)
			break;
		pthread_mutex_unlock(&t->mu);
		bdev_trace_poll(t);
		pthread_mutex_lock(&t->mu);
		done = t->dump_claimed;
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

static void stop_watcher(struct bdev_trace *t)
{
	if (!t->watching)
		return;
	pthread_mutex_lock(&t->mu);
	t->watch_stop = true;
	pthread_cond_signal(&t->watch_cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->watcher, NULL);
	t->watching = false;
}







void bdev_trace_stats(struct bdev_trace *t, struct bdev_trace_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->mode = t->mode;
	if (t->mode == BDEV_TRACE_RECORD) {
		pthread_mutex_lock(&t->mu);
		s->state = t->dump_claimed ? "recorded" : "recording";
		s->records_done = s->records_total = t->dump_claimed ? t->recorded : t->nrecs;
		pthread_mutex_unlock(&t->mu);
		return;
	}
	s->records_done = atomic_load(&t->done_records);
	s->records_total = t->total_records;
	s->bytes = atomic_load(&t->bytes);
	s->errors = atomic_load(&t->errors);
	if (t->ignored)
		s->state = "ignored";
	else if (!t->lead_started)
		s->state = "loaded";
	else if (atomic_load(&t->resolving))
		s->state = "resolving";
	else if (atomic_load(&t->running))
		s->state = atomic_load(&t->stop) ? "stopping" : "replaying";
	else
		s->state = atomic_load(&t->stop) ? "stopped" : "done";
}

void bdev_trace_close(struct bdev_trace *t)
{
	if (!t)
		return;
	trace_replay_join(t);
	stop_watcher(t);
	if (t->mode == BDEV_TRACE_RECORD)
		finish_recording(t);
	trace_unref(t);
}

void bdev_trace_discard(struct bdev_trace *t)
{
	char *lock;

	if (!t)
		return;
	if (t->mode == BDEV_TRACE_RECORD) {
		pthread_mutex_lock(&t->mu);
		t->dump_claimed = t->record_stopped = true;
		pthread_mutex_unlock(&t->mu);
		lock = path_with(t->path, ".lock");
		if (lock)
			unlink(lock);
		free(lock);
	}
	bdev_trace_close(t);
}
