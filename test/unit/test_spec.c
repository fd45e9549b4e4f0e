/*
 * test_spec: device specs (daemon/spec.c): a good spec, then every kind of
 * bad input the spool may hold, each with the reason it must report.
 */
#include <errno.h>
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

static struct cfg *cfg;

static struct spec *parse_ok(const char *name, const char *json)
{
	char err[512] = "";
	struct spec *s = NULL;
	int rc = spec_parse(json, strlen(json), cfg, name, &s, err, sizeof(err));

	if (rc != 0)
		fail_msg("spec %s: expected 0, got %d (%s)", json, rc, err);
	return s;
}

static void parse_bad(const char *name, const char *json, const char *needle)
{
	char err[512] = "";
	struct spec *s = NULL;
	int rc = spec_parse(json, strlen(json), cfg, name, &s, err, sizeof(err));

	if (rc >= 0) {
		spec_free(s);
		fail_msg("spec %.200s: expected failure, got success", json);
	}
	if (!strstr(err, needle))
		fail_msg("spec %.200s: expected reason with \"%s\", got \"%s\"", json, needle, err);
}

static void test_good_spec(void **state)
{
	struct spec *s = parse_ok("My_Disk.1",
		"{\"repoBlobUrl\":\"https://r.example/v2/a/b/blobs\","
		"\"lowers\":[{\"file\":\"/l/1.lsmt\"},"
		"{\"digest\":\"sha256:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		"\",\"size\":4739584,\"dir\":\"/l/2\"}],"
		"\"upper\":{\"data\":\"/u/data\",\"index\":\"/u/index\"},"
		"\"resultFile\":\"/r/result\",\"download\":{\"enable\":true},"
		"\"chap\":{\"username\":\"u\",\"password\":\"pw12345678901\"},"
		"\"acl\":[\"iqn.1994-05.com.redhat:x\"]}");

	assert_string_equal(s->name, "My_Disk.1");
	assert_string_equal(s->iqn, "iqn.2026-11.io.overlaybd:my-disk.1");
	assert_string_equal(s->repo_blob_url, "https://r.example/v2/a/b/blobs");
	assert_int_equal(s->nlowers, 2);
	assert_string_equal(s->lowers[0].file, "/l/1.lsmt");
	assert_null(s->lowers[0].digest);
	assert_int_equal(s->lowers[1].size, 4739584);
	assert_string_equal(s->lowers[1].dir, "/l/2");
	assert_string_equal(s->upper_data, "/u/data");
	assert_string_equal(s->upper_index, "/u/index");
	assert_string_equal(s->result_file, "/r/result");
	assert_true(s->download.enable);
	/* The rest of download comes from the config (config.md 1). */
	assert_int_equal(s->download.delay, 300);
	assert_string_equal(s->chap.username, "u");
	assert_int_equal(s->nacl, 1);
	assert_string_equal(s->acl[0], "iqn.1994-05.com.redhat:x");
	spec_free(s);
}

static void test_defaults_from_config(void **state)
{
	struct spec *s;

	cfg->acl = calloc(2, sizeof(char *));
	cfg->acl[0] = strdup("iqn.2000-01.org.example:init");
	cfg->nacl = 1;
	s = parse_ok("d", "{\"lowers\":[{\"file\":\"/a\"}]}");
	assert_int_equal(s->nacl, 1);
	assert_string_equal(s->acl[0], "iqn.2000-01.org.example:init");
	assert_null(s->upper_data);
	assert_null(s->result_file);
	assert_false(s->download.enable);
	spec_free(s);
	/* An explicit empty acl means anyone. */
	s = parse_ok("d", "{\"lowers\":[{\"file\":\"/a\"}],\"acl\":[]}");
	assert_int_equal(s->nacl, 0);
	spec_free(s);
	free(cfg->acl[0]);
	free(cfg->acl);
	cfg->acl = NULL;
	cfg->nacl = 0;
}

static void test_upper_only_and_half_upper(void **state)
{
	struct spec *s = parse_ok("w", "{\"upper\":{\"data\":\"/d\",\"index\":\"/i\"}}");

	assert_int_equal(s->nlowers, 0);
	assert_string_equal(s->upper_index, "/i");
	spec_free(s);
	/* config.md 1: without both files the device is read-only. */
	s = parse_ok("w", "{\"lowers\":[{\"file\":\"/a\"}],\"upper\":{\"data\":\"/d\"}}");
	assert_null(s->upper_data);
	assert_null(s->upper_index);
	spec_free(s);
}

static void test_acceleration_layer_left_out(void **state)
{
	struct spec *s = parse_ok("acc", "{\"lowers\":[{\"file\":\"/a\"},{\"file\":\"/acc\"}],"
				  "\"accelerationLayer\":true}");

	assert_int_equal(s->nlowers, 1);
	assert_string_equal(s->lowers[0].file, "/a");
	assert_null(s->trace_path); /* the layer has no dir, so no trace */
	spec_free(s);

	/* docs/trace.md: the trace is the acceleration layer's dir/trace, replay only. */
	s = parse_ok("acc", "{\"lowers\":[{\"file\":\"/a\"},{\"dir\":\"/img/acc\"}],"
			    "\"accelerationLayer\":true}");
	assert_int_equal(s->nlowers, 1);
	assert_string_equal(s->trace_path, "/img/acc/trace");
	assert_true(s->trace_replay_only);
	spec_free(s);

	s = parse_ok("rec", "{\"lowers\":[{\"file\":\"/a\"}],\"recordTracePath\":\"/t/trace\"}");
	assert_string_equal(s->trace_path, "/t/trace");
	assert_false(s->trace_replay_only);
	spec_free(s);

	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"},{\"dir\":\"/acc\"}],\"accelerationLayer\":true,"
		       "\"recordTracePath\":\"/t/trace\"}", "accelerationLayer");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"recordTracePath\":\"t/trace\"}",
		  "absolute");
}

static void test_invalid_json(void **state)
{
	parse_bad("x", "{\"lowers\":[", "invalid JSON");
	parse_bad("x", "", "invalid JSON");
	parse_bad("x", "[1]", "JSON object");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"lowers\":[]}", "duplicate");
}

static void test_wrong_types(void **state)
{
	parse_bad("x", "{\"lowers\":{}}", "lowers");
	parse_bad("x", "{\"lowers\":[\"/a\"]}", "lowers[0]");
	parse_bad("x", "{\"lowers\":[{\"file\":1}]}", "lowers[0].file");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\",\"size\":\"7\"}]}", "lowers[0].size");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\",\"size\":-7}]}", "lowers[0].size");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"},{\"dir\":true}]}", "lowers[1].dir");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"upper\":[]}", "upper");
	parse_bad("x", "{\"upper\":{\"data\":1,\"index\":\"/i\"}}", "upper.data");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"resultFile\":{}}", "resultFile");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"repoBlobUrl\":3}", "repoBlobUrl");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"download\":{\"enable\":\"yes\"}}",
		  "download.enable");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"chap\":\"u:p\"}", "chap");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"acl\":\"iqn.x\"}", "acl");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"acl\":[\"a b\"]}", "acl[0]");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"accelerationLayer\":1}",
		  "accelerationLayer");
}

static void test_missing_pieces(void **state)
{
	parse_bad("x", "{}", "no layers");
	parse_bad("x", "{\"lowers\":[]}", "no layers");
	parse_bad("x", "{\"lowers\":[{\"size\":5}]}", "lowers[0]: needs");
	parse_bad("x", "{\"lowers\":[{\"file\":\"rel/path\"}]}", "absolute");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\"}],\"resultFile\":\"r\"}", "absolute");
	parse_bad("x", "{\"lowers\":[{\"file\":\"/a\",\"targetFile\":\"/t\"}]}", "turboOCI");
}

static void test_too_many_layers(void **state)
{
	size_t cap = 300 * 20 + 64;
	char *json = malloc(cap);
	size_t n = 0;
	struct spec *s;

	for (int layers = 255; layers <= 256; layers++) {
		n = snprintf(json, cap, "{\"lowers\":[");
		for (int i = 0; i < layers; i++)
			n += snprintf(json + n, cap - n, "%s{\"file\":\"/l%d\"}", i ? "," : "", i);
		snprintf(json + n, cap - n, "]}");
		if (layers == 255) {
			s = parse_ok("many", json);
			assert_int_equal(s->nlowers, 255);
			spec_free(s);
		} else {
			parse_bad("many", json, "too many layers: 256");
		}
	}
	free(json);
}

static void test_bad_names(void **state)
{
	const char *good = "{\"lowers\":[{\"file\":\"/a\"}]}";
	char longname[300];

	parse_bad("a/b", good, "invalid device name");
	parse_bad("..", good, "invalid device name");
	parse_bad("a..b", good, "invalid device name");
	parse_bad(".hidden", good, "invalid device name");
	parse_bad("a b", good, "invalid device name");
	parse_bad("a:b", good, "invalid device name");
	parse_bad("", good, "invalid device name");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	parse_bad(longname, good, "exceed");
}

static void test_bad_digest(void **state)
{
	parse_bad("x", "{\"lowers\":[{\"digest\":\"sha256:abc\",\"size\":1}]}",
		  "lowers[0].digest");
	parse_bad("x", "{\"lowers\":[{\"digest\":\"md5:0123456789abcdef0123456789abcdef\"}]}",
		  "sha256:<64 lowercase hex>");
	parse_bad("x", "{\"lowers\":[{\"digest\":\"sha256:"
		  "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\"}]}",
		  "lowers[0].digest");
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_spool_read(void **state)
{
	char dir[] = "/tmp/test_spec.XXXXXX", outside[] = "/tmp/test_spec_out.XXXXXX";
	char p[256], q[256], err[512] = "", *text = NULL;
	size_t len;

	assert_non_null(mkdtemp(dir));
	assert_non_null(mkdtemp(outside));
	snprintf(p, sizeof(p), "%s/good.json", dir);
	write_file(p, "{\"lowers\":[{\"file\":\"/a\"}]}");
	assert_int_equal(spec_read(dir, "good.json", &text, &len, err, sizeof(err)), 0);
	assert_int_equal(len, strlen(text));
	assert_string_equal(text, "{\"lowers\":[{\"file\":\"/a\"}]}");
	free(text);

	/* A symlink to a spec inside the spool is fine. */
	snprintf(q, sizeof(q), "%s/alias.json", dir);
	assert_int_equal(symlink("good.json", q), 0);
	assert_int_equal(spec_read(dir, "alias.json", &text, &len, err, sizeof(err)), 0);
	free(text);
	unlink(q);
	/* So is one naming the spool by its absolute path. */
	snprintf(p, sizeof(p), "%s/good.json", dir);
	assert_int_equal(symlink(p, q), 0);
	assert_int_equal(spec_read(dir, "alias.json", &text, &len, err, sizeof(err)), 0);
	free(text);
	unlink(q);
	/* One level only: a symlink to a symlink is not followed further. */
	snprintf(p, sizeof(p), "%s/alias2.json", dir);
	assert_int_equal(symlink("good.json", p), 0);
	assert_int_equal(symlink("alias2.json", q), 0);
	assert_int_equal(spec_read(dir, "alias.json", &text, &len, err, sizeof(err)), -EPERM);
	if (!strstr(err, "symlink to another symlink"))
		fail_msg("expected \"symlink to another symlink\", got \"%s\"", err);
	unlink(q);
	unlink(p);

	/* One leading out of the spool is refused. */
	snprintf(p, sizeof(p), "%s/secret.json", outside);
	write_file(p, "{}");
	snprintf(q, sizeof(q), "%s/escape.json", dir);
	assert_int_equal(symlink(p, q), 0);
	assert_true(spec_read(dir, "escape.json", &text, &len, err, sizeof(err)) < 0);
	if (!strstr(err, "outside the spool"))
		fail_msg("expected \"outside the spool\", got \"%s\"", err);
	unlink(q);
	snprintf(q, sizeof(q), "%s/dotdot.json", dir);
	snprintf(p, sizeof(p), "../%s/secret.json", strrchr(outside, '/') + 1);
	assert_int_equal(symlink(p, q), 0);
	assert_true(spec_read(dir, "dotdot.json", &text, &len, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "outside the spool"));
	unlink(q);

	/* Missing files and directories. */
	assert_true(spec_read(dir, "none.json", &text, &len, err, sizeof(err)) < 0);
	snprintf(q, sizeof(q), "%s/d.json", dir);
	assert_int_equal(mkdir(q, 0755), 0);
	assert_true(spec_read(dir, "d.json", &text, &len, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "regular file"));
	rmdir(q);

	snprintf(p, sizeof(p), "%s/secret.json", outside);
	unlink(p);
	snprintf(p, sizeof(p), "%s/good.json", dir);
	unlink(p);
	rmdir(outside);
	rmdir(dir);
}

static void test_result_file(void **state)
{
	char dir[] = "/tmp/test_spec.XXXXXX", p[256], buf[128];
	const char *json;
	char *r;
	FILE *f;
	size_t n;

	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/result", dir);
	assert_int_equal(spec_write_result(p, NULL), 0);
	f = fopen(p, "r");
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	assert_string_equal(buf, "success");
	assert_int_equal(spec_write_result(p, "empty repoBlobUrl"), 0);
	f = fopen(p, "r");
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	assert_string_equal(buf, "failed:empty repoBlobUrl");
	unlink(p);
	rmdir(dir);

	json = "{\"resultFile\":\"/x/r\",\"lowers\":5}";
	r = spec_peek_result_file(json, strlen(json));
	assert_string_equal(r, "/x/r");
	free(r);
	json = "{\"resultFile\":";
	assert_null(spec_peek_result_file(json, strlen(json)));
	/* Invalid JSON: found by a plain scan. */
	json = "{ \"resultFile\" :\n \"/x/half\", \"lowers\": [ {\"file\": }";
	r = spec_peek_result_file(json, strlen(json));
	assert_non_null(r);
	assert_string_equal(r, "/x/half");
	free(r);
	json = "{\"resultFile\": \"/x/esc\\\"aped\", \"lowers\": [";
	assert_null(spec_peek_result_file(json, strlen(json)));
	json = "{\"resultFile\":\"relative\"}";
	assert_null(spec_peek_result_file(json, strlen(json)));
}

static void read_into(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = 0;
}

/* Someone who owns the resultFile's directory plants links at the final
 * name and at the temporary names root used to pick: root must not write
 * through any of them. */
static void test_result_file_planted_links(void **state)
{
	char dir[] = "/tmp/test_spec.XXXXXX", victim[256], rf[256], tmp[300], tmp2[300];
	char buf[128];
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	write_file(victim, "precious");
	snprintf(rf, sizeof(rf), "%s/result", dir);
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", rf, (int)getpid());
	snprintf(tmp2, sizeof(tmp2), "%s/.result.%d.tmp", dir, (int)getpid());
	assert_int_equal(symlink(victim, rf), 0);
	assert_int_equal(link(victim, tmp), 0);
	assert_int_equal(symlink(victim, tmp2), 0);

	assert_int_equal(spec_write_result(rf, "empty repoBlobUrl"), 0);
	read_into(victim, buf, sizeof(buf));
	if (strcmp(buf, "precious"))
		fail_msg("expected the victim to stay \"precious\", got \"%s\"", buf);
	assert_int_equal(lstat(rf, &st), 0);
	if (!S_ISREG(st.st_mode))
		fail_msg("expected resultFile to be a regular file, got mode 0%o", st.st_mode);
	read_into(rf, buf, sizeof(buf));
	assert_string_equal(buf, "failed:empty repoBlobUrl");

	unlink(rf);
	unlink(tmp);
	unlink(tmp2);
	unlink(victim);
	if (rmdir(dir) < 0)
		fail_msg("expected no temporary file left in %s", dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_spec),
		cmocka_unit_test(test_defaults_from_config),
		cmocka_unit_test(test_upper_only_and_half_upper),
		cmocka_unit_test(test_acceleration_layer_left_out),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_missing_pieces),
		cmocka_unit_test(test_too_many_layers),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_bad_digest),
		cmocka_unit_test(test_spool_read),
		cmocka_unit_test(test_result_file),
		cmocka_unit_test(test_result_file_planted_links),
	};
	int rc;

	log_set_level(LOG_LVL_ERROR);
	if (cfg_default(&cfg) < 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	cfg_free(cfg);
	return rc;
}
