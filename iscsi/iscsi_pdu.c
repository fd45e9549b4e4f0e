/*
 * iscsi_pdu: Reject, sequence-number fields, and the opcode dispatch that decides which PDUs each phase accepts.
 *
 * The dispatch never trusts the peer: an opcode that does not belong to the
 * connection's phase is rejected or closes the connection, and nothing here
 * reads past the header and data segment the receive path handed over.
 */
#include "iscsi_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void iscsi_pdu_set_sn(struct iscsi_conn *c, uint8_t *bhs, bool advance_statsn)
{
	uint32_t exp = 0, max = 0;

	put_be32(bhs + 24, c->StatSN);
	if (advance_statsn)
		c->StatSN++;
	if (c->sess) {
		iscsi_session_window(c->sess, &exp, &max);
	} else {
		/* Login phase: the window starts at the login's CmdSN. */
		exp = c->login_cmdsn;
		max = c->login_cmdsn + c->srv->cfg.max_queue_depth - 1;
	}
	put_be32(bhs + 28, exp);
	put_be32(bhs + 32, max);
}

void iscsi_send_reject(struct iscsi_conn *c, uint8_t reason, const uint8_t *bhs)
{
	struct iscsi_tx *tx = iscsi_tx_new(ISCSI_OP_REJECT);

	if (!tx)
		return;
	/* RFC 7143 11.17: the rejected header is the data segment. */
	tx->hdr[1] = ISCSI_FLAG_FINAL;
	tx->hdr[2] = reason;
	put_be32(tx->hdr + 16, ISCSI_RSVD_TAG);
	iscsi_pdu_set_sn(c, tx->hdr, true);
	if (iscsi_tx_set_data(tx, bhs, ISCSI_BHS_LEN)) {
		iscsi_tx_free(tx);
		return;
	}
	log_info("iscsi %s: reject opcode 0x%02x reason 0x%02x", c->peer,
		 bhs[0] & ISCSI_OPCODE_MASK, reason);
	iscsi_conn_enqueue(c, tx);
}

int iscsi_pdu_check_bhs(struct iscsi_conn *c)
{
	uint8_t op = c->hdr[0] & ISCSI_OPCODE_MASK;
	uint32_t max;

	if (c->state == CONN_LOGIN) {
		if (op != ISCSI_OP_LOGIN_REQ) {
			/* RFC 7143 6.3: only Login Requests until the login
			 * completes; anything else ends the connection. */
			log_warn("iscsi %s: opcode 0x%02x during login, closing", c->peer, op);
			return -EPROTO;
		}
		/* Login PDUs: bounded by our text limit until negotiated. */
		max = ISCSI_TEXT_MAX;
	} else {
		max = c->params.MaxRecvDataSegmentLength;
	}
	if (c->ahs_len && op != ISCSI_OP_SCSI_CMD) {
		/* 11.2.1.2: only a SCSI Command carries AHS. */
		log_warn("iscsi %s: %u bytes of AHS on opcode 0x%02x, closing", c->peer,
			 c->ahs_len, op);
		if (c->state != CONN_LOGIN)
			iscsi_send_reject(c, ISCSI_REJECT_PROTOCOL, c->hdr);
		return -EPROTO;
	}
	if (c->dsl > max) {
		/* 13.12: the peer must respect what we declared. */
		log_warn("iscsi %s: DataSegmentLength %u above the maximum %u, closing",
			 c->peer, c->dsl, max);
		if (c->state != CONN_LOGIN)
			iscsi_send_reject(c, ISCSI_REJECT_PROTOCOL, c->hdr);
		return -EPROTO;
	}
	return 0;
}

int iscsi_pdu_data_dest(struct iscsi_conn *c)
{
	uint8_t op = c->hdr[0] & ISCSI_OPCODE_MASK;

	if (c->state == CONN_FFP && c->sess && !c->sess->discovery) {
		if (op == ISCSI_OP_SCSI_CMD)
			return iscsi_scsi_cmd_data_dest(c);
		if (op == ISCSI_OP_DATA_OUT)
			return iscsi_data_out_dest(c);
	}
	if (c->dsl == 0)
		return 0;
	if (c->dsl > c->data_own_cap) {
		uint8_t *nb = realloc(c->data_own, c->dsl);

		if (!nb)
			return -ENOMEM;
		c->data_own = nb;
		c->data_own_cap = c->dsl;
	}
	c->data = c->data_own;
	return 0;
}

static int dispatch_ffp(struct iscsi_conn *c, uint8_t op)
{
	bool discovery = c->sess->discovery;

	switch (op) {
	case ISCSI_OP_NOP_OUT:
		return iscsi_nop_out_pdu(c);
	case ISCSI_OP_TEXT_REQ:
		return iscsi_text_pdu(c);
	case ISCSI_OP_LOGOUT_REQ:
		return iscsi_logout_pdu(c);
	case ISCSI_OP_SCSI_CMD:
		if (discovery)
			break;
		return iscsi_scsi_cmd_done_rx(c);
	case ISCSI_OP_DATA_OUT:
		if (discovery)
			break;
		return iscsi_data_out_pdu(c);
	case ISCSI_OP_TMF_REQ:
		if (discovery)
			break;
		return iscsi_tmf_pdu(c);
	case ISCSI_OP_SNACK:
		/* ErrorRecoveryLevel=0: no SNACK support (RFC 7143 11.16). */
		iscsi_send_reject(c, ISCSI_REJECT_SNACK, c->hdr);
		return 0;
	case ISCSI_OP_LOGIN_REQ:
		/* 11.12: a Login Request in full feature phase is a protocol
		 * error; the connection is not salvageable. */
		iscsi_send_reject(c, ISCSI_REJECT_PROTOCOL, c->hdr);
		return -EPROTO;
	default:
		break;
	}
	/* 11.17.1: an opcode we do not serve in this phase or session type. */
	iscsi_send_reject(c, discovery ? ISCSI_REJECT_PROTOCOL : ISCSI_REJECT_NOT_SUPPORTED,
			  c->hdr);
	return 0;
}

int iscsi_pdu_dispatch(struct iscsi_conn *c)
{
	uint8_t op = c->hdr[0] & ISCSI_OPCODE_MASK;

	switch (c->state) {
	case CONN_LOGIN:
		if (op != ISCSI_OP_LOGIN_REQ) {
			/* RFC 7143 6.3: only Login Requests until the login
			 * completes; anything else ends the connection. */
			log_warn("iscsi %s: opcode 0x%02x during login, closing", c->peer, op);
			return -EPROTO;
		}
		return iscsi_login_pdu(c);
	case CONN_FFP:
		return dispatch_ffp(c, op);
	case CONN_LOGOUT:
		/* Logout response queued: anything more is ignored. */
		return 0;
	case CONN_CLOSED:
		return -EPIPE;
	}
	return -EPROTO;
}
