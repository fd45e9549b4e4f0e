/*
 * iscsi_server: portals (IPv4 and IPv6), accepting connections under a
 * per-source and a global limit, the target list with its ACLs and CHAP
 * secrets, the CHAP failure slow-down, and orderly shutdown.
 *
 * Accepting never blocks and never trusts the peer: a connection over a
 * limit is closed at once, before it costs more than its socket; when the
 * limit is full of connections still in login, the oldest of those goes
 * instead, so a prompt login always gets through (S3).
 */
#include "iscsi_int.h"
#include "common/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEF_NOP_INTERVAL 5
#define DEF_NOP_TIMEOUT 15
#define DEF_LOGIN_TIMEOUT 15
#define DEF_CONNS_PER_SOURCE 64
#define DEF_LOGIN_CONNS_PER_SOURCE 32
#define DEF_CONNS 4096
#define DEF_MAX_RECV_DSL 262144
#define DEF_MAX_BURST 16776192
#define DEF_FIRST_BURST 262144
#define DEF_QUEUE_DEPTH 128
/* Socket buffers big enough for a few large Data-In sequences in flight. */
#define SOCK_BUF (4 << 20)

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int iscsi_auth_set(struct iscsi_auth *a, const struct iscsi_chap *chap)
{
	struct iscsi_auth n = { 0 };

	if (chap && chap->username && chap->username[0]) {
		if (!chap->password || !chap->password[0])
			return -EINVAL;
		n.username = xstrdup(chap->username);
		n.password = xstrdup(chap->password);
		if (chap->mutual_username && chap->mutual_username[0]) {
			if (!chap->mutual_password || !chap->mutual_password[0]) {
				iscsi_auth_clear(&n);
				return -EINVAL;
			}
			n.mutual_username = xstrdup(chap->mutual_username);
			n.mutual_password = xstrdup(chap->mutual_password);
			if (!n.mutual_username || !n.mutual_password) {
				iscsi_auth_clear(&n);
				return -ENOMEM;
			}
		}
		if (!n.username || !n.password) {
			iscsi_auth_clear(&n);
			return -ENOMEM;
		}
	}
	iscsi_auth_clear(a);
	*a = n;
	return 0;
}

int iscsi_auth_copy(struct iscsi_auth *dst, const struct iscsi_auth *src)
{
	const struct iscsi_chap chap = { src->username, src->password, src->mutual_username,
					 src->mutual_password };

	return iscsi_auth_set(dst, &chap);
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void iscsi_auth_clear(struct iscsi_auth *a)
{
	free(a->username);
	free_secret(a->password);
	free(a->mutual_username);
	free_secret(a->mutual_password);
	memset(a, 0, sizeof(*a));
}

int iscsi_server_create(struct ev_loop *loop, const struct iscsi_server_config *cfg,
			struct iscsi_server **out)
{
	struct iscsi_server *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->loop = loop;
	if (cfg)
		s->cfg = *cfg;
	if (!s->cfg.nop_interval)
		s->cfg.nop_interval = DEF_NOP_INTERVAL;
	if (!s->cfg.nop_timeout)
		s->cfg.nop_timeout = DEF_NOP_TIMEOUT;
	if (!s->cfg.login_timeout)
		s->cfg.login_timeout = DEF_LOGIN_TIMEOUT;
	if (!s->cfg.max_conns_per_source)
		s->cfg.max_conns_per_source = DEF_CONNS_PER_SOURCE;
	if (!s->cfg.max_conns)
		s->cfg.max_conns = DEF_CONNS;
	if (!s->cfg.max_login_conns_per_source)
		s->cfg.max_login_conns_per_source = DEF_LOGIN_CONNS_PER_SOURCE;
	if (s->cfg.max_login_conns_per_source > s->cfg.max_conns_per_source)
		s->cfg.max_login_conns_per_source = s->cfg.max_conns_per_source;
	if (!s->cfg.max_recv_data_segment_length)
		s->cfg.max_recv_data_segment_length = DEF_MAX_RECV_DSL;
	if (!s->cfg.max_burst_length)
		s->cfg.max_burst_length = DEF_MAX_BURST;
	if (!s->cfg.first_burst_length)
		s->cfg.first_burst_length = DEF_FIRST_BURST;
	if (!s->cfg.max_queue_depth)
		s->cfg.max_queue_depth = DEF_QUEUE_DEPTH;
	/* RFC 7143 13.12-13.14: the declarable ranges. */
	if (s->cfg.max_recv_data_segment_length < ISCSI_DSL_MIN ||
	    s->cfg.max_recv_data_segment_length > ISCSI_DSL_MAX ||
	    s->cfg.max_burst_length < ISCSI_DSL_MIN || s->cfg.max_burst_length > ISCSI_DSL_MAX ||
	    s->cfg.first_burst_length < ISCSI_DSL_MIN ||
	    s->cfg.first_burst_length > s->cfg.max_burst_length ||
	    s->cfg.max_queue_depth > 4096) {
		free(s);
		return -EINVAL;
	}
	/* Issue 5: with several large commands in flight, glibc's default
	 * mmap()s each data buffer over 128 KiB (then its adaptive
	 * threshold trims the heap back), so every 1 MiB read faulted in
	 * 256 fresh pages and munmap() serialised the workers: 1 MiB reads
	 * at QD8 ran at half the QD1 rate.  Keep such buffers in the heap
	 * and the heap from shrinking under load. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	s->lim.max_recv_dsl = s->cfg.max_recv_data_segment_length;
	s->lim.max_burst = s->cfg.max_burst_length;
	s->lim.first_burst = s->cfg.first_burst_length;
	s->next_tsih = 1;
	*out = s;
	return 0;
}

/*
 * S3: how many connections HOST (NULL: any source) holds, and how many of
 * them are still in login; *OLDEST is the oldest of those that may be
 * dropped (the list is newest first).  One whose CHAP failure answer is
 * held back is not droppable: dropping it would end its slow-down (S4).
 */
static unsigned count_source(struct iscsi_server *s, const char *host, unsigned *in_login,
			     struct iscsi_conn **oldest)
{
	struct iscsi_conn *c;
	unsigned n = 0;

	*in_login = 0;
	*oldest = NULL;
	for (c = s->conns; c; c = c->next) {
		if (c->state == CONN_CLOSED || (host && strcmp(c->peer_host, host)))
			continue;
		n++;
		if (c->state != CONN_LOGIN)
			continue;
		(*in_login)++;
		if (!c->login_delayed)
			*oldest = c;
	}
	return n;
}

static void drop_for_newer(struct iscsi_conn *oldest, unsigned in_login, const char *host)
{
	log_warn("iscsi %s: dropped, the oldest of %u connections from %s still in login, for a new one",
		 oldest->peer, in_login, host ? host : "all sources");
	iscsi_conn_close(oldest, "login slot taken by a newer connection");
	iscsi_conn_maybe_free(oldest);
}

/* S3: the same rule at the global limit, against floods from many
 * addresses.  Connections closed but still finishing tasks count too. */
static int admit_global(struct iscsi_server *s, const char *host, int port)
{
	struct iscsi_conn *oldest;
	unsigned in_login;

	if (s->nconns < s->cfg.max_conns)
		return 0;
	count_source(s, NULL, &in_login, &oldest);
	if (!oldest) {
		log_warn("iscsi: connection from %s:%d refused: %u connections (maxConnections)",
			 host, port, s->nconns);
		return -1;
	}
	drop_for_newer(oldest, in_login, NULL);
	return s->nconns < s->cfg.max_conns ? 0 : -1;
}

/*
 * S3: may HOST open one more connection?  Logged-in connections are never
 * dropped for a new one; connections still in login are, oldest first
 * (as sshd's MaxStartups), so a flood of half-open connections from one
 * address (every container on a host is 127.0.0.1) cannot lock out a
 * login that completes promptly.  0 = accept, -1 = refuse.
 */
static int admit_source(struct iscsi_server *s, const char *host, int port)
{
	struct iscsi_conn *oldest;
	unsigned in_login, n = count_source(s, host, &in_login, &oldest);

	if (n < s->cfg.max_conns_per_source && in_login < s->cfg.max_login_conns_per_source)
		return 0;
	if (!oldest) {
		log_warn("iscsi: connection from %s:%d refused: %u from that source (maxConnectionsPerSource)",
			 host, port, n);
		return -1;
	}
	drop_for_newer(oldest, in_login, host);
	return 0;
}

static void addr_str(const struct sockaddr_storage *sa, char *host, size_t hlen, int *port)
{
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;

		inet_ntop(AF_INET6, &a->sin6_addr, host, hlen);
		*port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const void *)sa;

		inet_ntop(AF_INET, &a->sin_addr, host, hlen);
		*port = ntohs(a->sin_port);
	}
}

static void tune_socket(int fd)
{
	int one = 1, sz = SOCK_BUF;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Only when we may exceed the sysctl cap: a smaller fixed size
	 * would switch off the kernel's autotuning and hurt large reads. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) == 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct iscsi_portal *p = w->data;
	struct iscsi_server *s = p->srv;
	int i;

	for (i = 0; i < 64; i++) {
		struct sockaddr_storage sa;
		socklen_t slen = sizeof(sa);
		char host[INET6_ADDRSTRLEN], lhost[INET6_ADDRSTRLEN];
		struct iscsi_conn *c;
		int fd, port, lport;

		fd = accept4(p->fd, (struct sockaddr *)&sa, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("iscsi portal %s: accept: %s", p->name, strerror(errno));
			return;
		}
		addr_str(&sa, host, sizeof(host), &port);
		if (s->shutting_down) {
			close(fd);
			continue;
		}
		/* Issue 6: half-open floods hit a per-source and a global
		 * limit before they cost any memory. */
		if (admit_source(s, host, port) || admit_global(s, host, port)) {
			close(fd);
			continue;
		}
		tune_socket(fd);
		c = iscsi_conn_new(s, fd);
		if (!c) {
			close(fd);
			continue;
		}
		c->peer_sa = sa;
		snprintf(c->peer_host, sizeof(c->peer_host), "%s", host);
		snprintf(c->peer, sizeof(c->peer), sa.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
			 host, port);
		slen = sizeof(c->local_sa);
		if (getsockname(fd, (struct sockaddr *)&c->local_sa, &slen) == 0) {
			addr_str(&c->local_sa, lhost, sizeof(lhost), &lport);
			snprintf(c->local_portal, sizeof(c->local_portal),
				 c->local_sa.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", lhost,
				 lport);
		}
		log_debug("iscsi %s: connected to %s", c->peer, p->name);
	}
}

/* "ADDR:PORT" or "[V6ADDR]:PORT"; a bare port means 127.0.0.1. */
static int parse_portal(const char *portal, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon;

	if (portal[0] == '[') {
		const char *end = strchr(portal, ']');

		if (!end || end[1] != ':' || (size_t)(end - portal - 1) >= hlen)
			return -EINVAL;
		memcpy(host, portal + 1, end - portal - 1);
		host[end - portal - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(portal, ':');
		if (!colon || (size_t)(colon - portal) >= hlen)
			return -EINVAL;
		memcpy(host, portal, colon - portal);
		host[colon - portal] = '\0';
	}
	if (!colon[1] || strlen(colon + 1) >= plen)
		return -EINVAL;
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

int iscsi_server_listen(struct iscsi_server *s, const char *portal)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	char host[INET6_ADDRSTRLEN + 8], port[16];
	struct iscsi_portal *p;
	int fd, rc, one = 1;

	if (parse_portal(portal, host, sizeof(host), port, sizeof(port))) {
		log_error("iscsi: bad portal '%s' (want ADDR:PORT or [V6ADDR]:PORT)", portal);
		return -EINVAL;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc) {
		log_error("iscsi: portal %s: %s", portal, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		freeaddrinfo(ai);
		return rc;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		rc = -errno;
		log_error("iscsi: cannot listen on %s: %s", portal, strerror(errno));
		close(fd);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	p->fd = fd;
	p->srv = s;
	snprintf(p->name, sizeof(p->name), "%s", portal);
	ev_io_init(&p->io, accept_cb, fd, EV_READ);
	p->io.data = p;
	ev_io_start(s->loop, &p->io);
	p->next = s->portals;
	s->portals = p;
	log_info("iscsi: listening on %s", portal);
	return 0;
}

int iscsi_server_set_discovery_chap(struct iscsi_server *s, const struct iscsi_chap *chap)
{
	return iscsi_auth_set(&s->disc_auth, chap);
}

static void close_portals(struct iscsi_server *s)
{
	struct iscsi_portal *p;

	while ((p = s->portals)) {
		s->portals = p->next;
		ev_io_stop(s->loop, &p->io);
		close(p->fd);
		free(p);
	}
}

static void shutdown_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct iscsi_server *s = w->data;

	if (s->nconns || !s->shutting_down)
		return;
	s->shutting_down = false;
	if (s->shutdown_done)
		s->shutdown_done(s->shutdown_arg);
}

void iscsi_server_shutdown(struct iscsi_server *s, void (*done)(void *arg), void *arg)
{
	struct iscsi_conn *c, *next;

	s->shutting_down = true;
	s->shutdown_done = done;
	s->shutdown_arg = arg;
	/* Set up before any connection is freed: freeing the last one
	 * starts this watcher (iscsi_server_conn_gone), and initialising
	 * an active watcher corrupts libev's timer heap. */
	ev_timer_init(&s->shutdown_check, shutdown_check_cb, 0, 0);
	s->shutdown_check.data = s;
	close_portals(s);
	for (c = s->conns; c; c = next) {
		next = c->next;
		iscsi_conn_close(c, "shutting down");
		iscsi_conn_maybe_free(c);
	}
	/* DONE runs from the loop, never from inside this call. */
	if (!ev_is_active(&s->shutdown_check))
		ev_timer_start(s->loop, &s->shutdown_check);
}

void iscsi_server_conn_gone(struct iscsi_server *s)
{
	if (s->shutting_down && !s->nconns && !ev_is_active(&s->shutdown_check))
		ev_timer_start(s->loop, &s->shutdown_check);
}

static void target_free(struct iscsi_target *t)
{
	int i;

	iscsi_auth_clear(&t->auth);
	for (i = 0; i < t->nacl; i++)
		free(t->acl[i]);
	free(t->acl);
	free(t->name);
	free(t->alias);
	free(t);
}

void iscsi_server_destroy(struct iscsi_server *s)
{
	struct iscsi_conn *c, *next;
	struct iscsi_target *t;

	if (!s)
		return;
	close_portals(s);
	for (c = s->conns; c; c = next) {
		next = c->next;
		iscsi_conn_close(c, "server destroyed");
		iscsi_conn_maybe_free(c);
	}
	ev_timer_stop(s->loop, &s->shutdown_check);
	while ((t = s->targets)) {
		s->targets = t->next;
		ev_timer_stop(s->loop, &t->remove_check);
		target_free(t);
	}
	iscsi_auth_clear(&s->disc_auth);
	free(s);
}

static int set_acl(struct iscsi_target *t, const char *const *acl, int nacl)
{
	char **n = NULL;
	int i;

	if (acl && nacl > 0) {
		n = calloc(nacl, sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (i = 0; i < nacl; i++) {
			n[i] = strdup(acl[i] ? acl[i] : "");
			if (!n[i]) {
				while (i--)
					free(n[i]);
				free(n);
				return -ENOMEM;
			}
		}
	} else {
		nacl = 0;
	}
	for (i = 0; i < t->nacl; i++)
		free(t->acl[i]);
	free(t->acl);
	t->acl = n;
	t->nacl = nacl;
	return 0;
}

int iscsi_target_create(struct iscsi_server *s, const char *name, const char *alias,
			struct scsi_dev *dev, const struct iscsi_chap *chap,
			const char *const *acl, int nacl, struct iscsi_target **out)
{
	struct iscsi_target *t;
	int rc;

	if (!name || !name[0] || strlen(name) > ISCSI_NAME_MAX || !dev)
		return -EINVAL;
	if (iscsi_server_find_target(s, name))
		return -EEXIST;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->srv = s;
	t->dev = dev;
	t->name = strdup(name);
	t->alias = alias ? strdup(alias) : NULL;
	if (!t->name || (alias && !t->alias)) {
		target_free(t);
		return -ENOMEM;
	}
	rc = iscsi_auth_set(&t->auth, chap);
	if (!rc)
		rc = set_acl(t, acl, nacl);
	if (rc) {
		target_free(t);
		return rc;
	}
	t->next = s->targets;
	s->targets = t;
	*out = t;
	return 0;
}

int iscsi_target_set_auth(struct iscsi_target *t, const struct iscsi_chap *chap,
			  const char *const *acl, int nacl)
{
	int rc = iscsi_auth_set(&t->auth, chap);

	if (rc)
		return rc;
	return set_acl(t, acl, nacl);
}

struct iscsi_target *iscsi_server_find_target(struct iscsi_server *s, const char *name)
{
	struct iscsi_target *t;

	/* RFC 7143 4.2.7.1: iSCSI names compare case-insensitively after
	 * stringprep; ours are lowercase ASCII, so strcasecmp. */
	for (t = s->targets; t; t = t->next)
		if (!t->removing && !strcasecmp(t->name, name))
			return t;
	return NULL;
}

bool iscsi_target_allows(const struct iscsi_target *t, const char *initiator)
{
	int i;

	if (t->removing)
		return false;
	if (!t->nacl)
		return true;
	for (i = 0; i < t->nacl; i++)
		if (initiator && !strcasecmp(t->acl[i], initiator))
			return true;
	return false;
}

static void remove_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct iscsi_target *t = w->data;
	struct iscsi_server *s = t->srv;
	struct iscsi_target **pp;

	if (t->nsessions)
		return;
	for (pp = &s->targets; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	if (t->remove_done)
		t->remove_done(t->remove_arg);
	target_free(t);
}

void iscsi_target_session_gone(struct iscsi_target *t)
{
	if (t->nsessions)
		t->nsessions--;
	if (t->removing && !t->nsessions && !ev_is_active(&t->remove_check))
		ev_timer_start(t->srv->loop, &t->remove_check);
}

void iscsi_target_remove(struct iscsi_target *t, void (*done)(void *arg), void *arg)
{
	struct iscsi_server *s = t->srv;
	struct iscsi_session *sess;
	struct iscsi_conn *c, *next;

	t->removing = true;
	t->remove_done = done;
	t->remove_arg = arg;
	/* Before anything below may end a session and start it. */
	ev_timer_init(&t->remove_check, remove_check_cb, 0, 0);
	t->remove_check.data = t;
	/* Logins still in progress to it end now; they hold no session. */
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->state == CONN_LOGIN && c->login_target == t) {
			c->login_target = NULL;
			iscsi_conn_close(c, "target removed");
			iscsi_conn_maybe_free(c);
		}
	}
	for (sess = s->sessions; sess; sess = sess->next)
		if (sess->tgt == t)
			iscsi_session_request_logout(sess);
	if (!ev_is_active(&t->remove_check))
		ev_timer_start(s->loop, &t->remove_check);
}

void iscsi_server_foreach_session(struct iscsi_server *s, iscsi_session_cb cb, void *arg)
{
	struct iscsi_session *sess;

	for (sess = s->sessions; sess; sess = sess->next) {
		struct iscsi_session_info info = { 0 };
		uint64_t isid = 0;
		int i;

		for (i = 0; i < 6; i++)
			isid = isid << 8 | sess->isid[i];
		info.target = sess->tgt ? sess->tgt->name : "(discovery)";
		info.initiator = sess->initiator_name;
		info.isid = isid;
		info.tsih = sess->tsih;
		if (sess->conn)
			snprintf(info.peer, sizeof(info.peer), "%s", sess->conn->peer);
		info.cmds_inflight = sess->ninflight;
		info.cmds_total = sess->ntotal;
		cb(arg, &info);
	}
}

/* Issue 6: repeated CHAP failures from one source against one target are
 * answered ever more slowly (1 s doubling to 8 s after the second), which
 * caps online guessing without locking the legitimate user out for long.
 * S4: keyed by what the peer cannot change at will, so a new
 * InitiatorName per guess does not start it over. */
#define FAIL_FREE 2
#define FAIL_MAX_DELAY 8.0
#define FAIL_FORGET 600.0

static struct iscsi_auth_fail *fail_slot(struct iscsi_server *s, const char *host,
					 const char *target, bool create)
{
	struct iscsi_auth_fail *victim = NULL;
	ev_tstamp now = ev_now(s->loop);
	int i;

	for (i = 0; i < ISCSI_AUTH_FAIL_SLOTS; i++) {
		struct iscsi_auth_fail *f = &s->fails[i];

		if (f->count && now - f->last > FAIL_FORGET)
			f->count = 0;
		if (f->count && !strcmp(f->host, host) && !strcasecmp(f->target, target))
			return f;
		/* Reuse a free slot, else the one idle the longest. */
		if (!victim || (victim->count && (!f->count || f->last < victim->last)))
			victim = f;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	snprintf(victim->host, sizeof(victim->host), "%s", host);
	snprintf(victim->target, sizeof(victim->target), "%s", target);
	return victim;
}

double iscsi_auth_fail_delay(struct iscsi_server *s, const char *host, const char *target)
{
	struct iscsi_auth_fail *f = fail_slot(s, host, target ? target : "", false);
	double d;

	if (!f || f->count < FAIL_FREE)
		return 0;
	d = (double)(1u << (f->count - FAIL_FREE < 5 ? f->count - FAIL_FREE : 5));
	return d > FAIL_MAX_DELAY ? FAIL_MAX_DELAY : d;
}

void iscsi_auth_fail_note(struct iscsi_server *s, const char *host, const char *target,
			  bool failed)
{
	struct iscsi_auth_fail *f = fail_slot(s, host, target ? target : "", failed);

	if (!f)
		return;
	if (!failed) {
		f->count = 0;
		return;
	}
	f->count++;
	f->last = ev_now(s->loop);
}

unsigned iscsi_chap_inflight(struct iscsi_server *s, const struct iscsi_conn *c)
{
	const struct iscsi_conn *o;
	unsigned n = 0;

	/* A connection whose failure answer is held back still counts: it
	 * has had its guess, and closing it early must not free a slot. */
	for (o = s->conns; o; o = o->next)
		if (o != c && o->state == CONN_LOGIN && (o->login_chap_step == 1 ||
		    o->login_chap_step == 2 || o->login_delayed) &&
		    o->login_discovery == c->login_discovery &&
		    o->login_target == c->login_target && !strcmp(o->peer_host, c->peer_host))
			n++;
	return n;
}

double iscsi_server_last_rx(const struct iscsi_server *s)
{
	return s->last_rx;
}
