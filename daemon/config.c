/*
 * config: the global config file (config.md section 2, the keys the
 * daemon uses, plus our iSCSI keys).  One table row per key, which also
 * says what SIGHUP does when the key changes.  Unknown keys are warned
 * about (the reference ignores them silently); a wrong type or a bad value
 * fails start-up with the key's name in the message.
 */
#include "daemon_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum key_type {
	KT_U32,      /* unsigned / uint32_t / int field */
	KT_U64,
	KT_STR,      /* char *; "" = unset (NULL) */
	KT_STRARR,   /* char ** with an int count right after it */
	KT_PORTALS,
	KT_IQN,
	KT_CHAP,
	KT_DOWNLOAD,
	KT_NESTED,   /* a reference group object: its members map to our keys */
};

struct key {
	const char *name;
	enum key_type type;
	size_t off;
	size_t count_off; /* KT_STRARR/KT_PORTALS: the int count */
	uint64_t min, max;
	/* What SIGHUP does with a change.  Last, so a row that leaves it
	 * out gets CFG_RELOAD_UNSET, which test_config refuses. */
	enum cfg_reload reload;
};

#define F(x) offsetof(struct cfg, x)
#define U24 16777215u
#define LIVE CFG_RELOAD_LIVE
#define RESTART CFG_RELOAD_RESTART
#define GROUP CFG_RELOAD_GROUP

/*
 * config.md section 2 and issue 3; ranges from RFC 7143 section 13.  RESTART
 * keys are read once at start-up: the registry context and the iSCSI server
 * copy theirs, and the rest name sockets, threads or directories in use.
 */
static const struct key keys[] = {
	{ "logLevel", KT_U32, F(log_level), 0, 0, 3, LIVE },
	{ "logPath", KT_STR, F(log_path), 0, 0, 0, LIVE },
	{ "ioEngine", KT_U32, F(io_engine), 0, 0, 2, RESTART },
	{ "registryCacheDir", KT_STR, F(registry_cache_dir), 0, 0, 0, RESTART },
	{ "registryCacheSizeGB", KT_U64, F(registry_cache_size_gb), 0, 0, 1u << 20, RESTART },
	{ "credentialFilePath", KT_STR, F(credential_file_path), 0, 0, 0, RESTART },
	{ "registryCAFile", KT_STR, F(registry_ca_file), 0, 0, 0, RESTART },
	{ "registryClientCert", KT_STR, F(registry_client_cert), 0, 0, 0, RESTART },
	{ "registryClientKey", KT_STR, F(registry_client_key), 0, 0, 0, RESTART },
	{ "registryProxy", KT_STR, F(registry_proxy), 0, 0, 0, RESTART },
	{ "registryTimeoutSec", KT_U32, F(registry_timeout_sec), 0, 1, 3600, RESTART },
	/* config.md 2/5: a power of two, multiple of 4096 (checked below). */
	{ "registryRefillSize", KT_U32, F(registry_refill_size), 0, 4096, 64u << 20, RESTART },
	{ "userAgent", KT_STR, F(user_agent), 0, 0, 0, RESTART },
	/* Copied into specs opened after the reload. */
	{ "download", KT_DOWNLOAD, F(download), 0, 0, 0, LIVE },
	/* config.md 2: the reference's grouped forms of the same settings. */
	{ "logConfig", KT_NESTED, 0, 0, 0, 0, GROUP },
	{ "cacheConfig", KT_NESTED, 0, 0, 0, 0, GROUP },
	{ "credentialConfig", KT_NESTED, 0, 0, 0, 0, GROUP },
	{ "certConfig", KT_NESTED, 0, 0, 0, 0, GROUP },
	{ "portals", KT_PORTALS, F(portals), F(nportals), 0, 0, RESTART },
	{ "spoolDir", KT_STR, F(spool_dir), 0, 0, 0, RESTART },
	{ "iqnPrefix", KT_IQN, F(iqn_prefix), 0, 0, 0, RESTART },
	{ "controlSocket", KT_STR, F(control_socket), 0, 0, 0, RESTART },
	{ "discoveryAuth", KT_CHAP, F(discovery_auth), 0, 0, 0, LIVE },
	/* The default ACL of specs opened after the reload. */
	{ "acl", KT_STRARR, F(acl), F(nacl), 0, 0, LIVE },
	{ "ioThreads", KT_U32, F(io_threads), 0, 1, 256, RESTART },
	{ "busyPollMicros", KT_U32, F(busy_poll_us), 0, 0, 1000, LIVE },
	{ "nopInterval", KT_U32, F(nop_interval), 0, 1, 3600, RESTART },
	{ "nopTimeout", KT_U32, F(nop_timeout), 0, 1, 3600, RESTART },
	{ "loginTimeout", KT_U32, F(login_timeout), 0, 1, 3600, RESTART },
	{ "maxConnectionsPerSource", KT_U32, F(max_connections_per_source), 0, 1, 65536, RESTART },
	{ "maxConnections", KT_U32, F(max_connections), 0, 1, 65536, RESTART },
	{ "maxRecvDataSegmentLength", KT_U32, F(max_recv_data_segment_length), 0, 512, U24,
	  RESTART },
	{ "maxBurstLength", KT_U32, F(max_burst_length), 0, 512, U24, RESTART },
	{ "firstBurstLength", KT_U32, F(first_burst_length), 0, 512, U24, RESTART },
	{ "queueDepth", KT_U32, F(queue_depth), 0, 1, 4096, RESTART },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char *xstrdup(const char *s)
{
	char *r = strdup(s);

	if (!r)
		abort();
	return r;
}

int cfg_default(struct cfg **out)
{
	struct cfg *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->log_level = 1;
	c->io_engine = 0;
	c->registry_cache_dir = xstrdup("/var/cache/overlaybd-iscsid");
	c->registry_cache_size_gb = 4;
	c->registry_timeout_sec = 30;
	c->registry_refill_size = 262144;
	/* config.md section 6 defaults. */
	c->download = (struct cfg_download){ .enable = false, .delay = 300, .delay_extra = 30,
					     .max_mbps = 100, .try_cnt = 5,
					     .block_size = 262144 };
	c->portals = calloc(2, sizeof(char *));
	if (!c->portals)
		abort();
	c->portals[0] = xstrdup("127.0.0.1:3260");
	c->nportals = 1;
	c->spool_dir = xstrdup("/var/lib/overlaybd-iscsid/spool");
	c->iqn_prefix = xstrdup("iqn.2026-11.io.overlaybd");
	c->control_socket = xstrdup("/run/overlaybd-iscsid/control.sock");
	c->io_threads = 4;
	c->busy_poll_us = 50;
	c->nop_interval = 5;
	c->nop_timeout = 15;
	c->login_timeout = 15;
	c->max_connections_per_source = 64;
	c->max_connections = 4096;
	c->max_recv_data_segment_length = 262144;
	c->max_burst_length = 16776192;
	c->first_burst_length = 262144;
	c->queue_depth = 128;
	*out = c;
	return 0;
}

void cfg_free(struct cfg *c)
{
	if (!c)
		return;
	free(c->log_path);
	free(c->registry_cache_dir);
	free(c->credential_file_path);
	free(c->registry_ca_file);
	free(c->registry_client_cert);
	free(c->registry_client_key);
	free(c->registry_proxy);
	free(c->user_agent);
	dj_strarray_free(c->portals, c->nportals);
	free(c->spool_dir);
	free(c->iqn_prefix);
	free(c->control_socket);
	cfg_chap_free(&c->discovery_auth);
	dj_strarray_free(c->acl, c->nacl);
	free(c);
}

/* "ADDR:PORT" or "[V6ADDR]:PORT", numeric (no name lookups at start-up). */
static int portal_check(const char *p, const char *path, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(p, ':');
	unsigned char bin[16];
	size_t hl;
	char *end;
	long port;

	if (!colon)
		goto bad;
	hl = colon - p;
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 1 || port > 65535 || hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, p, hl);
	host[hl] = 0;
	if (host[0] == '[') {
		if (hl < 3 || host[hl - 1] != ']')
			goto bad;
		host[hl - 1] = 0;
		if (inet_pton(AF_INET6, host + 1, bin) != 1)
			goto bad;
		return 0;
	}
	if (inet_pton(AF_INET, host, bin) == 1)
		return 0;
bad:
	snprintf(err, errlen, "%s: \"%s\" is not ADDR:PORT or [V6ADDR]:PORT (numeric, port 1..65535)",
		 path, p);
	return -EINVAL;
}

/* RFC 7143 4.2.7.2: iqn.yyyy-mm.reversed.domain, lower case. */
static int iqn_check(const char *s, const char *path, char *err, size_t errlen)
{
	size_t n = strlen(s);

	if (n < 12 || n > 200 || strncmp(s, "iqn.", 4) ||
	    !(s[4] >= '0' && s[4] <= '9') || s[8] != '-' || s[11] != '.')
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '.' || ch == ':'))
			goto bad;
	}
	if (s[n - 1] == ':' || s[n - 1] == '.')
		goto bad;
	return 0;
bad:
	snprintf(err, errlen,
		 "%s: \"%s\" is not an iqn.yyyy-mm.domain name (lower case, digits, '-', '.', ':')",
		 path, s);
	return -EINVAL;
}

int cfg_download_parse(json_t *v, const char *path, struct cfg_download *out, char *err,
		       size_t errlen)
{
	struct cfg_download d = *out;
	const char *key;
	json_t *val;
	char p[256];
	uint64_t u;
	int rc = 0;

	if (!json_is_object(v)) {
		snprintf(err, errlen, "%s: expected an object", path);
		return -EINVAL;
	}
	json_object_foreach(v, key, val) {
		snprintf(p, sizeof(p), "%s.%s", path, key);
		if (!strcmp(key, "enable"))
			rc = dj_bool(val, p, &d.enable, err, errlen);
		else if (!strcmp(key, "maxMBps") && json_is_integer(val) &&
			 json_integer_value(val) <= 0)
			d.max_mbps = 0; /* config.md 6: <= 0 means unthrottled */
		else if (!strcmp(key, "delay"))
			rc = dj_uint(val, p, 0, 86400 * 365, &u, err, errlen), d.delay = u;
		else if (!strcmp(key, "delayExtra"))
			rc = dj_uint(val, p, 0, 86400, &u, err, errlen), d.delay_extra = u;
		else if (!strcmp(key, "maxMBps"))
			rc = dj_uint(val, p, 0, 1u << 20, &u, err, errlen), d.max_mbps = u;
		else if (!strcmp(key, "tryCnt"))
			rc = dj_uint(val, p, 1, 1000, &u, err, errlen), d.try_cnt = u;
		else if (!strcmp(key, "blockSize"))
			rc = dj_uint(val, p, 4096, 64u << 20, &u, err, errlen), d.block_size = u;
		else
			log_warn("%s: unknown key, ignored", p);
		if (rc < 0)
			return rc;
	}
	*out = d;
	return 0;
}

/*
 * Members of the reference's groups and the flat key each one sets.  As in
 * the reference (src/image_service.cpp), a GATED member counts only when
 * its group's switch is set: logConfig.logPath for logConfig,
 * cacheConfig.cacheType for the cache directory and size,
 * credentialConfig.mode for its path.  Otherwise the flat keys stay.
 */
static const struct {
	const char *group, *member, *key;
	bool gated;
} nested_keys[] = {
	{ "logConfig", "logLevel", "logLevel", true },
	{ "logConfig", "logPath", "logPath", true },
	{ "cacheConfig", "cacheDir", "registryCacheDir", true },
	{ "cacheConfig", "cacheSizeGB", "registryCacheSizeGB", true },
	{ "cacheConfig", "refillSize", "registryRefillSize", false },
	{ "certConfig", "certFile", "registryClientCert", false },
	{ "certConfig", "keyFile", "registryClientKey", false },
	{ "credentialConfig", "path", "credentialFilePath", true },
};

#define NNESTED (sizeof(nested_keys) / sizeof(nested_keys[0]))

static const struct {
	const char *group, *member;
} group_switch[] = {
	{ "logConfig", "logPath" },
	{ "cacheConfig", "cacheType" },
	{ "credentialConfig", "mode" },
};

/* The switch member of GROUP, or NULL for a group that has none. */
static const char *switch_of(const char *group)
{
	for (size_t i = 0; i < sizeof(group_switch) / sizeof(group_switch[0]); i++)
		if (!strcmp(group_switch[i].group, group))
			return group_switch[i].member;
	return NULL;
}

/* The reference's switch members: validated here, they set nothing. */
static int switch_member(const char *group, const char *member, json_t *val, const char *p,
			 char *err, size_t errlen)
{
	const char *sv = json_string_value(val);

	if (!strcmp(group, "credentialConfig")) {
		/* Only the credential file is supported, not the services. */
		if (!sv || (*sv && strcmp(sv, "file"))) {
			snprintf(err, errlen, "%s: only \"file\" is supported", p);
			return -EINVAL;
		}
		return 0;
	}
	/* image_service.cpp: file, ocf or download; we have the file cache. */
	if (!sv || (*sv && strcmp(sv, "file") && strcmp(sv, "ocf") && strcmp(sv, "download"))) {
		snprintf(err, errlen, "%s: expected \"file\", \"ocf\" or \"download\"", p);
		return -EINVAL;
	}
	if (*sv && strcmp(sv, "file"))
		log_warn("config: %s: \"%s\" is not supported, the file cache is used", p, sv);
	return 0;
}

static bool is_switch(const char *group, const char *member)
{
	return (!strcmp(group, "credentialConfig") && !strcmp(member, "mode")) ||
	       (!strcmp(group, "cacheConfig") && !strcmp(member, "cacheType"));
}

static const struct key *find_key(const char *name);
static int set_key(struct cfg *c, const struct key *k, json_t *v, char *err, size_t errlen);

static int set_nested(struct cfg *c, const struct key *k, json_t *v, char *err, size_t errlen)
{
	const char *member, *sw = switch_of(k->name), *swv;
	json_t *val;
	bool on;
	char p[128];
	size_t i;
	int rc;

	if (!json_is_object(v)) {
		snprintf(err, errlen, "%s: expected an object", k->name);
		return -EINVAL;
	}
	swv = sw ? json_string_value(json_object_get(v, sw)) : NULL;
	on = !sw || (swv && *swv);
	json_object_foreach(v, member, val) {
		snprintf(p, sizeof(p), "%s.%.60s", k->name, member);
		if (is_switch(k->name, member)) {
			rc = switch_member(k->name, member, val, p, err, errlen);
			if (rc < 0)
				return rc;
			continue;
		}
		for (i = 0; i < NNESTED; i++)
			if (!strcmp(nested_keys[i].group, k->name) &&
			    !strcmp(nested_keys[i].member, member))
				break;
		if (i == NNESTED) {
			log_warn("config: %s: unknown or unsupported key, ignored", p);
			continue;
		}
		if (nested_keys[i].gated && !on) {
			log_warn("config: %s: ignored while %s.%s is empty, as in the reference", p,
				 k->name, sw);
			continue;
		}
		struct key named = *find_key(nested_keys[i].key);

		named.name = p;
		rc = set_key(c, &named, val, err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static int set_key(struct cfg *c, const struct key *k, json_t *v, char *err, size_t errlen)
{
	char *base = (char *)c;
	uint64_t u;
	int rc;

	switch (k->type) {
	case KT_U32:
		rc = dj_uint(v, k->name, k->min, k->max, &u, err, errlen);
		if (!rc) {
			uint32_t x = u;

			memcpy(base + k->off, &x, sizeof(x));
		}
		return rc;
	case KT_U64:
		rc = dj_uint(v, k->name, k->min, k->max, &u, err, errlen);
		if (!rc)
			memcpy(base + k->off, &u, sizeof(u));
		return rc;
	case KT_STR:
	case KT_IQN: {
		char **field = (char **)(base + k->off);

		rc = dj_string(v, k->name, field, err, errlen);
		if (rc < 0)
			return rc;
		if (k->type == KT_IQN)
			return iqn_check(*field, k->name, err, errlen);
		if (!**field) {
			free(*field);
			*field = NULL;
		}
		return 0;
	}
	case KT_STRARR:
	case KT_PORTALS: {
		char ***arr = (char ***)(base + k->off);
		int *n = (int *)(base + k->count_off);

		rc = dj_strarray(v, k->name, arr, n, err, errlen);
		if (rc < 0 || k->type != KT_PORTALS)
			return rc;
		if (*n == 0) {
			snprintf(err, errlen, "%s: at least one portal is needed", k->name);
			return -EINVAL;
		}
		for (int i = 0; i < *n; i++) {
			char p[64];

			snprintf(p, sizeof(p), "%s[%d]", k->name, i);
			rc = portal_check((*arr)[i], p, err, errlen);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	case KT_CHAP:
		return cfg_chap_parse(v, k->name, (struct cfg_chap *)(base + k->off), err, errlen);
	case KT_DOWNLOAD:
		return cfg_download_parse(v, k->name, (struct cfg_download *)(base + k->off), err,
					  errlen);
	case KT_NESTED:
		return set_nested(c, k, v, err, errlen);
	}
	return -EINVAL;
}

int cfg_parse(const char *text, size_t len, struct cfg **out, char *err, size_t errlen)
{
	json_error_t je;
	struct cfg *c;
	const char *key;
	json_t *root, *val;
	int rc = 0;

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		dj_parse_error(&je, err, errlen);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "the config must be a JSON object");
		json_decref(root);
		return -EINVAL;
	}
	rc = cfg_default(&c);
	if (rc < 0) {
		json_decref(root);
		return rc;
	}
	/* Flat keys first, then the reference's groups, which win when both
	 * name a setting and the group's switch is set (set_nested). */
	for (int pass = 0; pass < 2 && !rc; pass++) {
		json_object_foreach(root, key, val) {
			const struct key *k = find_key(key);

			if (!k) {
				if (pass == 0)
					log_warn("config: unknown key \"%s\", ignored", key);
				continue;
			}
			if ((k->type == KT_NESTED) != (pass == 1))
				continue;
			rc = set_key(c, k, val, err, errlen);
			if (rc < 0)
				break;
		}
	}
	json_decref(root);
	if (!rc && c->first_burst_length > c->max_burst_length) {
		/* RFC 7143 13.14: FirstBurstLength must not exceed MaxBurstLength. */
		snprintf(err, errlen, "firstBurstLength: %u exceeds maxBurstLength %u",
			 c->first_burst_length, c->max_burst_length);
		rc = -EINVAL;
	}
	if (!rc && (c->registry_refill_size & (c->registry_refill_size - 1))) {
		/* config.md 2: refillSize is a power of two (>= 4096 by the range). */
		snprintf(err, errlen, "registryRefillSize (cacheConfig.refillSize): %u is not a power of two",
			 c->registry_refill_size);
		rc = -EINVAL;
	}
	if (!rc && !c->spool_dir) {
		snprintf(err, errlen, "spoolDir: must not be empty");
		rc = -EINVAL;
	}
	if (rc < 0) {
		cfg_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int cfg_load(const char *path, struct cfg **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "cannot open config %s: %s", path, strerror(errno));
		return -errno;
	}
	text = malloc(1 << 20);
	if (!text) {
		fclose(f);
		return -ENOMEM;
	}
	len = fread(text, 1, 1 << 20, f);
	if (ferror(f) || len == 1 << 20) {
		snprintf(err, errlen, "cannot read config %s: %s", path,
			 ferror(f) ? strerror(errno) : "larger than 1 MiB");
		fclose(f);
		free(text);
		return -EINVAL;
	}
	fclose(f);
	rc = cfg_parse(text, len, out, err, errlen);
	free(text);
	return rc;
}

static bool str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b));
}

static bool strarr_differs(char *const *a, int na, char *const *b, int nb)
{
	if (na != nb)
		return true;
	for (int i = 0; i < na; i++)
		if (str_differs(a[i], b[i]))
			return true;
	return false;
}

static bool chap_differs(const struct cfg_chap *a, const struct cfg_chap *b)
{
	return str_differs(a->username, b->username) || str_differs(a->password, b->password) ||
	       str_differs(a->mutual_username, b->mutual_username) ||
	       str_differs(a->mutual_password, b->mutual_password);
}

static bool download_differs(const struct cfg_download *a, const struct cfg_download *b)
{
	return a->enable != b->enable || a->delay != b->delay ||
	       a->delay_extra != b->delay_extra || a->max_mbps != b->max_mbps ||
	       a->try_cnt != b->try_cnt || a->block_size != b->block_size;
}

static bool key_differs(const struct key *k, const struct cfg *a, const struct cfg *b)
{
	const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;

	switch (k->type) {
	case KT_U32:
		return memcmp(pa, pb, sizeof(uint32_t)) != 0;
	case KT_U64:
		return memcmp(pa, pb, sizeof(uint64_t)) != 0;
	case KT_STR:
	case KT_IQN:
		return str_differs(*(char *const *)pa, *(char *const *)pb);
	case KT_STRARR:
	case KT_PORTALS:
		return strarr_differs(*(char **const *)pa, *(const int *)((const char *)a + k->count_off),
				      *(char **const *)pb, *(const int *)((const char *)b + k->count_off));
	case KT_CHAP:
		return chap_differs((const struct cfg_chap *)pa, (const struct cfg_chap *)pb);
	case KT_DOWNLOAD:
		return download_differs((const struct cfg_download *)pa,
					(const struct cfg_download *)pb);
	case KT_NESTED:
		return false;
	}
	return false;
}

static size_t key_size(const struct key *k)
{
	switch (k->type) {
	case KT_U32:
		return sizeof(uint32_t);
	case KT_U64:
		return sizeof(uint64_t);
	case KT_STR:
	case KT_IQN:
		return sizeof(char *);
	case KT_STRARR:
	case KT_PORTALS:
		return sizeof(char **);
	case KT_CHAP:
		return sizeof(struct cfg_chap);
	case KT_DOWNLOAD:
		return sizeof(struct cfg_download);
	case KT_NESTED:
		return 0;
	}
	return 0;
}

static void swap_bytes(void *a, void *b, size_t n)
{
	unsigned char *x = a, *y = b;

	for (size_t i = 0; i < n; i++) {
		unsigned char t = x[i];

		x[i] = y[i];
		y[i] = t;
	}
}

/* N's value of K goes into O, and O's old one into N, which frees it. */
static void key_move(const struct key *k, struct cfg *o, struct cfg *n)
{
	swap_bytes((char *)o + k->off, (char *)n + k->off, key_size(k));
	if (k->type == KT_STRARR || k->type == KT_PORTALS)
		swap_bytes((char *)o + k->count_off, (char *)n + k->count_off, sizeof(int));
}

int cfg_reload(struct cfg *o, struct cfg *n)
{
	int restart = 0;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		if (k->reload == CFG_RELOAD_GROUP || !key_differs(k, o, n))
			continue;
		if (k->reload == CFG_RELOAD_LIVE) {
			key_move(k, o, n);
			log_info("reload: %s changed, applied", k->name);
		} else {
			log_warn("reload: %s changed; takes effect on restart", k->name);
			restart++;
		}
	}
	return restart;
}

const char *cfg_key_reload(size_t i, enum cfg_reload *policy)
{
	if (i >= NKEYS)
		return NULL;
	*policy = keys[i].reload;
	return keys[i].name;
}
