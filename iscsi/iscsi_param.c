/*
 * iscsi_param: the login and text key table (RFC 7143 section 13) and the
 * negotiation rules of section 6.2: one row per key with its type, range,
 * result function and where it may appear.  Login keys that steer the
 * login itself (names, SessionType, AuthMethod, CHAP_*) are left to
 * iscsi_login.c; everything else is answered here.
 */
#include "iscsi_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum key_type {
	KT_BOOL_AND,   /* 6.2.2: result = ours AND theirs */
	KT_BOOL_OR,    /* result = ours OR theirs */
	KT_NUM_MIN,    /* 6.2.2: numerical, result = min */
	KT_NUM_MAX,    /* result = max */
	KT_NUM_DECL,   /* declarative numbers (MaxRecvDataSegmentLength) */
	KT_DIGEST,     /* 13.1: list of None, CRC32C */
	KT_TASKREP,    /* 13.23: list, we do RFC3720 only */
	KT_LOGIN,      /* handled by the login code */
	KT_TARGET_ONLY,/* only a target sends these */
	KT_TEXT_ONLY,  /* SendTargets: a Text request key */
	KT_OBSOLETE,   /* 13.26: marker keys, answered Reject */
};

/* Where a key may appear. */
#define F_IO 0x1        /* initialize only: login, not a Text request */
#define F_IRR_DISC 0x2  /* Irrelevant in a discovery session */

struct key_row {
	const char *name;
	enum key_type type;
	uint32_t min, max;
	size_t off;        /* into struct iscsi_params */
	unsigned flags;
};

#define P(f) offsetof(struct iscsi_params, f)

/* RFC 7143 section 13 (and 12 for the security keys), in its order. */
static const struct key_row keys[] = {
	{ "HeaderDigest", KT_DIGEST, 0, 0, P(HeaderDigest), F_IO },        /* 13.1 */
	{ "DataDigest", KT_DIGEST, 0, 0, P(DataDigest), F_IO },            /* 13.1 */
	{ "MaxConnections", KT_NUM_MIN, 1, 65535, P(MaxConnections), F_IO | F_IRR_DISC }, /* 13.2 */
	{ "SendTargets", KT_TEXT_ONLY, 0, 0, 0, 0 },                       /* 13.3 */
	{ "TargetName", KT_LOGIN, 0, 0, 0, F_IO },                         /* 13.4 */
	{ "InitiatorName", KT_LOGIN, 0, 0, 0, F_IO },                      /* 13.5 */
	{ "TargetAlias", KT_TARGET_ONLY, 0, 0, 0, 0 },                     /* 13.6 */
	{ "InitiatorAlias", KT_LOGIN, 0, 0, 0, 0 },                        /* 13.7 */
	{ "TargetAddress", KT_TARGET_ONLY, 0, 0, 0, 0 },                   /* 13.8 */
	{ "TargetPortalGroupTag", KT_TARGET_ONLY, 0, 0, 0, F_IO },         /* 13.9 */
	{ "InitialR2T", KT_BOOL_OR, 0, 0, P(InitialR2T), F_IO | F_IRR_DISC },      /* 13.10 */
	{ "ImmediateData", KT_BOOL_AND, 0, 0, P(ImmediateData), F_IO | F_IRR_DISC }, /* 13.11 */
	{ "MaxRecvDataSegmentLength", KT_NUM_DECL, ISCSI_DSL_MIN, ISCSI_DSL_MAX,
	  P(PeerMaxRecvDataSegmentLength), 0 },                               /* 13.12 */
	{ "MaxBurstLength", KT_NUM_MIN, ISCSI_DSL_MIN, ISCSI_DSL_MAX, P(MaxBurstLength),
	  F_IO | F_IRR_DISC },                                                /* 13.13 */
	{ "FirstBurstLength", KT_NUM_MIN, ISCSI_DSL_MIN, ISCSI_DSL_MAX, P(FirstBurstLength),
	  F_IO | F_IRR_DISC },                                                /* 13.14 */
	{ "DefaultTime2Wait", KT_NUM_MAX, 0, 3600, P(DefaultTime2Wait), F_IO },     /* 13.15 */
	{ "DefaultTime2Retain", KT_NUM_MIN, 0, 3600, P(DefaultTime2Retain), F_IO }, /* 13.16 */
	{ "MaxOutstandingR2T", KT_NUM_MIN, 1, 65535, P(MaxOutstandingR2T),
	  F_IO | F_IRR_DISC },                                                /* 13.17 */
	{ "DataPDUInOrder", KT_BOOL_OR, 0, 0, P(DataPDUInOrder), F_IO | F_IRR_DISC },  /* 13.18 */
	{ "DataSequenceInOrder", KT_BOOL_OR, 0, 0, P(DataSequenceInOrder),
	  F_IO | F_IRR_DISC },                                                /* 13.19 */
	{ "ErrorRecoveryLevel", KT_NUM_MIN, 0, 2, P(ErrorRecoveryLevel), F_IO }, /* 13.20 */
	{ "SessionType", KT_LOGIN, 0, 0, 0, F_IO },                        /* 13.21 */
	{ "TaskReporting", KT_TASKREP, 0, 0, 0, F_IO },                    /* 13.23 */
	{ "iSCSIProtocolLevel", KT_NUM_MIN, 0, 31, P(iSCSIProtocolLevel), F_IO }, /* 13.24 */
	{ "OFMarker", KT_OBSOLETE, 0, 0, 0, 0 },                           /* 13.26 */
	{ "IFMarker", KT_OBSOLETE, 0, 0, 0, 0 },
	{ "OFMarkInt", KT_OBSOLETE, 0, 0, 0, 0 },
	{ "IFMarkInt", KT_OBSOLETE, 0, 0, 0, 0 },
	{ "AuthMethod", KT_LOGIN, 0, 0, 0, F_IO },                         /* 12.1 */
	{ "CHAP_A", KT_LOGIN, 0, 0, 0, F_IO },                             /* 12.1.3 */
	{ "CHAP_I", KT_LOGIN, 0, 0, 0, F_IO },
	{ "CHAP_C", KT_LOGIN, 0, 0, 0, F_IO },
	{ "CHAP_N", KT_LOGIN, 0, 0, 0, F_IO },
	{ "CHAP_R", KT_LOGIN, 0, 0, 0, F_IO },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

void iscsi_params_default(struct iscsi_params *p)
{
	/* Section 13 defaults: what holds when a key is never negotiated. */
	memset(p, 0, sizeof(*p));
	p->MaxConnections = 1;
	p->InitialR2T = true;
	p->ImmediateData = true;
	p->MaxRecvDataSegmentLength = 8192;
	p->PeerMaxRecvDataSegmentLength = 8192;
	p->MaxBurstLength = 262144;
	p->FirstBurstLength = 65536;
	p->DefaultTime2Wait = 2;
	p->DefaultTime2Retain = 20;
	p->MaxOutstandingR2T = 1;
	p->DataPDUInOrder = true;
	p->DataSequenceInOrder = true;
	p->ErrorRecoveryLevel = 0;
	p->iSCSIProtocolLevel = 1;
}

static void our_offer(const struct iscsi_limits *lim, struct iscsi_params *o)
{
	iscsi_params_default(o);
	o->MaxConnections = 1;          /* one connection per session */
	o->InitialR2T = false;          /* take unsolicited data */
	o->ImmediateData = true;
	o->MaxRecvDataSegmentLength = lim->max_recv_dsl;
	o->MaxBurstLength = lim->max_burst;
	o->FirstBurstLength = lim->first_burst;
	o->DefaultTime2Wait = 2;
	o->DefaultTime2Retain = 0;      /* ErrorRecoveryLevel 0: nothing kept */
	o->MaxOutstandingR2T = 16;
	o->DataPDUInOrder = true;       /* we do not reassemble */
	o->DataSequenceInOrder = true;
	o->ErrorRecoveryLevel = 0;
	o->iSCSIProtocolLevel = 1;
}

void iscsi_neg_init(struct iscsi_neg *n, const struct iscsi_limits *lim, bool discovery)
{
	memset(n, 0, sizeof(*n));
	iscsi_params_default(&n->p);
	n->p.MaxRecvDataSegmentLength = lim->max_recv_dsl;
	n->discovery = discovery;
	our_offer(lim, &n->ours);
}

static const struct key_row *find_key(const char *key)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, key))
			return &keys[i];
	return NULL;
}

bool iscsi_param_known(const char *key)
{
	return find_key(key) != NULL;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "Yes"))
		*out = true;
	else if (!strcmp(v, "No"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int digit_val(char ch, unsigned base)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (base == 16 && ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (base == 16 && ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * RFC 7143 6.1: a numerical-value is a decimal-constant (0, or digits not
 * starting with 0) or a hex-constant (0x or 0X and one or more hex
 * digits), always below 2^64.  No sign, no blanks, no other base: strtoull
 * would take all of those.
 */
int iscsi_num_parse(const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned base = 10;
	uint64_t x = 0;
	const char *p = v;

	if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		p += 2;
	} else if (v[0] == '0' && v[1]) {
		return -EINVAL;
	}
	if (!*p)
		return -EINVAL;
	for (; *p; p++) {
		int d = digit_val(*p, base);

		if (d < 0 || x > (UINT64_MAX - (uint64_t)d) / base)
			return -EINVAL;
		x = x * base + (uint64_t)d;
	}
	if (x < min || x > max)
		return -ERANGE;
	*out = (uint32_t)x;
	return 0;
}

/* First item of the initiator's comma list that we accept. */
static const char *pick_list(const char *list, const char *const *accept)
{
	const char *p = list;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		int i;

		for (i = 0; accept[i]; i++)
			if (strlen(accept[i]) == len && !strncmp(p, accept[i], len))
				return accept[i];
		if (!e)
			break;
		p = e + 1;
	}
	return NULL;
}

static bool is_reserved_value(const char *v)
{
	return !strcmp(v, "Reject") || !strcmp(v, "Irrelevant") || !strcmp(v, "NotUnderstood");
}

int iscsi_param_negotiate(struct iscsi_neg *n, const char *key, const char *val,
			  struct iscsi_kv *out)
{
	const struct key_row *k = find_key(key);
	uint64_t bit;
	void *field;
	bool b, ob;
	uint32_t v, ov;

	if (!k) {
		/* 6.2: unknown keys, X- and X# extensions included. */
		iscsi_kv_add(out, key, "NotUnderstood");
		return 0;
	}
	if (k->type == KT_LOGIN)
		return 1;
	bit = 1ull << (k - keys);
	if (n->seen & bit) {
		/* 6.2: a key negotiated twice is a protocol error. */
		return -EPROTO;
	}
	n->seen |= bit;
	if (is_reserved_value(val)) {
		/* 6.2: these constants are answers only; proposing one is
		 * a protocol error. */
		return -EPROTO;
	}
	field = (char *)&n->p + k->off;
	if (n->stage == ISCSI_STAGE_FFP && (k->flags & F_IO)) {
		/* 13: initialize-only keys cannot change in full feature. */
		iscsi_kv_add(out, key, "Reject");
		return 0;
	}
	if (n->discovery && (k->flags & F_IRR_DISC)) {
		iscsi_kv_add(out, key, "Irrelevant");
		return 0;
	}
	switch (k->type) {
	case KT_BOOL_AND:
	case KT_BOOL_OR:
		if (parse_bool(val, &b)) {
			iscsi_kv_add(out, key, "Reject");
			return 0;
		}
		ob = *(bool *)((char *)&n->ours + k->off);
		b = k->type == KT_BOOL_AND ? (b && ob) : (b || ob);
		*(bool *)field = b;
		iscsi_kv_add(out, key, b ? "Yes" : "No");
		return 0;
	case KT_NUM_MIN:
	case KT_NUM_MAX:
		if (iscsi_num_parse(val, k->min, k->max, &v)) {
			iscsi_kv_add(out, key, "Reject");
			return 0;
		}
		ov = *(uint32_t *)((char *)&n->ours + k->off);
		if (k->type == KT_NUM_MIN)
			v = v < ov ? v : ov;
		else
			v = v > ov ? v : ov;
		*(uint32_t *)field = v;
		iscsi_kv_addf(out, key, "%u", v);
		return 0;
	case KT_NUM_DECL:
		/* 6.2, 13.12: a declaration is not negotiated, so there is
		 * no answer that could refuse it; a malformed or out-of-range
		 * one fails the login (Initiator error) and is never used. */
		if (iscsi_num_parse(val, k->min, k->max, &v))
			return -EINVAL;
		*(uint32_t *)field = v;
		/* 13.12: a declaration is not answered, but we declare our
		 * own limit in the same exchange. */
		if (!n->declared_mrdsl) {
			iscsi_kv_addf(out, key, "%u", n->p.MaxRecvDataSegmentLength);
			n->declared_mrdsl = true;
		}
		return 0;
	case KT_DIGEST: {
		static const char *const digests[] = { "CRC32C", "None", NULL };
		const char *pick = pick_list(val, digests);

		if (!pick) {
			iscsi_kv_add(out, key, "Reject");
			return 0;
		}
		*(bool *)field = !strcmp(pick, "CRC32C");
		iscsi_kv_add(out, key, pick);
		return 0;
	}
	case KT_TASKREP: {
		static const char *const modes[] = { "RFC3720", NULL };
		const char *pick = pick_list(val, modes);

		iscsi_kv_add(out, key, pick ? pick : "Reject");
		return 0;
	}
	case KT_TEXT_ONLY:
		/* 13.3: SendTargets belongs in a Text request. */
		iscsi_kv_add(out, key, "Irrelevant");
		return 0;
	case KT_TARGET_ONLY:
	case KT_OBSOLETE:
		/* 13.26: the marker keys MUST be answered Reject, never
		 * NotUnderstood; target-only keys from an initiator too. */
		iscsi_kv_add(out, key, "Reject");
		return 0;
	case KT_LOGIN:
		break;
	}
	return 1;
}

void iscsi_param_finish(struct iscsi_neg *n)
{
	/* 13.14: FirstBurstLength never exceeds MaxBurstLength. */
	if (n->p.FirstBurstLength > n->p.MaxBurstLength)
		n->p.FirstBurstLength = n->p.MaxBurstLength;
	/* We run one connection and no recovery whatever was said. */
	n->p.MaxConnections = 1;
	n->p.ErrorRecoveryLevel = 0;
}
