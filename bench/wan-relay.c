/*
 * wan-relay: a TCP relay that puts a wide-area link between a client and a
 * server on this machine, for the cold-start testbed (docs/wan-testbed.md).
 * The kernel here has no netem, so the delay has to be added by a process in
 * the path.
 *
 * The model: each direction is one bottleneck link shared by every relayed
 * connection.  Bytes cross it in arrival order at RATE (serialisation) and
 * then travel for DELAY (propagation).  A chunk of n bytes read at time t
 * leaves the bottleneck at d = max(t, busy_until) + n / RATE and is written
 * to the far side at d + DELAY.  A TCP handshake costs a round trip that the
 * relay never sees (the client's connect() completes against the relay at
 * once), so a connection's first client bytes reach the server no earlier
 * than one round trip plus one delay after accept, as they would on a link.
 *
 * What it does not model: the senders' congestion control sees the loopback
 * round trip, not DELAY.  To keep a sender from filling an unbounded buffer,
 * each direction of a connection holds at most one bandwidth-delay product
 * (at least WINDOW_MIN; WINDOW_UNCAPPED on a link without a rate) before the
 * relay stops reading from its sender, which is about what a TCP window over
 * the real link would let through.
 *
 * It never blocks: one libev loop, non-blocking sockets, one timer per
 * direction of a connection for the next chunk that falls due.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK_MAX (64 * 1024)
#define WINDOW_MIN (256 * 1024)
#define WINDOW_UNCAPPED (16 * 1024 * 1024) /* no rate: about Linux's largest TCP window */
#define LISTEN_BACKLOG 256

enum dir { DIR_UP, DIR_DOWN }; /* client to server, server to client */

struct link {
	double bytes_per_sec; /* 0 = no bandwidth cap */
	double delay;         /* one way, seconds */
	double busy_until;    /* when the bottleneck is free again */
	uint64_t bytes;
};

struct chunk {
	struct chunk *next;
	double due; /* when it may be written to the far side */
	size_t len, off;
	bool eof; /* the sender shut its side: pass the FIN on */
	char data[];
};

struct conn;

struct pipe {
	struct conn *conn;
	struct link *link;
	int from, to;
	ev_io rd, wr;
	ev_timer due;
	struct chunk *head, *tail;
	size_t queued, window;
	double not_before; /* the handshake's round trip, for DIR_UP */
	bool read_done, write_done;
};

struct conn {
	struct pipe pipe[2];
	int client, server;
	ev_io connecting;
	bool dead;
};

static struct {
	struct sockaddr_in listen_addr, upstream;
	struct link link[2];
	struct ev_loop *loop;
	ev_io accept_w;
	int listen_fd;
	unsigned conns;
} relay;

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void conn_free(struct conn *c)
{
	for (int i = 0; i < 2; i++) {
		struct pipe *p = &c->pipe[i];

		ev_io_stop(relay.loop, &p->rd);
		ev_io_stop(relay.loop, &p->wr);
		ev_timer_stop(relay.loop, &p->due);
		while (p->head) {
			struct chunk *n = p->head->next;

			free(p->head);
			p->head = n;
		}
	}
	ev_io_stop(relay.loop, &c->connecting);
	close(c->client);
	close(c->server);
	relay.conns--;
	free(c);
}

/* Closing is deferred to the end of a callback, so a watcher never frees the
 * connection it is running for; callers test conn->dead and return. */
static void conn_kill(struct conn *c)
{
	c->dead = true;
}

static double chunk_due(struct pipe *p, size_t len)
{
	struct link *l = p->link;
	double now = ev_time();
	double start = now > l->busy_until ? now : l->busy_until;
	double leave = start + (l->bytes_per_sec > 0 ? len / l->bytes_per_sec : 0);
	double due;

	l->busy_until = leave;
	due = leave + l->delay;
	return due > p->not_before ? due : p->not_before;
}

static void pipe_schedule(struct pipe *p)
{
	double wait;

	if (!p->head || ev_is_active(&p->wr))
		return;
	wait = p->head->due - ev_time();
	if (wait <= 0) {
		ev_io_start(relay.loop, &p->wr);
		return;
	}
	if (!ev_is_active(&p->due)) {
		ev_timer_set(&p->due, wait, 0);
		ev_timer_start(relay.loop, &p->due);
	}
}

static void pipe_enqueue(struct pipe *p, struct chunk *ch)
{
	ch->next = NULL;
	if (p->tail)
		p->tail->next = ch;
	else
		p->head = ch;
	p->tail = ch;
	p->queued += ch->len;
	pipe_schedule(p);
}

static void pipe_read(struct pipe *p)
{
	while (p->queued < p->window) {
		struct chunk *ch = malloc(sizeof(*ch) + CHUNK_MAX);
		ssize_t n;

		if (!ch) {
			conn_kill(p->conn);
			return;
		}
		n = read(p->from, ch->data, CHUNK_MAX);
		if (n < 0) {
			free(ch);
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_kill(p->conn);
			return;
		}
		ch->len = n;
		ch->off = 0;
		ch->eof = n == 0;
		ch->due = chunk_due(p, ch->len);
		p->link->bytes += ch->len;
		pipe_enqueue(p, ch);
		if (ch->eof) {
			p->read_done = true;
			ev_io_stop(relay.loop, &p->rd);
			return;
		}
	}
	ev_io_stop(relay.loop, &p->rd); /* the window is full: back pressure */
}

static void pipe_finish(struct pipe *p)
{
	struct conn *c = p->conn;

	shutdown(p->to, SHUT_WR);
	p->write_done = true;
	if (c->pipe[DIR_UP].write_done && c->pipe[DIR_DOWN].write_done)
		conn_kill(c);
}

/* Write the chunks that are due; returns when the socket is full or the next
 * chunk is not due yet. */
static void pipe_write(struct pipe *p)
{
	double now = ev_time();

	while (p->head && p->head->due <= now) {
		struct chunk *ch = p->head;

		if (ch->eof) {
			p->head = ch->next;
			free(ch);
			pipe_finish(p);
			return;
		}
		ssize_t n = write(p->to, ch->data + ch->off, ch->len - ch->off);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				/* The timer may have brought us here: wait for the
				 * socket to drain, whoever called. */
				ev_io_start(relay.loop, &p->wr);
				return;
			}
			conn_kill(p->conn);
			return;
		}
		ch->off += n;
		if (ch->off < ch->len)
			continue;
		p->head = ch->next;
		if (!p->head)
			p->tail = NULL;
		p->queued -= ch->len;
		free(ch);
		if (!p->read_done && p->queued < p->window)
			ev_io_start(relay.loop, &p->rd);
	}
	ev_io_stop(relay.loop, &p->wr);
	pipe_schedule(p);
}

static struct pipe *pipe_of(void *w)
{
	return ((ev_watcher *)w)->data;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pipe *p = pipe_of(w);

	pipe_read(p);
	if (p->conn->dead)
		conn_free(p->conn);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pipe *p = pipe_of(w);

	pipe_write(p);
	if (p->conn->dead)
		conn_free(p->conn);
}

static void on_due(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pipe *p = pipe_of(w);

	pipe_write(p);
	if (p->conn->dead)
		conn_free(p->conn);
}

static void pipe_init(struct conn *c, enum dir d, double now)
{
	struct pipe *p = &c->pipe[d];
	struct link *l = &relay.link[d];
	double rtt = relay.link[DIR_UP].delay + relay.link[DIR_DOWN].delay;
	double bdp = l->bytes_per_sec * rtt;

	p->conn = c;
	p->link = l;
	p->from = d == DIR_UP ? c->client : c->server;
	p->to = d == DIR_UP ? c->server : c->client;
	if (l->bytes_per_sec == 0)
		p->window = WINDOW_UNCAPPED;
	else
		p->window = bdp > WINDOW_MIN ? (size_t)bdp : WINDOW_MIN;
	p->not_before = d == DIR_UP ? now + rtt + l->delay : 0;
	ev_io_init(&p->rd, on_readable, p->from, EV_READ);
	ev_io_init(&p->wr, on_writable, p->to, EV_WRITE);
	ev_init(&p->due, on_due);
	p->rd.data = p->wr.data = p->due.data = p;
}

static void on_connected(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	int err = 0;
	socklen_t len = sizeof(err);

	ev_io_stop(loop, w);
	if (getsockopt(c->server, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		fprintf(stderr, "wan-relay: upstream connect: %s\n", strerror(err ? err : errno));
		conn_free(c);
		return;
	}
	set_nodelay(c->server);
	ev_io_start(loop, &c->pipe[DIR_UP].rd);
	ev_io_start(loop, &c->pipe[DIR_DOWN].rd);
}

static int upstream_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&relay.upstream, sizeof(relay.upstream)) < 0 &&
	    errno != EINPROGRESS) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	for (;;) {
		int cfd = accept4(relay.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		int sfd;

		if (cfd < 0)
			return;
		sfd = upstream_connect();
		c = sfd >= 0 ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			fprintf(stderr, "wan-relay: %s\n", strerror(sfd < 0 ? -sfd : ENOMEM));
			close(cfd);
			if (sfd >= 0)
				close(sfd);
			continue;
		}
		set_nodelay(cfd);
		c->client = cfd;
		c->server = sfd;
		relay.conns++;
		pipe_init(c, DIR_UP, ev_time());
		pipe_init(c, DIR_DOWN, ev_time());
		ev_io_init(&c->connecting, on_connected, sfd, EV_WRITE);
		c->connecting.data = c;
		ev_io_start(loop, &c->connecting);
	}
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, colon - s);
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

static int listen_on(struct sockaddr_in *sa)
{
	int one = 1;
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fd, LISTEN_BACKLOG) < 0 ||
	    getsockname(fd, (struct sockaddr *)sa, &len) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void on_time_up(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: wan-relay -l ADDR:PORT -c ADDR:PORT [-d MS] [-u MS] [-r MBIT] [-R MBIT]\n"
		"                 [-t SECONDS]\n"
		"  -l  listen here (port 0 picks one; the chosen one is printed)\n"
		"  -c  relay each connection to this server\n"
		"  -d  one-way delay server to client, in ms (default 10)\n"
		"  -u  one-way delay client to server, in ms (default: as -d)\n"
		"  -r  bandwidth server to client, in Mbit/s (default 1000; 0 = no cap)\n"
		"  -R  bandwidth client to server (default: as -r)\n"
		"  -t  exit after this many seconds (default: run until SIGTERM)\n");
}

struct cli {
	const char *listen, *connect;
	double down_ms, up_ms, down_mbit, up_mbit, seconds;
};

static int parse_cli(int argc, char **argv, struct cli *o)
{
	int c;

	*o = (struct cli){ .down_ms = 10, .up_ms = -1, .down_mbit = 1000, .up_mbit = -1 };
	while ((c = getopt(argc, argv, "l:c:d:u:r:R:t:h")) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 'c': o->connect = optarg; break;
		case 'd': o->down_ms = atof(optarg); break;
		case 'u': o->up_ms = atof(optarg); break;
		case 'r': o->down_mbit = atof(optarg); break;
		case 'R': o->up_mbit = atof(optarg); break;
		case 't': o->seconds = atof(optarg); break;
		default: return -EINVAL;
		}
	}
	if (!o->listen || !o->connect || optind != argc || o->down_ms < 0 || o->down_mbit < 0)
		return -EINVAL;
	if (o->up_ms < 0)
		o->up_ms = o->down_ms;
	if (o->up_mbit < 0)
		o->up_mbit = o->down_mbit;
	return 0;
}

int main(int argc, char **argv)
{
	struct cli o;
	ev_signal sig_term, sig_int;
	ev_timer time_up;
	char addr[INET_ADDRSTRLEN];

	if (parse_cli(argc, argv, &o) < 0 || parse_addr(o.listen, &relay.listen_addr) < 0 ||
	    parse_addr(o.connect, &relay.upstream) < 0) {
		usage();
		return 2;
	}
	relay.link[DIR_UP] = (struct link){ .delay = o.up_ms / 1e3,
					    .bytes_per_sec = o.up_mbit * 1e6 / 8 };
	relay.link[DIR_DOWN] = (struct link){ .delay = o.down_ms / 1e3,
					      .bytes_per_sec = o.down_mbit * 1e6 / 8 };
	signal(SIGPIPE, SIG_IGN);
	relay.listen_fd = listen_on(&relay.listen_addr);
	if (relay.listen_fd < 0) {
		fprintf(stderr, "wan-relay: listen %s: %s\n", o.listen, strerror(-relay.listen_fd));
		return 1;
	}
	relay.loop = ev_default_loop(EVFLAG_AUTO);
	ev_io_init(&relay.accept_w, on_accept, relay.listen_fd, EV_READ);
	ev_io_start(relay.loop, &relay.accept_w);
	ev_signal_init(&sig_term, on_stop, SIGTERM);
	ev_signal_init(&sig_int, on_stop, SIGINT);
	ev_signal_start(relay.loop, &sig_term);
	ev_signal_start(relay.loop, &sig_int);
	if (o.seconds > 0) {
		ev_timer_init(&time_up, on_time_up, o.seconds, 0);
		ev_timer_start(relay.loop, &time_up);
	}
	inet_ntop(AF_INET, &relay.listen_addr.sin_addr, addr, sizeof(addr));
	printf("WAN-RELAY listen=%s:%u delay_ms=%g/%g mbit=%g/%g\n", addr,
	       ntohs(relay.listen_addr.sin_port), o.up_ms, o.down_ms, o.up_mbit, o.down_mbit);
	fflush(stdout);
	ev_run(relay.loop, 0);
	fprintf(stderr, "wan-relay: %u connections open, %llu bytes up, %llu bytes down\n",
		relay.conns, (unsigned long long)relay.link[DIR_UP].bytes,
		(unsigned long long)relay.link[DIR_DOWN].bytes);
	return 0;
}
