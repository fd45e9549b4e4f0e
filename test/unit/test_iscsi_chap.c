/*
 * test_iscsi_chap: CHAP arithmetic against vectors computed independently
 * (Python hashlib: H(id || secret || challenge), RFC 1994 4.1), value
 * encodings of RFC 7143 6.1, algorithm choice, verification.
 */
#include "iscsi/iscsi_int.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

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

	return cmocka_run_group_tests(tests, NULL, NULL);
}
