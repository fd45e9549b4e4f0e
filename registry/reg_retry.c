/*
 * reg_retry: which failures are worth another attempt, and how long to
 * wait.  Transient trouble (connect errors, resets, 5xx, 429, short bodies)
 * is retried with exponential backoff and jitter until a per-operation
 * deadline; after that the read fails with -EIO so the initiator sees a
 * MEDIUM ERROR, never zeros.  401 (once refreshed), 403 and 404 are final.
 */
#include "reg_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 50u
#define BACKOFF_MAX_MS 2000u

static int curl_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return -EPROTO;
	default:
		return -EIO;
	}
}

enum reg_verdict reg_classify(const struct reg_http_req *r, int *err)
{
	*err = 0;
	/* A redirect into this host (reg_fetch.c prereq_cb), or to a scheme
	 * we do not speak: asking again gets the same answer. */
	if (r->refused || r->cc == CURLE_UNSUPPORTED_PROTOCOL) {
		*err = -EIO;
		return REG_FATAL;
	}
	if (r->cc != CURLE_OK) {
		*err = curl_errno(r->cc);
		/* A bad certificate will not fix itself within the deadline,
		 * and a context shutting down wants no retries. */
		return *err == -EPROTO || *err == -ECANCELED ? REG_FATAL : REG_RETRY;
	}
	switch (r->status) {
	case 200:
	case 206:
		return REG_OK;
	case 301:
	case 302:
	case 303:
	case 307:
	case 308:
		if (r->redirect)
			return REG_REDIRECT;
		*err = -EIO;
		return REG_FATAL;
	case 401:
		*err = -EPERM;
		return REG_AUTH;
	case 403:
		*err = -EPERM;
		return REG_FATAL;
	case 404:
		*err = -ENOENT;
		return REG_FATAL;
	case 416:
		/* RFC 9110 15.5.17: the range lies past the end; decided by
		 * status alone, the body is unreliable. */
		*err = -ERANGE;
		return REG_FATAL;
	case 408:
	case 429:
		*err = r->status == 429 ? -EBUSY : -ETIMEDOUT;
		return REG_RETRY;
	default:
		*err = -EIO;
		return r->status >= 500 ? REG_RETRY : REG_FATAL;
	}
}

void reg_retry_init(struct reg_retry *rt, unsigned timeout_sec)
{
	rt->deadline_ms = reg_now_ms() + (uint64_t)timeout_sec * 1000;
	rt->attempt = 0;
	rt->last_err = 0;
	rt->stop = NULL;
}

bool reg_retry_backoff(struct reg_retry *rt, long retry_after_sec)
{
	uint64_t now = reg_now_ms(), wait;
	unsigned shift = rt->attempt < 10 ? rt->attempt : 10;
	struct timespec ts;

	if (now >= rt->deadline_ms)
		return false;
	wait = (uint64_t)BACKOFF_MIN_MS << shift;
	if (wait > BACKOFF_MAX_MS)
		wait = BACKOFF_MAX_MS;
	/* Full jitter spreads clients that failed together. */
	wait = wait / 2 + (uint64_t)(random() % (long)(wait / 2 + 1));
	if (retry_after_sec >= 0)
		wait = (uint64_t)retry_after_sec * 1000;
	if (now + wait > rt->deadline_ms) {
		/* Waiting past the deadline is pointless for Retry-After. */
		if (retry_after_sec >= 0)
			return false;
		wait = rt->deadline_ms - now;
	}
	rt->attempt++;
	/* Sleep in slices so a shutdown is noticed within 50 ms. */
	while (wait) {
		uint64_t slice = wait < 50 ? wait : 50;

		if (rt->stop && __atomic_load_n(rt->stop, __ATOMIC_ACQUIRE))
			return false;
		ts.tv_sec = 0;
		ts.tv_nsec = slice * 1000000;
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		wait -= slice;
	}
	return !(rt->stop && __atomic_load_n(rt->stop, __ATOMIC_ACQUIRE));
}

const char *reg_reason(int err)
{
	switch (err) {
	case -EPERM:
	case -EACCES:
		return "Authentication failed";
	case -ECONNREFUSED:
		return "Connection failed";
	case -ETIMEDOUT:
		return "Get meta timedout";
	case -ENOENT:
		return "No such file or directory";
	case -EBUSY:
		return "Too many requests";
	case -EIO:
	case -ERANGE:
		return "Unexpected response";
	default:
		return strerror(-err);
	}
}
