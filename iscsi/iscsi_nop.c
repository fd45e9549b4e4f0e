/*
 * iscsi_nop: NOP-Out and NOP-In (RFC 7143 11.18, 11.19): answering the
 * initiator's pings, pinging an idle initiator ourselves, and dropping a
 * peer that stopped answering (issue 3: a dead peer is dropped after a
 * timeout).
 */
#include "iscsi_int.h"
#include "common/common.h"

#include <errno.h>
#include <string.h>

int iscsi_nop_out_pdu(struct iscsi_conn *c)
{
	const uint8_t *h = c->hdr;
	uint32_t itt = get_be32(h + 16);
	struct iscsi_tx *tx;

	if (iscsi_session_check_cmdsn(c, h))
		return 0;
	if (itt == ISCSI_RSVD_TAG) {
		/* 11.18.1: the answer to our ping (or a bare ExpStatSN
		 * update); nothing goes back. */
		if (get_be32(h + 20) == c->ping_ttt)
			c->ping_sent = 0;
		return 0;
	}
	tx = iscsi_tx_new(ISCSI_OP_NOP_IN);
	if (!tx)
		return -ENOMEM;
	/* 11.19: echo ITT, LUN and the ping data. */
	tx->hdr[1] = 0x80;
	memcpy(tx->hdr + 8, h + 8, 8);
	put_be32(tx->hdr + 16, itt);
	put_be32(tx->hdr + 20, ISCSI_RSVD_TAG);
	iscsi_pdu_set_sn(c, tx->hdr, true);
	if (c->dsl && c->data) {
		uint32_t len = c->dsl;

		if (len > c->params.PeerMaxRecvDataSegmentLength)
			len = c->params.PeerMaxRecvDataSegmentLength;
		if (iscsi_tx_set_data(tx, c->data, len)) {
			iscsi_tx_free(tx);
			return -ENOMEM;
		}
	}
	iscsi_conn_enqueue(c, tx);
	return 0;
}

void iscsi_nop_timer(struct iscsi_conn *c)
{
	struct iscsi_server *s = c->srv;
	ev_tstamp now = ev_now(s->loop);
	struct iscsi_tx *tx;

	/* Anything received since the ping proves the peer alive. */
	if (c->ping_sent && c->last_rx > c->ping_sent)
		c->ping_sent = 0;
	if (c->ping_sent) {
		if (now - c->ping_sent >= s->cfg.nop_timeout) {
			log_warn("iscsi %s: no answer to NOP-In for %us, dropping", c->peer,
				 s->cfg.nop_timeout);
			iscsi_conn_close(c, "peer dead");
		}
		return;
	}
	if (now - c->last_rx < s->cfg.nop_interval || c->sess == NULL)
		return;
	tx = iscsi_tx_new(ISCSI_OP_NOP_IN);
	if (!tx)
		return;
	if (c->next_ttt == ISCSI_RSVD_TAG)
		c->next_ttt = 1;
	c->ping_ttt = c->next_ttt++;
	/* 11.19.1: a ping asks for an answer: ITT reserved, TTT ours,
	 * StatSN not advanced. */
	tx->hdr[1] = 0x80;
	put_be32(tx->hdr + 16, ISCSI_RSVD_TAG);
	put_be32(tx->hdr + 20, c->ping_ttt);
	iscsi_pdu_set_sn(c, tx->hdr, false);
	c->ping_sent = now;
	iscsi_conn_enqueue(c, tx);
}
