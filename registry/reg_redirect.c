/*
 * reg_redirect: registries hand blob reads to a storage back end with a
 * 307/302 to a signed URL (S3, GCS, Azure, a CDN).  We follow it ourselves
 * so that the Authorization header meant for the registry never reaches the
 * storage (it would leak the token, and S3 rejects two auth mechanisms),
 * and we keep the signed URL for later ranges until it fails or expires,
 * which saves the registry round trip on every read.
 */
#include "reg_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Without an expiry in the URL, re-ask the registry this often. */
#define REDIRECT_DEFAULT_MS (10u * 60 * 1000)
/* Stop using a URL this long before it says it expires (clock skew). */
#define REDIRECT_MARGIN_MS (30u * 1000)

void reg_redirect_init(struct reg_redirect *rd)
{
	pthread_mutex_init(&rd->lock, NULL);
	rd->url = NULL;
	rd->expires_ms = 0;
}

void reg_redirect_fini(struct reg_redirect *rd)
{
	free(rd->url);
	rd->url = NULL;
	pthread_mutex_destroy(&rd->lock);
}

static const char *query_param(const char *url, const char *name, size_t *len)
{
	const char *q = strchr(url, '?');
	size_t n = strlen(name);

	while (q) {
		q++;
		if (!strncmp(q, name, n) && q[n] == '=') {
			q += n + 1;
			*len = strcspn(q, "&#");
			return q;
		}
		q = strchr(q, '&');
	}
	return NULL;
}

/*
 * How long a signed URL stays good: AWS SigV4 (X-Amz-Date + X-Amz-Expires),
 * CloudFront/GCS v2 (Expires=<epoch>), Azure SAS (se=<ISO time>).
 */
uint64_t reg_redirect_lifetime_ms(const char *url, uint64_t now_ms)
{
	const char *v;
	size_t n;
	char tmp[32];
	struct tm tm;
	time_t now = time(NULL), until = 0;

	if ((v = query_param(url, "X-Amz-Date", &n)) && n < sizeof(tmp)) {
		size_t en;
		const char *e = query_param(url, "X-Amz-Expires", &en);

		memcpy(tmp, v, n);
		tmp[n] = 0;
		memset(&tm, 0, sizeof(tm));
		if (e && strptime(tmp, "%Y%m%dT%H%M%SZ", &tm))
			until = timegm(&tm) + strtol(e, NULL, 10);
	} else if ((v = query_param(url, "Expires", &n))) {
		until = strtol(v, NULL, 10);
	} else if ((v = query_param(url, "se", &n)) && n < sizeof(tmp)) {
		memcpy(tmp, v, n);
		tmp[n] = 0;
		memset(&tm, 0, sizeof(tm));
		/* "%3A" is how ':' travels in a query string. */
		if (strptime(tmp, "%Y-%m-%dT%H%%3A%M%%3A%SZ", &tm) ||
		    strptime(tmp, "%Y-%m-%dT%H:%M:%SZ", &tm))
			until = timegm(&tm);
	}
	if (!until)
		return now_ms + REDIRECT_DEFAULT_MS;
	if (until - now <= REDIRECT_MARGIN_MS / 1000)
		return now_ms; /* already stale: use it for this read only */
	return now_ms + (uint64_t)(until - now) * 1000 - REDIRECT_MARGIN_MS;
}

char *reg_redirect_get(struct reg_redirect *rd)
{
	char *u = NULL;

	pthread_mutex_lock(&rd->lock);
	if (rd->url && reg_now_ms() < rd->expires_ms)
		u = strdup(rd->url);
	pthread_mutex_unlock(&rd->lock);
	return u;
}

void reg_redirect_set(struct reg_redirect *rd, const char *url)
{
	char *u = strdup(url);
	uint64_t now = reg_now_ms();

	pthread_mutex_lock(&rd->lock);
	free(rd->url);
	rd->url = u;
	rd->expires_ms = u ? reg_redirect_lifetime_ms(url, now) : 0;
	pthread_mutex_unlock(&rd->lock);
}

void reg_redirect_drop(struct reg_redirect *rd, const char *url)
{
	pthread_mutex_lock(&rd->lock);
	/* Another thread may have installed a fresh URL meanwhile. */
	if (rd->url && !strcmp(rd->url, url)) {
		free(rd->url);
		rd->url = NULL;
	}
	pthread_mutex_unlock(&rd->lock);
}

/*
 * A registry's Location may name any scheme libcurl speaks (gopher, dict,
 * file, smtp ...), each a way to make us talk to a service the registry
 * cannot reach itself.  Blob storage is HTTP (distribution spec: the
 * blob GET "MAY" redirect to another HTTP location), so only http and
 * https are followed; make_easy() enforces the same list in libcurl.
 */
bool reg_redirect_scheme_ok(const char *url)
{
	return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8);
}
