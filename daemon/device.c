/*
 * device: the table of spool devices and the life of each one.
 *
 * A device is OPENING (a worker opens its image), SERVING, FAILED (its
 * reason went to resultFile) or CLOSING (its target is being removed).
 * Spool events that arrive while a device is busy are remembered in
 * `next` and acted on once it is idle, so an image is never opened twice
 * at once (a writable upper must have a single writer).  One bad spec only
 * ever affects its own entry.
 */
#include "daemon_int.h"
#include "blockdev/bdev.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REASON_LEN 1024

struct ddev *ddev_find(struct daemon *d, const char *name)
{
	for (struct ddev *v = d->devs; v; v = v->link)
		if (!strcmp(v->name, name))
			return v;
	return NULL;
}

static struct ddev *ddev_new(struct daemon *d, const char *name, const char *fname)
{
	struct ddev *v = calloc(1, sizeof(*v));

	if (!v || !(v->name = strdup(name)) || !(v->fname = strdup(fname))) {
		if (v)
			free(v->name);
		free(v);
		return NULL;
	}
	v->d = d;
	v->state = DDEV_FAILED;
	v->link = d->devs;
	d->devs = v;
	return v;
}

static void ddev_free(struct ddev *v)
{
	struct ddev **pp;

	for (pp = &v->d->devs; *pp; pp = &(*pp)->link)
		if (*pp == v) {
			*pp = v->link;
			break;
		}
	free(v->name);
	free(v->fname);
	free(v->iqn);
	free(v->text);
	free(v->reason);
	spec_free(v->spec);
	free(v);
}

static void set_text(struct ddev *v, char *text, size_t len)
{
	free(v->text);
	v->text = text;
	v->len = len;
}

/* Record the outcome: resultFile and the log get the same line. */
static void report(struct ddev *v, const char *result_file, const char *reason)
{
	int rc;

	if (reason)
		log_error("%s: failed:%s", v->name, reason);
	else
		log_info("%s: success (target %s)", v->name, v->iqn);
	if (!result_file)
		return;
	rc = spec_write_result(result_file, reason);
	if (rc < 0)
		log_error("%s: cannot write resultFile %s: %s", v->name, result_file,
			  strerror(-rc));
}

static void fail(struct ddev *v, const char *result_file, const char *reason)
{
	free(v->reason);
	v->reason = strdup(reason);
	v->state = DDEV_FAILED;
	report(v, result_file, reason);
}

static void run_next(struct ddev *v);

static void closed_idle(void *arg, int rc)
{
	struct ddev *v = arg;
	struct daemon *d = v->d;

	v->state = DDEV_FAILED;
	run_next(v); /* may free V */
	daemon_progress(d);
}

/* The device stays busy (closing) until its image is closed on a job
 * thread, so a reopen of the same layers waits for it (image.c,
 * image_close_async). */
static void close_then_idle(struct ddev *v, struct image *img)
{
	v->state = DDEV_CLOSING;
	image_close_async(v->d->runner, img, closed_idle, v);
}

static void open_done(void *arg, struct image *img, int rc, const char *err)
{
	struct ddev *v = arg;
	struct daemon *d = v->d;
	char reason[REASON_LEN];

	if (d->stopping || v->next != DDEV_NEXT_NONE) {
		/* Superseded while it opened: drop the image unannounced. */
		if (d->stopping)
			v->next = DDEV_NEXT_REMOVE;
		close_then_idle(v, img);
		return;
	}
	if (rc < 0) {
		fail(v, v->spec->result_file, err);
		daemon_progress(d);
		return;
	}
	v->img = img;
	rc = target_start(v, reason, sizeof(reason));
	if (rc < 0) {
		v->img = NULL;
		fail(v, v->spec->result_file, reason);
		close_then_idle(v, img);
		return;
	}
	v->state = DDEV_SERVING;
	free(v->reason);
	v->reason = NULL;
	log_info("%s: serving %s: %d lower layer%s, %s, %llu bytes", v->name, v->iqn,
		 img->nlayers, img->nlayers == 1 ? "" : "s",
		 bdev_writable(img->bdev) ? "writable" : "read-only",
		 (unsigned long long)bdev_size(img->bdev));
	report(v, v->spec->result_file, NULL);
	image_start_downloads(img, v->spec, d->reg);
	daemon_progress(d);
}

static void stopped(struct ddev *v)
{
	struct daemon *d = v->d;

	v->state = DDEV_FAILED;
	run_next(v); /* may free V */
	daemon_progress(d);
}

/* The device is idle (FAILED): do what came in meanwhile. */
static void run_next(struct ddev *v)
{
	enum ddev_next next = v->next;

	v->next = DDEV_NEXT_NONE;
	if (next == DDEV_NEXT_REMOVE) {
		ddev_free(v);
	} else if (next == DDEV_NEXT_RELOAD) {
		char *fname = strdup(v->fname);

		if (fname) {
			ddev_spec_event(v->d, fname);
			free(fname);
		}
	}
}

static void ddev_remove(struct ddev *v)
{
	switch (v->state) {
	case DDEV_OPENING:
	case DDEV_CLOSING:
		v->next = DDEV_NEXT_REMOVE;
		break;
	case DDEV_SERVING:
		v->next = DDEV_NEXT_REMOVE;
		v->state = DDEV_CLOSING;
		log_info("%s: %s, removing target %s", v->name,
			 v->d->stopping ? "shutting down" : "spec removed", v->iqn);
		target_stop(v, stopped);
		break;
	case DDEV_FAILED:
		ddev_free(v);
		break;
	}
}

static bool iqn_taken(struct daemon *d, const struct ddev *self, const char *iqn,
		      const char **by)
{
	for (struct ddev *v = d->devs; v; v = v->link)
		if (v != self && v->iqn && v->state != DDEV_FAILED && !strcmp(v->iqn, iqn)) {
			*by = v->fname;
			return true;
		}
	return false;
}

/*
 * A serving device whose spec is rewritten with an invalid one (say, half
 * written in place) keeps serving the previous spec: taking it down would
 * only cut its sessions for nothing.  The reason still goes to resultFile.
 */
static bool spec_valid(struct daemon *d, struct ddev *v, const char *text, size_t len)
{
	char err[REASON_LEN];
	struct spec *s = NULL;
	char *rf;

	if (spec_parse(text, len, d->cfg, v->name, &s, err, sizeof(err)) == 0) {
		spec_free(s);
		return true;
	}
	rf = spec_peek_result_file(text, len);
	free(v->reason);
	v->reason = strdup(err);
	report(v, rf ? rf : v->spec->result_file, err);
	log_warn("%s: the new spec is invalid; still serving the previous one", v->name);
	free(rf);
	return false;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* Do A and B describe the same stack (so only CHAP or the ACL differ)? */
static bool same_image(const struct spec *a, const struct spec *b)
{
	if (a->nlowers != b->nlowers || !str_eq(a->repo_blob_url, b->repo_blob_url) ||
	    !str_eq(a->upper_data, b->upper_data) || !str_eq(a->upper_index, b->upper_index) ||
	    !str_eq(a->result_file, b->result_file) ||
	    a->download.enable != b->download.enable || a->download.delay != b->download.delay ||
	    a->download.delay_extra != b->download.delay_extra ||
	    a->download.max_mbps != b->download.max_mbps ||
	    a->download.try_cnt != b->download.try_cnt ||
	    a->download.block_size != b->download.block_size)
		return false;
	for (int i = 0; i < a->nlowers; i++) {
		const struct spec_lower *x = &a->lowers[i], *y = &b->lowers[i];

		if (!str_eq(x->file, y->file) || !str_eq(x->digest, y->digest) ||
		    !str_eq(x->dir, y->dir) || x->size != y->size)
			return false;
	}
	return true;
}

/*
 * A serving device whose new spec changes only `chap` or `acl` keeps its
 * sessions: the target's credentials are swapped in place.  True when done.
 */
static bool auth_only_change(struct daemon *d, struct ddev *v, const char *text, size_t len)
{
	char err[REASON_LEN];
	struct spec *s = NULL;
	int rc;

	if (spec_parse(text, len, d->cfg, v->name, &s, err, sizeof(err)) < 0)
		return false;
	if (!same_image(v->spec, s)) {
		spec_free(s);
		return false;
	}
	rc = target_set_auth(v, s);
	if (rc < 0) {
		log_warn("%s: cannot update CHAP/ACL in place (%s), re-opening", v->name,
			 strerror(-rc));
		spec_free(s);
		return false;
	}
	log_info("%s: CHAP/ACL updated in place", v->name);
	spec_free(v->spec);
	v->spec = s;
	free(v->reason);
	v->reason = NULL;
	report(v, s->result_file, NULL);
	return true;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!strcmp(a, b))
		return true;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* A writable layer has one writer: a second spec naming it would corrupt it. */
static bool upper_taken(struct daemon *d, const struct ddev *self, const struct spec *s,
			const char **by)
{
	if (!s->upper_data)
		return false;
	for (struct ddev *v = d->devs; v; v = v->link)
		if (v != self && v->spec && v->state != DDEV_FAILED && v->spec->upper_data &&
		    (same_file(v->spec->upper_data, s->upper_data) ||
		     same_file(v->spec->upper_index, s->upper_index))) {
			*by = v->fname;
			return true;
		}
	return false;
}

void ddev_spec_event(struct daemon *d, const char *fname)
{
	size_t fl = strlen(fname), sl = strlen(SPEC_SUFFIX);
	char name[256], err[REASON_LEN];
	struct spec *s = NULL;
	char *text = NULL, *rf;
	const char *other;
	struct image_env env = { 0 };
	struct ddev *v;
	size_t len = 0;
	int rc;

	if (d->stopping || fl <= sl || fl - sl >= sizeof(name))
		return;
	memcpy(name, fname, fl - sl);
	name[fl - sl] = 0;
	v = ddev_find(d, name);
	rc = spec_read(d->cfg->spool_dir, fname, &text, &len, err, sizeof(err));
	if (rc == -ENOENT) {
		if (v)
			ddev_remove(v);
		return;
	}
	if (v && (v->state == DDEV_OPENING || v->state == DDEV_CLOSING)) {
		/* An unchanged spec (a re-scan) lets the running open finish. */
		if (!(v->state == DDEV_OPENING && rc == 0 && len == v->len &&
		      !memcmp(text, v->text, len)))
			v->next = DDEV_NEXT_RELOAD;
		free(text);
		return;
	}
	if (v && v->state == DDEV_SERVING && rc == 0 && len == v->len &&
	    !memcmp(text, v->text, len)) {
		/* Same bytes: keep serving, but answer again (the writer may
		 * have removed resultFile to wait for a fresh one). */
		free(text);
		free(v->reason);
		v->reason = NULL;
		if (v->spec->result_file && spec_write_result(v->spec->result_file, NULL) < 0)
			log_error("%s: cannot write resultFile %s", v->name, v->spec->result_file);
		return;
	}
	if (v && v->state == DDEV_SERVING && rc == 0 && !spec_valid(d, v, text, len)) {
		free(text);
		return;
	}
	if (!v && !(v = ddev_new(d, name, fname))) {
		free(text);
		return;
	}
	if (v->state == DDEV_SERVING && rc == 0 && auth_only_change(d, v, text, len)) {
		set_text(v, text, len);
		return;
	}
	if (v->state == DDEV_SERVING) {
		/* Changed spec: take the old target down, then open the new one. */
		log_info("%s: spec changed, re-opening", name);
		free(text);
		v->next = DDEV_NEXT_RELOAD;
		v->state = DDEV_CLOSING;
		target_stop(v, stopped);
		return;
	}
	spec_free(v->spec);
	v->spec = NULL;
	free(v->iqn);
	v->iqn = NULL;
	if (rc < 0) {
		/* Nothing behind a refused symlink was read: no resultFile. */
		set_text(v, NULL, 0);
		fail(v, NULL, err);
		return;
	}
	set_text(v, text, len);
	rc = spec_parse(text, len, d->cfg, name, &s, err, sizeof(err));
	if (rc < 0) {
		rf = spec_peek_result_file(text, len);
		fail(v, rf, err);
		free(rf);
		return;
	}
	v->spec = s;
	v->iqn = strdup(s->iqn);
	if (iqn_taken(d, v, s->iqn, &other)) {
		snprintf(err, sizeof(err), "duplicated target name %s (already used by %s)", s->iqn,
			 other);
		free(v->iqn);
		v->iqn = NULL;
		fail(v, s->result_file, err);
		return;
	}
	if (upper_taken(d, v, s, &other)) {
		snprintf(err, sizeof(err), "upper layer %s is already in use by %s", s->upper_data,
			 other);
		fail(v, s->result_file, err);
		return;
	}
	env.io_engine = d->cfg->io_engine;
	env.reg = d->reg;
	v->state = DDEV_OPENING;
	log_info("%s: opening %d lower layer%s%s", name, s->nlowers, s->nlowers == 1 ? "" : "s",
		 s->upper_data ? " and a writable upper" : "");
	rc = image_open_async(d->runner, s, &env, open_done, v);
	if (rc < 0) {
		snprintf(err, sizeof(err), "cannot start the open job: %s", strerror(-rc));
		fail(v, s->result_file, err);
	}
}

void ddev_rescan(struct daemon *d)
{
	struct dirent *e;
	struct ddev *v, *nx;
	struct stat st;
	char path[4096];
	DIR *dir;

	/* Devices whose spec is gone first, then every spec present. */
	for (v = d->devs; v; v = nx) {
		nx = v->link;
		snprintf(path, sizeof(path), "%s/%s", d->cfg->spool_dir, v->fname);
		if (lstat(path, &st) < 0 && errno == ENOENT)
			ddev_remove(v);
	}
	dir = opendir(d->cfg->spool_dir);
	if (!dir) {
		log_error("spool %s: %s", d->cfg->spool_dir, strerror(errno));
		return;
	}
	while ((e = readdir(dir)))
		if (spool_is_spec(e->d_name))
			ddev_spec_event(d, e->d_name);
	closedir(dir);
}

void ddev_stop_all(struct daemon *d)
{
	struct ddev *v, *nx;

	for (v = d->devs; v; v = nx) {
		nx = v->link;
		ddev_remove(v);
	}
}

bool ddev_all_idle(struct daemon *d)
{
	return d->devs == NULL;
}
