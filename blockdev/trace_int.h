/*
 * trace internals shared by trace.c (open, record, close), trace_replay.c
 * and trace_list.c; the file's bytes are trace_fmt.c's (bdev_int.h).
 */
#ifndef OBD_TRACE_INT_H
#define OBD_TRACE_INT_H

#include "bdev_int.h"

#include <pthread.h>
#include <stdatomic.h>

/* The reference replays each record into a 1 MiB buffer, so no record we
 * write may be longer (docs/trace.md). */
#define TRACE_REC_MAX_COUNT (1u << 20)
/* 1 Mi records (24 MiB on disk) is far more than a start reads; past it
 * recording stops with a warning rather than growing without bound. */
#define TRACE_MAX_RECORDS (1u << 20)
/* Adjacent records are replayed as one read of up to this many bytes, so
 * a sequential run costs one ranged GET per fill of the cache, not one per
 * record.  Each replay thread holds one such buffer. */
#define TRACE_RUN_MAX (4u << 20)
#define TRACE_THREADS_MAX 64
#define TRACE_LOCK_POLL_SEC 1

struct trace_rec {
	uint32_t layer;
	uint64_t off, len;
	uint32_t nrecs; /* records merged into this run */
};

typedef int (*trace_resolve_fn)(struct bdev_trace *t, void *arg);

struct bdev_trace {
	char *path;
	enum bdev_trace_mode mode;
	pthread_mutex_t mu;
	pthread_cond_t idle;
	unsigned refs;          /* the owner and every wrapper file */
	bool closed;            /* the owner let go */
	struct trace_rec *recs; /* record: as read; replay: runs */
	size_t nrecs, cap;
	uint64_t total_records; /* replay: records in the file */
	bool record_stopped;    /* no more records are taken */
	bool dump_claimed;      /* one caller writes the trace */
	size_t recorded;        /* records written */
	pthread_t watcher;      /* record: looks for PATH.lock going away */
	bool watching, watch_stop;
	pthread_cond_t watch_cv;
	bool ignored;
	struct bdev_file *layers[BDEV_MAX_LAYERS]; /* replay: the views, by layer index */
	unsigned layer_busy[BDEV_MAX_LAYERS];      /* replay reads in progress per layer */
	unsigned nlayers;                           /* views wrapped */
	char **paths;       /* file list: the paths, in the list's order */
	bool *recursive;    /* file list: a directory's files */
	size_t npaths;
	trace_resolve_fn resolve;
	void *resolve_arg;
	unsigned concurrency;
	pthread_t lead;     /* replay: resolves a file list, then reads with the helpers */
	bool lead_started;
	atomic_bool resolving;
	atomic_size_t next_run;
	atomic_bool stop;
	atomic_uint_fast64_t done_records, bytes;
	atomic_bool running;
	atomic_uint errors;
};

struct trace_file {
	struct bdev_file f;
	struct bdev_file *inner;
	struct bdev_trace *t;
	uint32_t layer;
};

/* trace.c */
int trace_recs_push(struct bdev_trace *t, struct trace_rec r);

/* trace_replay.c: add a read to the runs to replay, merged with the run
 * before it when it continues it. */
int trace_add_run(struct bdev_trace *t, uint32_t layer, uint64_t off, uint64_t len);
void trace_replay_join(struct bdev_trace *t);

/* trace_list.c: parse a file list (docs/trace.md) into T's paths. */
int trace_list_parse(struct bdev_trace *t, const char *buf, size_t size);
void trace_list_free(struct bdev_trace *t);

#endif
