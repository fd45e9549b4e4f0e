/*
 * iscsi_tmf: Task Management Function requests (RFC 7143 11.5, 11.6).
 *
 * Tasks still collecting data are dropped at once; tasks inside SCSI are
 * marked aborted and the response waits until SCSI hands them back
 * (11.5.1: the response confirms the tasks are gone).  Aborted tasks get
 * no response of their own.  Reset semantics inside the logical unit
 * (reservations, unit attentions) are the SCSI layer's: scsi_tmf().
 *
 * Who frees a task.  A LUN or target reset aborts the tasks of every
 * session of the target (SAM-5 7, RFC 7143 11.5.1), so a task can be
 * aborted from a connection other than its own, at any point of that
 * connection's receive.  Aborting therefore only takes the task out of
 * every session structure (so no later PDU can find it) and marks it
 * aborted; its memory belongs to whoever still points into it: the
 * connection receiving a command's immediate data or a Data-Out into its
 * buffer (conn->rx_task, until that PDU completes or the connection is
 * freed), the SCSI layer (in_scsi), and queued Data-In PDUs (refs).  The
 * last of them frees it (iscsi_task_free).  The PDU that completes into
 * an aborted task is dropped, though its CmdSN still counts.
 */
#include "iscsi_int.h"
#include "common/common.h"

#include <stdlib.h>
#include <errno.h>
#include <string.h>

enum {
	TMF_ABORT_TASK = 1,
	TMF_ABORT_TASK_SET = 2,
	TMF_CLEAR_ACA = 3,
	TMF_CLEAR_TASK_SET = 4,
	TMF_LUN_RESET = 5,
	TMF_TARGET_WARM_RESET = 6,
	TMF_TARGET_COLD_RESET = 7,
	TMF_TASK_REASSIGN = 8,
	TMF_I_T_NEXUS_RESET = 11,
};

/* 11.6.1 responses. */
enum {
	TMF_RSP_COMPLETE = 0,
	TMF_RSP_NO_TASK = 1,
	TMF_RSP_NO_LUN = 2,
	TMF_RSP_NO_REASSIGN = 4,
	TMF_RSP_NOT_SUPPORTED = 5,
	TMF_RSP_REJECTED = 255,
};

struct iscsi_tmf_wait {
	struct iscsi_conn *c;
	uint32_t itt;
	uint8_t response;
	unsigned waiting;
	bool close_after;      /* cold reset, I_T nexus reset */
};

static void send_tmf_rsp(struct iscsi_conn *c, uint32_t itt, uint8_t response, bool close_after)
{
	struct iscsi_tx *tx;

	if (c->state != CONN_FFP)
		return;
	tx = iscsi_tx_new(ISCSI_OP_TMF_RSP);
	if (!tx)
		return;
	tx->hdr[1] = 0x80;
	tx->hdr[2] = response;
	put_be32(tx->hdr + 16, itt);
	iscsi_pdu_set_sn(c, tx->hdr, true);
	iscsi_conn_enqueue(c, tx);
	if (close_after)
		iscsi_conn_finish(c);
}

void iscsi_tmf_task_done(struct iscsi_task *t)
{
	struct iscsi_tmf_wait *w = t->tmf;

	t->tmf = NULL;
	if (--w->waiting)
		return;
	send_tmf_rsp(w->c, w->itt, w->response, w->close_after);
	free(w);
}

/* Abort T on behalf of W (which may be NULL for another session's task). */
static void abort_one(struct iscsi_task *t, struct iscsi_tmf_wait *w)
{
	if (t->in_scsi && w && !t->tmf) {
		t->tmf = w;
		w->waiting++;
	}
	iscsi_task_abort(t);
}

static void abort_session_tasks(struct iscsi_session *s, struct iscsi_tmf_wait *w,
				uint32_t except_itt)
{
	struct iscsi_task *t, *next;

	for (t = s->tasks; t; t = next) {
		next = t->next;
		if (t->itt != except_itt)
			abort_one(t, w);
	}
}

/* LUN and target resets: every session of the target loses its tasks;
 * other sessions' initiators learn of it by unit attention.  Only the
 * requester's own session spares the TMF's task tag: in another session
 * the same tag names an unrelated command. */
static void abort_target_tasks(struct iscsi_conn *c, struct iscsi_tmf_wait *w)
{
	struct iscsi_session *s;

	for (s = c->srv->sessions; s; s = s->next) {
		if (s->tgt != c->sess->tgt)
			continue;
		if (s == c->sess)
			abort_session_tasks(s, w, w->itt);
		else
			abort_session_tasks(s, NULL, ISCSI_RSVD_TAG);
	}
}

int iscsi_tmf_pdu(struct iscsi_conn *c)
{
	const uint8_t *h = c->hdr;
	struct iscsi_session *s = c->sess;
	uint8_t fn = h[1] & 0x7f;
	uint32_t itt = get_be32(h + 16), rtt = get_be32(h + 20), refcmdsn = get_be32(h + 32);
	struct iscsi_tmf_wait *w;
	struct iscsi_task *t;
	uint32_t exp, max;

	if (iscsi_session_check_cmdsn(c, h))
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->c = c;
	w->itt = itt;
	w->response = TMF_RSP_COMPLETE;
	w->waiting = 1; /* ourselves, until the scan is over */
	switch (fn) {
	case TMF_ABORT_TASK:
		t = iscsi_task_find(s, rtt);
		if (t) {
			abort_one(t, w);
			break;
		}
		/* 11.5.1: a task we never saw whose CmdSN is in the window
		 * is complete, and a CmdSN below the TMF's own counts as
		 * received (the command is dropped if it turns up);
		 * otherwise the task is gone. */
		iscsi_session_window(s, &exp, &max);
		if (!(sn_le(exp, refcmdsn) && sn_le(refcmdsn, max)))
			w->response = TMF_RSP_NO_TASK;
		else if (sn_lt(refcmdsn, get_be32(h + 24)))
			iscsi_session_cmdsn_received(s, refcmdsn);
		break;
	case TMF_ABORT_TASK_SET:
	case TMF_CLEAR_TASK_SET:
		abort_session_tasks(s, w, itt);
		scsi_tmf(s->itn, fn == TMF_ABORT_TASK_SET ? SCSI_TMF_ABORT_TASK_SET :
							    SCSI_TMF_CLEAR_TASK_SET);
		break;
	case TMF_LUN_RESET:
		abort_target_tasks(c, w);
		scsi_tmf(s->itn, SCSI_TMF_LUN_RESET);
		break;
	case TMF_TARGET_WARM_RESET:
	case TMF_TARGET_COLD_RESET:
		abort_target_tasks(c, w);
		scsi_tmf(s->itn, fn == TMF_TARGET_WARM_RESET ? SCSI_TMF_TARGET_WARM_RESET :
							       SCSI_TMF_TARGET_COLD_RESET);
		/* 11.5.1: a cold reset drops every connection of the target
		 * once the response is out. */
		if (fn == TMF_TARGET_COLD_RESET) {
			struct iscsi_session *o, *next;

			w->close_after = true;
			for (o = c->srv->sessions; o; o = next) {
				struct iscsi_conn *oc = o->conn;

				next = o->next;
				if (o != s && o->tgt == s->tgt && oc && oc->state != CONN_CLOSED) {
					iscsi_conn_close(oc, "target cold reset");
					iscsi_conn_maybe_free(oc);
				}
			}
		}
		break;
	case TMF_I_T_NEXUS_RESET:
		abort_session_tasks(s, w, itt);
		scsi_tmf(s->itn, SCSI_TMF_I_T_NEXUS_RESET);
		/* 11.5.1: the nexus, and so the session, ends. */
		w->close_after = true;
		break;
	case TMF_TASK_REASSIGN:
		w->response = TMF_RSP_NO_REASSIGN;
		break;
	default:
		w->response = TMF_RSP_NOT_SUPPORTED;
		break;
	}
	log_info("iscsi %s: task management function %u -> response %u", c->peer, fn,
		 w->response);
	if (--w->waiting == 0) {
		send_tmf_rsp(c, itt, w->response, w->close_after);
		free(w);
	}
	return 0;
}
