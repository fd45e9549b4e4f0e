/*
 * iscsi_kv: the key=value text of Login and Text PDUs (RFC 7143 6.1): a
 * bounded growing buffer for answers and a strict parser for requests.
 * The parser never trusts its input: every pair must be null-terminated,
 * keys and values stay within the RFC's lengths.
 */
#include "iscsi_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void iscsi_kv_init(struct iscsi_kv *kv)
{
	memset(kv, 0, sizeof(*kv));
}

void iscsi_kv_free(struct iscsi_kv *kv)
{
	free(kv->buf);
	iscsi_kv_init(kv);
}

int iscsi_kv_append_raw(struct iscsi_kv *kv, const void *data, uint32_t len)
{
	if (kv->overflow || (uint64_t)kv->len + len > ISCSI_TEXT_MAX) {
		kv->overflow = true;
		return -E2BIG;
	}
	if (kv->len + len > kv->cap) {
		uint32_t cap = kv->cap ? kv->cap : 512;
		char *nb;

		while (cap < kv->len + len)
			cap *= 2;
		nb = realloc(kv->buf, cap);
		if (!nb) {
			kv->overflow = true;
			return -ENOMEM;
		}
		kv->buf = nb;
		kv->cap = cap;
	}
	if (len)
		memcpy(kv->buf + kv->len, data, len);
	kv->len += len;
	return 0;
}

void iscsi_kv_add(struct iscsi_kv *kv, const char *key, const char *val)
{
	iscsi_kv_append_raw(kv, key, strlen(key));
	iscsi_kv_append_raw(kv, "=", 1);
	iscsi_kv_append_raw(kv, val, strlen(val) + 1);
}

void iscsi_kv_addf(struct iscsi_kv *kv, const char *key, const char *fmt, ...)
{
	char val[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	iscsi_kv_add(kv, key, val);
}

int iscsi_kv_parse(const char *data, uint32_t len, iscsi_kv_fn cb, void *arg)
{
	uint32_t pos = 0;

	while (pos < len) {
		const char *pair = data + pos;
		const char *end = memchr(pair, '\0', len - pos);
		char key[64], *val;
		size_t plen, klen;
		const char *eq;
		int rc;

		/* RFC 7143 6.1: every pair ends in a null; a trailing
		 * unterminated pair is a format error. */
		if (!end)
			return -EINVAL;
		plen = end - pair;
		pos += plen + 1;
		if (plen == 0)
			continue; /* padding nulls */
		eq = memchr(pair, '=', plen);
		if (!eq)
			return -EINVAL;
		klen = eq - pair;
		/* 6.1: keys are at most 63 bytes; values at most 8192 (255
		 * for most, longer only for CHAP binaries and lists). */
		if (klen == 0 || klen > 63 || plen - klen - 1 > 8192)
			return -EINVAL;
		memcpy(key, pair, klen);
		key[klen] = '\0';
		val = strndup(eq + 1, plen - klen - 1);
		if (!val)
			return -ENOMEM;
		rc = cb(arg, key, val);
		free(val);
		if (rc)
			return rc;
	}
	return 0;
}
