/*
 * test_iscsi_param: the key table's negotiation rules (RFC 7143 6.2 and
 * section 13) and the key=value codec (6.1).
 */
#include "iscsi/iscsi_int.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static const struct iscsi_limits lim = {
	.max_recv_dsl = 262144, .max_burst = 16776192, .first_burst = 262144,
};

/* Negotiate one key and return the answer text ("" if none). */
static const char *answer(struct iscsi_neg *n, const char *key, const char *val, int *rc)
{
	static char buf[512];
	struct iscsi_kv out;

	iscsi_kv_init(&out);
	*rc = iscsi_param_negotiate(n, key, val, &out);
	buf[0] = '\0';
	if (out.len) {
		uint32_t i;

		memcpy(buf, out.buf, out.len < sizeof(buf) ? out.len : sizeof(buf) - 1);
		/* Several pairs: show them with ';' in place of the nulls. */
		for (i = 0; i + 1 < out.len && i < sizeof(buf) - 1; i++)
			if (!buf[i])
				buf[i] = ';';
	}
	iscsi_kv_free(&out);
	return buf;
}

#define EXPECT(n, key, val, want)                                 \
	do {                                                      \
		int rc_;                                          \
		assert_string_equal(answer(n, key, val, &rc_), want); \
		assert_int_equal(rc_, 0);                         \
	} while (0)

static void test_digests(void **state)
{
	struct iscsi_neg n;

	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "HeaderDigest", "CRC32C,None", "HeaderDigest=CRC32C");
	EXPECT(&n, "DataDigest", "None,CRC32C", "DataDigest=None");
	assert_true(n.p.HeaderDigest);
	assert_false(n.p.DataDigest);
	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "HeaderDigest", "MD5", "HeaderDigest=Reject");
}

static void test_booleans(void **state)
{
	struct iscsi_neg n;

	iscsi_neg_init(&n, &lim, false);
	/* 13.10 InitialR2T is OR, we say No: the initiator's value wins. */
	EXPECT(&n, "InitialR2T", "No", "InitialR2T=No");
	/* 13.11 ImmediateData is AND, we say Yes. */
	EXPECT(&n, "ImmediateData", "No", "ImmediateData=No");
	EXPECT(&n, "DataPDUInOrder", "No", "DataPDUInOrder=Yes");
	EXPECT(&n, "DataSequenceInOrder", "maybe", "DataSequenceInOrder=Reject");
	assert_false(n.p.InitialR2T);
	assert_false(n.p.ImmediateData);
	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "InitialR2T", "Yes", "InitialR2T=Yes");
	EXPECT(&n, "ImmediateData", "Yes", "ImmediateData=Yes");
}

static void test_numbers(void **state)
{
	struct iscsi_neg n;

	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "MaxBurstLength", "1048576", "MaxBurstLength=1048576");
	EXPECT(&n, "FirstBurstLength", "0x100000", "FirstBurstLength=262144");
	EXPECT(&n, "MaxConnections", "8", "MaxConnections=1");
	EXPECT(&n, "ErrorRecoveryLevel", "2", "ErrorRecoveryLevel=0");
	EXPECT(&n, "DefaultTime2Wait", "7", "DefaultTime2Wait=7");
	EXPECT(&n, "DefaultTime2Retain", "20", "DefaultTime2Retain=0");
	EXPECT(&n, "MaxOutstandingR2T", "4", "MaxOutstandingR2T=4");
	assert_int_equal(n.p.MaxBurstLength, 1048576);
	assert_int_equal(n.p.MaxOutstandingR2T, 4);
	iscsi_neg_init(&n, &lim, false);
	/* Out of range, signed, junk: Reject, value unchanged. */
	EXPECT(&n, "MaxBurstLength", "511", "MaxBurstLength=Reject");
	EXPECT(&n, "FirstBurstLength", "16777216", "FirstBurstLength=Reject");
	EXPECT(&n, "MaxOutstandingR2T", "-1", "MaxOutstandingR2T=Reject");
	EXPECT(&n, "DefaultTime2Wait", "12abc", "DefaultTime2Wait=Reject");
	EXPECT(&n, "DefaultTime2Retain", "", "DefaultTime2Retain=Reject");
	assert_int_equal(n.p.MaxBurstLength, 262144);
}

static void test_declarative(void **state)
{
	struct iscsi_neg n;

	iscsi_neg_init(&n, &lim, false);
	/* 13.12: store theirs, declare ours. */
	EXPECT(&n, "MaxRecvDataSegmentLength", "65536", "MaxRecvDataSegmentLength=262144");
	assert_int_equal(n.p.PeerMaxRecvDataSegmentLength, 65536);
	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "MaxRecvDataSegmentLength", "100", "MaxRecvDataSegmentLength=Reject");
	assert_int_equal(n.p.PeerMaxRecvDataSegmentLength, 8192);
}

static void test_special_answers(void **state)
{
	struct iscsi_neg n;
	int rc;

	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "X-com.example.foo", "bar", "X-com.example.foo=NotUnderstood");
	EXPECT(&n, "NoSuchKey", "1", "NoSuchKey=NotUnderstood");
	/* 13.26: markers are Reject, never NotUnderstood. */
	EXPECT(&n, "IFMarker", "No", "IFMarker=Reject");
	EXPECT(&n, "OFMarkInt", "2048~8192", "OFMarkInt=Reject");
	EXPECT(&n, "TargetAlias", "x", "TargetAlias=Reject");
	EXPECT(&n, "SendTargets", "All", "SendTargets=Irrelevant");
	EXPECT(&n, "TaskReporting", "FastAbort,RFC3720", "TaskReporting=RFC3720");
	/* Login keys are for the caller. */
	answer(&n, "InitiatorName", "iqn.x", &rc);
	assert_int_equal(rc, 1);
	answer(&n, "CHAP_A", "5", &rc);
	assert_int_equal(rc, 1);
}

static void test_twice(void **state)
{
	struct iscsi_neg n;
	int rc;

	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "MaxBurstLength", "65536", "MaxBurstLength=65536");
	answer(&n, "MaxBurstLength", "65536", &rc);
	assert_int_equal(rc, -EPROTO);
}

static void test_discovery_and_ffp(void **state)
{
	struct iscsi_neg n;

	iscsi_neg_init(&n, &lim, true);
	EXPECT(&n, "MaxBurstLength", "65536", "MaxBurstLength=Irrelevant");
	EXPECT(&n, "ImmediateData", "Yes", "ImmediateData=Irrelevant");
	EXPECT(&n, "HeaderDigest", "None", "HeaderDigest=None");
	iscsi_neg_init(&n, &lim, false);
	n.stage = ISCSI_STAGE_FFP;
	/* Initialize-only keys cannot change in full feature phase. */
	EXPECT(&n, "InitialR2T", "Yes", "InitialR2T=Reject");
	EXPECT(&n, "MaxRecvDataSegmentLength", "16384", "MaxRecvDataSegmentLength=262144");
	assert_int_equal(n.p.PeerMaxRecvDataSegmentLength, 16384);
}

static void test_finish(void **state)
{
	struct iscsi_neg n;

	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "MaxBurstLength", "65536", "MaxBurstLength=65536");
	EXPECT(&n, "FirstBurstLength", "131072", "FirstBurstLength=131072");
	iscsi_param_finish(&n);
	assert_int_equal(n.p.FirstBurstLength, 65536);
}

struct collected {
	char text[256];
};

static int collect(void *arg, const char *key, const char *val)
{
	struct collected *c = arg;
	size_t l = strlen(c->text);

	snprintf(c->text + l, sizeof(c->text) - l, "[%s|%s]", key, val);
	return 0;
}

static void test_kv_parse(void **state)
{
	struct collected c = { "" };
	static const char ok[] = "A=1\0B=\0C=x=y\0\0";
	static const char noeq[] = "A=1\0B\0";
	static const char unterminated[] = { 'A', '=', '1' };
	char longkey[80];

	assert_int_equal(iscsi_kv_parse(ok, sizeof(ok) - 1, collect, &c), 0);
	assert_string_equal(c.text, "[A|1][B|][C|x=y]");
	assert_int_equal(iscsi_kv_parse(noeq, sizeof(noeq) - 1, collect, &c), -EINVAL);
	assert_int_equal(iscsi_kv_parse(unterminated, sizeof(unterminated), collect, &c), -EINVAL);
	memset(longkey, 'K', sizeof(longkey));
	memcpy(longkey + 64, "=v", 3);
	assert_int_equal(iscsi_kv_parse(longkey, 67, collect, &c), -EINVAL);
	assert_int_equal(iscsi_kv_parse("=v", 3, collect, &c), -EINVAL);
}

static void test_kv_limit(void **state)
{
	struct iscsi_kv kv;
	char big[4096];
	int i;

	iscsi_kv_init(&kv);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < 20; i++)
		iscsi_kv_add(&kv, "K", big);
	assert_true(kv.overflow);
	assert_true(kv.len <= ISCSI_TEXT_MAX);
	iscsi_kv_free(&kv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digests),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_declarative),
		cmocka_unit_test(test_special_answers),
		cmocka_unit_test(test_twice),
		cmocka_unit_test(test_discovery_and_ffp),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_kv_parse),
		cmocka_unit_test(test_kv_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
