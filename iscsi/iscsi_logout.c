/*
 * iscsi_logout: Logout (RFC 7143 11.14, 11.15) and the Async Message that
 * asks an initiator to log out when its target goes away (11.9).
 */
#include "iscsi_int.h"
#include "common/common.h"

#include <errno.h>
#include <string.h>

/* Seconds an initiator gets to log out after we asked it to. */
#define LOGOUT_GRACE 5

int iscsi_logout_pdu(struct iscsi_conn *c)
{
	const uint8_t *h = c->hdr;
	uint8_t reason = h[1] & 0x7f;
	struct iscsi_tx *tx;
	struct iscsi_task *t, *next;

	iscsi_session_check_cmdsn(c, h);
	tx = iscsi_tx_new(ISCSI_OP_LOGOUT_RSP);
	if (!tx)
		return -ENOMEM;
	/* 11.14.1: close session (0) and close connection (1) are the same
	 * thing with one connection; recovery removal (2) needs ERL 2. */
	if (reason == 2) {
		tx->hdr[2] = 2;
	} else if (reason == 1 && get_be16(h + 20) != c->cid) {
		tx->hdr[2] = 1; /* CID not found */
	} else {
		tx->hdr[2] = 0;
		/* Tasks not yet answered end with the session. */
		for (t = c->sess->tasks; t; t = next) {
			next = t->next;
			iscsi_task_abort(t);
		}
	}
	tx->hdr[1] = 0x80;
	put_be32(tx->hdr + 16, get_be32(h + 16));
	iscsi_pdu_set_sn(c, tx->hdr, true);
	put_be16(tx->hdr + 40, 0); /* Time2Wait */
	put_be16(tx->hdr + 42, 0); /* Time2Retain */
	iscsi_conn_enqueue(c, tx);
	if (tx->hdr[2] == 0) {
		log_info("iscsi %s: logout", c->peer);
		iscsi_conn_finish(c);
	}
	return 0;
}

static void logout_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct iscsi_session *s = w->data;
	struct iscsi_conn *c = s->conn;

	ev_timer_stop(loop, w);
	iscsi_conn_close(c, "did not log out when asked");
	iscsi_conn_maybe_free(c);
}

void iscsi_session_request_logout(struct iscsi_session *s)
{
	struct iscsi_conn *c = s->conn;
	struct iscsi_tx *tx;

	if (s->logout_requested || !c || c->state != CONN_FFP)
		return;
	s->logout_requested = true;
	tx = iscsi_tx_new(ISCSI_OP_ASYNC);
	if (tx) {
		/* 11.9.1: AsyncEvent 1, target requests logout, with the
		 * time left in Parameter3. */
		tx->hdr[1] = 0x80;
		put_be32(tx->hdr + 16, ISCSI_RSVD_TAG);
		iscsi_pdu_set_sn(c, tx->hdr, true);
		tx->hdr[36] = 1;
		put_be16(tx->hdr + 42, LOGOUT_GRACE);
		iscsi_conn_enqueue(c, tx);
	}
	ev_timer_init(&s->logout_timer, logout_timer_cb, LOGOUT_GRACE + 1, 0);
	s->logout_timer.data = s;
	ev_timer_start(s->srv->loop, &s->logout_timer);
}
