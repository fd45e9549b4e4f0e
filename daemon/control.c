/*
 * control: the unix control socket and `overlaybd-iscsid status`.
 *
 * Protocol: the client sends one line ("status"), the daemon answers with
 * text and closes.  The answer is built on the loop thread from the live
 * tables, so it is consistent; the socket is non-blocking and a client
 * that does not read is dropped after a few seconds.
 */
#include "daemon_int.h"
#include "blockdev/bdev.h"
#include "iscsi/iscsi.h"
#include "registry/registry.h"
#include "scsi/scsi.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CLIENT_TIMEOUT 5.0
#define REQ_MAX 256
/* README: the control socket is mode 0660. */
#define CONTROL_MODE 0660

struct control {
	struct daemon *d;
	char *path;
	int fd;
	ev_io io;
};

struct client {
	struct control *c;
	int fd;
	ev_io io;
	ev_timer timer;
	char req[REQ_MAX];
	size_t reqlen;
	char *out;
	size_t outlen, outoff;
};

static const char *state_name(enum ddev_state s)
{
	switch (s) {
	case DDEV_OPENING: return "opening";
	case DDEV_SERVING: return "serving";
	case DDEV_FAILED: return "failed";
	case DDEV_CLOSING: return "closing";
	}
	return "?";
}

struct session_walk {
	FILE *out;
	const char *iqn;
	int count;
};

static void session_line(void *arg, const struct iscsi_session_info *si)
{
	struct session_walk *w = arg;

	bool discovery = !si->target || !strcmp(si->target, "(discovery)");

	if (w->iqn ? discovery || strcmp(si->target, w->iqn) : !discovery)
		return;
	w->count++;
	fprintf(w->out, "    session %s isid 0x%012llx tsih %u peer %s commands %llu inflight %u\n",
		si->initiator ? si->initiator : "?", (unsigned long long)si->isid, si->tsih,
		si->peer, (unsigned long long)si->cmds_total, si->cmds_inflight);
}

/* docs/trace.md: the prefetch trace's state and progress. */
static void trace_line(FILE *out, const struct spec *s, struct bdev_trace *t)
{
	struct bdev_trace_stats st;

	if (!t)
		return;
	bdev_trace_stats(t, &st);
	fprintf(out, "  prefetch %s %s records %llu/%llu bytes %llu errors %u\n", st.state,
		s && s->trace_path ? s->trace_path : "-", (unsigned long long)st.records_done,
		(unsigned long long)st.records_total, (unsigned long long)st.bytes, st.errors);
}

static void device_status(struct daemon *d, struct ddev *v, FILE *out)
{
	struct session_walk w = { .out = out, .iqn = v->iqn };
	struct scsi_dev_stats st;
	struct image *img = v->img;

	fprintf(out, "target %s\n", v->iqn ? v->iqn : "-");
	fprintf(out, "  spec %s/%s state %s\n", d->cfg->spool_dir, v->fname, state_name(v->state));
	if (v->reason)
		fprintf(out, "  result failed:%s%s\n", v->reason,
			v->state == DDEV_SERVING ? " (still serving the previous spec)" : "");
	if (!img || !v->sdev)
		return;
	fprintf(out, "  device %llu bytes, %s, %d layer%s, index %zu bytes\n",
		(unsigned long long)bdev_size(img->bdev),
		bdev_writable(img->bdev) ? "writable" : "read-only", bdev_nlayers(img->bdev),
		bdev_nlayers(img->bdev) == 1 ? "" : "s", bdev_index_bytes(img->bdev));
	for (int i = 0; i < img->nlayers; i++) {
		char desc[256] = "";

		if (img->layers[i].raw)
			reg_blob_describe(img->layers[i].raw, desc, sizeof(desc));
		fprintf(out, "  layer %d %s %s%s%s\n", i, img->layers[i].remote ? "remote" : "local",
			img->layers[i].desc ? img->layers[i].desc : "?", *desc ? " " : "", desc);
	}
	if (img->upper_desc)
		fprintf(out, "  upper %s\n", img->upper_desc);
	trace_line(out, v->spec, img->trace);
	scsi_dev_stats(v->sdev, &st);
	fprintf(out,
		"  io reads %llu (%llu bytes) writes %llu (%llu bytes) other %llu errors %llu inflight %u\n",
		(unsigned long long)st.read_ops, (unsigned long long)st.read_bytes,
		(unsigned long long)st.write_ops, (unsigned long long)st.write_bytes,
		(unsigned long long)st.other_ops, (unsigned long long)st.errors, st.inflight);
	iscsi_server_foreach_session(d->srv, session_line, &w);
	fprintf(out, "  sessions %d\n", w.count);
}

void control_status(struct daemon *d, FILE *out)
{
	struct session_walk w = { .out = out, .iqn = NULL };
	int n = 0, serving = 0;

	for (struct ddev *v = d->devs; v; v = v->link) {
		n++;
		serving += v->state == DDEV_SERVING;
	}
	fprintf(out, "overlaybd-iscsid pid %d, %s, %d device%s (%d serving), spool %s\n",
		(int)getpid(), d->stopping ? "stopping" : d->listening ? "listening" : "starting",
		n, n == 1 ? "" : "s", serving, d->cfg->spool_dir);
	for (int i = 0; i < d->cfg->nportals; i++)
		fprintf(out, "portal %s\n", d->cfg->portals[i]);
	for (struct ddev *v = d->devs; v; v = v->link)
		device_status(d, v, out);
	/* Discovery sessions belong to no target. */
	if (d->srv) {
		fprintf(out, "discovery\n");
		iscsi_server_foreach_session(d->srv, session_line, &w);
		fprintf(out, "  sessions %d\n", w.count);
	}
}

static void client_free(struct client *cl)
{
	struct ev_loop *loop = cl->c->d->loop;

	ev_io_stop(loop, &cl->io);
	ev_timer_stop(loop, &cl->timer);
	close(cl->fd);
	free(cl->out);
	free(cl);
}

static void client_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *cl = w->data;

	while (cl->outoff < cl->outlen) {
		ssize_t n = write(cl->fd, cl->out + cl->outoff, cl->outlen - cl->outoff);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			break;
		}
		cl->outoff += n;
	}
	client_free(cl);
}

static void client_answer(struct client *cl)
{
	struct ev_loop *loop = cl->c->d->loop;
	FILE *f = open_memstream(&cl->out, &cl->outlen);

	if (!f) {
		client_free(cl);
		return;
	}
	cl->req[strcspn(cl->req, "\r\n")] = 0;
	if (!strcmp(cl->req, "status"))
		control_status(cl->c->d, f);
	else
		fprintf(f, "error: unknown command \"%.64s\" (try: status)\n", cl->req);
	fclose(f);
	ev_io_stop(loop, &cl->io);
	ev_io_init(&cl->io, client_write, cl->fd, EV_WRITE);
	cl->io.data = cl;
	ev_io_start(loop, &cl->io);
}

static void client_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *cl = w->data;
	ssize_t n = read(cl->fd, cl->req + cl->reqlen, sizeof(cl->req) - 1 - cl->reqlen);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 && cl->reqlen == 0) {
		client_free(cl);
		return;
	}
	if (n > 0)
		cl->reqlen += n;
	cl->req[cl->reqlen] = 0;
	if (n == 0 || strchr(cl->req, '\n') || cl->reqlen == sizeof(cl->req) - 1)
		client_answer(cl);
}

static void client_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	client_free(w->data);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control *c = w->data;
	struct client *cl;
	int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		close(fd);
		return;
	}
	cl->c = c;
	cl->fd = fd;
	ev_io_init(&cl->io, client_read, fd, EV_READ);
	cl->io.data = cl;
	ev_io_start(loop, &cl->io);
	ev_timer_init(&cl->timer, client_timeout, CLIENT_TIMEOUT, 0);
	cl->timer.data = cl;
	ev_timer_start(loop, &cl->timer);
}

static int mkdir_parent(const char *path)
{
	char *dup = strdup(path), *dir;
	int rc = 0;

	if (!dup)
		return -ENOMEM;
	dir = dirname(dup);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		rc = -errno;
	free(dup);
	return rc;
}

/* A socket file left by a killed daemon goes; anything else at PATH (a
 * file, a symlink) is not ours to delete, and start-up stops. */
static int clear_stale_socket(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Create the socket file with mode CONTROL_MODE from the start: a chmod by
 * name after bind() would follow whatever a writer of the directory put
 * there meanwhile. */
static int bind_private(int fd, const struct sockaddr_un *sa)
{
	mode_t old = umask(0777 & ~CONTROL_MODE);
	int rc = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));

	umask(old);
	return rc < 0 ? -errno : 0;
}

int control_open(struct daemon *d, const char *path, struct control **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *c;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	mkdir_parent(path);
	rc = clear_stale_socket(path);
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = bind_private(fd, &sa);
	if (rc < 0 || listen(fd, 16) < 0) {
		rc = rc < 0 ? rc : -errno;
		close(fd);
		return rc;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(path))) {
		free(c);
		close(fd);
		unlink(path);
		return -ENOMEM;
	}
	c->d = d;
	c->fd = fd;
	ev_io_init(&c->io, accept_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(d->loop, &c->io);
	*out = c;
	return 0;
}

void control_close(struct control *c)
{
	if (!c)
		return;
	ev_io_stop(c->d->loop, &c->io);
	close(c->fd);
	unlink(c->path);
	free(c->path);
	free(c);
}

int daemon_status(const char *socket_path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char req[] = "status\n";
	char buf[65536];
	ssize_t n;
	int fd;

	if (strlen(socket_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "overlaybd-iscsid: socket path too long: %s\n", socket_path);
		return 1;
	}
	strcpy(sa.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "overlaybd-iscsid: cannot reach the daemon at %s: %s\n", socket_path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
		fprintf(stderr, "overlaybd-iscsid: %s: %s\n", socket_path, strerror(errno));
		close(fd);
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, n, stdout);
	close(fd);
	return n < 0 ? 1 : 0;
}
