/*
 * iscsi_name: checks on the iSCSI names a peer sends (RFC 7143 4.2.7,
 * RFC 3722) and a safe form of any peer string for the log.
 *
 * A name that passes here holds no blank, control or punctuation byte, so
 * it can be logged, listed in status output and compared as it is.  This
 * never normalises: a name is taken or refused.
 */
#include "iscsi_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* RFC 7143 4.2.7.2 and 4.2.7.3: eui. takes 16 hex digits, naa. 16 or 32. */
#define EUI_HEX_DIGITS 16
#define NAA_HEX_DIGITS_SHORT 16
#define NAA_HEX_DIGITS_LONG 32
/* "iqn." then the date "yyyy-mm" and a dot (4.2.7.2). */
#define IQN_PREFIX_LEN 4
#define IQN_DATE_LEN 7
/* The smallest code point a multi-byte sequence may carry: 0x80-0x9f are
 * the C1 controls, and anything lower is an overlong ASCII form. */
#define UTF8_MIN_PRINTABLE 0xa0

static bool all_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return s[n] == '\0';
}

/* Length of one well-formed UTF-8 sequence at S for a printable non-ASCII
 * code point, or 0 (RFC 3629 section 4; C1 controls refused). */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned cp, need, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 1;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 2;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 3;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < UTF8_MIN_PRINTABLE || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
	    (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000))
		return 0;
	return need + 1;
}

/* RFC 3722 section 6 leaves ASCII letters, digits, '-', '.' and ':' (upper
 * case letters fold to lower case) and printable non-ASCII characters. */
static bool name_chars_ok(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;

	while (*p) {
		size_t n;

		if (isalnum(*p) || *p == '-' || *p == '.' || *p == ':') {
			p++;
			continue;
		}
		n = *p >= 0x80 ? utf8_seq(p) : 0;
		if (!n)
			return false;
		p += n;
	}
	return true;
}

/* "iqn.yyyy-mm.<something>" with a real month (4.2.7.2). */
static bool iqn_ok(const char *s)
{
	const char *d = s + IQN_PREFIX_LEN;
	int month;

	if (strlen(d) < IQN_DATE_LEN + 2)
		return false;
	if (!isdigit((unsigned char)d[0]) || !isdigit((unsigned char)d[1]) ||
	    !isdigit((unsigned char)d[2]) || !isdigit((unsigned char)d[3]) || d[4] != '-' ||
	    !isdigit((unsigned char)d[5]) || !isdigit((unsigned char)d[6]) || d[7] != '.')
		return false;
	month = (d[5] - '0') * 10 + (d[6] - '0');
	return month >= 1 && month <= 12;
}

bool iscsi_name_valid(const char *name)
{
	size_t len = strlen(name);

	/* 4.2.7: at most 223 bytes, and one of the three type prefixes. */
	if (!len || len > ISCSI_NAME_MAX || !name_chars_ok(name))
		return false;
	if (!strncasecmp(name, "iqn.", IQN_PREFIX_LEN))
		return iqn_ok(name);
	if (!strncasecmp(name, "eui.", IQN_PREFIX_LEN))
		return all_hex(name + IQN_PREFIX_LEN, EUI_HEX_DIGITS);
	if (!strncasecmp(name, "naa.", IQN_PREFIX_LEN)) {
		size_t n = len - IQN_PREFIX_LEN;

		return (n == NAA_HEX_DIGITS_SHORT || n == NAA_HEX_DIGITS_LONG) &&
		       all_hex(name + IQN_PREFIX_LEN, n);
	}
	return false;
}

const char *iscsi_log_str(const char *s, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "?");
	size_t o = 0;

	/* Every byte outside printable ASCII, and the backslash itself, is
	 * written as \xNN, so a peer can neither start a fake log line nor
	 * hide one.  What does not fit ends in "..." (LEN is at least 8). */
	for (; *p; p++) {
		char piece[8];
		size_t n = 1;

		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			piece[0] = (char)*p;
		else
			n = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", *p);
		if (o + n + sizeof("...") > len) {
			memcpy(buf + o, "...", sizeof("..."));
			return buf;
		}
		memcpy(buf + o, piece, n);
		o += n;
	}
	buf[o] = '\0';
	return buf;
}
