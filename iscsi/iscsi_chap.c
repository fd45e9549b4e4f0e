/*
 * iscsi_chap: CHAP arithmetic for iSCSI login (RFC 1994, RFC 7143 12.1.3):
 * algorithm choice (5 = MD5, 7 = SHA-256), challenge generation, response
 * computation and constant-time verification, and the binary value
 * encodings of RFC 7143 6.1 (0x hex, 0b base64).  The login state machine
 * that sequences the CHAP keys is in iscsi_login.c.
 */
#include "iscsi_int.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

/* Longest list item worth parsing: "0x" and a few hex digits. */
#define CHAP_A_ITEM_MAX 15

int iscsi_chap_pick_alg(const char *list)
{
	const char *p = list;

	/* 12.1.3: the target picks from the initiator's list, in its order;
	 * each item is a 6.1 numerical-value, anything else is skipped. */
	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char item[CHAP_A_ITEM_MAX + 1];
		uint32_t v;

		if (len <= CHAP_A_ITEM_MAX) {
			memcpy(item, p, len);
			item[len] = '\0';
			if (!iscsi_num_parse(item, 0, UINT32_MAX, &v) &&
			    (v == ISCSI_CHAP_MD5 || v == ISCSI_CHAP_SHA256))
				return (int)v;
		}
		p = e ? e + 1 : NULL;
	}
	return 0;
}

uint32_t iscsi_chap_digest_len(int alg)
{
	return alg == ISCSI_CHAP_SHA256 ? 32 : alg == ISCSI_CHAP_MD5 ? 16 : 0;
}

int iscsi_chap_response(int alg, uint8_t id, const char *secret, const uint8_t *challenge,
			uint32_t clen, uint8_t *out)
{
	const EVP_MD *md = alg == ISCSI_CHAP_SHA256 ? EVP_sha256() :
			   alg == ISCSI_CHAP_MD5 ? EVP_md5() : NULL;
	EVP_MD_CTX *ctx;
	unsigned int olen = 0;
	int ok;

	if (!md || !secret)
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	/* RFC 1994 4.1: Response = H(Identifier || secret || Challenge). */
	ok = EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, &id, 1) &&
	     EVP_DigestUpdate(ctx, secret, strlen(secret)) &&
	     EVP_DigestUpdate(ctx, challenge, clen) && EVP_DigestFinal_ex(ctx, out, &olen);
	EVP_MD_CTX_free(ctx);
	if (!ok || olen != iscsi_chap_digest_len(alg))
		return -EIO;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int iscsi_chap_decode(const char *val, uint8_t *out, uint32_t max, uint32_t *len)
{
	uint32_t n = 0;
	size_t i, l = strlen(val);

	if (l < 3 || val[0] != '0')
		return -EINVAL;
	if (val[1] == 'x' || val[1] == 'X') {
		const char *h = val + 2;
		size_t hl = l - 2;

		/* 6.1: an odd number of hex digits has an implied leading 0. */
		if (hl & 1) {
			int v = hexval(h[0]);

			if (v < 0 || max < 1)
				return -EINVAL;
			out[n++] = (uint8_t)v;
			h++;
			hl--;
		}
		for (i = 0; i < hl; i += 2) {
			int hi = hexval(h[i]), lo = hexval(h[i + 1]);

			if (hi < 0 || lo < 0 || n >= max)
				return -EINVAL;
			out[n++] = (uint8_t)(hi << 4 | lo);
		}
	} else if (val[1] == 'b' || val[1] == 'B') {
		uint32_t acc = 0;
		int bits = 0;
		bool pad = false;

		for (i = 2; i < l; i++) {
			int v;

			if (val[i] == '=') {
				pad = true;
				continue;
			}
			v = b64val(val[i]);
			if (v < 0 || pad)
				return -EINVAL;
			acc = acc << 6 | (uint32_t)v;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				if (n >= max)
					return -EINVAL;
				out[n++] = (uint8_t)(acc >> bits);
			}
		}
	} else {
		return -EINVAL;
	}
	if (!n)
		return -EINVAL;
	*len = n;
	return 0;
}

void iscsi_chap_encode(const uint8_t *in, uint32_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t i;

	*out++ = '0';
	*out++ = 'x';
	for (i = 0; i < len; i++) {
		*out++ = hex[in[i] >> 4];
		*out++ = hex[in[i] & 15];
	}
	*out = '\0';
}

bool iscsi_chap_verify(int alg, uint8_t id, const char *secret, const uint8_t *challenge,
		       uint32_t clen, const uint8_t *resp, uint32_t rlen)
{
	uint8_t want[ISCSI_CHAP_MAX_DIGEST];
	uint32_t dlen = iscsi_chap_digest_len(alg);
	bool ok;

	if (!dlen || rlen != dlen)
		return false;
	if (iscsi_chap_response(alg, id, secret, challenge, clen, want))
		return false;
	/* A timing-independent compare: the secret must not leak byte by
	 * byte through how fast a wrong answer is refused. */
	ok = CRYPTO_memcmp(want, resp, dlen) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

int iscsi_chap_new_challenge(struct iscsi_chap_state *st, int alg)
{
	uint8_t id;

	st->alg = alg;
	/* RFC 1994 2.3: the challenge should be as long as the hash. */
	st->challenge_len = iscsi_chap_digest_len(alg);
	if (!st->challenge_len)
		return -EINVAL;
	if (RAND_bytes(&id, 1) != 1 || RAND_bytes(st->challenge, (int)st->challenge_len) != 1)
		return -EIO;
	st->id = id;
	return 0;
}
