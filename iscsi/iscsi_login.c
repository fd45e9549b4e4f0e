/*
 * iscsi_login: the login phase (RFC 7143 6.3, 11.12, 11.13): stages and
 * transitions, the login keys that pick the session (InitiatorName,
 * TargetName, SessionType), ACL checks, the CHAP exchange (12.1.3), and
 * the hand-over to a new session with its TSIH.
 *
 * Any deviation fails the login with the status the RFC names and closes
 * the connection; a CHAP failure answer is held back longer the more often
 * the same initiator failed (issue 6).
 */
#include "iscsi_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIN_MAX_KEYS 64

struct login_key {
	char *key, *val;
};

struct login_keys {
	struct login_key k[LOGIN_MAX_KEYS];
	int n;
};

static int collect_cb(void *arg, const char *key, const char *val)
{
	struct login_keys *lk = arg;

	if (lk->n >= LOGIN_MAX_KEYS)
		return -E2BIG;
	lk->k[lk->n].key = strdup(key);
	lk->k[lk->n].val = strdup(val);
	if (!lk->k[lk->n].key || !lk->k[lk->n].val) {
		free(lk->k[lk->n].key);
		free(lk->k[lk->n].val);
		return -ENOMEM;
	}
	lk->n++;
	return 0;
}

static void keys_free(struct login_keys *lk)
{
	int i;

	for (i = 0; i < lk->n; i++) {
		free(lk->k[i].key);
		if (lk->k[i].val)
			explicit_bzero(lk->k[i].val, strlen(lk->k[i].val));
		free(lk->k[i].val);
	}
	lk->n = 0;
}

static const char *key_get(struct login_keys *lk, const char *key)
{
	int i;

	for (i = 0; i < lk->n; i++)
		if (!strcmp(lk->k[i].key, key))
			return lk->k[i].val;
	return NULL;
}

void iscsi_login_cleanup(struct iscsi_conn *c)
{
	free(c->initiator_name);
	free(c->target_name);
	free(c->initiator_alias);
	c->initiator_name = c->target_name = c->initiator_alias = NULL;
	iscsi_kv_free(&c->login_in);
	iscsi_kv_free(&c->login_out);
	explicit_bzero(&c->chap, sizeof(c->chap));
	iscsi_auth_clear(&c->login_creds);
}

static void send_login_rsp(struct iscsi_conn *c, uint16_t status, bool transit, int csg,
			   int nsg, const void *data, uint32_t len, bool cont)
{
	struct iscsi_tx *tx = iscsi_tx_new(ISCSI_OP_LOGIN_RSP);

	if (!tx) {
		iscsi_conn_close(c, "out of memory");
		return;
	}
	tx->hdr[1] = (transit ? 0x80 : 0) | (cont ? 0x40 : 0) | (csg & 3) << 2 |
		     (transit ? (nsg & 3) : 0);
	tx->hdr[2] = 0; /* Version-max */
	tx->hdr[3] = 0; /* Version-active */
	memcpy(tx->hdr + 8, c->login_isid, 6);
	put_be16(tx->hdr + 14, c->sess ? c->sess->tsih : 0);
	put_be32(tx->hdr + 16, c->login_itt);
	iscsi_pdu_set_sn(c, tx->hdr, true);
	tx->hdr[36] = status >> 8;
	tx->hdr[37] = status & 0xff;
	if (len && iscsi_tx_set_data(tx, data, len)) {
		iscsi_tx_free(tx);
		iscsi_conn_close(c, "out of memory");
		return;
	}
	iscsi_conn_enqueue(c, tx);
}

static void login_fail(struct iscsi_conn *c, uint16_t status, const char *why)
{
	char name[ISCSI_LOG_STR_MAX];

	log_warn("iscsi %s: login of %s failed: %s (status 0x%04x)", c->peer,
		 iscsi_log_str(c->initiator_name, name, sizeof(name)), why, status);
	send_login_rsp(c, status, false, c->neg.stage == ISCSI_STAGE_OPERATIONAL ? 1 : 0, 0,
		       NULL, 0, false);
	/* 6.3: after a failed login the target closes the connection. */
	iscsi_conn_finish(c);
}

static void login_delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct iscsi_conn *c = w->data;

	ev_timer_stop(loop, w);
	login_fail(c, c->login_fail_status, "authentication failed");
	iscsi_conn_maybe_free(c);
}

/* The throttle key: the canonical target name, "" for discovery. */
static const char *throttle_target(const struct iscsi_conn *c)
{
	return !c->login_discovery && c->login_target ? c->login_target->name : "";
}

static void auth_failed(struct iscsi_conn *c, const char *why)
{
	struct iscsi_server *s = c->srv;
	double delay = iscsi_auth_fail_delay(s, c->peer_host, throttle_target(c));
	char name[ISCSI_LOG_STR_MAX];

	iscsi_auth_fail_note(s, c->peer_host, throttle_target(c), true);
	log_warn("iscsi %s: CHAP for %s failed: %s%s", c->peer,
		 iscsi_log_str(c->initiator_name, name, sizeof(name)), why,
		 delay > 0 ? " (answer delayed)" : "");
	c->login_fail_status = ISCSI_LOGIN_AUTH_FAILED;
	if (delay <= 0) {
		login_fail(c, ISCSI_LOGIN_AUTH_FAILED, why);
		return;
	}
	/* Hold the answer back; read nothing more meanwhile (the login
	 * timeout still bounds the wait). */
	ev_io_stop(s->loop, &c->rio);
	c->login_delayed = true;
	ev_timer_init(&c->login_delay, login_delay_cb, delay, 0);
	c->login_delay.data = c;
	ev_timer_start(s->loop, &c->login_delay);
}

/* The secrets in force when the login named its target.  A reload may
 * replace or drop them mid-login, so the login keeps its own copy. */
static int login_take_creds(struct iscsi_conn *c)
{
	static const struct iscsi_auth none;
	const struct iscsi_auth *auth = &none;

	if (c->login_discovery)
		auth = &c->srv->disc_auth;
	else if (c->login_target)
		auth = &c->login_target->auth;
	return iscsi_auth_copy(&c->login_creds, auth);
}

static bool name_differs(const char *now, const char *before)
{
	return now && (!before || strcasecmp(now, before));
}

/*
 * RFC 7143 6.2: a key is declared or negotiated once per login; a repeat
 * is an initiator error, and the names are fixed by the first request.
 * Some initiators (libiscsi) send InitiatorName again with the same value
 * in the operational stage, which is no change and is let through.
 */
static int keys_repeated(struct iscsi_conn *c, struct login_keys *lk)
{
	int i, j;

	for (i = 0; i < lk->n; i++)
		for (j = i + 1; j < lk->n; j++)
			if (!strcmp(lk->k[i].key, lk->k[j].key)) {
				login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR, "key sent twice");
				return -EPROTO;
			}
	if (c->initiator_name &&
	    (name_differs(key_get(lk, "InitiatorName"), c->initiator_name) ||
	     (!c->login_discovery && name_differs(key_get(lk, "TargetName"), c->target_name)))) {
		login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR, "name changed during login");
		return -EPROTO;
	}
	return 0;
}

/* The first PDU names the session: check the names, ACL and TSIH. */
static int login_identify(struct iscsi_conn *c, struct login_keys *lk)
{
	const char *iname = key_get(lk, "InitiatorName");
	const char *tname = key_get(lk, "TargetName");
	const char *stype = key_get(lk, "SessionType");
	const char *alias = key_get(lk, "InitiatorAlias");
	if (!iname || !iname[0]) {
		login_fail(c, ISCSI_LOGIN_MISSING_PARAM, "no InitiatorName");
		return -1;
	}
	/* 4.2.7: a name of the wrong form, too long or with a control
	 * character is refused before it reaches a log line or a lookup. */
	if (!iscsi_name_valid(iname) || (tname && !iscsi_name_valid(tname))) {
		login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR, "malformed iSCSI name");
		return -1;
	}
	c->initiator_name = strdup(iname);
	if (alias)
		c->initiator_alias = strdup(alias);
	if (!stype || !strcmp(stype, "Normal")) {
		c->login_discovery = false;
	} else if (!strcmp(stype, "Discovery")) {
		c->login_discovery = true;
	} else {
		login_fail(c, ISCSI_LOGIN_SESSION_TYPE, "unknown SessionType");
		return -1;
	}
	if (c->login_tsih) {
		/* 6.3.1: a non-zero TSIH adds a connection to a session;
		 * MaxConnections=1, so there is never room. */
		struct iscsi_session *s;

		for (s = c->srv->sessions; s; s = s->next)
			if (s->tsih == c->login_tsih)
				break;
		login_fail(c, s ? ISCSI_LOGIN_TOO_MANY_CONNS : ISCSI_LOGIN_NO_SESSION,
			   "connection for an existing session");
		return -1;
	}
	if (!c->login_discovery) {
		if (!tname) {
			login_fail(c, ISCSI_LOGIN_MISSING_PARAM, "no TargetName");
			return -1;
		}
		c->target_name = strdup(tname);
		c->login_target = iscsi_server_find_target(c->srv, tname);
		if (!c->login_target) {
			login_fail(c, ISCSI_LOGIN_NOT_FOUND, "no such target");
			return -1;
		}
		if (!iscsi_target_allows(c->login_target, iname)) {
			login_fail(c, ISCSI_LOGIN_FORBIDDEN, "initiator not in the target's ACL");
			return -1;
		}
	}
	if (c->srv->shutting_down) {
		login_fail(c, ISCSI_LOGIN_UNAVAILABLE, "shutting down");
		return -1;
	}
	if (!c->initiator_name || (tname && !c->login_discovery && !c->target_name)) {
		login_fail(c, ISCSI_LOGIN_NO_RESOURCES, "out of memory");
		return -1;
	}
	{
		enum iscsi_stage stage = c->neg.stage;

		iscsi_neg_init(&c->neg, &c->srv->lim, c->login_discovery);
		c->neg.stage = stage;
	}
	if (login_take_creds(c)) {
		login_fail(c, ISCSI_LOGIN_NO_RESOURCES, "out of memory");
		return -1;
	}
	c->login_need_chap = iscsi_auth_required(&c->login_creds);
	return 0;
}

static int chap_step(struct iscsi_conn *c, struct login_keys *lk, struct iscsi_kv *out)
{
	const struct iscsi_auth *auth = &c->login_creds;
	const char *amethod = key_get(lk, "AuthMethod");
	const char *chap_a = key_get(lk, "CHAP_A");
	const char *chap_n = key_get(lk, "CHAP_N");
	const char *chap_r = key_get(lk, "CHAP_R");
	const char *chap_i = key_get(lk, "CHAP_I");
	const char *chap_c = key_get(lk, "CHAP_C");

	if (amethod) {
		static const char *const none[] = { "None" };
		const char *p = amethod;
		bool has_chap = false, has_none = false;

		while (*p) {
			const char *e = strchr(p, ',');
			size_t l = e ? (size_t)(e - p) : strlen(p);

			if (l == 4 && !strncmp(p, "CHAP", 4))
				has_chap = true;
			if (l == 4 && !strncmp(p, none[0], 4))
				has_none = true;
			if (!e)
				break;
			p = e + 1;
		}
		if (c->login_need_chap) {
			if (!has_chap) {
				auth_failed(c, "CHAP required, not offered");
				return -1;
			}
			/* S4: one source cannot run guesses in parallel past
			 * a few; the refusal says "retry later" (11.13.5). */
			if (iscsi_chap_inflight(c->srv, c) >= ISCSI_CHAP_PARALLEL_MAX) {
				login_fail(c, ISCSI_LOGIN_UNAVAILABLE,
					   "too many CHAP logins from that source at once");
				return -1;
			}
			iscsi_kv_add(out, "AuthMethod", "CHAP");
			c->login_chap_step = 1;
		} else if (has_none) {
			iscsi_kv_add(out, "AuthMethod", "None");
			c->login_chap_step = 3;
		} else {
			iscsi_kv_add(out, "AuthMethod", "Reject");
			login_fail(c, ISCSI_LOGIN_AUTH_FAILED, "no acceptable AuthMethod");
			return -1;
		}
	}
	if (chap_a) {
		int alg;
		char hex[2 * 32 + 3];

		if (c->login_chap_step != 1) {
			login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR, "CHAP_A out of sequence");
			return -1;
		}
		alg = iscsi_chap_pick_alg(chap_a);
		if (!alg) {
			iscsi_kv_add(out, "CHAP_A", "Reject");
			auth_failed(c, "no supported CHAP_A");
			return -1;
		}
		if (iscsi_chap_new_challenge(&c->chap, alg)) {
			login_fail(c, ISCSI_LOGIN_TARGET_ERROR, "no random bytes");
			return -1;
		}
		iscsi_kv_addf(out, "CHAP_A", "%d", alg);
		iscsi_kv_addf(out, "CHAP_I", "%u", c->chap.id);
		iscsi_chap_encode(c->chap.challenge, c->chap.challenge_len, hex);
		iscsi_kv_add(out, "CHAP_C", hex);
		c->login_chap_step = 2;
	}
	if (chap_n || chap_r) {
		uint8_t resp[ISCSI_CHAP_MAX_CHALLENGE];
		uint32_t rlen = 0;
		char name[ISCSI_LOG_STR_MAX];

		if (c->login_chap_step != 2 || !chap_n || !chap_r) {
			auth_failed(c, "CHAP_N/CHAP_R out of sequence");
			return -1;
		}
		if (iscsi_chap_decode(chap_r, resp, sizeof(resp), &rlen)) {
			auth_failed(c, "malformed CHAP_R");
			return -1;
		}
		/* Compare the name and the response both, so a wrong name
		 * costs the same time as a wrong secret. */
		{
			bool name_ok = !strcmp(chap_n, auth->username);
			bool resp_ok = iscsi_chap_verify(c->chap.alg, c->chap.id, auth->password,
							 c->chap.challenge, c->chap.challenge_len,
							 resp, rlen);

			if (!name_ok || !resp_ok) {
				auth_failed(c, name_ok ? "wrong CHAP response" : "unknown CHAP_N");
				return -1;
			}
		}
		if (auth->mutual_username) {
			uint8_t ic[ISCSI_CHAP_MAX_CHALLENGE], md[ISCSI_CHAP_MAX_DIGEST];
			uint32_t iclen = 0;
			uint32_t id;
			char hex[2 * ISCSI_CHAP_MAX_DIGEST + 3];

			if (!chap_i || !chap_c) {
				auth_failed(c, "mutual CHAP required, no CHAP_I/CHAP_C");
				return -1;
			}
			/* RFC 1994 4.1: the identifier is one octet; RFC 7143
			 * 6.1 numbers are decimal or 0x hex, never octal. */
			if (iscsi_num_parse(chap_i, 0, UINT8_MAX, &id) ||
			    iscsi_chap_decode(chap_c, ic, sizeof(ic), &iclen)) {
				auth_failed(c, "malformed CHAP_I/CHAP_C");
				return -1;
			}
			/* 12.1.3: a challenge that reflects ours would let
			 * the peer use us as an oracle for our own answer. */
			if (iclen == c->chap.challenge_len &&
			    !memcmp(ic, c->chap.challenge, iclen)) {
				auth_failed(c, "reflected CHAP challenge");
				return -1;
			}
			if (iclen < 8) {
				auth_failed(c, "CHAP challenge too short");
				return -1;
			}
			if (iscsi_chap_response(c->chap.alg, (uint8_t)id, auth->mutual_password, ic,
						iclen, md)) {
				login_fail(c, ISCSI_LOGIN_TARGET_ERROR, "hash failed");
				return -1;
			}
			iscsi_chap_encode(md, iscsi_chap_digest_len(c->chap.alg), hex);
			iscsi_kv_add(out, "CHAP_N", auth->mutual_username);
			iscsi_kv_add(out, "CHAP_R", hex);
		} else if (chap_i || chap_c) {
			auth_failed(c, "mutual CHAP asked for, none configured");
			return -1;
		}
		iscsi_auth_fail_note(c->srv, c->peer_host, throttle_target(c), false);
		c->login_chap_step = 3;
		log_info("iscsi %s: CHAP %s%s ok for %s", c->peer,
			 c->chap.alg == ISCSI_CHAP_SHA256 ? "SHA-256" : "MD5",
			 auth->mutual_username ? " mutual" : "",
			 iscsi_log_str(c->initiator_name, name, sizeof(name)));
	}
	return 0;
}

static bool is_security_key(const char *k)
{
	return !strcmp(k, "AuthMethod") || !strncmp(k, "CHAP_", 5);
}

static bool is_name_key(const char *k)
{
	return !strcmp(k, "InitiatorName") || !strcmp(k, "TargetName") ||
	       !strcmp(k, "SessionType") || !strcmp(k, "InitiatorAlias");
}

static int login_complete(struct iscsi_conn *c)
{
	struct iscsi_session *s;
	int rc;

	iscsi_param_finish(&c->neg);
	if (!c->login_discovery)
		iscsi_session_reinstate(c->srv, c->initiator_name, c->login_isid, c->login_target);
	rc = iscsi_session_create(c, c->login_target, c->login_discovery, &s);
	if (rc) {
		login_fail(c, ISCSI_LOGIN_NO_RESOURCES, "cannot create the session");
		return -1;
	}
	return 0;
}

static void log_established(struct iscsi_conn *c)
{
	char iname[ISCSI_LOG_STR_MAX], tname[ISCSI_LOG_STR_MAX];

	log_info("iscsi %s: %s session %s for %s (TSIH %u)", c->peer,
		 c->login_discovery ? "discovery" : "normal",
		 c->login_discovery ? "" : iscsi_log_str(c->target_name, tname, sizeof(tname)),
		 iscsi_log_str(c->initiator_name, iname, sizeof(iname)), c->sess->tsih);
}

/* Answer a complete (C=0) login request. */
static int login_process(struct iscsi_conn *c, bool transit, int csg, int nsg)
{
	struct login_keys lk = { .n = 0 };
	struct iscsi_kv *out = &c->login_out;
	bool ok_transit;
	int i, rc;

	if (c->login_in.overflow ||
	    iscsi_kv_parse(c->login_in.buf, c->login_in.len, collect_cb, &lk)) {
		keys_free(&lk);
		login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR, "malformed login text");
		return 0;
	}
	iscsi_kv_free(&c->login_in);
	iscsi_kv_free(out);
	c->login_out_off = 0;
	if (keys_repeated(c, &lk)) {
		keys_free(&lk);
		return 0;
	}
	if (!c->initiator_name && login_identify(c, &lk)) {
		keys_free(&lk);
		return 0;
	}
	if (c->login_first) {
		/* 13.9: the portal group tag goes into the first response
		 * of a normal session. */
		if (!c->login_discovery) {
			iscsi_kv_add(out, "TargetPortalGroupTag", "1");
			if (c->login_target->alias && c->login_target->alias[0])
				iscsi_kv_add(out, "TargetAlias", c->login_target->alias);
		}
	}
	if (csg == ISCSI_STAGE_OPERATIONAL && c->login_need_chap && c->login_chap_step != 3) {
		/* 6.3: skipping the security stage is no way around CHAP. */
		keys_free(&lk);
		auth_failed(c, "security stage skipped");
		return 0;
	}
	if (csg == ISCSI_STAGE_SECURITY) {
		rc = chap_step(c, &lk, out);
		if (rc) {
			keys_free(&lk);
			return 0;
		}
	}
	for (i = 0; i < lk.n; i++) {
		const char *k = lk.k[i].key;

		if (is_name_key(k))
			continue;
		if (is_security_key(k)) {
			if (csg != ISCSI_STAGE_SECURITY) {
				keys_free(&lk);
				login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR,
					   "security key in the operational stage");
				return 0;
			}
			continue;
		}
		rc = iscsi_param_negotiate(&c->neg, k, lk.k[i].val, out);
		if (rc < 0) {
			keys_free(&lk);
			login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR,
				   rc == -EINVAL ? "malformed or out-of-range declaration" :
						   "key negotiated twice or reserved value proposed");
			return 0;
		}
	}
	keys_free(&lk);

	ok_transit = transit;
	if (csg == ISCSI_STAGE_SECURITY && c->login_need_chap && c->login_chap_step != 3)
		ok_transit = false;
	if (csg == ISCSI_STAGE_SECURITY && c->login_need_chap && c->login_chap_step == 0 &&
	    transit) {
		auth_failed(c, "no AuthMethod offered");
		return 0;
	}
	if (ok_transit && nsg == ISCSI_STAGE_FFP && !c->neg.declared_mrdsl) {
		/* 13.12: declare what we accept even if not asked. */
		iscsi_kv_addf(out, "MaxRecvDataSegmentLength", "%u",
			      c->neg.p.MaxRecvDataSegmentLength);
		c->neg.declared_mrdsl = true;
	}
	if (out->overflow) {
		login_fail(c, ISCSI_LOGIN_TARGET_ERROR, "login answer too long");
		return 0;
	}
	if (ok_transit && nsg == ISCSI_STAGE_FFP && login_complete(c))
		return 0;
	/* Our answer may exceed the peer's 8192-byte login limit: 11.13.3
	 * allows continuing it with C=1 PDUs the initiator pulls. */
	{
		uint32_t chunk = out->len < 8192 ? out->len : 8192;
		bool more = chunk < out->len;

		send_login_rsp(c, ISCSI_LOGIN_OK, ok_transit && !more, csg, nsg, out->buf, chunk,
			       more);
		c->login_out_off = chunk;
		c->login_first = false;
		if (!more)
			iscsi_kv_free(out);
	}
	if (ok_transit) {
		c->neg.stage = nsg;
		if (nsg == ISCSI_STAGE_FFP) {
			/* Digests and limits apply from the next PDU on. */
			c->params = c->neg.p;
			c->state = CONN_FFP;
			ev_timer_stop(c->srv->loop, &c->timer);
			ev_timer_set(&c->timer, c->srv->cfg.nop_interval,
				     c->srv->cfg.nop_interval);
			ev_timer_start(c->srv->loop, &c->timer);
			log_established(c);
			iscsi_login_cleanup(c);
		}
	}
	return 0;
}

int iscsi_login_pdu(struct iscsi_conn *c)
{
	const uint8_t *h = c->hdr;
	bool transit = h[1] & 0x80, cont = h[1] & 0x40;
	int csg = (h[1] >> 2) & 3, nsg = h[1] & 3;

	if (c->login_first && !c->login_in.len && !c->initiator_name) {
		memcpy(c->login_isid, h + 8, 6);
		c->login_tsih = get_be16(h + 14);
		c->login_itt = get_be32(h + 16);
		c->cid = get_be16(h + 20);
		c->login_cmdsn = get_be32(h + 24);
		c->StatSN = get_be32(h + 28);
		ev_timer_init(&c->login_delay, NULL, 0, 0);
		/* 11.12.4: Version-min above 0 is a version we lack. */
		if (h[3] > 0) {
			login_fail(c, ISCSI_LOGIN_UNSUPPORTED_VERSION, "unsupported version");
			return 0;
		}
	} else if (memcmp(c->login_isid, h + 8, 6) || c->login_tsih != get_be16(h + 14) ||
		   c->cid != get_be16(h + 20)) {
		login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR, "ISID/TSIH/CID changed during login");
		return 0;
	}
	c->login_itt = get_be32(h + 16);
	/* 11.12.2: C and T together, a reserved stage or a step backwards
	 * are initiator errors. */
	if ((transit && cont) || csg == 2 || (transit && (nsg == 2 || nsg <= csg))) {
		login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR, "bad login stage");
		return 0;
	}
	if (csg != (int)c->neg.stage) {
		/* 6.3: the security stage may be skipped, but only at the
		 * start; any other stage mismatch is an error. */
		if (c->neg.stage != ISCSI_STAGE_SECURITY || csg != ISCSI_STAGE_OPERATIONAL ||
		    c->initiator_name) {
			login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR, "login stage out of sequence");
			return 0;
		}
		c->neg.stage = ISCSI_STAGE_OPERATIONAL;
	}
	if (c->login_out_off && c->login_out_off < c->login_out.len) {
		/* The initiator pulls the rest of a continued answer. */
		uint32_t left = c->login_out.len - c->login_out_off;
		uint32_t chunk = left < 8192 ? left : 8192;
		bool more = chunk < left;

		send_login_rsp(c, ISCSI_LOGIN_OK, false, csg, nsg,
			       c->login_out.buf + c->login_out_off, chunk, more);
		c->login_out_off += chunk;
		if (!more) {
			iscsi_kv_free(&c->login_out);
			c->login_out_off = 0;
		}
		return 0;
	}
	if (c->dsl && iscsi_kv_append_raw(&c->login_in, c->data, c->dsl)) {
		login_fail(c, ISCSI_LOGIN_INITIATOR_ERROR, "login text too long");
		return 0;
	}
	if (cont) {
		/* 6.6: a continued request gets an empty answer. */
		send_login_rsp(c, ISCSI_LOGIN_OK, false, csg, nsg, NULL, 0, false);
		return 0;
	}
	return login_process(c, transit, csg, nsg);
}
