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
}

/* S1: a declaration out of RFC 7143 13.12's 512..2^24-1, or not a
 * 6.1 numerical-value, fails the login (-EINVAL) and is never stored. */
static void test_declarative_bad(void **state)
{
	static const char *const bad[] = {
		"100", "511", "-1", "16777216", "0x1000000", "+512", " 512", "\t512", "512 ",
		"0512", "0x", "0xg00", "18446744073709551616", "99999999999999999999999", "0b0200",
		"", "4096k",
	};
	struct iscsi_neg n;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *got;
		int rc;

		iscsi_neg_init(&n, &lim, false);
		got = answer(&n, "MaxRecvDataSegmentLength", bad[i], &rc);
		if (rc != -EINVAL || got[0] || n.p.PeerMaxRecvDataSegmentLength != 8192)
			fail_msg("MaxRecvDataSegmentLength=%s: expected rc %d, no answer, 8192 kept; "
				 "got rc %d, answer '%s', %u", bad[i], -EINVAL, rc, got,
				 n.p.PeerMaxRecvDataSegmentLength);
	}
	/* The edges and the hex form 6.1 allows are taken. */
	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "MaxRecvDataSegmentLength", "0x200", "MaxRecvDataSegmentLength=262144");
	assert_int_equal(n.p.PeerMaxRecvDataSegmentLength, 512);
	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "MaxRecvDataSegmentLength", "16777215", "MaxRecvDataSegmentLength=262144");
	assert_int_equal(n.p.PeerMaxRecvDataSegmentLength, 16777215);
}

/* S1: every numerical and boolean key of the table refuses what 6.1 does
 * not define (sign, blanks, leading zeros, other bases, 64-bit overflow)
 * with Reject and keeps its value. */
static void test_value_forms(void **state)
{
	static const char *const nums[] = {
		"MaxConnections", "MaxBurstLength", "FirstBurstLength", "DefaultTime2Wait",
		"DefaultTime2Retain", "MaxOutstandingR2T", "ErrorRecoveryLevel", "iSCSIProtocolLevel",
	};
	static const char *const bad_nums[] = {
		"+1", "-0", " 1", "\n1", "1 ", "01", "0x", "0X", "0xz", "1e3", "0b01", "1,2",
		"18446744073709551617", "0x10000000000000000", "abc",
	};
	static const char *const bools[] = {
		"InitialR2T", "ImmediateData", "DataPDUInOrder", "DataSequenceInOrder",
	};
	static const char *const bad_bools[] = { "yes", "NO", "Yes ", "1", "", "Yes,No" };
	struct iscsi_neg n, before;
	char want[96];
	size_t i, j;

	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		for (j = 0; j < sizeof(bad_nums) / sizeof(bad_nums[0]); j++) {
			const char *got;
			int rc;

			iscsi_neg_init(&n, &lim, false);
			before = n;
			snprintf(want, sizeof(want), "%s=Reject", nums[i]);
			got = answer(&n, nums[i], bad_nums[j], &rc);
			if (rc || strcmp(got, want) || memcmp(&n.p, &before.p, sizeof(n.p)))
				fail_msg("%s=%s: expected '%s', values kept; got rc %d, '%s'",
					 nums[i], bad_nums[j], want, rc, got);
		}
	for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
		for (j = 0; j < sizeof(bad_bools) / sizeof(bad_bools[0]); j++) {
			iscsi_neg_init(&n, &lim, false);
			snprintf(want, sizeof(want), "%s=Reject", bools[i]);
			EXPECT(&n, bools[i], bad_bools[j], want);
		}
	/* 6.1: hex in either case, and 0 itself. */
	iscsi_neg_init(&n, &lim, false);
	EXPECT(&n, "MaxOutstandingR2T", "0XA", "MaxOutstandingR2T=10");
	EXPECT(&n, "DefaultTime2Wait", "0", "DefaultTime2Wait=2");
	EXPECT(&n, "MaxBurstLength", "0x0000ffff", "MaxBurstLength=65535");
}

/* 6.2: Reject, Irrelevant and NotUnderstood are answers; proposing one is
 * a protocol error. */
static void test_reserved_values(void **state)
{
	static const char *const reserved[] = { "Reject", "Irrelevant", "NotUnderstood" };
	struct iscsi_neg n;
	size_t i;
	int rc;

	for (i = 0; i < 3; i++) {
		iscsi_neg_init(&n, &lim, false);
		answer(&n, "MaxBurstLength", reserved[i], &rc);
		assert_int_equal(rc, -EPROTO);
		answer(&n, "InitialR2T", reserved[i], &rc);
		assert_int_equal(rc, -EPROTO);
	}
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

/* S5: RFC 7143 4.2.7 / RFC 3722 names; anything else is refused. */
static void test_names(void **state)
{
	static const char *const good[] = {
		"iqn.2026-11.io.overlaybd:unit", "iqn.1991-05.com.microsoft:host-01.example.com",
		"IQN.2026-11.IO.OVERLAYBD:UPPER", "eui.02004567A425678D", "naa.52004567BA64678D",
		"naa.62004567BA64678D0123456789ABCDEF", "iqn.2026-12.org.example:caf\xc3\xa9",
	};
	static const char *const bad[] = {
		"", "iqn.2026-11.io.overlaybd:a\nfake log line", "iqn.2026-11.io.x:tab\there",
		"iqn.2026-11.io.x:esc\x1b[31m", "iqn.2026-11.io.x:del\x7f", "iqn.2026-11.io.x:sp ace",
		"iqn.2026-11.io.x:slash/", "iqn.2026-13.io.x", "iqn.2026-00.io.x", "iqn.26-11.io.x",
		"iqn.2026-11", "iqn.2026-11.", "foo.2026-11.io.x", "eui.02004567A425678",
		"eui.02004567A425678D0", "eui.02004567A425678G", "naa.52004567BA64678D01",
		"iqn.2026-11.io.x:c1\xc2\x85", "iqn.2026-11.io.x:bad\xc3", "iqn.2026-11.io.x:\xc0\xaf",
		"iqn.2026-11.io.x:\xed\xa0\x80",
	};
	char longname[300];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!iscsi_name_valid(good[i]))
			fail_msg("expected '%s' to be a valid iSCSI name, got refused", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (iscsi_name_valid(bad[i]))
			fail_msg("expected bad name %zu to be refused, got accepted", i);
	/* 4.2.7: 223 bytes at most. */
	memset(longname, 'a', sizeof(longname));
	memcpy(longname, "iqn.2026-11.io.x:", 17);
	longname[ISCSI_NAME_MAX] = '\0';
	assert_true(iscsi_name_valid(longname));
	longname[ISCSI_NAME_MAX] = 'a';
	longname[ISCSI_NAME_MAX + 1] = '\0';
	assert_false(iscsi_name_valid(longname));
}

/* S5: a logged peer string can never carry a line break or escape. */
static void test_log_str(void **state)
{
	char buf[ISCSI_LOG_STR_MAX], small[12], big[400];

	assert_string_equal(iscsi_log_str("iqn.a\nb\\c\x1b\xc3\xa9", buf, sizeof(buf)),
			    "iqn.a\\x0ab\\x5cc\\x1b\\xc3\\xa9");
	assert_string_equal(iscsi_log_str(NULL, buf, sizeof(buf)), "?");
	assert_string_equal(iscsi_log_str("abcdefghijklmnop", small, sizeof(small)), "abcdefgh...");
	assert_string_equal(iscsi_log_str("abcdef\n\n", small, sizeof(small)), "abcdef...");
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	iscsi_log_str(big, buf, sizeof(buf));
	assert_true(strlen(buf) < sizeof(buf));
	assert_null(strchr(buf, '\n'));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digests),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_declarative),
		cmocka_unit_test(test_declarative_bad),
		cmocka_unit_test(test_value_forms),
		cmocka_unit_test(test_reserved_values),
		cmocka_unit_test(test_special_answers),
		cmocka_unit_test(test_twice),
		cmocka_unit_test(test_discovery_and_ffp),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_log_str),
		cmocka_unit_test(test_kv_parse),
		cmocka_unit_test(test_kv_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
