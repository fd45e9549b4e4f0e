/*
 * iscsi_conn: one TCP connection: the PDU receive state machine, digests,
 * the transmit queue, and the connection's life and death.
 *
 * Receive reads big chunks into a ring and parses PDUs out of it; a data
 * segment that is not in the ring yet is read straight into its final
 * place (a write's data-out buffer) with readv, so write payloads are not
 * copied twice.  Transmit gathers queued PDUs, including Data-In segments
 * that point into the SCSI layer's buffers, into one sendmsg; EV_WRITE is
 * armed only when the socket is full, and an ev_prepare watcher batches
 * everything queued during one loop iteration into one system call.
 *
 * A malformed or hostile PDU closes this connection only.
 */
#include "iscsi_int.h"
#include "common/common.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RING_SIZE (64u * 1024)
/* Reads per wakeup before giving other connections a turn. */
#define RX_BUDGET 16
#define TX_IOV_MAX 256

static void conn_flush(struct iscsi_conn *c);

struct iscsi_tx *iscsi_tx_new(uint8_t opcode)
{
	struct iscsi_tx *tx = calloc(1, sizeof(*tx));

	if (!tx)
		return NULL;
	tx->hdr[0] = opcode;
	tx->hdr_len = ISCSI_BHS_LEN;
	return tx;
}

int iscsi_tx_set_data(struct iscsi_tx *tx, const void *data, uint32_t len)
{
	if (!len)
		return 0;
	tx->buf = malloc(len);
	if (!tx->buf)
		return -ENOMEM;
	memcpy(tx->buf, data, len);
	tx->iov_small[0].iov_base = tx->buf;
	tx->iov_small[0].iov_len = len;
	tx->iov = tx->iov_small;
	tx->iovcnt = 1;
	tx->data_len = len;
	return 0;
}

void iscsi_tx_free(struct iscsi_tx *tx)
{
	if (tx->task)
		iscsi_conn_task_unref(tx->task);
	if (tx->iov != tx->iov_small)
		free(tx->iov);
	free(tx->buf);
	free(tx);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void iscsi_conn_enqueue(struct iscsi_conn *c, struct iscsi_tx *tx)
{
	uint32_t pad = (4 - (tx->data_len & 3)) & 3;

	if (c->state == CONN_CLOSED) {
		iscsi_tx_free(tx);
		return;
	}
	put_be24(tx->hdr + 5, tx->data_len);
	/* RFC 7143 13.1: digests are CRC32C, sent least significant byte
	 * first (as every initiator reads them). */
	if (c->params.HeaderDigest) {
		put_le32(tx->hdr + ISCSI_BHS_LEN, crc32c(tx->hdr, ISCSI_BHS_LEN));
		tx->hdr_len = ISCSI_BHS_LEN + ISCSI_DIGEST_LEN;
	}
	memset(tx->tail, 0, sizeof(tx->tail));
	tx->tail_len = pad;
	if (c->params.DataDigest && tx->data_len) {
		uint32_t crc = 0;
		int i;

		for (i = 0; i < tx->iovcnt; i++)
			crc = crc32c_update(crc, tx->iov[i].iov_base, tx->iov[i].iov_len);
		if (pad)
			crc = crc32c_update(crc, tx->tail, pad);
		put_le32(tx->tail + pad, crc);
		tx->tail_len = pad + ISCSI_DIGEST_LEN;
	}
	tx->next = NULL;
	if (c->txq_tail)
		c->txq_tail->next = tx;
	else
		c->txq_head = tx;
	c->txq_tail = tx;
	c->tx_queued++;
	if (!c->wio_on && !ev_is_active(&c->flush))
		ev_prepare_start(c->srv->loop, &c->flush);
}

/* Add the unsent part of TX to IOV; returns the new count. */
static int tx_iov(struct iscsi_tx *tx, size_t skip, struct iovec *iov, int n, int max)
{
	struct iovec seg[2];
	int i;

	seg[0].iov_base = tx->hdr;
	seg[0].iov_len = tx->hdr_len;
	for (i = -1; i <= tx->iovcnt && n < max; i++) {
		const struct iovec *s;

		if (i < 0) {
			s = &seg[0];
		} else if (i == tx->iovcnt) {
			seg[1].iov_base = tx->tail;
			seg[1].iov_len = tx->tail_len;
			s = &seg[1];
		} else {
			s = &tx->iov[i];
		}
		if (skip >= s->iov_len) {
			skip -= s->iov_len;
			continue;
		}
		iov[n].iov_base = (char *)s->iov_base + skip;
		iov[n].iov_len = s->iov_len - skip;
		skip = 0;
		n++;
	}
	return n;
}

static size_t tx_size(const struct iscsi_tx *tx)
{
	return (size_t)tx->hdr_len + tx->data_len + tx->tail_len;
}

static void conn_flush(struct iscsi_conn *c)
{
	struct iovec iov[TX_IOV_MAX];

	while (c->txq_head && c->state != CONN_CLOSED) {
		struct iscsi_tx *tx;
		struct msghdr msg = { 0 };
		size_t skip = c->tx_off;
		int n = 0;
		ssize_t w;

		for (tx = c->txq_head; tx && n < TX_IOV_MAX - 2; tx = tx->next) {
			n = tx_iov(tx, skip, iov, n, TX_IOV_MAX);
			skip = 0;
		}
		msg.msg_iov = iov;
		msg.msg_iovlen = n;
		w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->wio_on) {
					ev_io_start(c->srv->loop, &c->wio);
					c->wio_on = true;
				}
				return;
			}
			iscsi_conn_close(c, "send failed");
			return;
		}
		while (w > 0 && c->txq_head) {
			size_t left;

			tx = c->txq_head;
			left = tx_size(tx) - c->tx_off;
			if ((size_t)w < left) {
				c->tx_off += w;
				break;
			}
			w -= left;
			c->tx_off = 0;
			c->txq_head = tx->next;
			if (!c->txq_head)
				c->txq_tail = NULL;
			c->tx_queued--;
			iscsi_tx_free(tx);
		}
	}
	if (c->wio_on) {
		ev_io_stop(c->srv->loop, &c->wio);
		c->wio_on = false;
	}
	if (c->state == CONN_LOGOUT && !c->txq_head)
		iscsi_conn_close(c, "logged out");
}

static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct iscsi_conn *c = w->data;

	ev_prepare_stop(loop, w);
	conn_flush(c);
	iscsi_conn_maybe_free(c);
}

static void wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct iscsi_conn *c = w->data;

	conn_flush(c);
	iscsi_conn_maybe_free(c);
}

static void rx_reset(struct iscsi_conn *c)
{
	c->rx = RX_BHS;
	c->hdr_need = ISCSI_BHS_LEN;
	c->hdr_got = 0;
	c->data = NULL;
	c->data_got = 0;
	c->tail_got = 0;
	c->tail_need = 0;
	iscsi_task_rx_release(c);
	c->rx_discard = false;
}

/* Where the next received bytes go: *PTR (NULL = drop) for up to *LEN. */
static void rx_need(struct iscsi_conn *c, uint8_t **ptr, uint32_t *len)
{
	switch (c->rx) {
	case RX_BHS:
	case RX_AHS:
		*ptr = c->hdr + c->hdr_got;
		*len = c->hdr_need - c->hdr_got;
		return;
	case RX_DATA:
		*ptr = c->rx_discard || !c->data ? NULL : c->data + c->data_got;
		*len = c->dsl - c->data_got;
		return;
	case RX_TAIL:
		*ptr = c->tail + c->tail_got;
		*len = c->tail_need - c->tail_got;
		return;
	}
}

static int rx_pdu_done(struct iscsi_conn *c)
{
	int rc;

	if (c->params.DataDigest && c->dsl && c->state != CONN_LOGIN && !c->rx_discard &&
	    c->data) {
		uint32_t pad = (4 - (c->dsl & 3)) & 3;
		uint32_t crc = crc32c(c->data, c->dsl);

		if (pad)
			crc = crc32c_update(crc, c->tail, pad);
		if (crc != get_le32(c->tail + pad)) {
			/* RFC 7143 7.8: a data digest error; with
			 * ErrorRecoveryLevel=0 the PDU is rejected and the
			 * connection recovered by closing it. */
			log_warn("iscsi %s: data digest error, closing", c->peer);
			iscsi_send_reject(c, ISCSI_REJECT_DIGEST, c->hdr);
			return -EBADMSG;
		}
	}
	rc = iscsi_pdu_dispatch(c);
	if (c->state != CONN_CLOSED)
		rx_reset(c);
	if (c->data_own_cap > RING_SIZE) {
		/* Big text or ping payloads are rare: do not keep their
		 * buffer around on an idle connection. */
		free(c->data_own);
		c->data_own = NULL;
		c->data_own_cap = 0;
	}
	return rc;
}

static int rx_header_done(struct iscsi_conn *c)
{
	int rc;

	if (c->params.HeaderDigest && c->state != CONN_LOGIN) {
		uint32_t hl = ISCSI_BHS_LEN + c->ahs_len;

		if (crc32c(c->hdr, hl) != get_le32(c->hdr + hl)) {
			/* 7.8: a header digest error cannot be trusted to
			 * say anything about the PDU: drop the connection. */
			log_warn("iscsi %s: header digest error, closing", c->peer);
			return -EBADMSG;
		}
	}
	rc = iscsi_pdu_data_dest(c);
	if (rc < 0)
		return rc;
	if (c->dsl) {
		c->rx = RX_DATA;
		c->data_got = 0;
		return 0;
	}
	return rx_pdu_done(c);
}

/* Account N bytes delivered to rx_need()'s place; run whatever completes. */
static int rx_advance(struct iscsi_conn *c, uint32_t n)
{
	switch (c->rx) {
	case RX_BHS:
		c->hdr_got += n;
		if (c->hdr_got < c->hdr_need)
			return 0;
		c->ahs_len = c->hdr[4] * 4u;
		c->dsl = get_be24(c->hdr + 5);
		if (iscsi_pdu_check_bhs(c))
			return -EPROTO;
		c->hdr_need += c->ahs_len;
		if (c->params.HeaderDigest && c->state != CONN_LOGIN)
			c->hdr_need += ISCSI_DIGEST_LEN;
		if (c->hdr_need > c->hdr_got) {
			c->rx = RX_AHS;
			return 0;
		}
		return rx_header_done(c);
	case RX_AHS:
		c->hdr_got += n;
		if (c->hdr_got < c->hdr_need)
			return 0;
		return rx_header_done(c);
	case RX_DATA:
		c->data_got += n;
		if (c->data_got < c->dsl)
			return 0;
		c->tail_need = (4 - (c->dsl & 3)) & 3;
		if (c->params.DataDigest && c->state != CONN_LOGIN)
			c->tail_need += ISCSI_DIGEST_LEN;
		c->tail_got = 0;
		if (c->tail_need) {
			c->rx = RX_TAIL;
			return 0;
		}
		return rx_pdu_done(c);
	case RX_TAIL:
		c->tail_got += n;
		if (c->tail_got < c->tail_need)
			return 0;
		return rx_pdu_done(c);
	}
	return -EINVAL;
}

int iscsi_conn_feed(struct iscsi_conn *c, const uint8_t *buf, size_t len)
{
	bool was_in_rx = c->in_rx;
	int rc = 0;

	/* Nothing frees the connection while its bytes are being parsed. */
	c->in_rx = true;
	while (len && c->state != CONN_CLOSED) {
		uint8_t *ptr = NULL;
		uint32_t need = 0, k;

		rx_need(c, &ptr, &need);
		k = need < len ? need : (uint32_t)len;
		if (ptr && k)
			memcpy(ptr, buf, k);
		buf += k;
		len -= k;
		rc = rx_advance(c, k);
		if (rc < 0) {
			/* A Reject may be queued: send it, then close. */
			iscsi_conn_finish(c);
			break;
		}
		if (c->state == CONN_LOGOUT || c->login_delayed)
			break; /* nothing more is read once we are ending */
	}
	c->in_rx = was_in_rx;
	return c->state == CONN_CLOSED || c->state == CONN_LOGOUT ? -1 : 0;
}

static void rio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct iscsi_conn *c = w->data;
	int budget = RX_BUDGET;
	bool drained = false;

	if (!c->ring) {
		/* Allocated on first data: a connection that never sends
		 * (a half-open flood) costs no receive buffer. */
		c->ring = malloc(RING_SIZE);
		if (!c->ring) {
			iscsi_conn_close(c, "out of memory");
			iscsi_conn_maybe_free(c);
			return;
		}
		c->ring_cap = RING_SIZE;
	}
	c->in_rx = true;
	c->last_rx = c->srv->last_rx = ev_now(loop);
	while (budget-- > 0 && c->state != CONN_CLOSED && c->state != CONN_LOGOUT &&
	       !c->login_delayed) {
		uint8_t *ptr = NULL;
		uint32_t need = 0;
		ssize_t n;

		if (c->ring_rd < c->ring_wr) {
			uint32_t avail = c->ring_wr - c->ring_rd;
			const uint8_t *p = c->ring + c->ring_rd;

			/* Feed what the ring holds; PDU handlers may close. */
			c->ring_rd = c->ring_wr = 0;
			if (iscsi_conn_feed(c, p, avail) < 0 || drained)
				break;
			continue;
		}
		rx_need(c, &ptr, &need);
		if (ptr && need >= 4096) {
			/* A payload: straight into place, the rest into the
			 * ring for the PDUs behind it. */
			struct iovec iov[2] = {
				{ .iov_base = ptr, .iov_len = need },
				{ .iov_base = c->ring, .iov_len = c->ring_cap },
			};

			n = readv(c->fd, iov, 2);
			if (n > 0) {
				uint32_t direct = (size_t)n < need ? (uint32_t)n : need;

				/* A short read emptied the socket: no need to
				 * ask again just to hear EAGAIN. */
				drained = (size_t)n < need + c->ring_cap;
				c->ring_rd = 0;
				c->ring_wr = (uint32_t)(n - direct);
				if (rx_advance(c, direct) < 0) {
					iscsi_conn_finish(c);
					break;
				}
				if (drained && c->ring_wr == 0)
					break;
				continue;
			}
		} else {
			n = read(c->fd, c->ring, c->ring_cap);
			if (n > 0) {
				drained = (size_t)n < c->ring_cap;
				c->ring_rd = 0;
				c->ring_wr = (uint32_t)n;
				continue;
			}
		}
		if (n == 0) {
			iscsi_conn_close(c, "peer closed");
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			iscsi_conn_close(c, "receive failed");
		break;
	}
	c->in_rx = false;
	if (c->state != CONN_CLOSED && c->txq_head && !c->wio_on)
		conn_flush(c);
	iscsi_conn_maybe_free(c);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct iscsi_conn *c = w->data;

	if (c->state == CONN_LOGOUT) {
		iscsi_conn_close(c, "peer does not take our last PDUs");
	} else if (c->state == CONN_LOGIN) {
		/* Issue 6: a login that never finishes is dropped. */
		log_warn("iscsi %s: login not finished within %us, closing", c->peer,
			 c->srv->cfg.login_timeout);
		iscsi_conn_close(c, "login timeout");
	} else if (c->state == CONN_FFP) {
		iscsi_nop_timer(c);
	}
	iscsi_conn_maybe_free(c);
}

struct iscsi_conn *iscsi_conn_new(struct iscsi_server *s, int fd)
{
	struct iscsi_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->srv = s;
	c->fd = fd;
	c->state = CONN_LOGIN;
	c->login_first = true;
	iscsi_params_default(&c->params);
	/* RFC 7143 13.12: until negotiated, 8192 bytes each way; login PDUs
	 * themselves are bounded separately. */
	c->params.MaxRecvDataSegmentLength = s->lim.max_recv_dsl;
	c->params.PeerMaxRecvDataSegmentLength = 8192;
	iscsi_kv_init(&c->login_in);
	iscsi_kv_init(&c->login_out);
	iscsi_kv_init(&c->text_in);
	iscsi_kv_init(&c->text_out);
	c->next_ttt = 1;
	rx_reset(c);
	ev_io_init(&c->rio, rio_cb, fd, EV_READ);
	ev_io_init(&c->wio, wio_cb, fd, EV_WRITE);
	ev_prepare_init(&c->flush, flush_cb);
	ev_timer_init(&c->timer, timer_cb, s->cfg.login_timeout, 0);
	c->rio.data = c->wio.data = c->flush.data = c->timer.data = c;
	c->last_rx = ev_now(s->loop);
	if (fd >= 0) {
		ev_io_start(s->loop, &c->rio);
		ev_timer_start(s->loop, &c->timer);
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	return c;
}

/* Seconds we wait for a closing connection's last PDUs to leave. */
#define FINISH_TIMEOUT 5.0

void iscsi_conn_finish(struct iscsi_conn *c)
{
	struct ev_loop *loop = c->srv->loop;

	if (c->state == CONN_CLOSED || c->state == CONN_LOGOUT)
		return;
	c->state = CONN_LOGOUT;
	ev_io_stop(loop, &c->rio);
	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, FINISH_TIMEOUT, 0);
	ev_timer_start(loop, &c->timer);
	if (!c->txq_head)
		iscsi_conn_close(c, "ending");
	else if (!c->wio_on && !ev_is_active(&c->flush))
		ev_prepare_start(loop, &c->flush);
}

void iscsi_conn_close(struct iscsi_conn *c, const char *why)
{
	struct ev_loop *loop = c->srv->loop;
	struct iscsi_tx *tx;

	if (c->state == CONN_CLOSED)
		return;
	log_info("iscsi %s: connection closed (%s)", c->peer, why);
	c->state = CONN_CLOSED;
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_prepare_stop(loop, &c->flush);
	ev_timer_stop(loop, &c->timer);
	ev_timer_stop(loop, &c->login_delay);
	c->wio_on = false;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	while ((tx = c->txq_head)) {
		c->txq_head = tx->next;
		iscsi_tx_free(tx);
	}
	c->txq_tail = NULL;
	if (c->sess) {
		struct iscsi_task *t, *next;

		/* ErrorRecoveryLevel=0: the session ends with its only
		 * connection; tasks still in SCSI finish and are dropped. */
		for (t = c->sess->tasks; t; t = next) {
			next = t->next;
			iscsi_task_abort(t);
		}
	}
	iscsi_login_cleanup(c);
}

void iscsi_conn_maybe_free(struct iscsi_conn *c)
{
	struct iscsi_server *s = c->srv;

	if (c->state != CONN_CLOSED || c->in_rx)
		return;
	/* Closed halfway through a data segment: nothing more arrives. */
	iscsi_task_rx_release(c);
	if (c->ntasks)
		return;
	if (c->sess)
		iscsi_session_destroy(c->sess);
	c->sess = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	iscsi_kv_free(&c->login_in);
	iscsi_kv_free(&c->login_out);
	iscsi_kv_free(&c->text_in);
	iscsi_kv_free(&c->text_out);
	free(c->data_own);
	free(c->ring);
	free(c);
	iscsi_server_conn_gone(s);
}
