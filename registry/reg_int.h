/*
 * Internal declarations shared by the registry/ files.
 */
#ifndef OBD_REG_INT_H
#define OBD_REG_INT_H

#include "registry.h"
#include "blockdev/bdev.h"

#include <curl/curl.h>
#include <ev.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct cache_store;
struct cache_blob;
struct cache_dl;

/*
 * One HTTP exchange, filled in by a worker thread, run on the loop by
 * reg_http_do(), which blocks the worker until it finished.
 */
struct reg_http_req {
	/* in */
	const char *url;
	bool head;
	const char *auth;       /* "Authorization: ..." or NULL */
	uint64_t range_off;     /* with range_len != 0: Range: bytes=off-(off+len-1) */
	uint64_t range_len;
	void *buf;              /* body bytes for [range_off, range_off+buf_len) */
	size_t buf_len;
	bool deny_local;        /* refuse a loopback or link-local peer (reg_fetch.c) */
	/* out */
	CURLcode cc;
	long status;
	bool has_cr, has_cl;
	uint64_t cr_start, cr_end, cr_total; /* Content-Range (cr_total 0 = "*") */
	uint64_t content_length;
	size_t got;             /* bytes placed in buf */
	char *www_auth;         /* first WWW-Authenticate */
	char *redirect;         /* absolute redirect target */
	long retry_after;       /* seconds, -1 = none */
	char *body;             /* non-range body (tokens, errors), NUL-ended, capped */
	size_t body_len;
	char errbuf[CURL_ERROR_SIZE];
	char peer_ip[64];       /* address the exchange went to ("" = unknown) */
	bool refused;           /* deny_local stopped it before anything was sent */
	/* private to reg_fetch.c */
	uint64_t body_pos;      /* body bytes seen so far */
	uint64_t start_ms;
	bool enough;            /* stopped on purpose once buf was full */
	struct curl_slist *hdrs;
	CURL *easy;
	sem_t done;
	struct reg_http_req *next;
	struct reg_http_req *anext, **aprev; /* transfers on the loop */
};

struct reg_auth_entry;
struct reg_sock;

struct reg_ctx {
	struct ev_loop *loop;
	bool own_loop;
	pthread_t thread;
	bool thread_started;
	CURLM *multi;
	struct reg_sock *socks;
	struct reg_http_req *active;
	int stopping;          /* reg_ctx_destroy under way: fail fast */
	ev_timer timer;
	ev_async wake;
	ev_async stop;
	pthread_mutex_t qlock;
	struct reg_http_req *qhead, *qtail;
	int running;

	char *cache_dir, *cred_file, *ca_file, *client_cert, *client_key, *proxy, *user_agent;
	uint64_t cache_size, cache_free_floor;
	unsigned timeout_sec, max_host_conns;
	uint32_t refill_size;

	struct cache_store *cache;

	pthread_mutex_t auth_lock;
	struct reg_auth_entry *auth;

	struct cache_dl *dl;
};

/* reg_fetch.c */
int reg_fetch_init(struct reg_ctx *c);
/* Stop the private loop, then fail every queued and running transfer. */
void reg_fetch_abort(struct reg_ctx *c);
void reg_fetch_fini(struct reg_ctx *c);
int reg_http_do(struct reg_ctx *c, struct reg_http_req *r);
void reg_http_free(struct reg_http_req *r);
uint64_t reg_now_ms(void);
/* IP is loopback, link-local or unspecified (IPv4 or IPv6, mapped too). */
bool reg_addr_is_local(const char *ip);

/* reg_auth.c: authentication per repository (config.md 3, 4.2-4.4). */
struct reg_auth_state {
	uint64_t gen; /* generation of the header handed out */
	char header[4096];
};
/* The Authorization header to send for URL now (empty = anonymous). */
void reg_auth_get(struct reg_ctx *c, const char *repo_url, struct reg_auth_state *st);
/* A 401 answered a request sent with ST: learn the challenge, fetch
 * credentials/tokens.  0 = try again with reg_auth_get, -EPERM = give up,
 * other -errno = transient (token server down).  DENY_LOCAL: the registry
 * is not on this host, so neither may its token realm be (reg_fetch.c). */
int reg_auth_refresh(struct reg_ctx *c, const char *repo_url, const char *blob_url,
		     const char *www_auth, const struct reg_auth_state *st, bool deny_local);
void reg_auth_free_all(struct reg_ctx *c);

/* Parsing helpers, exported for the unit tests. */
struct reg_challenge {
	char scheme[16];       /* "basic" / "bearer", lower case */
	char realm[1024], service[256], scope[1024], error[64];
};
int reg_parse_challenge(const char *hdr, struct reg_challenge *out);
/* Credentials for BLOB_URL from the auths object in JSON text: most
 * specific key wins (host/ns/repo > host/ns > host).  0 found, -ENOENT. */
int reg_cred_match(const char *json, const char *blob_url, char *user, size_t ulen,
		   char *pass, size_t plen);

/* reg_redirect.c: signed storage URLs handed out by 307/302. */
struct reg_redirect {
	pthread_mutex_t lock;
	char *url;
	uint64_t expires_ms;
};
void reg_redirect_init(struct reg_redirect *rd);
void reg_redirect_fini(struct reg_redirect *rd);
/* Copy of the current target, NULL when none or expired. Caller frees. */
char *reg_redirect_get(struct reg_redirect *rd);
void reg_redirect_set(struct reg_redirect *rd, const char *url);
void reg_redirect_drop(struct reg_redirect *rd, const char *url);
uint64_t reg_redirect_lifetime_ms(const char *url, uint64_t now_ms);
/* Only http and https targets are followed. */
bool reg_redirect_scheme_ok(const char *url);

/* reg_retry.c: what to do with a finished exchange, and when. */
enum reg_verdict {
	REG_OK,
	REG_RETRY,     /* transient: back off and try again */
	REG_AUTH,      /* 401: refresh credentials once */
	REG_REDIRECT,  /* 3xx with a target */
	REG_FATAL,     /* 403, 404, 416 ...: no point retrying */
};
enum reg_verdict reg_classify(const struct reg_http_req *r, int *err);
struct reg_retry {
	uint64_t deadline_ms;
	unsigned attempt;
	int last_err;
	const int *stop; /* optional: give up at once when it becomes non-zero */
};
void reg_retry_init(struct reg_retry *rt, unsigned timeout_sec);
/* Sleep before the next attempt; false when the deadline has passed. */
bool reg_retry_backoff(struct reg_retry *rt, long retry_after_sec);
/* The reference's reason words for an errno (config.md 1.4). */
const char *reg_reason(int err);

/* reg_blob.c */
struct reg_blob;
bool reg_blob_is(struct bdev_file *f);
ssize_t reg_blob_remote_read(struct reg_blob *b, void *buf, size_t len, uint64_t off);

#endif
