/*
 * test_iscsi_chap: CHAP arithmetic against vectors computed independently
 * (Python hashlib: H(id || secret || challenge), RFC 1994 4.1), value
 * encodings of RFC 7143 6.1, algorithm choice, verification; and CHAP
 * logins of discovery sessions driven through iscsi_conn_feed with the
 * connection's socket one end of a socketpair.
 */
#include "common/common.h"
#include "iscsi/iscsi_int.h"

#include <errno.h>
#include <ev.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static void hex_of(const uint8_t *b, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_md5_vector(void **state)
{
	uint8_t ch[16], out[32];
	char hex[65];
	int i;

	for (i = 0; i < 16; i++)
		ch[i] = (uint8_t)i;
	assert_int_equal(iscsi_chap_response(ISCSI_CHAP_MD5, 1, "secretsecret1", ch, 16, out), 0);
	hex_of(out, 16, hex);
	assert_string_equal(hex, "71133038ef3394e5d0284e40a4a27ea2");
}

static void test_md5_vector_decoded(void **state)
{
	uint8_t ch[64], out[32];
	uint32_t len = 0;
	char hex[65];

	assert_int_equal(iscsi_chap_decode("0xdeadbeef00112233445566778899AABB", ch, sizeof(ch),
					   &len), 0);
	assert_int_equal(len, 16);
	assert_int_equal(iscsi_chap_response(ISCSI_CHAP_MD5, 0xa7, "Mutual-Secret-42", ch, len, out),
			 0);
	hex_of(out, 16, hex);
	assert_string_equal(hex, "1435b966d7005041d547a0ec3a841f02");
}

static void test_sha256_vector(void **state)
{
	uint8_t ch[32], out[32];
	char hex[65];
	int i;

	for (i = 0; i < 32; i++)
		ch[i] = (uint8_t)(32 + i);
	assert_int_equal(iscsi_chap_response(ISCSI_CHAP_SHA256, 9, "sha-secret-0123", ch, 32, out),
			 0);
	hex_of(out, 32, hex);
	assert_string_equal(hex, "ba90351a6eb99a4f365b3eb9ed7c236513c4ccdae25a39819dbb3e617de73e25");
}

static void test_verify(void **state)
{
	uint8_t ch[16], resp[16];
	int i;

	for (i = 0; i < 16; i++)
		ch[i] = (uint8_t)i;
	iscsi_chap_response(ISCSI_CHAP_MD5, 1, "secretsecret1", ch, 16, resp);
	assert_true(iscsi_chap_verify(ISCSI_CHAP_MD5, 1, "secretsecret1", ch, 16, resp, 16));
	/* Wrong id, secret, length, one flipped bit: all refused. */
	assert_false(iscsi_chap_verify(ISCSI_CHAP_MD5, 2, "secretsecret1", ch, 16, resp, 16));
	assert_false(iscsi_chap_verify(ISCSI_CHAP_MD5, 1, "secretsecret2", ch, 16, resp, 16));
	assert_false(iscsi_chap_verify(ISCSI_CHAP_MD5, 1, "secretsecret1", ch, 16, resp, 15));
	assert_false(iscsi_chap_verify(ISCSI_CHAP_SHA256, 1, "secretsecret1", ch, 16, resp, 16));
	resp[7] ^= 0x10;
	assert_false(iscsi_chap_verify(ISCSI_CHAP_MD5, 1, "secretsecret1", ch, 16, resp, 16));
}

static void test_decode(void **state)
{
	uint8_t b[8];
	uint32_t len = 0;

	assert_int_equal(iscsi_chap_decode("0b3q2+7wE=", b, sizeof(b), &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(b, "\xde\xad\xbe\xef\x01", 5);
	/* 6.1: an odd digit count means a leading zero nibble. */
	assert_int_equal(iscsi_chap_decode("0xabc", b, sizeof(b), &len), 0);
	assert_int_equal(len, 2);
	assert_int_equal(b[0], 0x0a);
	assert_int_equal(b[1], 0xbc);
	assert_int_equal(iscsi_chap_decode("0x", b, sizeof(b), &len), -EINVAL);
	assert_int_equal(iscsi_chap_decode("abcd", b, sizeof(b), &len), -EINVAL);
	assert_int_equal(iscsi_chap_decode("0xzz", b, sizeof(b), &len), -EINVAL);
	assert_int_equal(iscsi_chap_decode("0b@@@@", b, sizeof(b), &len), -EINVAL);
	/* Longer than the buffer: refused, never overrun. */
	assert_int_equal(iscsi_chap_decode("0x000102030405060708", b, sizeof(b), &len), -EINVAL);
}

static void test_encode(void **state)
{
	char out[16];

	iscsi_chap_encode((const uint8_t *)"\x01\xab\xff", 3, out);
	assert_string_equal(out, "0x01abff");
}

static void test_pick_alg(void **state)
{
	assert_int_equal(iscsi_chap_pick_alg("5"), 5);
	assert_int_equal(iscsi_chap_pick_alg("7,5"), 7);
	assert_int_equal(iscsi_chap_pick_alg("5,7"), 5);
	assert_int_equal(iscsi_chap_pick_alg("6,7"), 7);
	assert_int_equal(iscsi_chap_pick_alg("6"), 0);
	assert_int_equal(iscsi_chap_pick_alg("55,7"), 7);
	assert_int_equal(iscsi_chap_pick_alg(""), 0);
	/* RFC 7143 6.1 numbers only: no sign, blank or junk around them. */
	assert_int_equal(iscsi_chap_pick_alg("+5"), 0);
	assert_int_equal(iscsi_chap_pick_alg(" 5"), 0);
	assert_int_equal(iscsi_chap_pick_alg("05,7"), 7);
	assert_int_equal(iscsi_chap_pick_alg("0x7"), 7);
	assert_int_equal(iscsi_chap_pick_alg("5 ,7"), 7);
}

static void test_challenge(void **state)
{
	struct iscsi_chap_state a = { 0 }, b = { 0 };

	assert_int_equal(iscsi_chap_new_challenge(&a, ISCSI_CHAP_MD5), 0);
	assert_int_equal(a.challenge_len, 16);
	assert_int_equal(iscsi_chap_new_challenge(&b, ISCSI_CHAP_SHA256), 0);
	assert_int_equal(b.challenge_len, 32);
	assert_memory_not_equal(a.challenge, b.challenge, 16);
	assert_int_equal(iscsi_chap_new_challenge(&a, 6), -EINVAL);
}


#define INAME "iqn.2026-11.test:chap"
#define DISC_USER "disc"
#define DISC_SECRET "disc-secret-1234"

struct peer {
	struct iscsi_conn *c;
	int fd;
};

struct rsp {
	uint8_t h[48];
	char data[8192];
	uint32_t dsl;
	bool closed;
};

static const struct iscsi_chap disc = { DISC_USER, DISC_SECRET, NULL, NULL };
static struct ev_loop *loop;
static struct iscsi_server *srv;

static int srv_setup(void **state)
{
	log_set_level(LOG_LVL_ERROR);
	loop = ev_default_loop(0);
	assert_int_equal(iscsi_server_create(loop, NULL, &srv), 0);
	assert_int_equal(iscsi_server_set_discovery_chap(srv, &disc), 0);
	return 0;
}

static int srv_teardown(void **state)
{
	iscsi_server_destroy(srv);
	srv = NULL;
	return 0;
}

static void peer_open(struct peer *p, const char *host)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	p->c = iscsi_conn_new(srv, sv[0]);
	assert_non_null(p->c);
	p->fd = sv[1];
	snprintf(p->c->peer, sizeof(p->c->peer), "%s:1", host);
	snprintf(p->c->peer_host, sizeof(p->c->peer_host), "%s", host);
}

/* Close our end; the target frees its side once it sees that. */
static void peer_close(struct peer *p)
{
	struct iscsi_conn *o;

	close(p->fd);
	for (o = srv->conns; o && o != p->c; o = o->next)
		;
	if (o) {
		iscsi_conn_close(o, "test done");
		iscsi_conn_maybe_free(o);
	}
}

/* Send one login request PDU with TEXT (LEN bytes of key=value\0 pairs). */
static void send_login(struct peer *p, uint8_t flags, const char *text, size_t len)
{
	uint8_t buf[48 + 4096];
	size_t n = 48 + ((len + 3) & ~(size_t)3);

	assert_true(n <= sizeof(buf));
	memset(buf, 0, n);
	buf[0] = ISCSI_OP_LOGIN_REQ | ISCSI_FLAG_IMMEDIATE;
	buf[1] = flags;
	put_be24(buf + 5, (uint32_t)len);
	memcpy(buf + 8, "\x80\x01\x02\x03\x04\x05", 6);
	put_be32(buf + 16, 1);
	put_be32(buf + 24, 1);
	memcpy(buf + 48, text, len);
	iscsi_conn_feed(p->c, buf, n);
}

/* Read the target's next PDU, running the loop for up to SECS seconds;
 * false if none came in that time. */
static bool try_recv_rsp(struct peer *p, struct rsp *r, double secs)
{
	uint8_t buf[48 + sizeof(r->data)];
	size_t got = 0, want = 48;
	ev_tstamp end;

	ev_now_update(loop);
	end = ev_now(loop) + secs;
	memset(r, 0, sizeof(*r));
	while (got < want) {
		ssize_t n;

		ev_run(loop, EVRUN_NOWAIT);
		n = read(p->fd, buf + got, want - got);
		if (n == 0) {
			r->closed = true;
			return true;
		}
		if (n > 0)
			got += n;
		if (got == 48 && want == 48)
			want = 48 + ((get_be24(buf + 5) + 3) & ~3u);
		if (want > sizeof(buf))
			fail_msg("PDU of %zu bytes too large for the test", want);
		if (n < 0) {
			ev_now_update(loop);
			if (ev_now(loop) > end) {
				if (got)
					fail_msg("a PDU cut short: %zu of %zu bytes", got, want);
				return false;
			}
			usleep(1000);
		}
	}
	memcpy(r->h, buf, 48);
	r->dsl = get_be24(buf + 5);
	memcpy(r->data, buf + 48, r->dsl);
	return true;
}

static void recv_rsp(struct peer *p, struct rsp *r, double secs)
{
	if (!try_recv_rsp(p, r, secs))
		fail_msg("expected a PDU within %.1f s, got none", secs);
}

static uint16_t rsp_status(const struct rsp *r)
{
	return get_be16(r->h + 36);
}

/* The value of KEY in the answer, or NULL. */
static const char *rsp_get(const struct rsp *r, const char *key)
{
	size_t kl = strlen(key);
	uint32_t off = 0;

	while (off < r->dsl) {
		const char *s = r->data + off;

		if (!strncmp(s, key, kl) && s[kl] == '=')
			return s + kl + 1;
		off += strlen(s) + 1;
	}
	return NULL;
}

/* First two legs of a discovery CHAP login: AuthMethod, then CHAP_A=5. */
static void chap_start(struct peer *p, const char *iname, struct rsp *r)
{
	char text[512];
	int n = snprintf(text, sizeof(text), "InitiatorName=%s%cSessionType=Discovery%c"
			 "AuthMethod=CHAP,None%c", iname, 0, 0, 0);

	send_login(p, 0x01, text, n);
	recv_rsp(p, r, 2);
	assert_false(r->closed);
	assert_int_equal(rsp_status(r), 0);
	assert_string_equal(rsp_get(r, "AuthMethod"), "CHAP");
	send_login(p, 0x01, "CHAP_A=5", 9);
	recv_rsp(p, r, 2);
	assert_false(r->closed);
	assert_string_equal(rsp_get(r, "CHAP_A"), "5");
}

/* Answer the challenge in R as USER with SECRET, moving to the
 * operational stage, and return the target's answer in R. */
static void chap_answer(struct peer *p, const char *user, const char *secret, struct rsp *r,
			double secs)
{
	uint8_t ch[64], md[32];
	uint32_t clen = 0;
	char text[256], hex[2 * 32 + 3];
	int id = atoi(rsp_get(r, "CHAP_I")), n;

	assert_int_equal(iscsi_chap_decode(rsp_get(r, "CHAP_C"), ch, sizeof(ch), &clen), 0);
	assert_int_equal(iscsi_chap_response(ISCSI_CHAP_MD5, (uint8_t)id, secret, ch, clen, md), 0);
	iscsi_chap_encode(md, 16, hex);
	n = snprintf(text, sizeof(text), "CHAP_N=%s%cCHAP_R=%s%c", user, 0, hex, 0);
	send_login(p, 0x81, text, n);
	if (secs > 0)
		recv_rsp(p, r, secs);
}

/* Item 9: a reload that drops discoveryAuth between CHAP_A and CHAP_R
 * must not leave the login comparing against freed or NULL secrets: the
 * login finishes against the secrets it started with. */
static void test_creds_dropped_mid_login(void **state)
{
	struct peer p;
	struct rsp r;

	peer_open(&p, "10.0.0.1");
	chap_start(&p, INAME, &r);
	assert_int_equal(iscsi_server_set_discovery_chap(srv, NULL), 0);
	chap_answer(&p, DISC_USER, DISC_SECRET, &r, 2);
	if (r.closed || rsp_status(&r) != 0)
		fail_msg("expected the login to go on (status 0) after discoveryAuth was dropped, "
			 "got %s 0x%04x", r.closed ? "closed" : "status", rsp_status(&r));
	assert_int_equal(r.h[1], 0x81);
	peer_close(&p);
	assert_int_equal(iscsi_server_set_discovery_chap(srv, &disc), 0);
}

/* The same with the secret changed: the old one still completes this
 * login, the new one is what the next login needs. */
static void test_creds_changed_mid_login(void **state)
{
	static const struct iscsi_chap other = { "other", "other-secret-99", NULL, NULL };
	struct peer p;
	struct rsp r;

	peer_open(&p, "10.0.0.2");
	chap_start(&p, INAME, &r);
	assert_int_equal(iscsi_server_set_discovery_chap(srv, &other), 0);
	chap_answer(&p, DISC_USER, DISC_SECRET, &r, 2);
	if (r.closed || rsp_status(&r) != 0)
		fail_msg("expected the started login to use its own secrets (status 0), got %s 0x%04x",
			 r.closed ? "closed" : "status", rsp_status(&r));
	peer_close(&p);
	assert_int_equal(iscsi_server_set_discovery_chap(srv, &disc), 0);
}

/* Log in from HOST as INAME with a wrong secret; true if the failure
 * (status 0x0201) came back within SECS seconds. */
static bool chap_fail_quickly(const char *host, const char *iname, double secs)
{
	struct peer p;
	struct rsp r;
	bool quick;

	peer_open(&p, host);
	chap_start(&p, iname, &r);
	chap_answer(&p, DISC_USER, "not-the-secret", &r, 0);
	quick = try_recv_rsp(&p, &r, secs);
	if (!quick)
		recv_rsp(&p, &r, 10);
	if (r.closed || rsp_status(&r) != ISCSI_LOGIN_AUTH_FAILED)
		fail_msg("wrong secret: expected status 0x0201, got %s 0x%04x",
			 r.closed ? "closed" : "status", rsp_status(&r));
	peer_close(&p);
	return quick;
}

/* S4: the failure slow-down follows the source, not the InitiatorName
 * the peer picks: a fresh name per guess must not reset it. */
static void test_throttle_ignores_name(void **state)
{
	char name[64];
	int i;

	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "iqn.2026-11.test:guess-%d", i);
		assert_true(chap_fail_quickly("10.0.1.1", name, 0.5));
	}
	if (chap_fail_quickly("10.0.1.1", "iqn.2026-11.test:guess-2", 0.5))
		fail_msg("third failure from one source under a new name: expected the answer "
			 "delayed, got it at once");
	/* Another source is not slowed down by it. */
	assert_true(chap_fail_quickly("10.0.1.2", "iqn.2026-11.test:guess-0", 0.5));
}

/* S4: at most ISCSI_CHAP_PARALLEL_MAX CHAP exchanges run at once from one
 * source to one target; one more is refused as "Service unavailable"
 * (RFC 7143 11.13.5, retry later), and a slot frees when one ends. */
static void test_chap_parallel_bound(void **state)
{
	struct peer p[ISCSI_CHAP_PARALLEL_MAX + 1];
	char text[256];
	struct rsp r;
	int i, n;

	for (i = 0; i < ISCSI_CHAP_PARALLEL_MAX; i++) {
		peer_open(&p[i], "10.0.2.1");
		chap_start(&p[i], INAME, &r);
	}
	peer_open(&p[i], "10.0.2.1");
	n = snprintf(text, sizeof(text), "InitiatorName=%s%cSessionType=Discovery%c"
		     "AuthMethod=CHAP%c", INAME, 0, 0, 0);
	send_login(&p[i], 0x01, text, n);
	recv_rsp(&p[i], &r, 2);
	if (r.closed || rsp_status(&r) != ISCSI_LOGIN_UNAVAILABLE)
		fail_msg("CHAP exchange %d from one source: expected status 0x%04x, got %s 0x%04x",
			 i + 1, ISCSI_LOGIN_UNAVAILABLE, r.closed ? "closed" : "status",
			 rsp_status(&r));
	peer_close(&p[i]);
	/* Another source is not affected; a finished exchange frees a slot. */
	peer_open(&p[i], "10.0.2.2");
	chap_start(&p[i], INAME, &r);
	peer_close(&p[i]);
	peer_close(&p[0]);
	peer_open(&p[0], "10.0.2.1");
	chap_start(&p[0], INAME, &r);
	chap_answer(&p[0], DISC_USER, DISC_SECRET, &r, 2);
	assert_int_equal(rsp_status(&r), 0);
	for (i = 0; i < ISCSI_CHAP_PARALLEL_MAX; i++)
		peer_close(&p[i]);
}

/* Same pattern as S1: CHAP_I is a 6.1 numerical-value, so "010" is no
 * octal 8 and " 77" or "+77" no number at all: the login fails. */
static void test_mutual_chap_i_forms(void **state)
{
	static const struct iscsi_chap mutual = { DISC_USER, DISC_SECRET, "tgt", "tgt-secret-5678" };
	static const char *const bad[] = { "010", " 77", "+77", "77 ", "0x", "256" };
	uint8_t ch[64], md[32];
	uint32_t clen = 0;
	char text[512], hex[2 * 32 + 3];
	size_t i;

	assert_int_equal(iscsi_server_set_discovery_chap(srv, &mutual), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]) + 1; i++) {
		const char *chap_i = i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : "0x4d";
		struct peer p;
		struct rsp r;
		char host[32];
		int n;


		/* A source each, so the failure slow-down stays out of it. */
		snprintf(host, sizeof(host), "10.0.3.%zu", i + 1);
		peer_open(&p, host);
		chap_start(&p, INAME, &r);
		assert_int_equal(iscsi_chap_decode(rsp_get(&r, "CHAP_C"), ch, sizeof(ch), &clen), 0);
		assert_int_equal(iscsi_chap_response(ISCSI_CHAP_MD5, (uint8_t)atoi(rsp_get(&r, "CHAP_I")),
						     DISC_SECRET, ch, clen, md), 0);
		iscsi_chap_encode(md, 16, hex);
		n = snprintf(text, sizeof(text), "CHAP_N=%s%cCHAP_R=%s%cCHAP_I=%s%c"
			     "CHAP_C=0x00112233445566778899aabbccddeeff%c", DISC_USER, 0, hex, 0,
			     chap_i, 0, 0);
		send_login(&p, 0x81, text, n);
		recv_rsp(&p, &r, 10);
		if (i < sizeof(bad) / sizeof(bad[0]) &&
		    (r.closed || rsp_status(&r) != ISCSI_LOGIN_AUTH_FAILED))
			fail_msg("CHAP_I=%s: expected status 0x0201, got %s 0x%04x", chap_i,
				 r.closed ? "closed" : "status", rsp_status(&r));
		if (i == sizeof(bad) / sizeof(bad[0])) {
			/* 0x4d is 77: the mutual answer uses that id. */
			assert_int_equal(rsp_status(&r), 0);
			assert_int_equal(iscsi_chap_decode("0x00112233445566778899aabbccddeeff", ch,
							   sizeof(ch), &clen), 0);
			assert_int_equal(iscsi_chap_response(ISCSI_CHAP_MD5, 77, "tgt-secret-5678",
							     ch, clen, md), 0);
			iscsi_chap_encode(md, 16, hex);
			assert_string_equal(rsp_get(&r, "CHAP_R"), hex);
		}
		peer_close(&p);
	}
	assert_int_equal(iscsi_server_set_discovery_chap(srv, &disc), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_md5_vector),
		cmocka_unit_test(test_md5_vector_decoded),
		cmocka_unit_test(test_sha256_vector),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_pick_alg),
		cmocka_unit_test(test_challenge),
	};

	const struct CMUnitTest login_tests[] = {
		cmocka_unit_test(test_creds_dropped_mid_login),
		cmocka_unit_test(test_creds_changed_mid_login),
		cmocka_unit_test(test_throttle_ignores_name),
		cmocka_unit_test(test_chap_parallel_bound),
		cmocka_unit_test(test_mutual_chap_i_forms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL) |
	       cmocka_run_group_tests(login_tests, srv_setup, srv_teardown);
}
