/*
 * test_iscsi_pdu: the connection's receive state machine and PDU answers,
 * driven through the iscsi_conn_feed seam with the connection's socket one
 * end of a socketpair: login in one piece and byte by byte, NOP echo,
 * header digests, limits, discovery with continued Text answers, and login
 * failures with the RFC 7143 11.13.5 status codes.
 */
#include "blockdev/bdev.h"
#include "common/common.h"
#include "iscsi/iscsi_int.h"
#include "scsi/scsi.h"

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

#define TGT "iqn.2026-11.io.overlaybd:unit"

static struct ev_loop *loop;
static struct bdev_pool *pool;
static struct iscsi_server *srv;
static struct scsi_dev *dev;
static struct bdev *bd;
static int peer = -1;

struct pdu {
	uint8_t h[48];
	uint8_t data[16384];
	uint32_t dsl;
};

static int setup(void **state)
{
	struct bdev_file *df, *xf;
	struct lsmt_layer *l;
	struct scsi_dev_info info = { "OVERLAYB", "unit", "0001", "U1", 0x6001405000000021ull,
				      TGT, 1, 1 };
	struct iscsi_target *t;
	char name[64];
	int i;

	log_set_level(LOG_LVL_ERROR);
	loop = ev_default_loop(0);
	assert_int_equal(bdev_pool_create(1, &pool), 0);
	assert_int_equal(bdev_file_open_mem(NULL, 0, &df), 0);
	assert_int_equal(bdev_file_open_mem(NULL, 0, &xf), 0);
	assert_int_equal(lsmt_create_rw(df, xf, 1 << 20, NULL), 0);
	assert_int_equal(lsmt_open_rw(df, xf, &l), 0);
	assert_int_equal(bdev_open(NULL, 0, l, &bd), 0);
	assert_int_equal(scsi_dev_create(bd, pool, &info, &dev), 0);
	assert_int_equal(iscsi_server_create(loop, NULL, &srv), 0);
	assert_int_equal(iscsi_target_create(srv, TGT, "unit", dev, NULL, NULL, 0, &t), 0);
	/* Enough targets that a SendTargets answer needs continuation. */
	for (i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "iqn.2026-11.io.overlaybd:padding-target-%02d", i);
		assert_int_equal(iscsi_target_create(srv, name, NULL, dev, NULL, NULL, 0, &t), 0);
	}
	return 0;
}

static int teardown(void **state)
{
	iscsi_server_destroy(srv);
	scsi_dev_destroy(dev);
	bdev_close(bd);
	bdev_pool_destroy(pool);
	return 0;
}

static struct iscsi_conn *new_conn(void)
{
	struct iscsi_conn *c;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	c = iscsi_conn_new(srv, sv[0]);
	assert_non_null(c);
	snprintf(c->peer, sizeof(c->peer), "unit");
	snprintf(c->peer_host, sizeof(c->peer_host), "unit");
	snprintf(c->local_portal, sizeof(c->local_portal), "127.0.0.1:3260");
	if (peer >= 0)
		close(peer);
	peer = sv[1];
	return c;
}

static void end_conn(struct iscsi_conn *c)
{
	struct iscsi_conn *o;

	/* A connection that ended itself may already be freed. */
	for (o = srv->conns; o && o != c; o = o->next)
		;
	if (!o)
		return;
	if (c->state != CONN_CLOSED)
		iscsi_conn_close(c, "test done");
	iscsi_conn_maybe_free(c);
	while (srv->nconns)
		ev_run(loop, EVRUN_ONCE);
}

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get_le32_test(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Read one PDU the target sent; false if the connection is closed. */
static bool recv_pdu(struct pdu *p, bool hdigest)
{
	uint8_t buf[48 + 4 + sizeof(p->data) + 8];
	size_t want = 48, got = 0;
	int spins;

	for (spins = 0; spins < 1000; spins++) {
		ssize_t n;

		ev_run(loop, EVRUN_NOWAIT);
		n = read(peer, buf + got, want - got);
		if (n == 0)
			return false;
		if (n > 0)
			got += n;
		if (got == 48 && want == 48) {
			uint32_t dsl = get_be24(buf + 5);

			want = 48 + (hdigest ? 4 : 0) + pad4(dsl);
			if (want > sizeof(buf))
				fail_msg("PDU data segment %u too large for the test", dsl);
		}
		if (got == want && got >= 48)
			break;
	}
	if (got < 48 || got != want)
		fail_msg("expected a PDU, got %zu of %zu bytes", got, want);
	memcpy(p->h, buf, 48);
	if (hdigest)
		assert_int_equal(get_le32_test(buf + 48), crc32c(buf, 48));
	p->dsl = get_be24(buf + 5);
	memcpy(p->data, buf + 48 + (hdigest ? 4 : 0), p->dsl);
	return true;
}

/* True once the target has closed its end. */
static bool peer_closed(void)
{
	char buf[4096];
	int spins;

	for (spins = 0; spins < 1000; spins++) {
		ssize_t n;

		ev_run(loop, EVRUN_NOWAIT);
		n = read(peer, buf, sizeof(buf));
		if (n == 0)
			return true;
	}
	return false;
}

/* Build a request header. */
static void bhs(uint8_t *h, uint8_t op, uint8_t flags, uint32_t dsl, uint32_t itt)
{
	memset(h, 0, 48);
	h[0] = op;
	h[1] = flags;
	put_be24(h + 5, dsl);
	put_be32(h + 16, itt);
}

static size_t login_pdu(uint8_t *out, uint8_t flags, const char *text, size_t tlen, uint8_t vmin)
{
	bhs(out, ISCSI_OP_LOGIN_REQ | ISCSI_FLAG_IMMEDIATE, flags, (uint32_t)tlen, 1);
	out[3] = vmin;
	memcpy(out + 8, "\x80\x01\x02\x03\x04\x05", 6);
	put_be32(out + 24, 1); /* CmdSN */
	memset(out + 48, 0, pad4(tlen));
	memcpy(out + 48, text, tlen);
	return 48 + pad4(tlen);
}

/* Does the key=value text hold PAIR? */
static bool has_pair(const struct pdu *p, const char *pair)
{
	uint32_t off = 0;

	while (off < p->dsl) {
		const char *s = (const char *)p->data + off;

		if (!strcmp(s, pair))
			return true;
		off += strlen(s) + 1;
	}
	return false;
}

static const char normal_login[] = "InitiatorName=iqn.2026-11.test:unit\0SessionType=Normal\0"
				    "TargetName=" TGT "\0HeaderDigest=CRC32C,None\0"
				    "MaxRecvDataSegmentLength=512\0";

/* Log in (operational stage straight to full feature) and check the answer. */
static struct iscsi_conn *logged_in(bool byte_by_byte)
{
	uint8_t req[512];
	struct iscsi_conn *c = new_conn();
	struct pdu p;
	size_t n = login_pdu(req, 0x87, normal_login, sizeof(normal_login) - 1, 0), i;

	if (byte_by_byte) {
		for (i = 0; i < n; i++)
			assert_int_equal(iscsi_conn_feed(c, req + i, 1), 0);
	} else {
		assert_int_equal(iscsi_conn_feed(c, req, n), 0);
	}
	assert_true(recv_pdu(&p, false));
	assert_int_equal(p.h[0], ISCSI_OP_LOGIN_RSP);
	assert_int_equal(p.h[1], 0x87);
	assert_int_equal(get_be16(p.h + 36), 0);
	assert_int_not_equal(get_be16(p.h + 14), 0); /* TSIH */
	assert_true(has_pair(&p, "HeaderDigest=CRC32C"));
	assert_true(has_pair(&p, "MaxRecvDataSegmentLength=262144"));
	assert_true(has_pair(&p, "TargetPortalGroupTag=1"));
	assert_int_equal(c->state, CONN_FFP);
	return c;
}

static void test_login_whole(void **state)
{
	end_conn(logged_in(false));
}

static void test_login_byte_by_byte(void **state)
{
	end_conn(logged_in(true));
}

static void test_nop_echo_and_digest(void **state)
{
	struct iscsi_conn *c = logged_in(false);
	uint8_t req[48 + 4 + 8];
	struct pdu p;

	bhs(req, ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE, 0x80, 5, 0x1234);
	put_be32(req + 20, ISCSI_RSVD_TAG);
	put_be32(req + 24, 1);
	put_le32(req + 48, crc32c(req, 48));
	memcpy(req + 52, "hello\0\0\0", 8);
	assert_int_equal(iscsi_conn_feed(c, req, sizeof(req)), 0);
	assert_true(recv_pdu(&p, true));
	assert_int_equal(p.h[0], ISCSI_OP_NOP_IN);
	assert_int_equal(get_be32(p.h + 16), 0x1234);
	assert_int_equal(p.dsl, 5);
	assert_memory_equal(p.data, "hello", 5);
	/* A wrong header digest ends the connection. */
	put_le32(req + 48, crc32c(req, 48) ^ 1);
	assert_int_equal(iscsi_conn_feed(c, req, sizeof(req)), -1);
	assert_true(peer_closed());
	end_conn(c);
}

static void test_dsl_above_max(void **state)
{
	struct iscsi_conn *c = logged_in(false);
	uint8_t req[52];
	struct pdu p;

	bhs(req, ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE, 0x80, 262144 + 4, 0x99);
	put_le32(req + 48, crc32c(req, 48));
	assert_int_equal(iscsi_conn_feed(c, req, sizeof(req)), -1);
	assert_true(recv_pdu(&p, true));
	assert_int_equal(p.h[0], ISCSI_OP_REJECT);
	assert_int_equal(p.h[2], ISCSI_REJECT_PROTOCOL);
	assert_true(peer_closed());
	end_conn(c);
}

static void test_discovery_continued(void **state)
{
	static const char disc[] = "InitiatorName=iqn.2026-11.test:unit\0SessionType=Discovery\0"
				   "MaxRecvDataSegmentLength=512\0";
	static const char st[] = "SendTargets=All";
	uint8_t req[512];
	struct iscsi_conn *c = new_conn();
	struct pdu p;
	size_t n = login_pdu(req, 0x87, disc, sizeof(disc) - 1, 0);
	uint32_t ttt, total = 0, parts = 0;

	assert_int_equal(iscsi_conn_feed(c, req, n), 0);
	assert_true(recv_pdu(&p, false));
	assert_int_equal(get_be16(p.h + 36), 0);
	bhs(req, ISCSI_OP_TEXT_REQ | ISCSI_FLAG_IMMEDIATE, 0x80, sizeof(st), 7);
	put_be32(req + 20, ISCSI_RSVD_TAG);
	memset(req + 48, 0, pad4(sizeof(st)));
	memcpy(req + 48, st, sizeof(st));
	assert_int_equal(iscsi_conn_feed(c, req, 48 + pad4(sizeof(st))), 0);
	for (;;) {
		assert_true(recv_pdu(&p, false));
		assert_int_equal(p.h[0], ISCSI_OP_TEXT_RSP);
		assert_true(p.dsl <= 512);
		total += p.dsl;
		parts++;
		if (p.h[1] & 0x80)
			break;
		/* 11.11.1: C=1 and a TTT to pull the rest with. */
		assert_int_equal(p.h[1], 0x40);
		ttt = get_be32(p.h + 20);
		assert_int_not_equal(ttt, ISCSI_RSVD_TAG);
		bhs(req, ISCSI_OP_TEXT_REQ | ISCSI_FLAG_IMMEDIATE, 0x80, 0, 7);
		put_be32(req + 20, ttt);
		assert_int_equal(iscsi_conn_feed(c, req, 48), 0);
	}
	assert_true(parts > 4);
	assert_true(total > 41 * 60);
	end_conn(c);
}

/* Send a one-PDU Text request with TEXT (its terminating null included)
 * on a connection with header digests. */
static void send_text(struct iscsi_conn *c, const char *text, uint32_t itt)
{
	uint8_t req[48 + 4 + 256];
	size_t len = strlen(text) + 1;

	bhs(req, ISCSI_OP_TEXT_REQ | ISCSI_FLAG_IMMEDIATE, 0x80, (uint32_t)len, itt);
	put_be32(req + 20, ISCSI_RSVD_TAG);
	put_be32(req + 24, 1);
	put_le32(req + 48, crc32c(req, 48));
	memset(req + 52, 0, pad4(len));
	memcpy(req + 52, text, len);
	assert_int_equal(iscsi_conn_feed(c, req, 52 + pad4(len)), 0);
}

/* S2: RFC 7143 Appendix C: SendTargets=All MUST NOT be supported in a
 * normal session (Reject, Protocol Error); an empty value and the
 * session's own name still list the session's target. */
static void test_send_targets_normal(void **state)
{
	static const char *const own[] = { "SendTargets=", "SendTargets=" TGT };
	struct iscsi_conn *c = logged_in(false);
	struct pdu p;
	size_t i;

	send_text(c, "SendTargets=All", 0x41);
	assert_true(recv_pdu(&p, true));
	if (p.h[0] != ISCSI_OP_REJECT || p.h[2] != ISCSI_REJECT_PROTOCOL)
		fail_msg("SendTargets=All in a normal session: expected Reject reason 0x%02x, "
			 "got opcode 0x%02x reason 0x%02x", ISCSI_REJECT_PROTOCOL, p.h[0], p.h[2]);
	for (i = 0; i < 2; i++) {
		send_text(c, own[i], 0x42 + (uint32_t)i);
		assert_true(recv_pdu(&p, true));
		assert_int_equal(p.h[0], ISCSI_OP_TEXT_RSP);
		if (!has_pair(&p, "TargetName=" TGT) || has_pair(&p, "TargetName="
				"iqn.2026-11.io.overlaybd:padding-target-00"))
			fail_msg("%s: expected only TargetName=%s, got %u bytes", own[i], TGT, p.dsl);
	}
	end_conn(c);
}

static void test_login_failures(void **state)
{
	static const char unknown[] = "InitiatorName=iqn.2026-11.test:unit\0SessionType=Normal\0"
				      "TargetName=iqn.2026-11.io.overlaybd:nope\0";
	static const char noname[] = "SessionType=Normal\0TargetName=" TGT "\0";
	static const char badtype[] = "InitiatorName=iqn.2026-11.test:unit\0SessionType=Weird\0";
	/* S1: a repeated name, and declarations outside RFC 7143 13.12. */
	static const char twice_iname[] = "InitiatorName=iqn.2026-11.test:unit\0"
					  "InitiatorName=iqn.2026-11.test:other\0"
					  "SessionType=Normal\0TargetName=" TGT "\0";
	static const char twice_tname[] = "InitiatorName=iqn.2026-11.test:unit\0"
					  "TargetName=" TGT "\0SessionType=Normal\0"
					  "TargetName=iqn.2026-11.io.overlaybd:padding-target-01\0";
	/* S5: a name with a line break (a forged log line) or of no type. */
	static const char nl_iname[] = "InitiatorName=iqn.2026-11.test:unit\n"
				       "[fake] login ok\0SessionType=Normal\0TargetName=" TGT "\0";
	static const char untyped[] = "InitiatorName=unit-initiator\0SessionType=Discovery\0";
	static const char mrdsl_neg[] = "InitiatorName=iqn.2026-11.test:unit\0SessionType=Normal\0"
					"TargetName=" TGT "\0MaxRecvDataSegmentLength=-1\0";
	static const char mrdsl_big[] = "InitiatorName=iqn.2026-11.test:unit\0SessionType=Normal\0"
					"TargetName=" TGT "\0MaxRecvDataSegmentLength=16777216\0";
	static const struct {
		const char *text;
		size_t len;
		uint8_t flags, vmin;
		uint16_t status;
	} cases[] = {
		{ unknown, sizeof(unknown) - 1, 0x87, 0, ISCSI_LOGIN_NOT_FOUND },
		{ noname, sizeof(noname) - 1, 0x87, 0, ISCSI_LOGIN_MISSING_PARAM },
		{ badtype, sizeof(badtype) - 1, 0x87, 0, ISCSI_LOGIN_SESSION_TYPE },
		{ twice_iname, sizeof(twice_iname) - 1, 0x87, 0, ISCSI_LOGIN_INITIATOR_ERROR },
		{ twice_tname, sizeof(twice_tname) - 1, 0x87, 0, ISCSI_LOGIN_INITIATOR_ERROR },
		{ nl_iname, sizeof(nl_iname) - 1, 0x87, 0, ISCSI_LOGIN_INITIATOR_ERROR },
		{ untyped, sizeof(untyped) - 1, 0x87, 0, ISCSI_LOGIN_INITIATOR_ERROR },
		{ mrdsl_neg, sizeof(mrdsl_neg) - 1, 0x87, 0, ISCSI_LOGIN_INITIATOR_ERROR },
		{ mrdsl_big, sizeof(mrdsl_big) - 1, 0x87, 0, ISCSI_LOGIN_INITIATOR_ERROR },
		{ normal_login, sizeof(normal_login) - 1, 0x87, 1, ISCSI_LOGIN_UNSUPPORTED_VERSION },
		/* T and C together. */
		{ normal_login, sizeof(normal_login) - 1, 0xc7, 0, ISCSI_LOGIN_INITIATOR_ERROR },
		/* A transition backwards. */
		{ normal_login, sizeof(normal_login) - 1, 0x84, 0, ISCSI_LOGIN_INITIATOR_ERROR },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t req[512];
		struct iscsi_conn *c = new_conn();
		struct pdu p;
		size_t n = login_pdu(req, cases[i].flags, cases[i].text, cases[i].len, cases[i].vmin);

		iscsi_conn_feed(c, req, n);
		assert_true(recv_pdu(&p, false));
		assert_int_equal(p.h[0], ISCSI_OP_LOGIN_RSP);
		if (get_be16(p.h + 36) != cases[i].status)
			fail_msg("login case %zu: expected status 0x%04x, got 0x%04x", i,
				 cases[i].status, get_be16(p.h + 36));
		assert_true(peer_closed());
		end_conn(c);
	}
}

static void test_opcode_during_login(void **state)
{
	struct iscsi_conn *c = new_conn();
	uint8_t req[48];

	bhs(req, ISCSI_OP_SCSI_CMD, 0x80, 0, 1);
	assert_int_equal(iscsi_conn_feed(c, req, sizeof(req)), -1);
	assert_true(peer_closed());
	end_conn(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_whole),
		cmocka_unit_test(test_login_byte_by_byte),
		cmocka_unit_test(test_nop_echo_and_digest),
		cmocka_unit_test(test_dsl_above_max),
		cmocka_unit_test(test_discovery_continued),
		cmocka_unit_test(test_send_targets_normal),
		cmocka_unit_test(test_login_failures),
		cmocka_unit_test(test_opcode_during_login),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
