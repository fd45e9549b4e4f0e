/*
 * reg_fetch: the HTTP engine.  One libcurl multi handle per context, driven
 * by the libev loop through curl's socket and timer callbacks, so a single
 * thread carries every transfer and connections are kept alive and shared
 * (several per host, HTTP/2 multiplexing when the server offers it).
 * Worker threads hand a request over with ev_async and sleep on a
 * semaphore until the loop completes it.  Nothing here ever blocks the
 * loop, and nothing here retries: reg_retry.c decides that.
 */
#include "reg_int.h"
#include "common/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Bodies other than range data (token JSON, error documents) are capped. */
#define REG_BODY_MAX (256u * 1024)
/* Schemes any request may use, first or after a redirect (reg_redirect.c). */
#define REG_PROTOCOLS "http,https"
/* Address prefixes that name this host or its link (RFC 6890 table 4:
 * "this network" 0/8, loopback 127/8, link local 169.254/16; RFC 4291
 * 2.5.2-2.5.3 and 2.5.6: ::, ::1, fe80::/10). */
#define V4_THIS_NET 0x00u
#define V4_LOOPBACK 0x7fu
#define V4_LL_HI 0xa9u
#define V4_LL_LO 0xfeu
#define V6_LL_HI 0xfeu
#define V6_LL_MASK 0xc0u
#define V6_LL_LO 0x80u

struct reg_sock {
	ev_io io;
	struct reg_ctx *c;
	curl_socket_t fd;
	struct reg_sock *next, **pprev;
};

static void sock_free(struct reg_sock *s)
{
	ev_io_stop(s->c->loop, &s->io);
	*s->pprev = s->next;
	if (s->next)
		s->next->pprev = s->pprev;
	free(s);
}

uint64_t reg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool v4_is_local(const uint8_t *a)
{
	return a[0] == V4_THIS_NET || a[0] == V4_LOOPBACK ||
	       (a[0] == V4_LL_HI && a[1] == V4_LL_LO);
}

bool reg_addr_is_local(const char *ip)
{
	struct in6_addr a6;
	uint8_t a4[4];

	if (inet_pton(AF_INET, ip, a4) == 1)
		return v4_is_local(a4);
	if (inet_pton(AF_INET6, ip, &a6) != 1)
		return false;
	if (IN6_IS_ADDR_V4MAPPED(&a6))
		return v4_is_local(a6.s6_addr + 12);
	return IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6) ||
	       (a6.s6_addr[0] == V6_LL_HI && (a6.s6_addr[1] & V6_LL_MASK) == V6_LL_LO);
}

static void active_unlink(struct reg_http_req *r)
{
	*r->aprev = r->anext;
	if (r->anext)
		r->anext->aprev = r->aprev;
	r->anext = NULL;
	r->aprev = NULL;
}

static void check_done(struct reg_ctx *c)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left))) {
		struct reg_http_req *r = NULL;
		CURL *e = m->easy_handle;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
		r->cc = m->data.result;
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
		if (r->enough)
			r->cc = CURLE_OK;
		{
			char *ip = NULL;

			if (curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
				snprintf(r->peer_ip, sizeof(r->peer_ip), "%s", ip);
		}
		if (r->status >= 300 && r->status < 400) {
			char *u = NULL;

			if (curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &u) == CURLE_OK && u)
				r->redirect = strdup(u);
		}
		if (log_get_level() <= LOG_LVL_DEBUG)
			log_debug("registry: %s %s %" PRIu64 "+%" PRIu64 ": %ld (curl %d) in %" PRIu64
				  " ms", r->head ? "HEAD" : "GET", r->url, r->range_off,
				  r->range_len, r->status, r->cc, reg_now_ms() - r->start_ms);
		curl_multi_remove_handle(c->multi, e);
		curl_easy_cleanup(e);
		curl_slist_free_all(r->hdrs);
		r->hdrs = NULL;
		c->running--;
		active_unlink(r);
		sem_post(&r->done);
	}
}

static void sock_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct reg_sock *s = (struct reg_sock *)w;
	struct reg_ctx *c = s->c;
	int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
		     (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int still;

	curl_multi_socket_action(c->multi, s->fd, action, &still);
	check_done(c);
	if (!still)
		ev_timer_stop(c->loop, &c->timer);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct reg_ctx *c = w->data;
	int still;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &still);
	check_done(c);
}

static int curl_sock_cb(CURL *e, curl_socket_t fd, int what, void *cbp, void *sockp)
{
	struct reg_ctx *c = cbp;
	struct reg_sock *s = sockp;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(c->multi, fd, NULL);
			sock_free(s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->c = c;
		s->fd = fd;
		s->next = c->socks;
		if (s->next)
			s->next->pprev = &s->next;
		s->pprev = &c->socks;
		c->socks = s;
		curl_multi_assign(c->multi, fd, s);
	} else {
		ev_io_stop(c->loop, &s->io);
	}
	ev_io_init(&s->io, sock_cb, fd,
		   (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0));
	ev_io_start(c->loop, &s->io);
	return 0;
}

static int curl_timer_cb(CURLM *m, long timeout_ms, void *cbp)
{
	struct reg_ctx *c = cbp;

	ev_timer_stop(c->loop, &c->timer);
	if (timeout_ms >= 0) {
		/* curl forbids calling socket_action from here: defer even 0 ms. */
		ev_timer_set(&c->timer, timeout_ms / 1000.0, 0.);
		ev_timer_start(c->loop, &c->timer);
	}
	return 0;
}

static bool hdr_is(const char *line, size_t n, const char *name, const char **val, size_t *vlen)
{
	size_t k = strlen(name);

	if (n <= k || strncasecmp(line, name, k) || line[k] != ':')
		return false;
	line += k + 1;
	n -= k + 1;
	while (n && (*line == ' ' || *line == '\t'))
		line++, n--;
	while (n && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' '))
		n--;
	*val = line;
	*vlen = n;
	return true;
}

/* RFC 9110 14.4: "bytes first-last/complete" or "bytes * /complete". */
static void parse_content_range(struct reg_http_req *r, const char *v, size_t n)
{
	char tmp[128];
	unsigned long long a, b, t;

	if (n >= sizeof(tmp))
		return;
	memcpy(tmp, v, n);
	tmp[n] = 0;
	if (sscanf(tmp, "bytes %llu-%llu/%llu", &a, &b, &t) == 3 && a <= b) {
		r->has_cr = true;
		r->cr_start = a;
		r->cr_end = b;
		r->cr_total = t;
	} else if (sscanf(tmp, "bytes */%llu", &t) == 1) {
		r->cr_total = t;
	} else if (sscanf(tmp, "bytes %llu-%llu/*", &a, &b) == 2 && a <= b) {
		r->has_cr = true;
		r->cr_start = a;
		r->cr_end = b;
	}
}

static size_t header_cb(char *line, size_t sz, size_t nitems, void *ud)
{
	struct reg_http_req *r = ud;
	size_t n = sz * nitems;
	const char *v;
	size_t vl;

	if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
		/* A new response (e.g. after 100 Continue): forget the last one. */
		r->has_cr = r->has_cl = false;
		r->cr_total = 0;
		free(r->www_auth);
		r->www_auth = NULL;
		r->retry_after = -1;
		return n;
	}
	if (hdr_is(line, n, "content-range", &v, &vl)) {
		parse_content_range(r, v, vl);
	} else if (hdr_is(line, n, "content-length", &v, &vl)) {
		r->has_cl = true;
		r->content_length = strtoull(v, NULL, 10);
	} else if (hdr_is(line, n, "www-authenticate", &v, &vl)) {
		if (!r->www_auth)
			r->www_auth = strndup(v, vl);
	} else if (hdr_is(line, n, "retry-after", &v, &vl)) {
		char tmp[64];
		struct tm tm;

		if (vl < sizeof(tmp)) {
			memcpy(tmp, v, vl);
			tmp[vl] = 0;
			if (isdigit((unsigned char)tmp[0])) {
				r->retry_after = strtol(tmp, NULL, 10);
			} else if (strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
				/* RFC 9110 10.2.3: an HTTP-date. */
				time_t when = timegm(&tm), now = time(NULL);

				r->retry_after = when > now ? when - now : 0;
			}
		}
	}
	return n;
}

static size_t write_cb(char *data, size_t sz, size_t nitems, void *ud)
{
	struct reg_http_req *r = ud;
	size_t n = sz * nitems;
	char *nb;

	if (!r->status)
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->buf && (r->status == 206 || r->status == 200)) {
		/* Place bytes by their position in the blob: 206 starts at the
		 * Content-Range start (trust it, not what we asked for), 200
		 * is the whole blob from 0. */
		uint64_t base = r->status == 206 ? r->cr_start : 0;

		if (r->status == 206 && !r->has_cr)
			return 0;
		for (size_t i = 0; i < n;) {
			uint64_t pos = base + r->body_pos;
			size_t take = n - i;

			if (pos < r->range_off) {
				uint64_t skip = r->range_off - pos;

				if (skip > take)
					skip = take;
				r->body_pos += skip;
				i += skip;
				continue;
			}
			if (pos >= r->range_off + r->buf_len) {
				r->enough = true;
				return 0;
			}
			if (take > r->range_off + r->buf_len - pos)
				take = r->range_off + r->buf_len - pos;
			memcpy((char *)r->buf + (pos - r->range_off), data + i, take);
			r->got = pos - r->range_off + take;
			r->body_pos += take;
			i += take;
		}
		return n;
	}
	/* 416 bodies lie about their length (NOTES pitfall 2): ignore them. */
	if (r->status == 416 || r->body_len + n > REG_BODY_MAX)
		return n;
	nb = realloc(r->body, r->body_len + n + 1);
	if (!nb)
		return 0;
	r->body = nb;
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = 0;
	return n;
}

/*
 * deny_local is enforced on the address libcurl actually uses, never on a
 * name resolved separately (a DNS answer could change in between:
 * rebinding).  A new connection is checked in opensocket_cb, before the
 * connect, so a local port does not even see a SYN; a reused one in
 * prereq_cb, before a byte of the request goes out.  Through a proxy both
 * see the proxy's address: the proxy's own policy applies behind it.
 */
static bool refuse_local(struct reg_http_req *r, const char *ip, int port)
{
	if (!r->deny_local || !reg_addr_is_local(ip))
		return false;
	log_warn("registry: refusing %s: a registry that is not on this host pointed to "
		 "local address %s port %d", r->url, ip, port);
	r->refused = true;
	return true;
}

static curl_socket_t opensocket_cb(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->addr;
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->addr;
	char ip[INET6_ADDRSTRLEN] = "";
	int port = 0;

	if (a->family == AF_INET) {
		inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
		port = ntohs(v4->sin_port);
	} else if (a->family == AF_INET6) {
		inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
		port = ntohs(v6->sin6_port);
	}
	if (ip[0] && refuse_local(ud, ip, port))
		return CURL_SOCKET_BAD;
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int prereq_cb(void *ud, char *peer_ip, char *local_ip, int peer_port, int local_port)
{
	return refuse_local(ud, peer_ip, peer_port) ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

static CURL *make_easy(struct reg_ctx *c, struct reg_http_req *r)
{
	CURL *e = curl_easy_init();
	char range[64];

	if (!e)
		return NULL;
	r->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	/* Redirects are ours to follow: the target must not see credentials
	 * and its signed URL is worth keeping (reg_redirect.c). */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, REG_PROTOCOLS);
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, REG_PROTOCOLS);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	/* A stalled transfer (< 1 KiB/s for 10 s) counts as a failure. */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 10L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Bigger reads per wakeup: the default 16 KiB costs a loop turn per
	 * 16 KiB on fast links. */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->client_cert)
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->client_cert);
	if (c->client_key)
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->client_key);
	if (c->proxy)
		curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);
	if (r->head)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	if (r->range_len) {
		snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, r->range_off,
			 r->range_off + r->range_len - 1);
		curl_easy_setopt(e, CURLOPT_RANGE, range);
	}
	if (r->auth)
		r->hdrs = curl_slist_append(r->hdrs, r->auth);
	if (r->hdrs)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	return e;
}

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct reg_ctx *c = w->data;
	struct reg_http_req *q;

	pthread_mutex_lock(&c->qlock);
	q = c->qhead;
	c->qhead = c->qtail = NULL;
	pthread_mutex_unlock(&c->qlock);
	while (q) {
		struct reg_http_req *r = q;
		CURL *e;

		q = q->next;
		r->next = NULL;
		e = make_easy(c, r);
		if (!e || curl_multi_add_handle(c->multi, e) != CURLM_OK) {
			if (e)
				curl_easy_cleanup(e);
			curl_slist_free_all(r->hdrs);
			r->hdrs = NULL;
			r->cc = CURLE_OUT_OF_MEMORY;
			sem_post(&r->done);
			continue;
		}
		c->running++;
		r->anext = c->active;
		if (r->anext)
			r->anext->aprev = &r->anext;
		r->aprev = &c->active;
		c->active = r;
	}
}

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void *loop_thread(void *arg)
{
	struct reg_ctx *c = arg;

	ev_run(c->loop, 0);
	return NULL;
}

int reg_http_do(struct reg_ctx *c, struct reg_http_req *r)
{
	if (__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE)) {
		r->cc = CURLE_ABORTED_BY_CALLBACK;
		return 0;
	}
	r->start_ms = reg_now_ms();
	r->status = 0;
	r->got = 0;
	r->body_pos = 0;
	r->enough = false;
	r->retry_after = -1;
	r->errbuf[0] = 0;
	r->peer_ip[0] = 0;
	r->refused = false;
	r->next = NULL;
	if (sem_init(&r->done, 0, 0))
		return -errno;
	pthread_mutex_lock(&c->qlock);
	if (c->qtail)
		c->qtail->next = r;
	else
		c->qhead = r;
	c->qtail = r;
	pthread_mutex_unlock(&c->qlock);
	ev_async_send(c->loop, &c->wake);
	while (sem_wait(&r->done) && errno == EINTR)
		;
	sem_destroy(&r->done);
	return 0;
}

void reg_http_free(struct reg_http_req *r)
{
	free(r->www_auth);
	free(r->redirect);
	free(r->body);
	r->www_auth = r->redirect = r->body = NULL;
	r->body_len = 0;
}

int reg_fetch_init(struct reg_ctx *c)
{
	c->multi = curl_multi_init();
	if (!c->multi)
		return -ENOMEM;
	pthread_mutex_init(&c->qlock, NULL);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->max_host_conns);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->max_host_conns * 8);

	ev_init(&c->timer, timer_cb);
	c->timer.data = c;
	ev_async_init(&c->wake, wake_cb);
	c->wake.data = c;
	ev_async_start(c->loop, &c->wake);
	ev_async_init(&c->stop, stop_cb);
	c->stop.data = c;
	ev_async_start(c->loop, &c->stop);
	/* Our idle watchers must not keep the daemon's loop alive. */
	if (!c->own_loop) {
		ev_unref(c->loop);
		ev_unref(c->loop);
	}
	if (c->own_loop) {
		int err = pthread_create(&c->thread, NULL, loop_thread, c);

		if (err) {
			reg_fetch_fini(c);
			return -err;
		}
		c->thread_started = true;
	}
	return 0;
}

void reg_fetch_abort(struct reg_ctx *c)
{
	struct reg_http_req *q;

	__atomic_store_n(&c->stopping, 1, __ATOMIC_RELEASE);
	if (c->thread_started) {
		ev_async_send(c->loop, &c->stop);
		pthread_join(c->thread, NULL);
		c->thread_started = false;
	}
	/* Now on the loop's thread (or with the loop stopped): every waiter
	 * is woken with an abort, so threads blocked on us can finish. */
	while (c->active) {
		struct reg_http_req *r = c->active;

		active_unlink(r);
		curl_multi_remove_handle(c->multi, r->easy);
		curl_easy_cleanup(r->easy);
		curl_slist_free_all(r->hdrs);
		r->hdrs = NULL;
		r->cc = CURLE_ABORTED_BY_CALLBACK;
		c->running--;
		sem_post(&r->done);
	}
	pthread_mutex_lock(&c->qlock);
	q = c->qhead;
	c->qhead = c->qtail = NULL;
	pthread_mutex_unlock(&c->qlock);
	while (q) {
		struct reg_http_req *r = q;

		q = q->next;
		r->cc = CURLE_ABORTED_BY_CALLBACK;
		sem_post(&r->done);
	}
}

/* After reg_fetch_abort. */
void reg_fetch_fini(struct reg_ctx *c)
{
	if (c->thread_started) {
		ev_async_send(c->loop, &c->stop);
		pthread_join(c->thread, NULL);
		c->thread_started = false;
	}
	if (!c->own_loop) {
		ev_ref(c->loop);
		ev_ref(c->loop);
	}
	ev_async_stop(c->loop, &c->wake);
	ev_async_stop(c->loop, &c->stop);
	ev_timer_stop(c->loop, &c->timer);
	/* Sockets curl still holds in its cache are closed here; their
	 * watchers go with them. */
	curl_multi_cleanup(c->multi);
	c->multi = NULL;
	while (c->socks)
		sock_free(c->socks);
	pthread_mutex_destroy(&c->qlock);
}
