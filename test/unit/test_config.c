/*
 * test_config: the global config parser (daemon/config.c, daemon/auth.c):
 * defaults, every key type, bad values naming the key, secret files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "daemon/daemon.h"
#include "daemon/daemon_int.h"

static struct cfg *parse_ok(const char *json)
{
	char err[512] = "";
	struct cfg *c = NULL;
	int rc = cfg_parse(json, strlen(json), &c, err, sizeof(err));

	if (rc != 0)
		fail_msg("parse of %s: expected 0, got %d (%s)", json, rc, err);
	return c;
}

/* Expect failure, and that the message contains NEEDLE (the key name). */
static void parse_bad(const char *json, const char *needle)
{
	char err[512] = "";
	struct cfg *c = NULL;
	int rc = cfg_parse(json, strlen(json), &c, err, sizeof(err));

	if (rc >= 0) {
		cfg_free(c);
		fail_msg("parse of %s: expected failure, got success", json);
	}
	if (!strstr(err, needle))
		fail_msg("parse of %s: expected message with \"%s\", got \"%s\"", json, needle, err);
}

static void test_defaults(void **state)
{
	struct cfg *c = parse_ok("{}");

	assert_int_equal(c->log_level, 1);
	assert_int_equal(c->io_engine, 0);
	assert_int_equal(c->nportals, 1);
	assert_string_equal(c->portals[0], "127.0.0.1:3260");
	assert_string_equal(c->spool_dir, "/var/lib/overlaybd-iscsid/spool");
	assert_string_equal(c->iqn_prefix, "iqn.2026-11.io.overlaybd");
	assert_string_equal(c->control_socket, "/run/overlaybd-iscsid/control.sock");
	assert_string_equal(c->registry_cache_dir, "/var/cache/overlaybd-iscsid");
	assert_int_equal(c->registry_cache_size_gb, 4);
	assert_null(c->credential_file_path);
	assert_false(c->download.enable);
	assert_int_equal(c->download.delay, 300);
	assert_int_equal(c->download.delay_extra, 30);
	assert_int_equal(c->download.max_mbps, 100);
	assert_null(c->discovery_auth.username);
	assert_int_equal(c->nacl, 0);
	assert_int_equal(c->nop_interval, 5);
	assert_int_equal(c->nop_timeout, 15);
	assert_int_equal(c->login_timeout, 15);
	assert_int_equal(c->queue_depth, 128);
	assert_int_equal(c->busy_poll_us, 50);
	cfg_free(c);
}

static void test_every_key(void **state)
{
	struct cfg *c = parse_ok(
		"{\"logLevel\":0,\"logPath\":\"/tmp/x.log\",\"ioEngine\":2,"
		"\"registryCacheDir\":\"/c\",\"registryCacheSizeGB\":9,"
		"\"credentialFilePath\":\"/cred.json\","
		"\"download\":{\"enable\":true,\"delay\":1,\"delayExtra\":2,\"maxMBps\":-1},"
		"\"portals\":[\"0.0.0.0:3261\",\"[::1]:3262\"],\"spoolDir\":\"/s\","
		"\"iqnPrefix\":\"iqn.2001-04.com.example\",\"controlSocket\":\"/r/c.sock\","
		"\"discoveryAuth\":{\"username\":\"u\",\"password\":\"secretsecret\"},"
		"\"acl\":[\"iqn.1994-05.com.redhat:a\"],\"ioThreads\":8,\"busyPollMicros\":0,"
		"\"nopInterval\":2,"
		"\"nopTimeout\":3,\"loginTimeout\":4,\"maxConnectionsPerSource\":5,"
		"\"maxConnections\":6,\"maxRecvDataSegmentLength\":8192,"
		"\"maxBurstLength\":65536,\"firstBurstLength\":8192,\"queueDepth\":32}");

	assert_int_equal(c->log_level, 0);
	assert_string_equal(c->log_path, "/tmp/x.log");
	assert_int_equal(c->io_engine, 2);
	assert_string_equal(c->registry_cache_dir, "/c");
	assert_int_equal(c->registry_cache_size_gb, 9);
	assert_string_equal(c->credential_file_path, "/cred.json");
	assert_true(c->download.enable);
	assert_int_equal(c->download.delay, 1);
	assert_int_equal(c->download.delay_extra, 2);
	assert_int_equal(c->download.max_mbps, 0);
	assert_int_equal(c->nportals, 2);
	assert_string_equal(c->portals[1], "[::1]:3262");
	assert_string_equal(c->spool_dir, "/s");
	assert_string_equal(c->iqn_prefix, "iqn.2001-04.com.example");
	assert_string_equal(c->control_socket, "/r/c.sock");
	assert_string_equal(c->discovery_auth.username, "u");
	assert_string_equal(c->discovery_auth.password, "secretsecret");
	assert_int_equal(c->nacl, 1);
	assert_int_equal(c->io_threads, 8);
	assert_int_equal(c->busy_poll_us, 0);
	assert_int_equal(c->nop_interval, 2);
	assert_int_equal(c->nop_timeout, 3);
	assert_int_equal(c->login_timeout, 4);
	assert_int_equal(c->max_connections_per_source, 5);
	assert_int_equal(c->max_connections, 6);
	assert_int_equal(c->max_recv_data_segment_length, 8192);
	assert_int_equal(c->max_burst_length, 65536);
	assert_int_equal(c->first_burst_length, 8192);
	assert_int_equal(c->queue_depth, 32);
	cfg_free(c);
}

static void test_unknown_key_is_not_fatal(void **state)
{
	struct cfg *c = parse_ok("{\"p2pConfig\":{\"enable\":false},\"logLevel\":2,"
				 "\"cacheConfig\":{\"cacheType\":\"file\"}}");

	assert_int_equal(c->log_level, 2);
	cfg_free(c);
}

static void test_reference_groups(void **state)
{
	/* config.md 2: the grouped forms win over the flat ones when the
	 * group's switch is set (logPath, cacheType, mode). */
	struct cfg *c = parse_ok("{\"logConfig\":{\"logLevel\":3,\"logPath\":\"/l/x.log\"},"
				 "\"logLevel\":0,\"cacheConfig\":{\"cacheType\":\"file\","
				 "\"cacheDir\":\"/cache\",\"cacheSizeGB\":7,\"refillSize\":4096},"
				 "\"credentialConfig\":{\"mode\":\"file\",\"path\":\"/c.json\"}}");

	assert_int_equal(c->log_level, 3);
	assert_string_equal(c->log_path, "/l/x.log");
	assert_string_equal(c->registry_cache_dir, "/cache");
	assert_int_equal(c->registry_cache_size_gb, 7);
	assert_string_equal(c->credential_file_path, "/c.json");
	cfg_free(c);
	parse_bad("{\"logConfig\":{\"logLevel\":7,\"logPath\":\"/l\"}}", "logConfig.logLevel");
	parse_bad("{\"cacheConfig\":{\"cacheType\":\"file\",\"cacheSizeGB\":\"4\"}}",
		  "cacheConfig.cacheSizeGB");
	parse_bad("{\"cacheConfig\":{\"cacheType\":\"tmpfs\"}}", "cacheConfig.cacheType");
	parse_bad("{\"credentialConfig\":{\"mode\":\"http\"}}", "credentialConfig.mode");
	parse_bad("{\"logConfig\":5}", "logConfig");
}

/* image_service.cpp: without its switch a group's gated members are not
 * read, and the flat keys stay; refillSize and certConfig need none. */
static void test_reference_groups_need_their_switch(void **state)
{
	struct cfg *c = parse_ok("{\"logConfig\":{\"logLevel\":3,\"logPath\":\"\"},"
				 "\"logLevel\":0,\"logPath\":\"/flat.log\","
				 "\"cacheConfig\":{\"cacheDir\":\"/cache\",\"cacheSizeGB\":7,"
				 "\"refillSize\":8192},\"registryCacheDir\":\"/flat-cache\","
				 "\"credentialConfig\":{\"path\":\"/c.json\"},"
				 "\"credentialFilePath\":\"/flat.json\","
				 "\"certConfig\":{\"certFile\":\"/cert.pem\"}}");

	if (c->log_level != 0)
		fail_msg("logLevel: expected the flat 0 (logConfig.logPath empty), got %d",
			 c->log_level);
	assert_string_equal(c->log_path, "/flat.log");
	assert_string_equal(c->registry_cache_dir, "/flat-cache");
	assert_int_equal(c->registry_cache_size_gb, 4);
	assert_int_equal(c->registry_refill_size, 8192);
	assert_string_equal(c->credential_file_path, "/flat.json");
	assert_string_equal(c->registry_client_cert, "/cert.pem");
	cfg_free(c);
}

static void test_bad_values_name_the_key(void **state)
{
	parse_bad("{", "invalid JSON");
	parse_bad("[]", "JSON object");
	parse_bad("{\"logLevel\":\"1\"}", "logLevel");
	parse_bad("{\"logLevel\":9}", "logLevel");
	parse_bad("{\"logLevel\":-1}", "logLevel");
	parse_bad("{\"ioEngine\":3}", "ioEngine");
	parse_bad("{\"ioEngine\":1.5}", "ioEngine");
	parse_bad("{\"logPath\":5}", "logPath");
	parse_bad("{\"portals\":\"127.0.0.1:3260\"}", "portals");
	parse_bad("{\"portals\":[]}", "portals");
	parse_bad("{\"portals\":[\"localhost:3260\"]}", "portals[0]");
	parse_bad("{\"portals\":[\"127.0.0.1\"]}", "portals[0]");
	parse_bad("{\"portals\":[\"127.0.0.1:3260\",\"127.0.0.1:0\"]}", "portals[1]");
	parse_bad("{\"portals\":[\"[::1:3260\"]}", "portals[0]");
	parse_bad("{\"iqnPrefix\":\"IQN.2026-11.X\"}", "iqnPrefix");
	parse_bad("{\"iqnPrefix\":\"iqn.2026-11.a b\"}", "iqnPrefix");
	parse_bad("{\"spoolDir\":\"\"}", "spoolDir");
	parse_bad("{\"download\":{\"enable\":1}}", "download.enable");
	parse_bad("{\"download\":{\"delay\":\"x\"}}", "download.delay");
	parse_bad("{\"download\":[]}", "download");
	parse_bad("{\"discoveryAuth\":{\"username\":\"u\"}}", "discoveryAuth");
	parse_bad("{\"discoveryAuth\":{\"username\":\"u\",\"password\":\"p\","
		  "\"mutualUsername\":\"m\"}}", "discoveryAuth");
	parse_bad("{\"discoveryAuth\":{\"mutualUsername\":\"m\",\"mutualPassword\":\"q\"}}",
		  "discoveryAuth");
	parse_bad("{\"discoveryAuth\":{\"username\":\"u\",\"password\":\"same\","
		  "\"mutualUsername\":\"m\",\"mutualPassword\":\"same\"}}", "mutualPassword");
	parse_bad("{\"discoveryAuth\":{\"username\":7}}", "discoveryAuth.username");
	parse_bad("{\"acl\":[1]}", "acl[0]");
	parse_bad("{\"ioThreads\":0}", "ioThreads");
	parse_bad("{\"busyPollMicros\":1001}", "busyPollMicros");
	parse_bad("{\"maxRecvDataSegmentLength\":100}", "maxRecvDataSegmentLength");
	parse_bad("{\"maxBurstLength\":16777216}", "maxBurstLength");
	parse_bad("{\"maxBurstLength\":8192,\"firstBurstLength\":65536}", "firstBurstLength");
	parse_bad("{\"logLevel\":1,\"logLevel\":2}", "duplicate");
}

static void test_registry_client_keys(void **state)
{
	struct cfg *c = parse_ok("{}");

	assert_null(c->registry_ca_file);
	assert_null(c->registry_client_cert);
	assert_null(c->registry_client_key);
	assert_null(c->registry_proxy);
	assert_null(c->user_agent);
	assert_int_equal(c->registry_timeout_sec, 30);
	assert_int_equal(c->registry_refill_size, 262144);
	cfg_free(c);

	c = parse_ok("{\"registryCAFile\":\"/ca.pem\",\"registryClientCert\":\"/c.pem\","
		     "\"registryClientKey\":\"/k.pem\",\"registryProxy\":\"http://127.0.0.1:3128\","
		     "\"registryTimeoutSec\":3,\"registryRefillSize\":1048576,"
		     "\"userAgent\":\"ua/1\"}");
	assert_string_equal(c->registry_ca_file, "/ca.pem");
	assert_string_equal(c->registry_client_cert, "/c.pem");
	assert_string_equal(c->registry_client_key, "/k.pem");
	assert_string_equal(c->registry_proxy, "http://127.0.0.1:3128");
	assert_int_equal(c->registry_timeout_sec, 3);
	assert_int_equal(c->registry_refill_size, 1048576);
	assert_string_equal(c->user_agent, "ua/1");
	cfg_free(c);

	/* config.md 2: the reference's certConfig and cacheConfig.refillSize
	 * win over the flat keys. */
	c = parse_ok("{\"registryClientCert\":\"/flat.pem\",\"registryRefillSize\":8192,"
		     "\"certConfig\":{\"certFile\":\"/g.pem\",\"keyFile\":\"/g.key\"},"
		     "\"cacheConfig\":{\"refillSize\":65536},\"registryProxy\":\"\"}");
	assert_string_equal(c->registry_client_cert, "/g.pem");
	assert_string_equal(c->registry_client_key, "/g.key");
	assert_int_equal(c->registry_refill_size, 65536);
	assert_null(c->registry_proxy);
	cfg_free(c);

	parse_bad("{\"registryCAFile\":1}", "registryCAFile");
	parse_bad("{\"registryClientCert\":true}", "registryClientCert");
	parse_bad("{\"registryClientKey\":[]}", "registryClientKey");
	parse_bad("{\"registryProxy\":{}}", "registryProxy");
	parse_bad("{\"userAgent\":5}", "userAgent");
	parse_bad("{\"registryTimeoutSec\":0}", "registryTimeoutSec");
	parse_bad("{\"registryTimeoutSec\":\"3\"}", "registryTimeoutSec");
	parse_bad("{\"registryTimeoutSec\":-1}", "registryTimeoutSec");
	parse_bad("{\"registryTimeoutSec\":3601}", "registryTimeoutSec");
	parse_bad("{\"registryRefillSize\":2048}", "registryRefillSize");
	parse_bad("{\"registryRefillSize\":12288}", "registryRefillSize");
	parse_bad("{\"cacheConfig\":{\"refillSize\":1000}}", "cacheConfig.refillSize");
	parse_bad("{\"cacheConfig\":{\"refillSize\":20480}}", "cacheConfig.refillSize");
	parse_bad("{\"certConfig\":{\"keyFile\":7}}", "certConfig.keyFile");
	parse_bad("{\"certConfig\":\"/x\"}", "certConfig");
}

static void write_secret(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_secret_files(void **state)
{
	char dir[] = "/tmp/test_config.XXXXXX", ok[64], world[64], json[512];
	struct cfg *c;

	assert_non_null(mkdtemp(dir));
	snprintf(ok, sizeof(ok), "%s/ok", dir);
	snprintf(world, sizeof(world), "%s/world", dir);
	write_secret(ok, "topsecret123\n", 0600);
	write_secret(world, "topsecret456\n", 0644);

	snprintf(json, sizeof(json),
		 "{\"discoveryAuth\":{\"username\":\"u\",\"passwordFile\":\"%s\"}}", ok);
	c = parse_ok(json);
	assert_string_equal(c->discovery_auth.password, "topsecret123");
	cfg_free(c);

	snprintf(json, sizeof(json),
		 "{\"discoveryAuth\":{\"username\":\"u\",\"passwordFile\":\"%s\"}}", world);
	parse_bad(json, "world-readable");
	snprintf(json, sizeof(json),
		 "{\"discoveryAuth\":{\"username\":\"u\",\"passwordFile\":\"%s/none\"}}", dir);
	parse_bad(json, "discoveryAuth.passwordFile");

	unlink(ok);
	unlink(world);
	rmdir(dir);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX", err[256] = "";
	struct cfg *c = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"logLevel\":3}", 14), 14);
	close(fd);
	assert_int_equal(cfg_load(path, &c, err, sizeof(err)), 0);
	assert_int_equal(c->log_level, 3);
	cfg_free(c);
	unlink(path);
	assert_true(cfg_load(path, &c, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, path));
}

static void test_default_config_file_parses(void **state)
{
	char err[256] = "";
	struct cfg *c = NULL;

	if (cfg_load("etc/overlaybd-iscsid.json", &c, err, sizeof(err)) != 0)
		fail_msg("etc/overlaybd-iscsid.json: expected 0, got error %s", err);
	assert_string_equal(c->portals[0], "127.0.0.1:3260");
	assert_string_equal(c->spool_dir, "/var/lib/overlaybd-iscsid/spool");
	cfg_free(c);
}

/* A key added to the table without saying what SIGHUP does with it. */
static void test_every_key_has_a_reload_policy(void **state)
{
	enum cfg_reload p;
	const char *name;
	size_t i;

	for (i = 0; (name = cfg_key_reload(i, &p)); i++)
		if (p != CFG_RELOAD_LIVE && p != CFG_RELOAD_RESTART && p != CFG_RELOAD_GROUP)
			fail_msg("config key %s: expected a reload policy, got %d", name, p);
	assert_true(i > 30);
}

/* Every key changed at once: the live ones move into the running config,
 * each restart-only one is counted (and logged), none is dropped. */
static void test_reload_applies_or_logs_every_key(void **state)
{
	struct cfg *o, *n = parse_ok(
		"{\"logLevel\":0,\"logPath\":\"/tmp/x.log\",\"ioEngine\":2,"
		"\"registryCacheDir\":\"/c\",\"registryCacheSizeGB\":9,"
		"\"credentialFilePath\":\"/cred.json\",\"registryCAFile\":\"/ca.pem\","
		"\"registryClientCert\":\"/c.pem\",\"registryClientKey\":\"/k.pem\","
		"\"registryProxy\":\"http://127.0.0.1:3128\",\"registryTimeoutSec\":5,"
		"\"registryRefillSize\":4096,\"userAgent\":\"ua\","
		"\"download\":{\"enable\":true},"
		"\"portals\":[\"0.0.0.0:3261\"],\"spoolDir\":\"/s\","
		"\"iqnPrefix\":\"iqn.2001-04.com.example\",\"controlSocket\":\"/r/c.sock\","
		"\"discoveryAuth\":{\"username\":\"u\",\"password\":\"secretsecret\"},"
		"\"acl\":[\"iqn.1994-05.com.redhat:a\"],\"ioThreads\":8,\"busyPollMicros\":0,"
		"\"nopInterval\":2,\"nopTimeout\":3,\"loginTimeout\":4,"
		"\"maxConnectionsPerSource\":5,\"maxConnections\":6,"
		"\"maxRecvDataSegmentLength\":8192,\"maxBurstLength\":65536,"
		"\"firstBurstLength\":8192,\"queueDepth\":32}");
	enum cfg_reload p;
	int restart = 0, got;

	for (size_t i = 0; cfg_key_reload(i, &p); i++)
		restart += p == CFG_RELOAD_RESTART;
	assert_int_equal(cfg_default(&o), 0);
	got = cfg_reload(o, n);
	if (got != restart)
		fail_msg("expected %d restart-only keys logged, got %d", restart, got);
	/* Live: moved. */
	assert_int_equal(o->log_level, 0);
	assert_string_equal(o->log_path, "/tmp/x.log");
	assert_true(o->download.enable);
	assert_string_equal(o->discovery_auth.username, "u");
	assert_int_equal(o->nacl, 1);
	assert_string_equal(o->acl[0], "iqn.1994-05.com.redhat:a");
	assert_int_equal(o->busy_poll_us, 0);
	/* Restart-only: unchanged. */
	assert_null(o->registry_proxy);
	assert_int_equal(o->max_burst_length, 16776192);
	assert_string_equal(o->portals[0], "127.0.0.1:3260");
	/* Nothing left to report the second time. */
	assert_int_equal(cfg_reload(o, o), 0);
	cfg_free(o);
	cfg_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_unknown_key_is_not_fatal),
		cmocka_unit_test(test_reference_groups),
		cmocka_unit_test(test_reference_groups_need_their_switch),
		cmocka_unit_test(test_bad_values_name_the_key),
		cmocka_unit_test(test_registry_client_keys),
		cmocka_unit_test(test_secret_files),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_default_config_file_parses),
		cmocka_unit_test(test_every_key_has_a_reload_policy),
		cmocka_unit_test(test_reload_applies_or_logs_every_key),
	};

	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
