/*
 * iscsi_text: Text requests in the full feature phase (RFC 7143 11.10,
 * 11.11): SendTargets discovery (13.3, Appendix C) listing only targets the
 * initiator may log in to, key renegotiation, and continuation of long
 * requests and answers in both directions.
 */
#include "iscsi_int.h"
#include "common/common.h"

#include <errno.h>
#include <string.h>

struct text_ctx {
	struct iscsi_conn *c;
	struct iscsi_kv *out;
	int err;
};

static void list_target(struct iscsi_conn *c, struct iscsi_target *t, struct iscsi_kv *out)
{
	iscsi_kv_add(out, "TargetName", t->name);
	/* Appendix C: the portal we were reached on, with its group tag. */
	iscsi_kv_addf(out, "TargetAddress", "%s,1", c->local_portal);
}

static int send_targets(struct iscsi_conn *c, const char *val, struct iscsi_kv *out)
{
	struct iscsi_session *s = c->sess;
	struct iscsi_target *t;

	if (!s->discovery) {
		/* Appendix C: All MUST NOT be supported in a normal session;
		 * an empty value or the session's own name lists only the
		 * session's target. */
		if (!strcmp(val, "All")) {
			log_warn("iscsi %s: SendTargets=All in a normal session, rejected", c->peer);
			return -EPROTO;
		}
		if (!val[0] || !strcasecmp(val, s->tgt->name))
			list_target(c, s->tgt, out);
		return 0;
	}
	for (t = c->srv->targets; t; t = t->next) {
		if (!iscsi_target_allows(t, s->initiator_name))
			continue;
		if (!strcmp(val, "All") || !strcasecmp(val, t->name))
			list_target(c, t, out);
	}
	return 0;
}

static int text_key(void *arg, const char *key, const char *val)
{
	struct text_ctx *x = arg;
	int rc;

	if (!strcmp(key, "SendTargets"))
		return send_targets(x->c, val, x->out);
	rc = iscsi_param_negotiate(&x->c->neg, key, val, x->out);
	if (rc < 0)
		return rc;
	if (rc > 0)
		iscsi_kv_add(x->out, key, "Reject"); /* login-only keys */
	return 0;
}

static void send_text_rsp(struct iscsi_conn *c)
{
	struct iscsi_tx *tx = iscsi_tx_new(ISCSI_OP_TEXT_RSP);
	uint32_t left = c->text_out.len - c->text_out_off;
	uint32_t mdsl = c->params.PeerMaxRecvDataSegmentLength;
	uint32_t chunk = left < mdsl ? left : mdsl;
	bool more = chunk < left;

	if (!tx)
		return;
	/* 11.11.1: C=1 with a TTT while more follows; F=1 and TTT reserved
	 * on the last part. */
	tx->hdr[1] = more ? 0x40 : 0x80;
	put_be32(tx->hdr + 16, c->text_itt);
	if (more) {
		if (c->next_ttt == ISCSI_RSVD_TAG)
			c->next_ttt = 1;
		c->text_ttt = c->next_ttt++;
	} else {
		c->text_ttt = ISCSI_RSVD_TAG;
	}
	put_be32(tx->hdr + 20, c->text_ttt);
	iscsi_pdu_set_sn(c, tx->hdr, true);
	if (chunk && iscsi_tx_set_data(tx, c->text_out.buf + c->text_out_off, chunk)) {
		iscsi_tx_free(tx);
		return;
	}
	c->text_out_off += chunk;
	if (!more) {
		iscsi_kv_free(&c->text_out);
		c->text_out_off = 0;
	}
	iscsi_conn_enqueue(c, tx);
}

int iscsi_text_pdu(struct iscsi_conn *c)
{
	const uint8_t *h = c->hdr;
	bool final = h[1] & 0x80, cont = h[1] & 0x40;
	uint32_t itt = get_be32(h + 16), ttt = get_be32(h + 20);
	struct text_ctx x = { .c = c, .out = &c->text_out };

	if (iscsi_session_check_cmdsn(c, h))
		return 0;
	if ((final && cont) || (cont && c->dsl == 0)) {
		/* 11.10.2: C=1 promises more text; a continuation without
		 * any (or with F) is malformed. */
		log_warn("iscsi %s: Text request with C bit and %s, closing", c->peer,
			 c->dsl ? "F bit" : "no data");
		iscsi_send_reject(c, ISCSI_REJECT_PROTOCOL, h);
		return -EPROTO;
	}
	if (ttt != ISCSI_RSVD_TAG) {
		/* The initiator pulls the next part of our answer. */
		if (ttt != c->text_ttt || itt != c->text_itt || !c->text_out.len) {
			iscsi_send_reject(c, ISCSI_REJECT_INVALID_FIELD, h);
			return 0;
		}
		send_text_rsp(c);
		return 0;
	}
	if (c->text_out.len) {
		/* A new request abandons an unfinished answer (11.10.1). */
		iscsi_kv_free(&c->text_out);
		c->text_out_off = 0;
	}
	c->text_itt = itt;
	if (c->dsl && iscsi_kv_append_raw(&c->text_in, c->data, c->dsl)) {
		iscsi_send_reject(c, ISCSI_REJECT_PROTOCOL, h);
		iscsi_kv_free(&c->text_in);
		return -EPROTO;
	}
	if (cont) {
		/* Collect more; answer with an empty response. */
		send_text_rsp(c);
		return 0;
	}
	c->neg.seen = 0;
	c->neg.declared_mrdsl = false;
	c->neg.stage = ISCSI_STAGE_FFP;
	c->neg.p = c->params;
	if (c->text_in.len && iscsi_kv_parse(c->text_in.buf, c->text_in.len, text_key, &x)) {
		iscsi_kv_free(&c->text_in);
		iscsi_kv_free(&c->text_out);
		iscsi_send_reject(c, ISCSI_REJECT_PROTOCOL, h);
		return 0;
	}
	iscsi_kv_free(&c->text_in);
	/* Renegotiated limits (only MaxRecvDataSegmentLength may change). */
	c->params.PeerMaxRecvDataSegmentLength = c->neg.p.PeerMaxRecvDataSegmentLength;
	if (c->text_out.overflow) {
		iscsi_kv_free(&c->text_out);
		iscsi_send_reject(c, ISCSI_REJECT_OUT_OF_RESOURCES, h);
		return 0;
	}
	send_text_rsp(c);
	return 0;
}
