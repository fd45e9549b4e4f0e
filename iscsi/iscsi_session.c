/*
 * iscsi_session: sessions and SCSI tasks in the full feature phase: the
 * CmdSN window with real queueing (RFC 7143 4.2.2.1), immediate and
 * unsolicited data, R2T generation within MaxOutstandingR2T and
 * MaxBurstLength (11.8), Data-Out DataSN and Buffer Offset checks (11.7),
 * Data-In with the status collapsed into the last PDU (11.7.4), the SCSI
 * Response with residuals (11.4.5), and out-of-order completion.
 *
 * The CDB is never decoded here: direction and length come from the
 * command PDU's R/W bits and Expected Data Transfer Length.  Data-In is
 * sent from the SCSI layer's own buffers, never copied.
 */
#include "iscsi_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How far outside the window a CmdSN must be to count as an attack
 * rather than a late duplicate (which 4.2.2.1 says to drop silently). */
#define CMDSN_FAR (1u << 20)
/* Immediate SCSI commands alive in all sessions together; each session
 * also holds at most its queue depth of them. */
#define ISCSI_IMM_TOTAL_MAX 1024u

static inline uint32_t hash_itt(uint32_t itt)
{
	return (itt ^ (itt >> 8) ^ (itt >> 16)) % ISCSI_TASK_HASH;
}

void iscsi_session_window(struct iscsi_session *s, uint32_t *exp, uint32_t *max)
{
	uint32_t free_slots = s->queue_depth > s->cmds_window ? s->queue_depth - s->cmds_window : 0;
	uint32_t m = s->ExpCmdSN + free_slots - 1;

	/* 4.2.2.1: MaxCmdSN never moves backwards. */
	if (sn_lt(m, s->MaxCmdSN))
		m = s->MaxCmdSN;
	s->MaxCmdSN = m;
	*exp = s->ExpCmdSN;
	*max = m;
}

/*
 * 4.2.2.1 and 11.5.1: a CmdSN ahead of ExpCmdSN may be used up without a
 * task waiting on it (its command aborted while held back, a TMF saying it
 * was lost, a non-SCSI request answered at once).  It is remembered here
 * so ExpCmdSN steps over it once the gap below closes.  Every CmdSN kept
 * lies in (ExpCmdSN, MaxCmdSN], fewer than queue_depth apart, so a bitmap
 * of a power of two at least that big indexes them without clashes, also
 * across the 2^32 wrap.
 */
static void cmdsn_mark_ahead(struct iscsi_session *s, uint32_t cmdsn)
{
	uint32_t exp, max, i;

	iscsi_session_window(s, &exp, &max);
	if (!s->cmdsn_ahead || !sn_lt(exp, cmdsn) || sn_lt(max, cmdsn))
		return;
	i = cmdsn & s->ahead_mask;
	s->cmdsn_ahead[i / 32] |= 1u << (i % 32);
}

static bool cmdsn_is_ahead(const struct iscsi_session *s, uint32_t cmdsn)
{
	uint32_t i = cmdsn & s->ahead_mask;

	return s->cmdsn_ahead && sn_lt(s->ExpCmdSN, cmdsn) &&
	       (s->cmdsn_ahead[i / 32] & 1u << (i % 32));
}

static bool cmdsn_take(struct iscsi_session *s, uint32_t cmdsn)
{
	uint32_t i = cmdsn & s->ahead_mask;
	uint32_t bit = 1u << (i % 32);

	if (!s->cmdsn_ahead || !(s->cmdsn_ahead[i / 32] & bit))
		return false;
	s->cmdsn_ahead[i / 32] &= ~bit;
	return true;
}

static int cmdsn_ahead_alloc(struct iscsi_session *s)
{
	uint32_t n = 32;

	while (n < s->queue_depth)
		n *= 2;
	s->ahead_mask = n - 1;
	s->cmdsn_ahead = calloc(n / 32, sizeof(*s->cmdsn_ahead));
	return s->cmdsn_ahead ? 0 : -ENOMEM;
}

int iscsi_session_create(struct iscsi_conn *c, struct iscsi_target *t, bool discovery,
			 struct iscsi_session **out)
{
	struct iscsi_server *srv = c->srv;
	struct iscsi_session *s = calloc(1, sizeof(*s));
	uint64_t isid = 0;
	int i;

	if (!s)
		return -ENOMEM;
	for (i = 0; i < 6; i++)
		isid = isid << 8 | c->login_isid[i];
	s->srv = srv;
	s->conn = c;
	s->discovery = discovery;
	s->tgt = discovery ? NULL : t;
	memcpy(s->isid, c->login_isid, 6);
	s->initiator_name = strdup(c->initiator_name);
	/* SAM-5 / RFC 7143 10.1.1: the initiator port name. */
	if (s->initiator_name &&
	    asprintf(&s->initiator_port, "%s,i,0x%012llx", c->initiator_name,
		     (unsigned long long)isid) < 0)
		s->initiator_port = NULL;
	s->queue_depth = srv->cfg.max_queue_depth;
	if (!s->initiator_name || !s->initiator_port || cmdsn_ahead_alloc(s)) {
		free(s->initiator_port);
		free(s->initiator_name);
		free(s);
		return -ENOMEM;
	}
	if (!discovery) {
		s->itn = scsi_itn_attach(t->dev, s->initiator_port);
		if (!s->itn) {
			free(s->cmdsn_ahead);
			free(s->initiator_port);
			free(s->initiator_name);
			free(s);
			return -ENOMEM;
		}
		t->nsessions++;
	}
	/* 11.13: a TSIH is never 0; keep it unique among live sessions. */
	for (;;) {
		struct iscsi_session *o;

		s->tsih = srv->next_tsih++;
		if (!s->tsih)
			continue;
		for (o = srv->sessions; o; o = o->next)
			if (o->tsih == s->tsih)
				break;
		if (!o)
			break;
	}
	s->ExpCmdSN = c->login_cmdsn;
	s->MaxCmdSN = s->ExpCmdSN + s->queue_depth - 1;
	ev_timer_init(&s->logout_timer, NULL, 0, 0);
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	c->sess = s;
	*out = s;
	return 0;
}

void iscsi_session_destroy(struct iscsi_session *s)
{
	struct iscsi_server *srv = s->srv;

	ev_timer_stop(srv->loop, &s->logout_timer);
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->itn)
		scsi_itn_detach(s->itn);
	if (s->tgt)
		iscsi_target_session_gone(s->tgt);
	free(s->cmdsn_ahead);
	free(s->initiator_name);
	free(s->initiator_port);
	free(s);
}

void iscsi_session_reinstate(struct iscsi_server *srv, const char *initiator,
			     const uint8_t isid[6], struct iscsi_target *t)
{
	struct iscsi_session *s, *next;

	/* 6.3.5: a new login with the same initiator port and TSIH 0
	 * replaces the old session; its tasks end with it. */
	for (s = srv->sessions; s; s = next) {
		next = s->next;
		if (s->tgt == t && !s->discovery && !memcmp(s->isid, isid, 6) &&
		    !strcasecmp(s->initiator_name, initiator) && s->conn &&
		    s->conn->state != CONN_CLOSED) {
			struct iscsi_conn *c = s->conn;

			log_info("iscsi %s: session TSIH %u reinstated by a new login", c->peer,
				 s->tsih);
			iscsi_conn_close(c, "session reinstatement");
			iscsi_conn_maybe_free(c);
		}
	}
}

struct iscsi_task *iscsi_task_find(struct iscsi_session *s, uint32_t itt)
{
	struct iscsi_task *t;

	for (t = s->hash[hash_itt(itt)]; t; t = t->hnext)
		if (t->itt == itt)
			return t;
	return NULL;
}

static void task_unhash(struct iscsi_task *t)
{
	struct iscsi_session *s = t->conn->sess;
	struct iscsi_task **pp;

	if (!t->in_hash)
		return;
	for (pp = &s->hash[hash_itt(t->itt)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == t) {
			*pp = t->hnext;
			break;
		}
	}
	t->in_hash = false;
}

/* Take T out of every session structure; the memory may live on while
 * SCSI or the transmit queue still use it. */
static void task_unlink(struct iscsi_task *t)
{
	struct iscsi_session *s = t->conn->sess;

	task_unhash(t);
	if (t->state == TASK_PENDING) {
		struct iscsi_task **pp;

		for (pp = &s->pending; *pp; pp = &(*pp)->pnext) {
			if (*pp == t) {
				*pp = t->pnext;
				break;
			}
		}
	}
	if (t->prev || s->tasks == t) {
		if (t->prev)
			t->prev->next = t->next;
		else
			s->tasks = t->next;
		if (t->next)
			t->next->prev = t->prev;
		t->prev = t->next = NULL;
	}
	if (t->counted) {
		s->cmds_window--;
		t->counted = false;
	}
	if (t->imm_counted) {
		s->nimmediate--;
		s->srv->nimmediate--;
		t->imm_counted = false;
	}
	t->state = TASK_SENDING;
}

void iscsi_task_free(struct iscsi_task *t)
{
	struct iscsi_conn *c = t->conn;

	/* The holders of iscsi_tmf.c's ownership rule: Data-In PDUs in the
	 * transmit queue, the SCSI layer, and the connection receiving a
	 * data segment into the task's buffer.  The last one frees it. */
	t->dropped = true;
	if (t->refs || t->in_scsi || c->rx_task == t)
		return;
	task_unlink(t);
	if (t->st.in_iov || t->st.sp)
		scsi_task_release(&t->st);
	free(t->out_buf);
	free(t->r2t);
	free(t);
	c->ntasks--;
}

void iscsi_conn_task_unref(struct iscsi_task *t)
{
	t->refs--;
	iscsi_task_free(t);
}

void iscsi_task_rx_release(struct iscsi_conn *c)
{
	struct iscsi_task *t = c->rx_task;

	c->rx_task = NULL;
	if (t && t->dropped)
		iscsi_task_free(t);
}

void iscsi_task_abort(struct iscsi_task *t)
{
	bool held_back = t->state == TASK_PENDING;

	task_unlink(t);
	t->aborted = true;
	/* 11.5.1: the CmdSN of a command aborted while it waited for the
	 * gap below it is still received. */
	if (held_back)
		cmdsn_mark_ahead(t->conn->sess, t->cmdsn);
	if (!t->in_scsi)
		iscsi_task_free(t);
}

static void task_execute(struct iscsi_task *t);
static void send_r2ts(struct iscsi_task *t);
static void drain_pending(struct iscsi_session *s);

void iscsi_session_cmdsn_received(struct iscsi_session *s, uint32_t cmdsn)
{
	if (cmdsn == s->ExpCmdSN) {
		s->ExpCmdSN++;
		drain_pending(s);
		return;
	}
	cmdsn_mark_ahead(s, cmdsn);
}

int iscsi_session_check_cmdsn(struct iscsi_conn *c, const uint8_t *bhs)
{
	struct iscsi_session *s = c->sess;
	uint32_t cmdsn = get_be32(bhs + 24);
	uint32_t exp, max;

	c->ExpStatSN = get_be32(bhs + 28);
	if (bhs[0] & ISCSI_FLAG_IMMEDIATE)
		return 0;
	iscsi_session_window(s, &exp, &max);
	if (sn_lt(cmdsn, exp) || sn_lt(max, cmdsn))
		return -1;
	/* Answered at once even when ahead of ExpCmdSN; its CmdSN is kept so
	 * the commands behind it do not wait for it forever. */
	iscsi_session_cmdsn_received(s, cmdsn);
	return 0;
}


/* The response: Data-In PDUs from the SCSI buffers, then either a status
 * collapsed into the last Data-In or a SCSI Response. */
static void task_respond(struct iscsi_task *t)
{
	struct iscsi_conn *c = t->conn;
	struct iscsi_session *s = c->sess;
	struct scsi_task *st = &t->st;
	uint32_t want = (t->flags & 0x40) ? t->edtl : 0;
	uint32_t produced = st->in_len;
	uint32_t send = produced < want ? produced : want;
	uint32_t residual = 0, mdsl = c->params.PeerMaxRecvDataSegmentLength;
	uint32_t burst = c->params.MaxBurstLength;
	uint8_t resflags = 0;
	bool collapse = st->status == SCSI_STATUS_GOOD && st->sense_len == 0 && send > 0;
	uint32_t off = 0;
	int vi = 0;
	size_t voff = 0;

	/* 11.4.5.1: residuals compare what the CDB moves (data-in produced,
	 * or data-out the SCSI layer says the CDB asked for) with EDTL in
	 * the direction the initiator declared. */
	if (!(t->flags & 0x40) && !produced) {
		want = (t->flags & 0x20) ? t->edtl : 0;
		produced = st->out_want;
	}
	if (produced < want) {
		resflags = 0x02; /* U */
		residual = want - produced;
	} else if (produced > want) {
		resflags = 0x04; /* O */
		residual = produced - want;
	}
	task_unlink(t);
	s->ntotal++;
	if (!send && t->st.in_iov) {
		scsi_task_release(st);
		st->in_iov = NULL;
	}
	while (off < send) {
		uint32_t len = send - off < mdsl ? send - off : mdsl;
		uint32_t burst_left = burst - off % burst;
		struct iscsi_tx *tx;
		bool last;

		/* 11.7.1: a Data-In PDU never straddles a MaxBurstLength
		 * sequence boundary. */
		if (len > burst_left)
			len = burst_left;
		last = off + len == send;
		tx = iscsi_tx_new(ISCSI_OP_DATA_IN);
		uint32_t need = len;
		int n = 0, cap = 2;

		if (!tx) {
			iscsi_conn_close(c, "out of memory");
			return;
		}
		/* 11.7.2: F ends each burst; the last PDU may carry status. */
		if (last || (off + len) % burst == 0)
			tx->hdr[1] |= 0x80;
		if (last && collapse) {
			tx->hdr[1] |= 0x01 | resflags;
			tx->hdr[3] = st->status;
			put_be32(tx->hdr + 44, residual);
		}
		memcpy(tx->hdr + 8, t->lun_raw, 8);
		put_be32(tx->hdr + 16, t->itt);
		put_be32(tx->hdr + 20, ISCSI_RSVD_TAG);
		iscsi_pdu_set_sn(c, tx->hdr, last && collapse);
		if (!(last && collapse))
			put_be32(tx->hdr + 24, 0);
		put_be32(tx->hdr + 36, t->datasn_in++);
		put_be32(tx->hdr + 40, off);
		/* Point into the SCSI buffers: the slice [off, off+len). */
		tx->iov = tx->iov_small;
		while (need && vi < st->in_iovcnt) {
			size_t avail = st->in_iov[vi].iov_len - voff;
			size_t take = avail < need ? avail : need;

			if (!take) {
				vi++;
				voff = 0;
				continue;
			}
			if (n == cap) {
				struct iovec *ni = malloc(sizeof(*ni) * cap * 2);

				if (!ni) {
					iscsi_tx_free(tx);
					iscsi_conn_close(c, "out of memory");
					return;
				}
				memcpy(ni, tx->iov, sizeof(*ni) * n);
				if (tx->iov != tx->iov_small)
					free(tx->iov);
				tx->iov = ni;
				cap *= 2;
			}
			tx->iov[n].iov_base = (char *)st->in_iov[vi].iov_base + voff;
			tx->iov[n].iov_len = take;
			n++;
			need -= take;
			voff += take;
			if (voff == st->in_iov[vi].iov_len) {
				vi++;
				voff = 0;
			}
		}
		if (need) {
			/* The SCSI layer said in_len but gave fewer bytes. */
			iscsi_tx_free(tx);
			log_error("iscsi %s: task data shorter than in_len", c->peer);
			iscsi_conn_close(c, "internal error");
			return;
		}
		tx->iovcnt = n;
		tx->data_len = len;
		tx->task = t;
		t->refs++;
		iscsi_conn_enqueue(c, tx);
		off += len;
	}
	if (!collapse) {
		struct iscsi_tx *tx = iscsi_tx_new(ISCSI_OP_SCSI_RSP);
		uint8_t sense[2 + SCSI_SENSE_MAX];

		if (!tx) {
			iscsi_conn_close(c, "out of memory");
			return;
		}
		tx->hdr[1] = 0x80 | resflags;
		tx->hdr[2] = 0; /* command completed at target */
		tx->hdr[3] = st->status;
		put_be32(tx->hdr + 16, t->itt);
		iscsi_pdu_set_sn(c, tx->hdr, true);
		put_be32(tx->hdr + 36, (t->flags & 0x40) ? t->datasn_in : t->r2tsn);
		put_be32(tx->hdr + 44, residual);
		if (st->sense_len) {
			uint8_t sl = st->sense_len > SCSI_SENSE_MAX ? SCSI_SENSE_MAX : st->sense_len;

			/* 11.4.7: SenseLength, then the sense data. */
			put_be16(sense, sl);
			memcpy(sense + 2, st->sense, sl);
			if (iscsi_tx_set_data(tx, sense, 2u + sl)) {
				iscsi_tx_free(tx);
				iscsi_conn_close(c, "out of memory");
				return;
			}
		}
		iscsi_conn_enqueue(c, tx);
	}
}

static void scsi_done(struct scsi_task *st)
{
	struct iscsi_task *t = st->priv;
	struct iscsi_conn *c = t->conn;

	t->in_scsi = false;
	if (c->sess)
		c->sess->ninflight--;
	if (t->tmf)
		iscsi_tmf_task_done(t);
	if (t->aborted || c->state == CONN_CLOSED) {
		iscsi_task_free(t);
		iscsi_conn_maybe_free(c);
		return;
	}
	task_respond(t);
	iscsi_task_free(t);
	iscsi_conn_maybe_free(c);
}

static void task_execute(struct iscsi_task *t)
{
	struct iscsi_session *s = t->conn->sess;

	t->state = TASK_EXEC;
	if (t->out_buf) {
		t->out_iov.iov_base = t->out_buf;
		t->out_iov.iov_len = t->out_got;
		t->st.out_iov = &t->out_iov;
		t->st.out_iovcnt = 1;
		t->st.out_len = t->out_got;
	}
	t->in_scsi = true;
	s->ninflight++;
	scsi_task_execute(s->itn, &t->st, scsi_done);
}

static void send_r2ts(struct iscsi_task *t)
{
	struct iscsi_conn *c = t->conn;
	uint32_t maxr2t = c->params.MaxOutstandingR2T;
	uint32_t i;

	while (t->r2t_next < t->edtl && t->r2t_active < maxr2t) {
		uint32_t len = t->edtl - t->r2t_next;
		struct iscsi_tx *tx;
		struct iscsi_r2t *r = NULL;

		for (i = 0; i < maxr2t; i++) {
			if (!t->r2t[i].used) {
				r = &t->r2t[i];
				break;
			}
		}
		if (!r)
			return;
		if (len > c->params.MaxBurstLength)
			len = c->params.MaxBurstLength;
		tx = iscsi_tx_new(ISCSI_OP_R2T);
		if (!tx) {
			iscsi_conn_close(c, "out of memory");
			return;
		}
		if (c->next_ttt == ISCSI_RSVD_TAG)
			c->next_ttt = 1;
		memset(r, 0, sizeof(*r));
		r->used = true;
		r->ttt = c->next_ttt++;
		r->off = t->r2t_next;
		r->len = len;
		t->r2t_active++;
		tx->hdr[1] = 0x80;
		memcpy(tx->hdr + 8, t->lun_raw, 8);
		put_be32(tx->hdr + 16, t->itt);
		put_be32(tx->hdr + 20, r->ttt);
		iscsi_pdu_set_sn(c, tx->hdr, false);
		put_be32(tx->hdr + 36, t->r2tsn++);
		put_be32(tx->hdr + 40, r->off);
		put_be32(tx->hdr + 44, r->len);
		iscsi_conn_enqueue(c, tx);
		t->r2t_next += len;
	}
}

/* An accepted task whose command PDU is in: collect data or run it. */
static void task_start(struct iscsi_task *t)
{
	if (!t->out_buf || t->out_got >= t->edtl) {
		task_execute(t);
		return;
	}
	t->state = TASK_DATA_OUT;
	if (t->unsol_done || t->out_got >= t->unsol_len) {
		/* Unsolicited data is over; solicit the rest. */
		t->unsol_done = true;
		t->r2t_next = t->out_got;
		send_r2ts(t);
	}
}

/* 4.2.2.1: run queued commands whose turn has come, and step over CmdSNs
 * already used up.  A queued task goes first when a hostile initiator used
 * its CmdSN twice, so it can never be left behind ExpCmdSN. */
static void drain_pending(struct iscsi_session *s)
{
	for (;;) {
		struct iscsi_task *t = s->pending;
		bool used = cmdsn_take(s, s->ExpCmdSN);

		if (!t || t->cmdsn != s->ExpCmdSN) {
			if (!used)
				return;
			s->ExpCmdSN++;
			continue;
		}
		s->pending = t->pnext;
		s->ExpCmdSN++;
		t->counted = true;
		s->cmds_window++;
		t->state = TASK_EXEC;
		task_start(t);
	}
}

static uint8_t attr_map(uint8_t a)
{
	/* 11.3.1.2 task attributes to SAM. */
	switch (a & 7) {
	case 2:
		return SCSI_ATTR_ORDERED;
	case 3:
		return SCSI_ATTR_HEAD_OF_QUEUE;
	case 4:
		return SCSI_ATTR_ACA;
	default:
		return SCSI_ATTR_SIMPLE;
	}
}

static uint64_t lun_decode(const uint8_t *l)
{
	/* SAM-5 4.7: peripheral (00b) and flat (01b) addressing. */
	switch (l[0] >> 6) {
	case 0:
		return l[1];
	case 1:
		return (uint64_t)(l[0] & 0x3f) << 8 | l[1];
	default:
		return UINT64_MAX;
	}
}

/* The CmdSN and immediate-command checks of a new command: 1 to take it,
 * 0 when it is dropped or rejected, negative to close the connection. */
static int cmd_admit(struct iscsi_conn *c, bool imm, uint32_t cmdsn)
{
	struct iscsi_session *s = c->sess;
	const uint8_t *h = c->hdr;
	uint32_t exp, max;

	iscsi_session_window(s, &exp, &max);
	if (!imm && (sn_lt(cmdsn, exp) || sn_lt(max, cmdsn))) {
		if (cmdsn - max > CMDSN_FAR && exp - cmdsn > CMDSN_FAR) {
			log_warn("iscsi %s: CmdSN %u far outside the window [%u, %u], closing",
				 c->peer, cmdsn, exp, max);
			iscsi_send_reject(c, ISCSI_REJECT_PROTOCOL, h);
			return -EPROTO;
		}
		/* 4.2.2.1: outside the window: silently ignored. */
		log_debug("iscsi %s: CmdSN %u outside [%u, %u], ignored", c->peer, cmdsn, exp, max);
		return 0;
	}
	if (!imm && cmdsn_is_ahead(s, cmdsn)) {
		/* 11.5.1: a command a TMF already counted as received, or a
		 * duplicate CmdSN (4.2.2.1): silently dropped. */
		log_debug("iscsi %s: CmdSN %u already received, ignored", c->peer, cmdsn);
		return 0;
	}
	if (imm && (s->nimmediate >= s->queue_depth ||
		    s->srv->nimmediate >= ISCSI_IMM_TOTAL_MAX)) {
		/* 4.2.2.1: immediate commands bypass the CmdSN window, so
		 * nothing else bounds the tasks (and write buffers) they
		 * hold.  11.17.1 has a Reject reason for exactly this,
		 * "Immediate command reject"; it beats a TASK SET FULL
		 * status because no task is created and the CmdSN window
		 * is untouched: the session goes on as if it never came. */
		iscsi_send_reject(c, ISCSI_REJECT_IMMEDIATE, h);
		return 0;
	}
	return 1;
}

int iscsi_scsi_cmd_data_dest(struct iscsi_conn *c)
{
	struct iscsi_session *s = c->sess;
	const uint8_t *h = c->hdr;
	bool imm = h[0] & ISCSI_FLAG_IMMEDIATE;
	uint8_t flags = h[1];
	uint32_t itt = get_be32(h + 16), edtl = get_be32(h + 20), cmdsn = get_be32(h + 24);
	bool rd = flags & 0x40, wr = flags & 0x20;
	struct iscsi_task *t;
	int rc;

	c->rx_task = NULL;
	c->rx_discard = true;
	c->ExpStatSN = get_be32(h + 28);
	rc = cmd_admit(c, imm, cmdsn);
	if (rc <= 0)
		return rc;
	if (iscsi_task_find(s, itt) || itt == ISCSI_RSVD_TAG) {
		/* 11.17.1: a task tag already in use. */
		iscsi_send_reject(c, ISCSI_REJECT_IN_PROGRESS, h);
		return 0;
	}
	if ((rd && wr) || c->ahs_len || (c->dsl && (!wr || !c->params.ImmediateData)) ||
	    c->dsl > edtl || c->dsl > c->params.FirstBurstLength ||
	    (wr && edtl > ISCSI_EDTL_MAX)) {
		/* Bidirectional and extended CDBs are not served; immediate
		 * data must fit what was negotiated (11.3.4, 13.11). */
		iscsi_send_reject(c, (rd && wr) || c->ahs_len ? ISCSI_REJECT_NOT_SUPPORTED :
					      ISCSI_REJECT_PROTOCOL, h);
		return 0;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->conn = c;
	c->ntasks++;
	t->itt = itt;
	t->cmdsn = cmdsn;
	t->edtl = edtl;
	t->immediate = imm;
	t->flags = flags;
	memcpy(t->lun_raw, h + 8, 8);
	memcpy(t->st.cdb, h + 32, 16);
	t->st.cdb_len = 16;
	t->st.lun = lun_decode(h + 8);
	t->st.attr = attr_map(flags);
	t->st.expected_len = edtl;
	t->st.dir = wr ? SCSI_DIR_WRITE : rd ? SCSI_DIR_READ : SCSI_DIR_NONE;
	t->st.priv = t;
	t->state = TASK_DATA_OUT;
	if (wr && edtl) {
		t->out_buf = malloc(edtl);
		t->r2t = calloc(c->params.MaxOutstandingR2T, sizeof(*t->r2t));
		if (!t->out_buf || !t->r2t) {
			free(t->out_buf);
			free(t->r2t);
			free(t);
			c->ntasks--;
			return -ENOMEM;
		}
		/* 11.3.4 and 13.10: unsolicited data follows the command
		 * unless F is set or InitialR2T=Yes. */
		if ((flags & ISCSI_FLAG_FINAL) || c->params.InitialR2T) {
			t->unsol_len = c->dsl;
			t->unsol_done = true;
		} else
			t->unsol_len = edtl < c->params.FirstBurstLength ? edtl :
									   c->params.FirstBurstLength;
	}
	if (imm) {
		t->imm_counted = true;
		s->nimmediate++;
		s->srv->nimmediate++;
	}
	t->hnext = s->hash[hash_itt(itt)];
	s->hash[hash_itt(itt)] = t;
	t->in_hash = true;
	t->next = s->tasks;
	if (s->tasks)
		s->tasks->prev = t;
	s->tasks = t;
	c->rx_task = t;
	c->rx_discard = false;
	c->data = t->out_buf;
	return 0;
}

int iscsi_scsi_cmd_done_rx(struct iscsi_conn *c)
{
	struct iscsi_session *s = c->sess;
	struct iscsi_task *t = c->rx_task;

	if (!t)
		return 0;
	t->out_got = c->dsl;
	if (t->aborted) {
		/* A reset from another session aborted it while its PDU was
		 * still arriving: no response (11.5.1), but the command was
		 * received, so its CmdSN counts.  The receive path frees it. */
		if (!t->immediate)
			iscsi_session_cmdsn_received(s, t->cmdsn);
		return 0;
	}
	if (t->immediate) {
		task_start(t);
		return 0;
	}
	if (t->cmdsn == s->ExpCmdSN) {
		s->ExpCmdSN++;
		t->counted = true;
		s->cmds_window++;
		task_start(t);
		drain_pending(s);
		return 0;
	}
	/* Ahead of ExpCmdSN: wait for the gap to fill. */
	{
		struct iscsi_task **pp = &s->pending;

		while (*pp && sn_lt((*pp)->cmdsn, t->cmdsn))
			pp = &(*pp)->pnext;
		if (*pp && (*pp)->cmdsn == t->cmdsn) {
			/* A duplicate CmdSN: 4.2.2.1 drops it. */
			iscsi_task_abort(t);
			return 0;
		}
		t->pnext = *pp;
		*pp = t;
		t->state = TASK_PENDING;
	}
	return 0;
}

int iscsi_data_out_dest(struct iscsi_conn *c)
{
	struct iscsi_session *s = c->sess;
	const uint8_t *h = c->hdr;
	uint32_t itt = get_be32(h + 16), ttt = get_be32(h + 20);
	uint32_t datasn = get_be32(h + 36), off = get_be32(h + 40);
	struct iscsi_task *t = iscsi_task_find(s, itt);
	uint32_t i;

	c->rx_task = NULL;
	c->rx_discard = true;
	c->ExpStatSN = get_be32(h + 28);
	if (!t || !t->out_buf || (t->state != TASK_DATA_OUT && t->state != TASK_PENDING)) {
		/* 11.7.1: Data-Out for a task that does not want data. */
		log_warn("iscsi %s: Data-Out for unknown ITT 0x%08x", c->peer, itt);
		iscsi_send_reject(c, ISCSI_REJECT_INVALID_FIELD, h);
		return 0;
	}
	if (ttt == ISCSI_RSVD_TAG) {
		/* Unsolicited: in order, within FirstBurstLength. */
		if (t->unsol_done)
			goto bad;
		if (datasn != t->unsol_datasn || off != t->out_got ||
		    (uint64_t)off + c->dsl > t->unsol_len)
			goto bad;
		c->rx_r2t = -1;
	} else {
		struct iscsi_r2t *r = NULL;

		for (i = 0; i < c->params.MaxOutstandingR2T; i++) {
			if (t->r2t[i].used && t->r2t[i].ttt == ttt) {
				r = &t->r2t[i];
				break;
			}
		}
		/* 11.7.5, 11.7.6: DataSN counts from 0 per R2T, offsets
		 * run in order inside the burst it asked for. */
		if (!r || datasn != r->datasn || off != r->off + r->got ||
		    (uint64_t)r->got + c->dsl > r->len)
			goto bad;
		c->rx_r2t = (int)i;
	}
	c->rx_task = t;
	c->rx_discard = false;
	c->data = t->out_buf + off;
	return 0;
bad:
	if (t->state == TASK_PENDING) {
		/* Its CmdSN is still ahead of us: no clean way to end it
		 * alone, so the connection goes (ErrorRecoveryLevel 0). */
		log_warn("iscsi %s: Data-Out ITT 0x%08x with DataSN %u offset %u out of sequence, closing",
			 c->peer, itt, datasn, off);
		iscsi_send_reject(c, ISCSI_REJECT_PROTOCOL, h);
		return -EPROTO;
	}
	/* 7.1.4.1 with ErrorRecoveryLevel 0: the command ends with a
	 * data phase error; the payload is dropped and the session lives
	 * on.  Later Data-Out for it finds no task and is rejected. */
	log_warn("iscsi %s: Data-Out ITT 0x%08x with DataSN %u offset %u length %u out of sequence, command aborted",
		 c->peer, itt, datasn, off, c->dsl);
	scsi_set_sense(&t->st, SCSI_SENSE_ABORTED_COMMAND, 0x4b00);
	task_respond(t);
	iscsi_task_free(t);
	return 0;
}

int iscsi_data_out_pdu(struct iscsi_conn *c)
{
	struct iscsi_task *t = c->rx_task;
	bool final = c->hdr[1] & ISCSI_FLAG_FINAL;

	/* Aborted while this Data-Out arrived: the bytes are dropped. */
	if (!t || t->aborted)
		return 0;
	t->out_got += c->dsl;
	if (c->rx_r2t < 0) {
		t->unsol_datasn++;
		if (final || t->out_got >= t->unsol_len) {
			/* The unsolicited burst ended (maybe early). */
			t->unsol_done = true;
			t->r2t_next = t->out_got;
			if (t->state == TASK_DATA_OUT && t->out_got < t->edtl)
				send_r2ts(t);
		}
	} else {
		struct iscsi_r2t *r = &t->r2t[c->rx_r2t];

		r->got += c->dsl;
		r->datasn++;
		if (r->got == r->len) {
			r->used = false;
			t->r2t_active--;
			send_r2ts(t);
		} else if (final) {
			/* 11.7.1: F before the burst is complete. */
			iscsi_send_reject(c, ISCSI_REJECT_PROTOCOL, c->hdr);
			return -EPROTO;
		}
	}
	if (t->state == TASK_DATA_OUT && t->out_got >= t->edtl)
		task_execute(t);
	return 0;
}
