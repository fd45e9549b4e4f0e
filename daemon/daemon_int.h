/*
 * daemon internals shared between the files of daemon/: JSON field
 * helpers, the device table, image opening, targets, spool and control.
 */
#ifndef OBD_DAEMON_INT_H
#define OBD_DAEMON_INT_H

#include "daemon.h"
#include "common/common.h"

#include <ev.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>

struct bdev;
struct bdev_file;
struct bdev_pool;
struct bdev_trace;
struct scsi_dev;
struct iscsi_server;
struct iscsi_target;
struct reg_ctx;

/*
 * JSON field readers.  PATH names the field in messages ("lowers[2].size").
 * Each returns 0, or -EINVAL with ERR = "<path>: <what is wrong>".
 */
int dj_string(json_t *v, const char *path, char **out, char *err, size_t errlen);
int dj_uint(json_t *v, const char *path, uint64_t min, uint64_t max, uint64_t *out,
	    char *err, size_t errlen);
int dj_bool(json_t *v, const char *path, bool *out, char *err, size_t errlen);
int dj_strarray(json_t *v, const char *path, char ***out, int *n, char *err, size_t errlen);
void dj_strarray_free(char **a, int n);
int dj_strarray_copy(char ***dst, int *ndst, char *const *src, int n);
/* "line L column C: text" of a jansson parse error. */
void dj_parse_error(const json_error_t *je, char *err, size_t errlen);

/* auth.c: CHAP blocks (discoveryAuth, a spec's chap). */
int cfg_chap_parse(json_t *v, const char *path, struct cfg_chap *out, char *err,
		   size_t errlen);
int cfg_chap_copy(struct cfg_chap *dst, const struct cfg_chap *src);
void cfg_chap_free(struct cfg_chap *c);
/* Read a secret file: refused unless owned by root (or our euid), not
 * readable by others and not writable by group or others. */
int cfg_secret_file(const char *file, const char *path, char **out, char *err,
		    size_t errlen);

/* config.c: what SIGHUP does when a config key changes. */
enum cfg_reload {
	CFG_RELOAD_UNSET,   /* no row may have this: test_config checks */
	CFG_RELOAD_LIVE,    /* applied at once */
	CFG_RELOAD_RESTART, /* logged; takes effect on the next start */
	CFG_RELOAD_GROUP,   /* a reference group: its members are flat keys */
};

/*
 * SIGHUP: every key that differs between the running config O and the new
 * one N is either moved into O at once (LIVE; O's old value goes to N) or
 * logged as taking effect on restart.  Returns how many were logged.
 */
int cfg_reload(struct cfg *o, struct cfg *n);
/* Row I of the config table: its name and policy; NULL past the end. */
const char *cfg_key_reload(size_t i, enum cfg_reload *policy);

/* config.c: the download block, starting from *OUT as defaults. */
int cfg_download_parse(json_t *v, const char *path, struct cfg_download *out, char *err,
		       size_t errlen);

/* spec.c */
char *spec_iqn(const char *prefix, const char *name);

/* image.c: an opened device stack. */
struct image_layer {
	char *desc;              /* local path or remote URL */
	bool remote;
	struct bdev_file *raw;   /* borrowed: owned by the stack; remote only */
};

struct image {
	struct bdev *bdev;
	struct image_layer *layers; /* lowers bottom first */
	int nlayers;
	char *upper_desc;           /* "data,index" or NULL */
	struct bdev_trace *trace;   /* docs/trace.md; NULL = none */
	struct bdev_file *trace_view; /* a file list's view of the device */
	char *name;                 /* the spec's, for logs */
};

struct image_env {
	int io_engine;
	struct reg_ctx *reg; /* NULL: remote lowers fail */
	bool read_only;      /* overlaybd-cat: the upper opened read-only, unlocked */
};

/*
 * Open SPEC's stack synchronously (worker threads and tools only: remote
 * lowers block).  On failure ERR gets the resultFile reason.
 */
int image_open(const struct spec *s, const struct image_env *env, struct image **out,
	       char *err, size_t errlen);
/* Queue the background downloads of SPEC's remote lowers (loop thread). */
void image_start_downloads(struct image *img, const struct spec *s, struct reg_ctx *reg);
/* Flush a writable upper and close everything. */
int image_close(struct image *img);

struct image_job;
typedef void (*image_done_fn)(void *arg, struct image *img, int rc, const char *err);

/* Asynchronous open: a worker thread runs image_open(); DONE runs on the
 * loop thread.  Jobs keep a copy of what they need. */
struct image_runner;
int image_runner_create(struct ev_loop *loop, struct image_runner **out);
void image_runner_destroy(struct image_runner *r); /* joins every job */
int image_open_async(struct image_runner *r, struct spec *s, const struct image_env *env,
		     image_done_fn done, void *arg);
int image_runner_pending(const struct image_runner *r);
/* Close IMG on a job thread (closing may wait for transfers the loop
 * drives); DONE runs on the loop thread with image_close's result. */
typedef void (*image_closed_fn)(void *arg, int rc);
void image_close_async(struct image_runner *r, struct image *img, image_closed_fn done,
		       void *arg);

/* One device of the spool. */
enum ddev_state {
	DDEV_OPENING,  /* an image job runs */
	DDEV_SERVING,
	DDEV_FAILED,
	DDEV_CLOSING,  /* target being removed */
};

enum ddev_next {
	DDEV_NEXT_NONE,
	DDEV_NEXT_RELOAD, /* the spec changed: open again when idle */
	DDEV_NEXT_REMOVE, /* the spec went away: forget when idle */
};

struct daemon;

struct ddev {
	struct daemon *d;
	char *name;      /* NAME */
	char *fname;     /* NAME.json */
	char *iqn;
	char *text;      /* spec bytes being served, to spot real changes */
	size_t len;
	struct spec *spec;
	enum ddev_state state;
	enum ddev_next next;
	char *reason;    /* FAILED: why */
	struct image *img;
	struct scsi_dev *sdev;
	struct iscsi_target *tgt;
	struct ddev *link;
};

struct daemon {
	struct ev_loop *loop;
	char *config_path;
	struct cfg *cfg;
	struct bdev_pool *pool;
	ev_io pool_io;
	struct iscsi_server *srv;
	struct reg_ctx *reg;
	struct image_runner *runner;
	struct spool *spool;
	struct control *ctl;
	struct ddev *devs;
	ev_signal sig_term, sig_int, sig_hup;
	ev_timer stop_timer;
	double stop_after;  /* seconds SIGTERM may take */
	bool timed_out;     /* stop_timer fired: leave without teardown */
	bool listening;
	bool stopping;
	bool loop_done;     /* loop_stop() was called: run_loop returns */
	bool server_down;
	int exit_code;
};

/* device.c: the device table and its state machine. */
void ddev_spec_event(struct daemon *d, const char *fname);
void ddev_rescan(struct daemon *d);
struct ddev *ddev_find(struct daemon *d, const char *name);
void ddev_stop_all(struct daemon *d);
bool ddev_all_idle(struct daemon *d);
/* Called when a device reached an idle state, to let shutdown proceed. */
void daemon_progress(struct daemon *d);

/* target.c */
int target_start(struct ddev *dev, char *err, size_t errlen);
void target_stop(struct ddev *dev, void (*done)(struct ddev *dev));
/* Swap CHAP and ACL of a serving target for those of S. */
int target_set_auth(struct ddev *dev, const struct spec *s);
uint64_t target_naa(const char *iqn);
void target_serial(const char *iqn, char *buf, size_t len);

/* spool.c: inotify on the spool directory, debounced per file. */
struct spool;
int spool_open(struct daemon *d, const char *dir, struct spool **out);
void spool_close(struct spool *s);
/* True for names the spool acts on: NAME.json, not dot files, not *.tmp. */
bool spool_is_spec(const char *fname);

/* control.c */
struct control;
int control_open(struct daemon *d, const char *path, struct control **out);
void control_close(struct control *c);
/* The `status` text. */
void control_status(struct daemon *d, FILE *out);

#endif
