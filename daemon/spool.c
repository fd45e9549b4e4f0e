/*
 * spool: watch the spool directory with inotify and turn file events into
 * device events, one per NAME.json: renames at once, other writes debounced.
 *
 * Rename semantics: a spec is acted on when a writer closes it
 * (IN_CLOSE_WRITE) or renames it in (IN_MOVED_TO), and dropped when it is
 * deleted or renamed away.  Writers are expected to write `.NAME.json.tmp`
 * and rename it to NAME.json; dot files and *.tmp are never read, so a
 * half-written temporary is never seen.  A spec rewritten in place is read
 * when the writer closes it; a writer that closes half-way gets a
 * failed:<reason> until its final close.  A new symlink shows up as
 * IN_CREATE only, so that event counts for symlinks.
 */
#include "daemon_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* Events for one name closer together than this are one event. */
#define DEBOUNCE_SEC 0.05

struct pending {
	struct spool *sp;
	ev_timer timer;
	char *fname;
	struct pending *next;
};

struct spool {
	struct daemon *d;
	char *dir;
	int fd;
	ev_io io;
	struct pending *pend;
};

bool spool_is_spec(const char *fname)
{
	size_t n = strlen(fname), sl = strlen(SPEC_SUFFIX);

	if (fname[0] == '.' || n <= sl)
		return false;
	return !strcmp(fname + n - sl, SPEC_SUFFIX);
}

static void pending_free(struct spool *sp, struct pending *p)
{
	struct pending **pp;

	for (pp = &sp->pend; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	ev_timer_stop(sp->d->loop, &p->timer);
	free(p->fname);
	free(p);
}

static void pending_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pending *p = w->data;
	struct spool *sp = p->sp;
	char *fname = p->fname;

	p->fname = NULL;
	pending_free(sp, p);
	ddev_spec_event(sp->d, fname);
	free(fname);
}

static struct pending *pending_find(struct spool *sp, const char *fname)
{
	struct pending *p;

	for (p = sp->pend; p; p = p->next)
		if (!strcmp(p->fname, fname))
			break;
	return p;
}

static void debounce(struct spool *sp, const char *fname)
{
	struct pending *p = pending_find(sp, fname);

	if (p) {
		ev_timer_stop(sp->d->loop, &p->timer);
		ev_timer_set(&p->timer, DEBOUNCE_SEC, 0);
		ev_timer_start(sp->d->loop, &p->timer);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->fname = strdup(fname))) {
		free(p);
		log_error("spool: out of memory, %s ignored", fname);
		return;
	}
	p->sp = sp;
	ev_timer_init(&p->timer, pending_fire, DEBOUNCE_SEC, 0);
	p->timer.data = p;
	ev_timer_start(sp->d->loop, &p->timer);
	p->next = sp->pend;
	sp->pend = p;
}

/* A rename into the spool is atomic, and the way writers are asked to
 * publish (above): the spec is whole, so there is nothing to wait for and
 * a device comes up one debounce sooner.  Whatever was pending for the
 * name is settled by it too. */
static void settle_now(struct spool *sp, const char *fname)
{
	struct pending *p = pending_find(sp, fname);

	if (p)
		pending_free(sp, p);
	ddev_spec_event(sp->d, fname);
}

static bool is_symlink(struct spool *sp, const char *fname)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", sp->dir, fname);
	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static void spool_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct spool *sp = w->data;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t n;

	for (;;) {
		n = read(sp->fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_error("spool: inotify read: %s", strerror(errno));
			return;
		}
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				log_warn("spool: inotify queue overflow, re-scanning %s", sp->dir);
				ddev_rescan(sp->d);
				continue;
			}
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				log_error("spool: directory %s was removed or moved; specs are no longer watched",
					  sp->dir);
				continue;
			}
			if (!ev->len || !spool_is_spec(ev->name))
				continue;
			if ((ev->mask & IN_CREATE) && !is_symlink(sp, ev->name))
				continue;
			log_debug("spool: %s event 0x%x", ev->name, ev->mask);
			if (ev->mask & IN_MOVED_TO)
				settle_now(sp, ev->name);
			else
				debounce(sp, ev->name);
		}
	}
}

int spool_open(struct daemon *d, const char *dir, struct spool **out)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	int rc;

	if (!sp || !(sp->dir = strdup(dir))) {
		free(sp);
		return -ENOMEM;
	}
	sp->d = d;
	sp->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (sp->fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (inotify_add_watch(sp->fd, dir,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
			      IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) < 0) {
		rc = -errno;
		close(sp->fd);
		goto fail;
	}
	ev_io_init(&sp->io, spool_cb, sp->fd, EV_READ);
	sp->io.data = sp;
	ev_io_start(d->loop, &sp->io);
	*out = sp;
	return 0;
fail:
	free(sp->dir);
	free(sp);
	return rc;
}

void spool_close(struct spool *sp)
{
	if (!sp)
		return;
	while (sp->pend)
		pending_free(sp, sp->pend);
	ev_io_stop(sp->d->loop, &sp->io);
	close(sp->fd);
	free(sp->dir);
	free(sp);
}
