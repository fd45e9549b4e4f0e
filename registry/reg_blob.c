/*
 * reg_blob: a registry blob as a read-only struct bdev_file (config.md 1.1,
 * 4).  A read goes to the local copy once the background download switched
 * it, else through the disk cache, else straight to the registry.  Remote
 * reads run here in the calling worker thread: they block on the loop's
 * transfers, follow redirects, refresh authentication once and retry
 * transient failures until the deadline.
 */
#include "reg_int.h"
#include "cache/cache.h"
#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct reg_blob {
	struct bdev_file f;
	struct reg_ctx *c;
	char *url;    /* repoBlobUrl/digest */
	char *repo;   /* repoBlobUrl: the key for credentials and tokens */
	char *origin; /* scheme://host:port/path of repo: the cache's namespace */
	char *digest;
	char *name;
	struct reg_redirect rd;
	struct cache_blob *cb;
	struct cache_dl_job *dl;
	int local_fd; /* >= 0 once switched to the downloaded copy */
	int refs;     /* the opener's, plus one while a download job holds it */
	int last_err; /* reason of the last failed remote read */
	int registry_public; /* the registry answered from a non-local address */
	uint64_t remote_bytes, remote_reqs;
};

static const struct bdev_file_ops reg_blob_ops;

/*
 * The cache trusts a registry with a digest's bytes only for what that
 * registry served (docs/cache.md): entries are kept per origin, the blob
 * URL's scheme, host, port and repository path.  Two spellings of one
 * registry ("HTTP://Reg", "http://reg:80/") are one origin; credentials,
 * query and fragment are not part of it.  NULL when out of memory.
 */
static char *origin_of(const char *repo)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *o = NULL;

	if (u && !curl_url_set(u, CURLUPART_URL, repo, 0) &&
	    !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &host, 0) &&
	    !curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) &&
	    !curl_url_get(u, CURLUPART_PATH, &path, 0)) {
		size_t pl = strlen(path);

		for (char *h = host; *h; h++)
			*h = tolower((unsigned char)*h);
		while (pl > 1 && path[pl - 1] == '/')
			pl--;
		if (asprintf(&o, "%s://%s:%s%.*s", scheme, host, port, (int)pl, path) < 0)
			o = NULL;
	} else {
		/* Not a URL curl can parse: nothing will be fetched from it
		 * anyway, and the text itself still separates origins. */
		o = strdup(repo);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return o;
}

bool reg_blob_is(struct bdev_file *f)
{
	return f && f->ops == &reg_blob_ops;
}

bool reg_is_remote(struct bdev_file *f)
{
	return reg_blob_is(f);
}

/*
 * After a 401: refresh credentials?  A request sent anonymously earns its
 * first challenge; a rejected token or password is fetched again once
 * (issue 4), and a second rejection is final.
 */
static bool auth_more(unsigned *tries, const struct reg_auth_state *st)
{
	*tries += st->header[0] ? 2 : 1;
	return *tries <= 3;
}

/*
 * A registry on another host may not send us into this one: a redirect
 * from it to a loopback or link-local address would turn the daemon into
 * its proxy to local services (SSRF).  A registry that is itself local
 * may hand out local storage URLs (a test setup, a pull-through cache).
 * Learned from the address each registry response came from.
 */
static void note_registry_peer(struct reg_blob *b, const struct reg_http_req *r)
{
	if (r->peer_ip[0] && !reg_addr_is_local(r->peer_ip))
		__atomic_store_n(&b->registry_public, 1, __ATOMIC_RELAXED);
}

static bool registry_is_public(struct reg_blob *b)
{
	return __atomic_load_n(&b->registry_public, __ATOMIC_RELAXED);
}

static void storage_req(struct reg_blob *b, struct reg_http_req *r)
{
	r->deny_local = registry_is_public(b);
}

/* A redirect target we follow: http(s) only (reg_redirect.c). */
static bool follow_ok(struct reg_blob *b, const char *target)
{
	if (reg_redirect_scheme_ok(target))
		return true;
	log_warn("registry: %s redirected to %.64s: only http and https are followed", b->url,
		 target);
	return false;
}

/* One ranged GET to URL: done, or the verdict says what to do next.
 * STORAGE: URL is a redirect target, not the registry. */
static enum reg_verdict get_range(struct reg_blob *b, const char *url, const char *auth,
				  bool storage, void *buf, size_t len, uint64_t off,
				  struct reg_http_req *r, int *err)
{
	enum reg_verdict v;

	memset(r, 0, sizeof(*r));
	r->url = url;
	r->auth = auth && *auth ? auth : NULL;
	if (storage)
		storage_req(b, r);
	r->range_off = off;
	r->range_len = len;
	r->buf = buf;
	r->buf_len = len;
	reg_http_do(b->c, r);
	if (!storage)
		note_registry_peer(b, r);
	__atomic_add_fetch(&b->remote_reqs, 1, __ATOMIC_RELAXED);
	v = reg_classify(r, err);
	if (v != REG_OK)
		return v;
	/* The blob must be the size the spec says (config.md 1.1). */
	if ((r->status == 206 && r->cr_total && r->cr_total != b->f.size) ||
	    (r->status == 200 && r->has_cl && r->content_length != b->f.size)) {
		log_error("registry: %s is %" PRIu64 " bytes, the spec says %" PRIu64, b->url,
			  r->status == 206 ? r->cr_total : r->content_length, b->f.size);
		*err = -EIO;
		return REG_FATAL;
	}
	/* Trust Content-Range: a 206 that starts past OFF or ends short is a
	 * short body, retried like a reset. */
	if (r->status == 206 && (!r->has_cr || r->cr_start > off)) {
		*err = -EIO;
		return REG_RETRY;
	}
	if (r->got < len) {
		*err = -EIO;
		return REG_RETRY;
	}
	__atomic_add_fetch(&b->remote_bytes, r->got, __ATOMIC_RELAXED);
	return REG_OK;
}

/* Read [OFF, OFF+LEN) of the blob from the network; LEN must lie inside
 * the blob.  0 or -errno (-EIO once the retry deadline has passed). */
static int remote_read_exact(struct reg_blob *b, void *buf, size_t len, uint64_t off)
{
	struct reg_retry rt;
	struct reg_http_req r;
	struct reg_auth_state st;
	unsigned auth_tries = 0;
	int err = 0;

	reg_retry_init(&rt, b->c->timeout_sec);
	rt.stop = &b->c->stopping;
	for (;;) {
		char *signed_url = reg_redirect_get(&b->rd);
		enum reg_verdict v;

		if (signed_url) {
			/* The storage URL gets no Authorization (reg_redirect.c). */
			v = get_range(b, signed_url, NULL, true, buf, len, off, &r, &err);
			if (v != REG_OK) {
				log_debug("registry: signed URL for %s failed (%ld), asking the "
					  "registry again", b->digest, r.status);
				reg_redirect_drop(&b->rd, signed_url);
			}
			free(signed_url);
			reg_http_free(&r);
			if (v == REG_OK)
				return 0;
			continue;
		}
		reg_auth_get(b->c, b->repo, &st);
		v = get_range(b, b->url, st.header, false, buf, len, off, &r, &err);
		switch (v) {
		case REG_OK:
			reg_http_free(&r);
			return 0;
		case REG_REDIRECT: {
			/* get_range() starts R afresh: take the target out of
			 * the first response, and free that response, first. */
			char *target = r.redirect;

			r.redirect = NULL;
			reg_http_free(&r);
			if (!follow_ok(b, target)) {
				free(target);
				return -EIO;
			}
			reg_redirect_set(&b->rd, target);
			v = get_range(b, target, NULL, true, buf, len, off, &r, &err);
			if (v != REG_OK)
				reg_redirect_drop(&b->rd, target);
			free(target);
			if (v == REG_OK) {
				reg_http_free(&r);
				return 0;
			}
			break;
		}
		case REG_AUTH:
			if (auth_more(&auth_tries, &st)) {
				err = reg_auth_refresh(b->c, b->repo, b->url, r.www_auth, &st,
						       registry_is_public(b));
				reg_http_free(&r);
				if (!err)
					continue;
				if (err == -EPERM || err == -ENOMEM)
					return err;
				v = REG_RETRY;
				break;
			}
			log_warn("registry: %s still refuses %s after new credentials", b->url,
				 b->digest);
			reg_http_free(&r);
			return -EPERM;
		default:
			break;
		}
		if (v == REG_FATAL) {
			if (r.cc == CURLE_OK)
				log_warn("registry: GET %s range %" PRIu64 "+%zu: HTTP %ld", b->url,
					 off, len, r.status);
			else
				log_warn("registry: GET %s: %s", b->url,
					 r.errbuf[0] ? r.errbuf : curl_easy_strerror(r.cc));
			reg_http_free(&r);
			return err ? err : -EIO;
		}
		if (rt.attempt == 0 || rt.attempt % 8 == 0)
			log_warn("registry: GET %s range %" PRIu64 "+%zu failed (%s), retrying",
				 b->url, off, len,
				 r.cc != CURLE_OK ? (r.errbuf[0] ? r.errbuf : curl_easy_strerror(r.cc))
						  : r.status >= 300 ? "bad status" : "short body");
		rt.last_err = err;
		{
			long ra = r.retry_after;

			reg_http_free(&r);
			if (!reg_retry_backoff(&rt, ra))
				return err ? err : -EIO;
		}
	}
}

ssize_t reg_blob_remote_read(struct reg_blob *b, void *buf, size_t len, uint64_t off)
{
	int err;

	if (off >= b->f.size)
		return 0;
	if (len > b->f.size - off)
		len = b->f.size - off;
	if (!len)
		return 0;
	err = remote_read_exact(b, buf, len, off);
	if (err)
		__atomic_store_n(&b->last_err, err, __ATOMIC_RELAXED);
	/* The SCSI layer maps -EIO to MEDIUM ERROR; the reason is logged. */
	return err ? (err == -ENOMEM ? err : -EIO) : (ssize_t)len;
}

static ssize_t cache_fetch(void *ctx, void *buf, size_t len, uint64_t off)
{
	return reg_blob_remote_read(ctx, buf, len, off);
}

static ssize_t blob_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct reg_blob *b = (struct reg_blob *)f;
	int fd = __atomic_load_n(&b->local_fd, __ATOMIC_ACQUIRE);

	if (off >= f->size)
		return 0;
	if (len > f->size - off)
		len = f->size - off;
	if (fd >= 0) {
		size_t done = 0;

		while (done < len) {
			ssize_t n = pread(fd, (char *)buf + done, len - done, off + done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : (ssize_t)done;
			done += n;
		}
		return done;
	}
	if (b->cb)
		return cache_blob_pread(b->cb, buf, len, off, cache_fetch, b);
	return reg_blob_remote_read(b, buf, len, off);
}

static const char *blob_name(struct bdev_file *f)
{
	return ((struct reg_blob *)f)->name;
}

static void blob_free(struct reg_blob *b)
{
	if (b->cb)
		cache_blob_close(b->cb);
	if (b->local_fd >= 0)
		close(b->local_fd);
	reg_redirect_fini(&b->rd);
	free(b->url);
	free(b->repo);
	free(b->origin);
	free(b->digest);
	free(b->name);
	free(b);
}

static void blob_unref(struct reg_blob *b)
{
	if (!__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL))
		blob_free(b);
}

/*
 * Never waits for the download: its thread may be blocked on a transfer
 * that needs the loop this is called from.  The job holds its own
 * reference and drops it when its current read returns.
 */
static void blob_close(struct bdev_file *f)
{
	struct reg_blob *b = (struct reg_blob *)f;

	cache_dl_remove(b->dl);
	blob_unref(b);
}

static const struct bdev_file_ops reg_blob_ops = {
	.pread = blob_pread,
	.name = blob_name,
	.close = blob_close,
};

/* The size probe (config.md 4.1): a one-byte ranged GET, whose
 * Content-Range names the whole size; also settles auth and redirects. */
static int probe_size(struct reg_blob *b, uint64_t *size);

/* A blob this small is fetched whole at open, one request instead of a
 * head and a tail: with many small layers the registry's per-request cost,
 * not the bytes, is what a container start waits for. */
#define OPEN_WHOLE_MAX (2u << 20)
/* What is fetched of a bigger blob's end at open: its trailer and, for
 * all but the largest indexes, the index (or ZFile jump table) too. */
#define OPEN_TAIL (1u << 20)

static void *fill_tail(void *arg)
{
	struct reg_blob *b = arg;

	cache_blob_prefetch(b->cb, b->f.size - OPEN_TAIL, OPEN_TAIL, cache_fetch, b);
	return NULL;
}

static int open_first_unit(struct reg_blob *b, uint64_t size, uint64_t *probed)
{
	pthread_t th;
	bool tail;
	int err, last;

	err = cache_blob_open(b->c->cache, b->origin, b->digest, size, &b->cb);
	if (err) {
		log_warn("registry: no disk cache for %s (%s), reading from the registry",
			 b->digest, strerror(-err));
		b->cb = NULL;
		return probe_size(b, probed);
	}
	/* Layer formats keep their metadata at both ends (lsmt.md 4.1
	 * trailer and index, zfile.md jump table): fetch the tail alongside
	 * the head, one round trip instead of three before the layer can
	 * open.  A failed tail is fetched again on demand. */
	tail = size > OPEN_WHOLE_MAX && !pthread_create(&th, NULL, fill_tail, b);
	err = cache_blob_prefetch(b->cb, 0, size > OPEN_WHOLE_MAX ? 1 : size, cache_fetch, b);
	if (tail)
		pthread_join(th, NULL);
	if (!err)
		return 0;
	/* The origin's own reason (404, auth) names the failure best. */
	last = __atomic_load_n(&b->last_err, __ATOMIC_RELAXED);
	return last ? last : err;
}

static int probe_size(struct reg_blob *b, uint64_t *size)
{
	unsigned char one;
	struct reg_retry rt;
	struct reg_http_req r;
	struct reg_auth_state st;
	unsigned auth_tries = 0;
	int err;

	reg_retry_init(&rt, b->c->timeout_sec);
	rt.stop = &b->c->stopping;
	for (;;) {
		enum reg_verdict v;
		const char *url = b->url;
		char *signed_url = NULL;

		reg_auth_get(b->c, b->repo, &st);
		memset(&r, 0, sizeof(r));
		r.url = url;
		r.auth = st.header[0] ? st.header : NULL;
		r.range_off = 0;
		r.range_len = 1;
		r.buf = &one;
		r.buf_len = 1;
		reg_http_do(b->c, &r);
		note_registry_peer(b, &r);
		v = reg_classify(&r, &err);
		if (v == REG_REDIRECT) {
			/* 307s carry no size (NOTES: redirects): ask the target. */
			if (!follow_ok(b, r.redirect)) {
				reg_http_free(&r);
				return -EIO;
			}
			signed_url = strdup(r.redirect);
			reg_http_free(&r);
			if (!signed_url)
				return -ENOMEM;
			memset(&r, 0, sizeof(r));
			storage_req(b, &r);
			r.url = signed_url;
			r.range_off = 0;
			r.range_len = 1;
			r.buf = &one;
			r.buf_len = 1;
			reg_http_do(b->c, &r);
			v = reg_classify(&r, &err);
			if (v == REG_OK)
				reg_redirect_set(&b->rd, signed_url);
			else if (v == REG_REDIRECT || v == REG_AUTH)
				v = REG_FATAL, err = -EIO;
		}
		free(signed_url);
		if (v == REG_OK) {
			if (r.status == 206 && r.has_cr && r.cr_total)
				*size = r.cr_total;
			else if (r.status == 200 && r.has_cl)
				*size = r.content_length;
			else
				v = REG_FATAL, err = -EIO;
			if (v == REG_OK) {
				reg_http_free(&r);
				return 0;
			}
		}
		if (v == REG_AUTH && auth_more(&auth_tries, &st)) {
			err = reg_auth_refresh(b->c, b->repo, b->url, r.www_auth, &st,
					       registry_is_public(b));
			reg_http_free(&r);
			if (!err)
				continue;
			if (err == -EPERM)
				return err;
			v = REG_RETRY;
		}
		if (v == REG_RETRY) {
			long ra = r.retry_after;

			if (rt.attempt == 0)
				log_warn("registry: %s: %s, retrying for up to %us", b->url,
					 r.cc != CURLE_OK ? curl_easy_strerror(r.cc) : "bad status",
					 b->c->timeout_sec);
			reg_http_free(&r);
			if (reg_retry_backoff(&rt, ra))
				continue;
			/* A registry that never answered: the reference's words. */
			return err == -EIO ? -ETIMEDOUT : err;
		}
		if (r.cc == CURLE_OK)
			log_warn("registry: %s answered HTTP %ld", b->url, r.status);
		else
			log_warn("registry: %s: %s", b->url,
				 r.errbuf[0] ? r.errbuf : curl_easy_strerror(r.cc));
		reg_http_free(&r);
		return err ? err : -EIO;
	}
}

int reg_blob_open(struct reg_ctx *c, const char *repo_blob_url, const char *digest,
		  uint64_t size, struct bdev_file **out, char *errbuf, size_t errlen)
{
	struct reg_blob *b;
	size_t rl = strlen(repo_blob_url);
	uint64_t probed = 0;
	int err;

	if (errbuf && errlen)
		errbuf[0] = 0;
	if (!rl) {
		if (errbuf)
			snprintf(errbuf, errlen, "empty repoBlobUrl");
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->c = c;
	b->local_fd = -1;
	b->refs = 1;
	b->f.ops = &reg_blob_ops;
	reg_redirect_init(&b->rd);
	while (rl && repo_blob_url[rl - 1] == '/')
		rl--;
	b->repo = strndup(repo_blob_url, rl);
	b->origin = b->repo ? origin_of(b->repo) : NULL;
	b->digest = strdup(digest);
	if (b->repo && asprintf(&b->url, "%s/%s", b->repo, digest) < 0)
		b->url = NULL;
	if (b->url && asprintf(&b->name, "remote(%s)", b->url) < 0)
		b->name = NULL;
	if (!b->repo || !b->origin || !b->digest || !b->url || !b->name) {
		err = -ENOMEM;
		goto fail;
	}
	if (size && c->cache) {
		/* The size comes from the spec: no separate probe.  An earlier
		 * open that recorded it lets us start without the registry
		 * (cached layers come up while it is away); otherwise the
		 * first unit, which the layer's header read needs next anyway,
		 * is fetched now and its Content-Range checks the size. */
		probed = size;
		b->f.size = size;
		err = 0;
		if (cache_known_size(c->cache, b->origin, digest, &probed) || probed != size)
			err = open_first_unit(b, size, &probed);
	} else {
		err = probe_size(b, &probed);
	}
	if (!err && size && probed != size) {
		log_error("registry: %s is %" PRIu64 " bytes, the spec says %" PRIu64, b->url,
			  probed, size);
		err = -EIO;
	}
	if (err)
		goto fail;
	b->f.size = probed;
	if (c->cache && !b->cb) {
		err = cache_blob_open(c->cache, b->origin, digest, probed, &b->cb);
		if (err) {
			log_warn("registry: no disk cache for %s (%s), reading from the registry",
				 digest, strerror(-err));
			b->cb = NULL;
		}
	}
	*out = &b->f;
	return 0;
fail:
	if (b->cb)
		cache_blob_close(b->cb);
	if (errbuf)
		snprintf(errbuf, errlen, "failed to open remote file /%s: %s",
			 b->url ? b->url : repo_blob_url, reg_reason(err));
	b->local_fd = -1;
	reg_redirect_fini(&b->rd);
	free(b->url);
	free(b->repo);
	free(b->origin);
	free(b->digest);
	free(b->name);
	free(b);
	return err;
}

/* Download source: cached units are copied, the rest comes from the
 * registry without passing through (and evicting from) the cache. */
static ssize_t dl_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return reg_blob_remote_read(ctx, buf, len, off);
}

static ssize_t dl_read_cached(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct reg_blob *b = ctx;

	return b->cb ? cache_blob_read_cached(b->cb, buf, len, off) : 0;
}

/* config.md 6: reads move to the verified copy in one atomic store; reads
 * already in flight finish against the cache or the registry. */
static int dl_done(void *ctx, const char *path)
{
	struct reg_blob *b = ctx;
	struct stat st;
	/* The layer's dir may be writable by others: a symlink there must
	 * not get us serving some other file (cache_download.c). */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), old = -1;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != b->f.size) {
		close(fd);
		return -EIO;
	}
	if (!__atomic_compare_exchange_n(&b->local_fd, &old, fd, false, __ATOMIC_RELEASE,
					 __ATOMIC_RELAXED))
		close(fd);
	return 0;
}

static void dl_release(void *ctx)
{
	blob_unref(ctx);
}

int reg_download_start(struct reg_ctx *c, struct bdev_file *f, const char *dir,
		       const struct reg_download_opts *o)
{
	struct reg_blob *b = (struct reg_blob *)f;
	struct cache_dl_src src = { 0 };
	struct cache_dl_opts dlo = { 0 };
	int err = 0;

	if (!o->enable || !reg_blob_is(f) || !dir || !*dir || b->dl)
		return 0;
	if (__atomic_load_n(&b->local_fd, __ATOMIC_ACQUIRE) >= 0)
		return 0;
	pthread_mutex_lock(&c->auth_lock);
	if (!c->dl)
		err = cache_dl_create(&c->dl);
	pthread_mutex_unlock(&c->auth_lock);
	if (err)
		return err;
	src.digest = b->digest;
	src.size = f->size;
	src.read = dl_read;
	src.read_cached = dl_read_cached;
	src.release = dl_release;
	src.done = dl_done;
	src.ctx = b;
	dlo.delay_sec = o->delay_sec;
	dlo.delay_extra_sec = o->delay_extra_sec;
	dlo.max_mbps = o->max_mbps;
	dlo.try_cnt = o->try_cnt;
	dlo.block_size = o->block_size;
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	err = cache_dl_add(c->dl, &src, dir, &dlo, &b->dl);
	if (err)
		blob_unref(b);
	return err;
}

int reg_download_wait(struct bdev_file *f, unsigned timeout_ms)
{
	struct reg_blob *b = (struct reg_blob *)f;

	if (!reg_blob_is(f) || !b->dl)
		return -ENOENT;
	return cache_dl_wait(b->dl, timeout_ms);
}

void reg_blob_describe(struct bdev_file *f, char *buf, size_t len)
{
	struct reg_blob *b = (struct reg_blob *)f;
	char dl[256] = "", cached[64] = "";
	uint64_t present = 0, total = 0;

	if (!reg_blob_is(f)) {
		snprintf(buf, len, "local %s", bdev_file_name(f));
		return;
	}
	if (b->dl)
		cache_dl_describe(b->dl, dl, sizeof(dl));
	if (b->cb) {
		cache_blob_stats(b->cb, &present, &total);
		snprintf(cached, sizeof(cached), ", cached %" PRIu64 "/%" PRIu64 " units",
			 present, total);
	}
	snprintf(buf, len, "%s %s size %" PRIu64 "%s, fetched %" PRIu64 " bytes in %" PRIu64
		 " requests%s%s",
		 __atomic_load_n(&b->local_fd, __ATOMIC_RELAXED) >= 0 ? "downloaded" : "remote",
		 b->digest, f->size, cached, __atomic_load_n(&b->remote_bytes, __ATOMIC_RELAXED),
		 __atomic_load_n(&b->remote_reqs, __ATOMIC_RELAXED), dl[0] ? ", " : "", dl);
}
