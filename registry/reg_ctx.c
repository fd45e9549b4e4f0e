/*
 * reg_ctx: the registry context: configuration, the HTTP engine on the
 * caller's loop (or a private one for tools), the auth state and the disk
 * cache shared by every blob.
 */
#include "reg_int.h"
#include "cache/cache.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char *dup_opt(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void ctx_free(struct reg_ctx *c)
{
	reg_auth_free_all(c);
	pthread_mutex_destroy(&c->auth_lock);
	if (c->own_loop && c->loop)
		ev_loop_destroy(c->loop);
	free(c->cache_dir);
	free(c->cred_file);
	free(c->ca_file);
	free(c->client_cert);
	free(c->client_key);
	free(c->proxy);
	free(c->user_agent);
	free(c);
}

int reg_ctx_create(struct ev_loop *loop, const struct reg_config *cfg, struct reg_ctx **out)
{
	struct reg_ctx *c;
	int err;

	pthread_once(&curl_once, curl_init_once);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->auth_lock, NULL);
	c->own_loop = !loop;
	c->loop = loop ? loop : ev_loop_new(EVFLAG_AUTO);
	c->cache_dir = dup_opt(cfg->cache_dir);
	c->cred_file = dup_opt(cfg->cred_file);
	c->ca_file = dup_opt(cfg->ca_file);
	c->client_cert = dup_opt(cfg->client_cert);
	c->client_key = dup_opt(cfg->client_key);
	c->proxy = dup_opt(cfg->proxy);
	c->user_agent = strdup(cfg->user_agent && *cfg->user_agent ? cfg->user_agent :
			       "overlaybd-iscsid");
	c->cache_size = cfg->cache_size ? cfg->cache_size : 4ull << 30;
	c->cache_free_floor = cfg->cache_free_floor ? cfg->cache_free_floor : 1ull << 30;
	c->timeout_sec = cfg->timeout_sec ? cfg->timeout_sec : 30;
	c->max_host_conns = cfg->max_host_conns ? cfg->max_host_conns : 8;
	c->refill_size = cfg->refill_size ? cfg->refill_size : 256 * 1024;
	if (!c->loop || !c->user_agent) {
		ctx_free(c);
		return -ENOMEM;
	}
	if (c->refill_size & (c->refill_size - 1) || c->refill_size % 4096) {
		log_error("registry: refillSize %u is not a power of two multiple of 4096",
			  c->refill_size);
		ctx_free(c);
		return -EINVAL;
	}
	if (c->cache_dir) {
		struct cache_store_opts co = {
			.dir = c->cache_dir,
			.limit = c->cache_size,
			.free_floor = c->cache_free_floor,
			.unit = c->refill_size,
		};

		err = cache_store_open(&co, &c->cache);
		if (err) {
			/* Reads still work, only slower: not a reason to stop. */
			log_warn("registry: cache %s unusable (%s), reading from the registry",
				 c->cache_dir, strerror(-err));
			c->cache = NULL;
		}
	}
	err = reg_fetch_init(c);
	if (err) {
		cache_store_close(c->cache);
		ctx_free(c);
		return err;
	}
	*out = c;
	return 0;
}

void reg_ctx_destroy(struct reg_ctx *c)
{
	if (!c)
		return;
	/* Fail what is in flight first: the download thread may be waiting
	 * on a transfer that needs the loop we are running on. */
	reg_fetch_abort(c);
	cache_dl_destroy(c->dl);
	reg_fetch_fini(c);
	cache_store_close(c->cache);
	ctx_free(c);
}
