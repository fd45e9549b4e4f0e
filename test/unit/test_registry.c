/*
 * test_registry: the registry client's pure logic: WWW-Authenticate
 * parsing, credential key matching (most specific wins), signed-URL
 * lifetimes, how responses are classified, and the reference's reason
 * words for resultFile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "registry/reg_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void expect_str(const char *what, const char *want, const char *got)
{
	if (strcmp(want, got))
		fail_msg("%s: expected \"%s\", got \"%s\"", what, want, got);
}

static void test_challenge_bearer(void **state)
{
	struct reg_challenge ch;
	int rc = reg_parse_challenge(
		"Bearer realm=\"https://auth.example/token\",service=\"registry.test\","
		"scope=\"repository:a/b:pull,push\",error=\"insufficient_scope\"",
		&ch);

	if (rc)
		fail_msg("parse: expected 0, got %d", rc);
	expect_str("scheme", "bearer", ch.scheme);
	expect_str("realm", "https://auth.example/token", ch.realm);
	expect_str("service", "registry.test", ch.service);
	/* A comma inside quotes belongs to the value (config.md 4.2). */
	expect_str("scope", "repository:a/b:pull,push", ch.scope);
	expect_str("error", "insufficient_scope", ch.error);
}

static void test_challenge_forms(void **state)
{
	struct reg_challenge ch;

	assert_int_equal(reg_parse_challenge("Basic realm=\"basic-realm\"", &ch), 0);
	expect_str("scheme", "basic", ch.scheme);
	expect_str("realm", "basic-realm", ch.realm);
	/* Case-insensitive scheme and keys, unquoted values, spaces. */
	assert_int_equal(reg_parse_challenge("BEARER Realm=http://h/t , Service=s", &ch), 0);
	expect_str("realm", "http://h/t", ch.realm);
	expect_str("service", "s", ch.service);
	expect_str("scope", "", ch.scope);
	/* Escaped quote inside a quoted value. */
	assert_int_equal(reg_parse_challenge("Bearer realm=\"a\\\"b\"", &ch), 0);
	expect_str("realm", "a\"b", ch.realm);
	assert_int_equal(reg_parse_challenge("Bearer service=\"x\"", &ch), -EINVAL);
	assert_int_equal(reg_parse_challenge("Negotiate abc", &ch), -ENOTSUP);
	assert_int_equal(reg_parse_challenge("Bearer realm=\"unterminated", &ch), -EINVAL);
	assert_int_equal(reg_parse_challenge("", &ch), -EINVAL);
}

#define URL "https://reg.example:5000/v2/ns/repo/blobs/sha256:abc"

static void expect_cred(const char *json, const char *url, int want_rc, const char *want_user,
			const char *want_pass)
{
	char user[64] = "", pass[64] = "";
	int rc = reg_cred_match(json, url, user, sizeof(user), pass, sizeof(pass));

	if (rc != want_rc)
		fail_msg("cred_match(%s): expected %d, got %d", json, want_rc, rc);
	if (!rc) {
		expect_str("user", want_user, user);
		expect_str("password", want_pass, pass);
	}
}

static void test_cred_most_specific(void **state)
{
	/* Most specific wins whatever the file order (README; the
	 * reference takes the first match). */
	expect_cred("{\"auths\":{"
		    "\"reg.example:5000\":{\"username\":\"host\",\"password\":\"h\"},"
		    "\"reg.example:5000/ns/repo\":{\"username\":\"repo\",\"password\":\"r\"},"
		    "\"reg.example:5000/ns\":{\"username\":\"ns\",\"password\":\"n\"}}}",
		    URL, 0, "repo", "r");
	expect_cred("{\"auths\":{"
		    "\"reg.example:5000/ns\":{\"username\":\"ns\",\"password\":\"n\"},"
		    "\"reg.example:5000\":{\"username\":\"host\",\"password\":\"h\"}}}",
		    URL, 0, "ns", "n");
	/* A deeper key for another repository is not a candidate. */
	expect_cred("{\"auths\":{"
		    "\"reg.example:5000/ns/other\":{\"username\":\"o\",\"password\":\"o\"},"
		    "\"reg.example:5000\":{\"username\":\"host\",\"password\":\"h\"}}}",
		    URL, 0, "host", "h");
	/* Segment prefixes only: "ns/re" is not a prefix element. */
	expect_cred("{\"auths\":{\"reg.example:5000/ns/re\":{\"username\":\"x\",\"password\":\"y\"}}}",
		    URL, -ENOENT, "", "");
	/* Scheme and trailing slash are tolerated in keys. */
	expect_cred("{\"auths\":{\"https://reg.example:5000/\":{\"username\":\"u\",\"password\":\"p\"}}}",
		    URL, 0, "u", "p");
	/* Another port is another host. */
	expect_cred("{\"auths\":{\"reg.example\":{\"username\":\"u\",\"password\":\"p\"}}}", URL,
		    -ENOENT, "", "");
}

static void test_cred_auth_field(void **state)
{
	/* base64("user:pa:ss") splits at the first ':' and wins over
	 * username/password in the same entry (config.md 3.1). */
	expect_cred("{\"auths\":{\"reg.example:5000\":{\"auth\":\"dXNlcjpwYTpzcw==\","
		    "\"username\":\"other\",\"password\":\"x\"}}}",
		    URL, 0, "user", "pa:ss");
	/* An auth without ':' is skipped; username/password still count. */
	expect_cred("{\"auths\":{\"reg.example:5000\":{\"auth\":\"bm9jb2xvbg==\","
		    "\"username\":\"u\",\"password\":\"p\"}}}",
		    URL, 0, "u", "p");
	expect_cred("{\"auths\":{\"reg.example:5000\":{\"auth\":\"bm9jb2xvbg==\"}}}", URL, -ENOENT,
		    "", "");
	expect_cred("{\"auths\":{}}", URL, -ENOENT, "", "");
	expect_cred("not json", URL, -EINVAL, "", "");
	/* Docker Hub spellings name the host that serves its blobs. */
	expect_cred("{\"auths\":{\"https://index.docker.io/v1/\":{\"username\":\"d\",\"password\":\"h\"}}}",
		    "https://registry-1.docker.io/v2/library/redis/blobs/sha256:1", 0, "d", "h");
}

static void test_redirect_lifetime(void **state)
{
	char url[512], date[32];
	time_t now = time(NULL);
	struct tm tm;
	uint64_t base = 1000000, got;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(url, sizeof(url),
		 "http://s3/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=%s&X-Amz-Expires=1200"
		 "&X-Amz-Signature=ab",
		 date);
	got = reg_redirect_lifetime_ms(url, base) - base;
	/* 1200 s minus the 30 s margin, give or take the second boundary. */
	if (got < 1168000 || got > 1171000)
		fail_msg("S3 lifetime: expected about 1170000 ms, got %llu", (unsigned long long)got);
	snprintf(url, sizeof(url), "http://cdn/x?Expires=%lld&Signature=z", (long long)now + 100);
	got = reg_redirect_lifetime_ms(url, base) - base;
	if (got < 69000 || got > 71000)
		fail_msg("Expires lifetime: expected about 70000 ms, got %llu",
			 (unsigned long long)got);
	snprintf(url, sizeof(url), "http://cdn/x?Expires=%lld", (long long)now - 5);
	assert_int_equal(reg_redirect_lifetime_ms(url, base), base);
	got = reg_redirect_lifetime_ms("http://files/docker/registry/v2/blobs/x/data", base) - base;
	assert_int_equal(got, 600000);
}

static void test_redirect_cache(void **state)
{
	struct reg_redirect rd;
	char *u;

	reg_redirect_init(&rd);
	assert_null(reg_redirect_get(&rd));
	reg_redirect_set(&rd, "http://a/1");
	u = reg_redirect_get(&rd);
	expect_str("current", "http://a/1", u);
	free(u);
	/* Dropping a stale URL must not drop a newer one. */
	reg_redirect_set(&rd, "http://a/2");
	reg_redirect_drop(&rd, "http://a/1");
	u = reg_redirect_get(&rd);
	expect_str("after stale drop", "http://a/2", u);
	free(u);
	reg_redirect_drop(&rd, "http://a/2");
	assert_null(reg_redirect_get(&rd));
	reg_redirect_fini(&rd);
}

/* Which redirect targets and peers are refused (security round 2, item 6). */
static void test_redirect_targets(void **state)
{
	static const struct {
		const char *ip;
		bool local;
	} addrs[] = {
		{ "127.0.0.1", true }, { "127.1.2.3", true }, { "0.0.0.0", true },
		{ "169.254.169.254", true }, { "::1", true }, { "::", true },
		{ "fe80::1", true }, { "febf::1", true }, { "::ffff:127.0.0.1", true },
		{ "::ffff:169.254.1.1", true }, { "192.0.2.2", false }, { "10.0.0.1", false },
		{ "169.253.0.1", false }, { "fec0::1", false }, { "2001:db8::1", false },
		{ "::ffff:192.0.2.1", false }, { "not-an-ip", false },
	};
	static const struct {
		const char *url;
		bool ok;
	} urls[] = {
		{ "http://s3.example/x", true }, { "HTTPS://s3.example/x", true },
		{ "gopher://127.0.0.1:6379/_FLUSHALL", false }, { "dict://127.0.0.1/x", false },
		{ "file:///etc/passwd", false }, { "smtp://127.0.0.1/", false },
		{ "httpx://a/", false }, { "/relative", false },
	};

	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
		if (reg_addr_is_local(addrs[i].ip) != addrs[i].local)
			fail_msg("%s: expected local=%d, got %d", addrs[i].ip, addrs[i].local,
				 !addrs[i].local);
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
		if (reg_redirect_scheme_ok(urls[i].url) != urls[i].ok)
			fail_msg("%s: expected followed=%d, got %d", urls[i].url, urls[i].ok,
				 !urls[i].ok);
}

static void expect_verdict(CURLcode cc, long status, bool redirect, enum reg_verdict want,
			   int want_err)
{
	struct reg_http_req r;
	int err;
	enum reg_verdict v;

	memset(&r, 0, sizeof(r));
	r.cc = cc;
	r.status = status;
	r.redirect = redirect ? "http://x/" : NULL;
	v = reg_classify(&r, &err);
	if (v != want || err != want_err)
		fail_msg("classify(cc %d, HTTP %ld): expected verdict %d err %d, got %d err %d", cc,
			 status, want, want_err, v, err);
}

static void test_classify(void **state)
{
	expect_verdict(CURLE_OK, 206, false, REG_OK, 0);
	expect_verdict(CURLE_OK, 200, false, REG_OK, 0);
	expect_verdict(CURLE_OK, 307, true, REG_REDIRECT, 0);
	expect_verdict(CURLE_OK, 302, false, REG_FATAL, -EIO);
	expect_verdict(CURLE_OK, 401, false, REG_AUTH, -EPERM);
	expect_verdict(CURLE_OK, 403, false, REG_FATAL, -EPERM);
	expect_verdict(CURLE_OK, 404, false, REG_FATAL, -ENOENT);
	/* 416 is decided by status alone, even when curl saw a short body. */
	expect_verdict(CURLE_OK, 416, false, REG_FATAL, -ERANGE);
	expect_verdict(CURLE_OK, 429, false, REG_RETRY, -EBUSY);
	expect_verdict(CURLE_OK, 500, false, REG_RETRY, -EIO);
	expect_verdict(CURLE_OK, 503, false, REG_RETRY, -EIO);
	expect_verdict(CURLE_OK, 400, false, REG_FATAL, -EIO);
	expect_verdict(CURLE_COULDNT_CONNECT, 0, false, REG_RETRY, -ECONNREFUSED);
	expect_verdict(CURLE_RECV_ERROR, 0, false, REG_RETRY, -EIO);
	expect_verdict(CURLE_PARTIAL_FILE, 0, false, REG_RETRY, -EIO);
	expect_verdict(CURLE_PEER_FAILED_VERIFICATION, 0, false, REG_FATAL, -EPROTO);
	/* A scheme outside the allow-list will not become allowed by retrying. */
	expect_verdict(CURLE_UNSUPPORTED_PROTOCOL, 0, false, REG_FATAL, -EIO);
}

static void test_reasons(void **state)
{
	expect_str("EPERM", "Authentication failed", reg_reason(-EPERM));
	expect_str("ENOENT", "No such file or directory", reg_reason(-ENOENT));
	expect_str("ECONNREFUSED", "Connection failed", reg_reason(-ECONNREFUSED));
	expect_str("ETIMEDOUT", "Get meta timedout", reg_reason(-ETIMEDOUT));
	expect_str("EBUSY", "Too many requests", reg_reason(-EBUSY));
	expect_str("EIO", "Unexpected response", reg_reason(-EIO));
}

static void test_retry_deadline(void **state)
{
	struct reg_retry rt;
	uint64_t t0 = reg_now_ms(), dt;
	int n = 0;

	reg_retry_init(&rt, 1);
	while (reg_retry_backoff(&rt, -1))
		n++;
	dt = reg_now_ms() - t0;
	/* Backoff stops at the deadline, neither much before nor after. */
	if (dt < 950 || dt > 2500)
		fail_msg("retry for 1 s: expected ~1000 ms, got %llu ms", (unsigned long long)dt);
	if (n < 3)
		fail_msg("retry attempts in 1 s: expected >= 3, got %d", n);
	/* A Retry-After past the deadline gives up at once. */
	reg_retry_init(&rt, 1);
	t0 = reg_now_ms();
	assert_false(reg_retry_backoff(&rt, 5));
	assert_true(reg_now_ms() - t0 < 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_challenge_bearer),
		cmocka_unit_test(test_challenge_forms),
		cmocka_unit_test(test_cred_most_specific),
		cmocka_unit_test(test_cred_auth_field),
		cmocka_unit_test(test_redirect_lifetime),
		cmocka_unit_test(test_redirect_cache),
		cmocka_unit_test(test_redirect_targets),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_retry_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
