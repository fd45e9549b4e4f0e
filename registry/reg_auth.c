/*
 * reg_auth: registry authentication (config.md 3 and 4.2-4.4, distribution
 * token-auth spec).  Anonymous until a 401 says otherwise; then Basic, or a
 * Bearer token fetched from the challenge's realm for its service and
 * scope.  Tokens are cached per repository until expires_in runs out and
 * fetched again once when the registry rejects one.  The credential file is
 * read again every time credentials are needed, so a rotated file takes
 * effect without a restart.  Secrets and tokens are never logged.
 */
#include "reg_int.h"
#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* distribution token spec: expires_in defaults to 60 s when absent. */
#define TOKEN_DEFAULT_SEC 60

enum auth_scheme { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct reg_auth_entry {
	struct reg_auth_entry *next;
	char *repo;              /* repo blob URL: one entry per repository */
	enum auth_scheme scheme;
	uint64_t gen;
	char header[4096];       /* "Authorization: ..." or "" */
	uint64_t expires_ms;     /* Bearer: token lifetime */
	pthread_mutex_t refresh; /* one refresh at a time per repository */
};

static struct reg_auth_entry *entry_get(struct reg_ctx *c, const char *repo)
{
	struct reg_auth_entry *e;

	for (e = c->auth; e; e = e->next)
		if (!strcmp(e->repo, repo))
			return e;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->repo = strdup(repo))) {
		free(e);
		return NULL;
	}
	pthread_mutex_init(&e->refresh, NULL);
	e->next = c->auth;
	c->auth = e;
	return e;
}

void reg_auth_get(struct reg_ctx *c, const char *repo_url, struct reg_auth_state *st)
{
	struct reg_auth_entry *e;

	pthread_mutex_lock(&c->auth_lock);
	e = entry_get(c, repo_url);
	st->header[0] = 0;
	st->gen = 0;
	if (e) {
		/* An expired token is replaced before use rather than after a 401. */
		if (e->scheme == AUTH_BEARER && reg_now_ms() >= e->expires_ms)
			e->header[0] = 0;
		st->gen = e->gen;
		memcpy(st->header, e->header, sizeof(st->header));
	}
	pthread_mutex_unlock(&c->auth_lock);
}

void reg_auth_free_all(struct reg_ctx *c)
{
	while (c->auth) {
		struct reg_auth_entry *e = c->auth;

		c->auth = e->next;
		pthread_mutex_destroy(&e->refresh);
		OPENSSL_cleanse(e->header, sizeof(e->header));
		free(e->repo);
		free(e);
	}
}

/* RFC 9110 11.6.1 / RFC 6750 3: scheme followed by k=v or k="v" pairs;
 * quoted values may hold commas and backslash escapes. */
int reg_parse_challenge(const char *hdr, struct reg_challenge *out)
{
	const char *p = hdr;
	size_t n;

	memset(out, 0, sizeof(*out));
	while (*p == ' ' || *p == '\t')
		p++;
	n = strcspn(p, " \t,");
	if (!n || n >= sizeof(out->scheme))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		out->scheme[i] = tolower((unsigned char)p[i]);
	p += n;
	for (;;) {
		char key[32], val[1024];
		size_t kl = 0, vl = 0;
		char *dst = NULL;
		size_t dlen = 0;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		while (*p && *p != '=' && *p != ',' && *p != ' ') {
			if (kl < sizeof(key) - 1)
				key[kl++] = tolower((unsigned char)*p);
			p++;
		}
		key[kl] = 0;
		while (*p == ' ')
			p++;
		if (*p != '=')
			continue; /* a bare token68 or junk: skip it */
		p++;
		while (*p == ' ')
			p++;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				if (vl < sizeof(val) - 1)
					val[vl++] = *p;
				p++;
			}
			if (*p != '"')
				return -EINVAL;
			p++;
		} else {
			while (*p && *p != ',' && *p != ' ' && *p != '\t') {
				if (vl < sizeof(val) - 1)
					val[vl++] = *p;
				p++;
			}
		}
		val[vl] = 0;
		if (!strcmp(key, "realm"))
			dst = out->realm, dlen = sizeof(out->realm);
		else if (!strcmp(key, "service"))
			dst = out->service, dlen = sizeof(out->service);
		else if (!strcmp(key, "scope"))
			dst = out->scope, dlen = sizeof(out->scope);
		else if (!strcmp(key, "error"))
			dst = out->error, dlen = sizeof(out->error);
		if (dst) {
			if (vl >= dlen)
				return -ENAMETOOLONG;
			memcpy(dst, val, vl + 1);
		}
	}
	if (strcmp(out->scheme, "basic") && strcmp(out->scheme, "bearer"))
		return -ENOTSUP;
	if (!strcmp(out->scheme, "bearer") && !out->realm[0])
		return -EINVAL;
	return 0;
}

/* A credential key as people write it: drop a scheme and trailing '/';
 * Docker Hub's names all mean the host that serves its blobs. */
static void normalize_key(const char *key, char *out, size_t len)
{
	const char *p = strstr(key, "://");
	size_t n;

	p = p ? p + 3 : key;
	snprintf(out, len, "%s", p);
	n = strlen(out);
	while (n && out[n - 1] == '/')
		out[--n] = 0;
	if (!strcmp(out, "docker.io") || !strcmp(out, "index.docker.io") ||
	    !strcmp(out, "index.docker.io/v1") || !strcmp(out, "hub.docker.com"))
		snprintf(out, len, "registry-1.docker.io");
}

/*
 * config.md 3.1 candidates: "https://HOST/v2/A/B/blobs/D" gives HOST,
 * HOST/A, HOST/A/B.  Returns how many path elements after HOST the key
 * covers (0 = host only), or -1 when KEY is not a candidate.
 */
static int key_depth(const char *key, const char *blob_url)
{
	char k[1024], cand[2048];
	const char *p = strstr(blob_url, "://"), *host, *path, *end;
	size_t hl;
	int depth = 0;

	normalize_key(key, k, sizeof(k));
	host = p ? p + 3 : blob_url;
	hl = strcspn(host, "/");
	if (hl >= sizeof(cand))
		return -1;
	memcpy(cand, host, hl);
	cand[hl] = 0;
	if (!strcmp(k, cand))
		return 0;
	path = host + hl;
	if (!strncmp(path, "/v2/", 4))
		path += 3;
	end = strstr(path, "/blobs");
	if (!end)
		end = path + strlen(path);
	while (path < end && *path == '/') {
		size_t sl = strcspn(path + 1, "/");

		if (path + 1 + sl > end)
			sl = end - path - 1;
		if (!sl || hl + 1 + sl >= sizeof(cand))
			break;
		cand[hl] = '/';
		memcpy(cand + hl + 1, path + 1, sl);
		hl += 1 + sl;
		cand[hl] = 0;
		depth++;
		if (!strcmp(k, cand))
			return depth;
		path += 1 + sl;
	}
	return -1;
}

static int creds_of(json_t *v, char *user, size_t ulen, char *pass, size_t plen)
{
	json_t *a = json_object_get(v, "auth");
	const char *u, *pw;

	if (json_is_string(a)) {
		const char *b64 = json_string_value(a);
		size_t bl = strlen(b64);
		unsigned char *raw = malloc(bl / 4 * 3 + 4);
		int n;
		char *colon;

		if (!raw)
			return -ENOMEM;
		n = EVP_DecodeBlock(raw, (const unsigned char *)b64, bl);
		if (n < 0) {
			free(raw);
			return -EINVAL;
		}
		/* EVP_DecodeBlock counts '=' padding as zero bytes. */
		while (bl && b64[bl - 1] == '=' && n > 0)
			bl--, n--;
		raw[n] = 0;
		colon = strchr((char *)raw, ':');
		if (colon && (size_t)(colon - (char *)raw) < ulen && strlen(colon + 1) < plen) {
			*colon = 0;
			strcpy(user, (char *)raw);
			strcpy(pass, colon + 1);
			OPENSSL_cleanse(raw, n);
			free(raw);
			return 0;
		}
		OPENSSL_cleanse(raw, n);
		free(raw);
	}
	u = json_string_value(json_object_get(v, "username"));
	pw = json_string_value(json_object_get(v, "password"));
	if (u && *u && strlen(u) < ulen && (!pw || strlen(pw) < plen)) {
		strcpy(user, u);
		strcpy(pass, pw ? pw : "");
		return 0;
	}
	return -EINVAL;
}

int reg_cred_match(const char *json, const char *blob_url, char *user, size_t ulen,
		   char *pass, size_t plen)
{
	json_error_t jerr;
	json_t *root = json_loads(json, 0, &jerr), *auths, *v;
	const char *key;
	int best = -1, ret = -ENOENT;

	auths = json_object_get(root, "auths");
	if (!json_is_object(auths)) {
		json_decref(root);
		return root ? -ENOENT : -EINVAL;
	}
	/* Most specific key wins (README: unlike the reference's first match). */
	json_object_foreach(auths, key, v) {
		int d = key_depth(key, blob_url);

		if (d > best && json_is_object(v) && !creds_of(v, user, ulen, pass, plen)) {
			best = d;
			ret = 0;
		}
	}
	if (!ret) {
		/* Re-extract: a later, less specific candidate may have
		 * overwritten the buffers during the scan. */
		json_object_foreach(auths, key, v) {
			if (key_depth(key, blob_url) == best && json_is_object(v) &&
			    !creds_of(v, user, ulen, pass, plen))
				break;
		}
	}
	json_decref(root);
	return ret;
}

static int read_creds(struct reg_ctx *c, const char *blob_url, char *user, size_t ulen,
		      char *pass, size_t plen)
{
	FILE *f;
	char *text;
	long n;
	int ret;

	user[0] = pass[0] = 0;
	if (!c->cred_file)
		return -ENOENT;
	f = fopen(c->cred_file, "re");
	if (!f) {
		log_warn("registry: credential file %s: %s", c->cred_file, strerror(errno));
		return -ENOENT;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = n >= 0 && n < (16l << 20) ? malloc(n + 1) : NULL;
	if (!text || fread(text, 1, n, f) != (size_t)n) {
		free(text);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	text[n] = 0;
	ret = reg_cred_match(text, blob_url, user, ulen, pass, plen);
	if (ret == -EINVAL)
		log_warn("registry: credential file %s is not valid JSON", c->cred_file);
	OPENSSL_cleanse(text, n);
	free(text);
	if (ret)
		user[0] = pass[0] = 0;
	return ret;
}

static int basic_header(const char *user, const char *pass, char *out, size_t len)
{
	char plain[1024];
	unsigned char b64[1400];
	int n = snprintf(plain, sizeof(plain), "%s:%s", user, pass);

	if (n < 0 || (size_t)n >= sizeof(plain))
		return -ENAMETOOLONG;
	EVP_EncodeBlock(b64, (unsigned char *)plain, n);
	OPENSSL_cleanse(plain, sizeof(plain));
	n = snprintf(out, len, "Authorization: Basic %s", b64);
	OPENSSL_cleanse(b64, sizeof(b64));
	return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

static void url_escape(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s && o + 4 < len; s++) {
		unsigned char ch = *s;

		if (isalnum(ch) || strchr("-._~:/", ch)) {
			out[o++] = ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = 0;
}

/* distribution token spec: GET realm?service=S&scope=SC, Basic credentials
 * when we have any; the reply carries token (or access_token), expires_in. */
static int fetch_token(struct reg_ctx *c, const struct reg_challenge *ch, const char *user,
		       const char *pass, bool deny_local, char *hdr, size_t hlen,
		       uint64_t *expires_ms)
{
	char url[4096], svc[768], scope[2048], basic[1500];
	struct reg_http_req r;
	struct reg_retry rt;
	json_t *root;
	json_error_t jerr;
	const char *tok;
	json_int_t exp = TOKEN_DEFAULT_SEC;
	int err, n;

	url_escape(ch->service, svc, sizeof(svc));
	url_escape(ch->scope, scope, sizeof(scope));
	n = snprintf(url, sizeof(url), "%s%cservice=%s%s%s", ch->realm,
		     strchr(ch->realm, '?') ? '&' : '?', svc, ch->scope[0] ? "&scope=" : "",
		     scope);
	if (n < 0 || (size_t)n >= sizeof(url))
		return -ENAMETOOLONG;
	basic[0] = 0;
	if (*user && (err = basic_header(user, pass, basic, sizeof(basic))))
		return err;
	reg_retry_init(&rt, c->timeout_sec);
	rt.stop = &c->stopping;
	for (;;) {
		memset(&r, 0, sizeof(r));
		r.url = url;
		r.auth = basic[0] ? basic : NULL;
		/* The realm comes from the registry's challenge: like a
		 * redirect, it may not lead from afar into this host. */
		r.deny_local = deny_local;
		reg_http_do(c, &r);
		if (reg_classify(&r, &err) == REG_RETRY) {
			long ra = r.retry_after;

			reg_http_free(&r);
			if (reg_retry_backoff(&rt, ra))
				continue;
			break;
		}
		if (r.status != 200) {
			if (r.cc == CURLE_OK)
				log_warn("registry: token server %s answered %ld", ch->realm, r.status);
			err = r.status == 401 || r.status == 403 ? -EPERM : err ? err : -EIO;
			break;
		}
		root = r.body ? json_loads(r.body, 0, &jerr) : NULL;
		tok = json_string_value(json_object_get(root, "token"));
		if (!tok || !*tok)
			tok = json_string_value(json_object_get(root, "access_token"));
		if (json_is_integer(json_object_get(root, "expires_in")))
			exp = json_integer_value(json_object_get(root, "expires_in"));
		if (exp < 1)
			exp = TOKEN_DEFAULT_SEC;
		err = -EIO;
		if (tok && *tok) {
			n = snprintf(hdr, hlen, "Authorization: Bearer %s", tok);
			err = n > 0 && (size_t)n < hlen ? 0 : -ENAMETOOLONG;
			/* Renew a little early so a token never expires in flight. */
			*expires_ms = reg_now_ms() + (uint64_t)exp * 1000 -
				      (exp > 20 ? 10000 : (uint64_t)exp * 500);
		} else {
			log_warn("registry: token server %s sent no token", ch->realm);
		}
		json_decref(root);
		break;
	}
	if (r.body)
		OPENSSL_cleanse(r.body, r.body_len);
	reg_http_free(&r);
	OPENSSL_cleanse(basic, sizeof(basic));
	return err;
}

int reg_auth_refresh(struct reg_ctx *c, const char *repo_url, const char *blob_url,
		     const char *www_auth, const struct reg_auth_state *st, bool deny_local)
{
	struct reg_auth_entry *e;
	struct reg_challenge ch;
	char user[512], pass[1024], hdr[4096];
	uint64_t expires = 0;
	int err;

	if (!www_auth) {
		log_warn("registry: 401 without a WWW-Authenticate challenge from %s", blob_url);
		return -EPERM;
	}
	err = reg_parse_challenge(www_auth, &ch);
	if (err) {
		log_warn("registry: cannot use challenge from %s: %s", blob_url, strerror(-err));
		return -EPERM;
	}
	pthread_mutex_lock(&c->auth_lock);
	e = entry_get(c, repo_url);
	pthread_mutex_unlock(&c->auth_lock);
	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&e->refresh);
	pthread_mutex_lock(&c->auth_lock);
	if (e->gen != st->gen) {
		/* Somebody refreshed while we waited: use theirs. */
		pthread_mutex_unlock(&c->auth_lock);
		pthread_mutex_unlock(&e->refresh);
		return 0;
	}
	pthread_mutex_unlock(&c->auth_lock);

	read_creds(c, blob_url, user, sizeof(user), pass, sizeof(pass));
	if (!strcmp(ch.scheme, "basic")) {
		if (!user[0]) {
			log_warn("registry: %s needs credentials and none match it", blob_url);
			err = -EPERM;
		} else {
			err = basic_header(user, pass, hdr, sizeof(hdr));
		}
	} else {
		err = fetch_token(c, &ch, user, pass, deny_local, hdr, sizeof(hdr), &expires);
		if (err == -EPERM)
			log_warn("registry: token server refused the credentials for %s", blob_url);
	}
	OPENSSL_cleanse(pass, sizeof(pass));
	if (!err) {
		pthread_mutex_lock(&c->auth_lock);
		e->scheme = !strcmp(ch.scheme, "basic") ? AUTH_BASIC : AUTH_BEARER;
		memcpy(e->header, hdr, sizeof(hdr));
		e->expires_ms = expires;
		e->gen++;
		pthread_mutex_unlock(&c->auth_lock);
	}
	OPENSSL_cleanse(hdr, sizeof(hdr));
	pthread_mutex_unlock(&e->refresh);
	return err;
}
