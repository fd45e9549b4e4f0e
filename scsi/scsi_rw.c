/*
 * scsi_rw: the SBC-3 commands that move blocks.  Every byte goes through
 * bdev_submit() on the worker pool; the loop thread only decodes, checks
 * and continues.  READ lands straight in the task's data-in tail and WRITE
 * hands the transport's data-out vectors to the pool as they are, so the
 * fast path copies nothing and allocates once.
 *
 * COMPARE AND WRITE, ORWRITE and WRITE ATOMIC are "exclusive": each waits
 * for the writes before it, runs alone, and holds the writes after it
 * (SBC-3 5.2: the compare and the write are one atomic operation).
 */
#include "scsi_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WSAME_CHUNK_BLOCKS 2048u /* 1 MiB of pattern per write */

static void io_done(struct bdev_req *req)
{
	struct scsi_cmd *c = req->priv;

	c->next(c);
}

void scsi_io(struct scsi_cmd *c, struct scsi_dev *d, enum bdev_op op, struct iovec *iov,
	     int iovcnt, uint64_t off, uint64_t len, bool fua, scsi_cmd_fn next)
{
	struct bdev_req *r = &c->req;

	r->op = op;
	r->dev = d->bdev;
	r->iov = iov;
	r->iovcnt = iovcnt;
	r->off = off;
	r->len = len;
	r->fua = fua;
	r->result = 0;
	r->done = io_done;
	r->priv = c;
	r->next = NULL;
	c->next = next;
	bdev_submit(d->pool, r);
}

static void excl_try(struct scsi_dev *d)
{
	struct scsi_cmd *c = d->excl_head;

	if (d->excl_active || !c || d->wr_inflight)
		return;
	d->excl_head = c->link;
	if (!d->excl_head)
		d->excl_tail = NULL;
	c->link = NULL;
	d->excl_active = true;
	c->start(c);
}

void scsi_wr_begin(struct scsi_cmd *c, scsi_cmd_fn start)
{
	struct scsi_dev *d = c->d;

	if (d->excl_head || d->excl_active) {
		c->start = start;
		c->link = NULL;
		if (d->held_tail)
			d->held_tail->link = c;
		else
			d->held_head = c;
		d->held_tail = c;
		return;
	}
	d->wr_inflight++;
	c->counted_write = true;
	start(c);
}

void scsi_wr_end(struct scsi_cmd *c)
{
	struct scsi_dev *d = c->d;

	if (!c->counted_write)
		return;
	c->counted_write = false;
	if (--d->wr_inflight == 0)
		excl_try(d);
}

void scsi_excl_begin(struct scsi_cmd *c, scsi_cmd_fn start)
{
	struct scsi_dev *d = c->d;

	c->start = start;
	c->link = NULL;
	if (d->excl_tail)
		d->excl_tail->link = c;
	else
		d->excl_head = c;
	d->excl_tail = c;
	excl_try(d);
}

void scsi_excl_end(struct scsi_cmd *c)
{
	struct scsi_dev *d = c->d;

	d->excl_active = false;
	if (d->excl_head) {
		excl_try(d);
		return;
	}
	while (d->held_head && !d->excl_head) {
		struct scsi_cmd *h = d->held_head;

		d->held_head = h->link;
		if (!d->held_head)
			d->held_tail = NULL;
		h->link = NULL;
		d->wr_inflight++;
		h->counted_write = true;
		h->start(h);
	}
}

bool scsi_write_protected(const struct scsi_dev *d)
{
	return d->ro || d->swp;
}

/* LBA and transfer length of the READ/WRITE/VERIFY family (SBC-3 5.x). */
static void decode_lba(const uint8_t *cdb, uint64_t *lba, uint64_t *n, int *len_byte)
{
	switch (cdb[0] >> 5) {
	case 0: /* 6-byte: 21-bit LBA, 0 blocks means 256 (SBC-3 5.11) */
		*lba = get_be24(cdb + 1) & 0x1fffff;
		*n = cdb[4] ? cdb[4] : 256;
		*len_byte = 4;
		break;
	case 1: /* 10 */
	case 2:
		*lba = get_be32(cdb + 2);
		*n = get_be16(cdb + 7);
		*len_byte = 7;
		break;
	case 5: /* 12 */
		*lba = get_be32(cdb + 2);
		*n = get_be32(cdb + 6);
		*len_byte = 6;
		break;
	default: /* 16 */
		*lba = get_be64(cdb + 2);
		*n = get_be32(cdb + 10);
		*len_byte = 10;
		break;
	}
}

/* SBC-3 4.5: the whole range must lie on the medium. */
static bool range_bad(struct scsi_cmd *c, uint64_t lba, uint64_t n)
{
	uint64_t blocks = c->d->blocks;

	if (lba >= blocks || n > blocks - lba) {
		if (n == 0 && lba < blocks)
			return false;
		scsi_set_sense(c->t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
		return true;
	}
	return false;
}

static bool wp_bad(struct scsi_cmd *c)
{
	if (!scsi_write_protected(c->d))
		return false;
	scsi_set_sense(c->t, SCSI_SENSE_DATA_PROTECT, ASC_WRITE_PROTECTED);
	return true;
}

/* Vectors for bytes [OFF, OFF+LEN) of the data-out; -1 if it is short. */
static int out_vec(struct scsi_cmd *c, size_t off, size_t len, struct iovec **out)
{
	const struct scsi_task *t = c->t;
	struct iovec *v = c->iov;
	int n = 0, cap = 2;

	if (t->out_len < off + len)
		return -1;
	for (int i = 0; i < t->out_iovcnt && len; i++) {
		size_t l = t->out_iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		if (n == cap) {
			struct iovec *nv = malloc(sizeof(*nv) * (size_t)t->out_iovcnt);

			if (!nv)
				return -1;
			memcpy(nv, v, sizeof(*nv) * (size_t)n);
			free(c->xiov);
			c->xiov = v = nv;
			cap = t->out_iovcnt;
		}
		l -= off;
		if (l > len)
			l = len;
		v[n].iov_base = (uint8_t *)t->out_iov[i].iov_base + off;
		v[n].iov_len = l;
		n++;
		len -= l;
		off = 0;
	}
	if (len)
		return -1;
	*out = v;
	return n;
}

static void finish_err(struct scsi_cmd *c, bool reading)
{
	scsi_sense_errno(c->t, c->req.result, reading);
	scsi_cmd_done(c);
}

static void read_done(struct scsi_cmd *c)
{
	struct scsi_dev *d = c->d;

	if (c->req.result < 0) {
		finish_err(c, true);
		return;
	}
	d->stats.read_ops++;
	d->stats.read_bytes += c->nblk * SCSI_BLOCK_SIZE;
	scsi_cmd_in_len(c, (uint32_t)(c->nblk * SCSI_BLOCK_SIZE), (uint32_t)c->iov[0].iov_len);
	scsi_cmd_done(c);
}

void scsi_read(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint64_t len;
	int lb;

	decode_lba(t->cdb, &c->lba, &c->nblk, &lb);
	if (c->nblk > SCSI_LIM_XFER_BLOCKS) {
		scsi_sense_field(t, true, lb, 7);
		goto out;
	}
	if (range_bad(c, c->lba, c->nblk) || c->nblk == 0)
		goto out;
	len = c->nblk * SCSI_BLOCK_SIZE;
	/* Only what the initiator will take is read (c->in_cap). */
	c->iov[0].iov_base = c->data;
	c->iov[0].iov_len = len < c->in_cap ? len : c->in_cap;
	if (!c->iov[0].iov_len) {
		scsi_cmd_in_len(c, (uint32_t)len, 0);
		goto out;
	}
	scsi_io(c, c->d, BDEV_OP_READ, c->iov, 1, c->lba * SCSI_BLOCK_SIZE, 0, false, read_done);
	return;
out:
	scsi_cmd_done(c);
}

static void write_done(struct scsi_cmd *c)
{
	struct scsi_dev *d = c->d;

	scsi_wr_end(c);
	if (c->req.result < 0) {
		finish_err(c, false);
		return;
	}
	d->stats.write_ops++;
	d->stats.write_bytes += c->nblk * SCSI_BLOCK_SIZE;
	scsi_cmd_done(c);
}

static void write_start(struct scsi_cmd *c)
{
	struct iovec *v;
	int n = out_vec(c, 0, c->nblk * SCSI_BLOCK_SIZE, &v);

	scsi_io(c, c->d, BDEV_OP_WRITE, v, n, c->lba * SCSI_BLOCK_SIZE, 0, c->fua || !c->d->wce,
		write_done);
}

/* Shared front half of WRITE and WRITE AND VERIFY. */
static bool write_prep(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct iovec *v;
	int lb;

	decode_lba(t->cdb, &c->lba, &c->nblk, &lb);
	if (c->nblk > SCSI_LIM_XFER_BLOCKS) {
		scsi_sense_field(t, true, lb, 7);
		return false;
	}
	t->out_want = (uint32_t)(c->nblk * SCSI_BLOCK_SIZE);
	if (range_bad(c, c->lba, c->nblk) || wp_bad(c) || c->nblk == 0)
		return false;
	/* RFC 7143 11.4.5.1: with less data-out than the CDB asks for, the
	 * blocks that did arrive are written and the transport reports the
	 * overflow. */
	if (out_vec(c, 0, c->nblk * SCSI_BLOCK_SIZE, &v) < 0) {
		c->nblk = t->out_len / SCSI_BLOCK_SIZE;
		if (c->nblk == 0)
			return false;
	}
	return true;
}

void scsi_write(struct scsi_cmd *c)
{
	c->fua = c->t->cdb[0] != 0x0a && (c->t->cdb[1] & 0x08);
	if (!write_prep(c)) {
		scsi_cmd_done(c);
		return;
	}
	scsi_wr_begin(c, write_start);
}

void scsi_write_verify(struct scsi_cmd *c)
{
	/* SBC-3 5.38: the write is durable before we answer, so what we
	 * would read back is what was written. */
	c->fua = true;
	if (!write_prep(c)) {
		scsi_cmd_done(c);
		return;
	}
	scsi_wr_begin(c, write_start);
}

/* Offset of the first byte where A and B differ, or -1. */
static long first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	if (!memcmp(a, b, n))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return (long)i;
	return -1;
}

static void verify_done(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	size_t len = c->nblk * SCSI_BLOCK_SIZE;
	int bytchk = (t->cdb[1] >> 1) & 3;
	uint8_t *want = c->buf + len;

	if (c->req.result < 0) {
		finish_err(c, true);
		return;
	}
	if (bytchk == 1) {
		long at;

		scsi_cmd_copy_out(t, want, len, 0);
		at = first_diff(c->buf, want, len);
		if (at >= 0)
			scsi_sense_info(t, SCSI_SENSE_MISCOMPARE, ASC_MISCOMPARE_VERIFY, (uint64_t)at);
	} else if (bytchk == 3) {
		scsi_cmd_copy_out(t, want, SCSI_BLOCK_SIZE, 0);
		for (uint64_t b = 0; b < c->nblk; b++) {
			long at = first_diff(c->buf + b * SCSI_BLOCK_SIZE, want, SCSI_BLOCK_SIZE);

			if (at >= 0) {
				scsi_sense_info(t, SCSI_SENSE_MISCOMPARE, ASC_MISCOMPARE_VERIFY,
						b * SCSI_BLOCK_SIZE + (uint64_t)at);
				break;
			}
		}
	}
	scsi_cmd_done(c);
}

void scsi_verify(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	int bytchk = (t->cdb[1] >> 1) & 3, lb;
	size_t len;

	decode_lba(t->cdb, &c->lba, &c->nblk, &lb);
	/* SBC-3 5.29: BYTCHK 10b is reserved. */
	if (bytchk == 2) {
		scsi_sense_field(t, true, 1, 2);
		goto out;
	}
	if (c->nblk > SCSI_LIM_XFER_BLOCKS) {
		scsi_sense_field(t, true, lb, 7);
		goto out;
	}
	if (range_bad(c, c->lba, c->nblk) || c->nblk == 0)
		goto out;
	len = c->nblk * SCSI_BLOCK_SIZE;
	t->out_want = bytchk == 1 ? (uint32_t)len : bytchk == 3 ? SCSI_BLOCK_SIZE : 0;
	if ((bytchk == 1 && t->out_len < len) || (bytchk == 3 && t->out_len < SCSI_BLOCK_SIZE)) {
		scsi_sense_field(t, true, lb, 7);
		goto out;
	}
	c->buf = malloc(len * 2);
	if (!c->buf) {
		t->status = SCSI_STATUS_BUSY;
		goto out;
	}
	c->iov[0].iov_base = c->buf;
	c->iov[0].iov_len = len;
	scsi_io(c, c->d, BDEV_OP_READ, c->iov, 1, c->lba * SCSI_BLOCK_SIZE, 0, false, verify_done);
	return;
out:
	scsi_cmd_done(c);
}

static void wsame_next(struct scsi_cmd *c);

static void wsame_step_done(struct scsi_cmd *c)
{
	if (c->req.result < 0) {
		scsi_wr_end(c);
		finish_err(c, false);
		return;
	}
	wsame_next(c);
}

static void wsame_next(struct scsi_cmd *c)
{
	struct scsi_dev *d = c->d;
	uint64_t left = c->nblk - c->pos, n;

	if (!left) {
		scsi_wr_end(c);
		d->stats.write_ops++;
		d->stats.write_bytes += c->nblk * SCSI_BLOCK_SIZE;
		scsi_cmd_done(c);
		return;
	}
	if (c->stage == 1) {
		/* SBC-3 4.7.3.4: unmapped blocks read back as zeros (LBPRZ). */
		n = left;
		c->pos += n;
		scsi_io(c, d, BDEV_OP_DISCARD, NULL, 0, (c->lba + c->pos - n) * SCSI_BLOCK_SIZE,
			n * SCSI_BLOCK_SIZE, false, wsame_step_done);
		return;
	}
	n = left < WSAME_CHUNK_BLOCKS ? left : WSAME_CHUNK_BLOCKS;
	c->iov[0].iov_base = c->buf;
	c->iov[0].iov_len = n * SCSI_BLOCK_SIZE;
	c->pos += n;
	scsi_io(c, d, BDEV_OP_WRITE, c->iov, 1, (c->lba + c->pos - n) * SCSI_BLOCK_SIZE, 0,
		!d->wce, wsame_step_done);
}

void scsi_write_same(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	bool sixteen = t->cdb[0] == 0x93;
	bool unmap = t->cdb[1] & 0x08, ndob = sixteen && (t->cdb[1] & 0x01);
	int lb = sixteen ? 10 : 7;
	uint8_t pat[SCSI_BLOCK_SIZE];
	uint64_t chunk;

	c->lba = sixteen ? get_be64(t->cdb + 2) : get_be32(t->cdb + 2);
	c->nblk = sixteen ? get_be32(t->cdb + 10) : get_be16(t->cdb + 7);
	/* SBC-3 5.45: WSNZ is clear, so zero blocks means up to the end of
	 * the medium; either way no more than MAXIMUM WRITE SAME LENGTH. */
	if (c->nblk == 0) {
		if (c->lba >= c->d->blocks) {
			scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
			goto out;
		}
		c->nblk = c->d->blocks - c->lba;
	}
	if (c->nblk > SCSI_LIM_WSAME_BLOCKS) {
		scsi_sense_field(t, true, lb, 7);
		goto out;
	}
	t->out_want = ndob ? 0 : SCSI_BLOCK_SIZE;
	if (range_bad(c, c->lba, c->nblk) || wp_bad(c))
		goto out;
	if (ndob) {
		memset(pat, 0, sizeof(pat));
	} else if (t->out_len != SCSI_BLOCK_SIZE) {
		/* One logical block of data-out, exactly. */
		scsi_sense_field(t, true, lb, 7);
		goto out;
	} else {
		scsi_cmd_copy_out(t, pat, SCSI_BLOCK_SIZE, 0);
	}
	/* SBC-3 4.7.3.4.2: with UNMAP the blocks are deallocated, and with
	 * LBPRZ they then read as zeros whatever the pattern was (libiscsi's
	 * WriteSame*.UnmapUntilEnd sends 0xFF and wants zeros back). */
	if (unmap) {
		c->stage = 1;
	} else {
		chunk = c->nblk < WSAME_CHUNK_BLOCKS ? c->nblk : WSAME_CHUNK_BLOCKS;
		c->buf = malloc(chunk * SCSI_BLOCK_SIZE);
		if (!c->buf) {
			t->status = SCSI_STATUS_BUSY;
			goto out;
		}
		for (uint64_t i = 0; i < chunk; i++)
			memcpy(c->buf + i * SCSI_BLOCK_SIZE, pat, SCSI_BLOCK_SIZE);
	}
	scsi_wr_begin(c, wsame_next);
	return;
out:
	scsi_cmd_done(c);
}

/* UNMAP: c->buf holds the parameter list, c->pos the next descriptor. */
static void unmap_next(struct scsi_cmd *c)
{
	uint32_t ndesc = (uint32_t)c->nblk;

	while (c->pos < ndesc) {
		const uint8_t *p = c->buf + 8 + 16 * c->pos++;
		uint64_t lba = get_be64(p);
		uint32_t n = get_be32(p + 8);

		if (!n)
			continue;
		scsi_io(c, c->d, BDEV_OP_DISCARD, NULL, 0, lba * SCSI_BLOCK_SIZE,
			(uint64_t)n * SCSI_BLOCK_SIZE, false, unmap_next);
		return;
	}
	scsi_wr_end(c);
	if (c->req.result < 0) {
		finish_err(c, false);
		return;
	}
	scsi_cmd_done(c);
}

static void unmap_step(struct scsi_cmd *c)
{
	if (c->req.result < 0) {
		c->pos = c->nblk;
	}
	unmap_next(c);
}

void scsi_unmap(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint32_t plen = get_be16(t->cdb + 7), bdl, ndesc;
	uint8_t *p;

	t->out_want = plen;
	if (wp_bad(c) || plen == 0)
		goto out;
	/* SBC-3 5.28: shorter than the header is a length error. */
	if (plen < 8 || t->out_len < plen) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		goto out;
	}
	p = c->buf = malloc(plen);
	if (!p) {
		t->status = SCSI_STATUS_BUSY;
		goto out;
	}
	scsi_cmd_copy_out(t, p, plen, 0);
	bdl = get_be16(p + 2);
	if (bdl > plen - 8)
		bdl = (plen - 8) & ~15u;
	ndesc = bdl / 16;
	if (ndesc > SCSI_LIM_UNMAP_DESCS) {
		scsi_sense_field(t, false, 2, 7);
		goto out;
	}
	for (uint32_t i = 0; i < ndesc; i++) {
		const uint8_t *d = p + 8 + 16 * i;
		uint64_t lba = get_be64(d);
		uint32_t n = get_be32(d + 8);

		if (n > SCSI_LIM_UNMAP_BLOCKS) {
			scsi_sense_field(t, false, 8 + 16 * i + 8, 7);
			goto out;
		}
		/* SBC-3 5.28: a descriptor of zero blocks is not an error. */
		if (n && range_bad(c, lba, n))
			goto out;
	}
	c->nblk = ndesc;
	c->pos = 0;
	c->req.result = 0;
	scsi_wr_begin(c, unmap_step);
	return;
out:
	scsi_cmd_done(c);
}

static void excl_write_done(struct scsi_cmd *c)
{
	struct scsi_dev *d = c->d;

	scsi_excl_end(c);
	if (c->req.result < 0) {
		finish_err(c, false);
		return;
	}
	d->stats.write_ops++;
	d->stats.write_bytes += c->nblk * SCSI_BLOCK_SIZE;
	scsi_cmd_done(c);
}

static void excl_fail(struct scsi_cmd *c, bool reading)
{
	scsi_excl_end(c);
	finish_err(c, reading);
}

static void caw_read_done(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	size_t len = c->nblk * SCSI_BLOCK_SIZE;
	long at;

	if (c->req.result < 0) {
		excl_fail(c, true);
		return;
	}
	/* SBC-3 5.2: first half compares, second half is written. */
	scsi_cmd_copy_out(t, c->buf + len, len, 0);
	at = first_diff(c->buf, c->buf + len, len);
	if (at >= 0) {
		scsi_excl_end(c);
		scsi_sense_info(t, SCSI_SENSE_MISCOMPARE, ASC_MISCOMPARE_VERIFY, (uint64_t)at);
		scsi_cmd_done(c);
		return;
	}
	scsi_cmd_copy_out(t, c->buf, len, len);
	c->iov[0].iov_base = c->buf;
	c->iov[0].iov_len = len;
	scsi_io(c, c->d, BDEV_OP_WRITE, c->iov, 1, c->lba * SCSI_BLOCK_SIZE, 0,
		c->fua || !c->d->wce, excl_write_done);
}

static void excl_read_start(struct scsi_cmd *c)
{
	c->iov[0].iov_base = c->buf;
	c->iov[0].iov_len = c->nblk * SCSI_BLOCK_SIZE;
	scsi_io(c, c->d, BDEV_OP_READ, c->iov, 1, c->lba * SCSI_BLOCK_SIZE, 0, false, c->next);
}

void scsi_compare_and_write(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	size_t len;

	c->lba = get_be64(t->cdb + 2);
	c->nblk = t->cdb[13];
	c->fua = t->cdb[1] & 0x08;
	if (c->nblk > SCSI_LIM_CAW_BLOCKS) {
		scsi_sense_field(t, true, 13, 7);
		goto out;
	}
	len = c->nblk * SCSI_BLOCK_SIZE;
	t->out_want = (uint32_t)(2 * len);
	if (range_bad(c, c->lba, c->nblk) || wp_bad(c))
		goto out;
	/* SBC-3 5.2: the data-out is exactly the compare and the write
	 * halves; zero blocks with data (a length that wrapped) is invalid. */
	if (t->out_len != 2 * len) {
		scsi_sense_field(t, true, 13, 7);
		goto out;
	}
	if (c->nblk == 0)
		goto out;
	c->buf = malloc(2 * len);
	if (!c->buf) {
		t->status = SCSI_STATUS_BUSY;
		goto out;
	}
	c->next = caw_read_done;
	scsi_excl_begin(c, excl_read_start);
	return;
out:
	scsi_cmd_done(c);
}

static void orwrite_read_done(struct scsi_cmd *c)
{
	size_t len = c->nblk * SCSI_BLOCK_SIZE;
	uint8_t *src = c->buf + len;

	if (c->req.result < 0) {
		excl_fail(c, true);
		return;
	}
	/* SBC-3 5.5: the new data is the OR of old and data-out. */
	scsi_cmd_copy_out(c->t, src, len, 0);
	for (size_t i = 0; i < len; i++)
		c->buf[i] |= src[i];
	c->iov[0].iov_base = c->buf;
	c->iov[0].iov_len = len;
	scsi_io(c, c->d, BDEV_OP_WRITE, c->iov, 1, c->lba * SCSI_BLOCK_SIZE, 0,
		c->fua || !c->d->wce, excl_write_done);
}

void scsi_orwrite(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	size_t len;

	c->lba = get_be64(t->cdb + 2);
	c->nblk = get_be32(t->cdb + 10);
	c->fua = t->cdb[1] & 0x08;
	if (c->nblk > SCSI_LIM_XFER_BLOCKS) {
		scsi_sense_field(t, true, 10, 7);
		goto out;
	}
	len = c->nblk * SCSI_BLOCK_SIZE;
	t->out_want = (uint32_t)len;
	if (range_bad(c, c->lba, c->nblk) || wp_bad(c) || c->nblk == 0)
		goto out;
	if (t->out_len < len) {
		scsi_sense_field(t, true, 10, 7);
		goto out;
	}
	c->buf = malloc(2 * len);
	if (!c->buf) {
		t->status = SCSI_STATUS_BUSY;
		goto out;
	}
	c->next = orwrite_read_done;
	scsi_excl_begin(c, excl_read_start);
	return;
out:
	scsi_cmd_done(c);
}

static void atomic_start(struct scsi_cmd *c)
{
	struct iovec *v;
	int n = out_vec(c, 0, c->nblk * SCSI_BLOCK_SIZE, &v);

	scsi_io(c, c->d, BDEV_OP_WRITE, v, n, c->lba * SCSI_BLOCK_SIZE, 0, c->fua || !c->d->wce,
		excl_write_done);
}

void scsi_write_atomic(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct iovec *v;

	c->lba = get_be64(t->cdb + 2);
	c->nblk = get_be16(t->cdb + 12);
	c->fua = t->cdb[1] & 0x08;
	/* SBC-4 5.48: no longer than MAXIMUM ATOMIC TRANSFER LENGTH. */
	if (c->nblk > SCSI_LIM_ATOMIC_BLOCKS) {
		scsi_sense_field(t, true, 12, 7);
		goto out;
	}
	t->out_want = (uint32_t)(c->nblk * SCSI_BLOCK_SIZE);
	if (range_bad(c, c->lba, c->nblk) || wp_bad(c) || c->nblk == 0)
		goto out;
	if (out_vec(c, 0, c->nblk * SCSI_BLOCK_SIZE, &v) < 0) {
		scsi_sense_field(t, true, 12, 7);
		goto out;
	}
	scsi_excl_begin(c, atomic_start);
	return;
out:
	scsi_cmd_done(c);
}

void scsi_get_lba_status(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	uint64_t lba = get_be64(t->cdb + 2);
	uint32_t alloc = get_be32(t->cdb + 10), n = 8, max;
	uint8_t b[8 + 16 * 64];

	/* SBC-3 5.4: the starting LBA must exist. */
	if (lba >= d->blocks) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
		goto out;
	}
	/* We report 4 KiB physical blocks; a start inside one is answered
	 * from the next physical boundary, which is what libiscsi's
	 * GetLBAStatus.UnmapSingle expects (it asks at i + 1 after unmapping
	 * [0, i) and wants the descriptor of i + 8).  At the last physical
	 * block the LBA itself is used. */
	if (lba & ((1u << SCSI_LBPPB_EXP) - 1)) {
		uint64_t up = (lba | ((1u << SCSI_LBPPB_EXP) - 1)) + 1;

		if (up < d->blocks)
			lba = up;
	}
	memset(b, 0, sizeof(b));
	max = alloc > 8 ? (alloc - 8) / 16 : 0;
	if (max < 1)
		max = 1;
	if (max > 64)
		max = 64;
	while (lba < d->blocks && (n - 8) / 16 < max) {
		uint64_t len = 0, blocks;
		bool mapped = false;
		int r = bdev_map_status(d->bdev, lba * SCSI_BLOCK_SIZE, &len, &mapped);

		if (r < 0) {
			c->req.result = r;
			finish_err(c, true);
			return;
		}
		blocks = len / SCSI_BLOCK_SIZE;
		if (!blocks)
			blocks = 1;
		if (blocks > d->blocks - lba)
			blocks = d->blocks - lba;
		if (blocks > 0xffffffffu)
			blocks = 0xffffffffu;
		put_be64(b + n, lba);
		put_be32(b + n + 8, (uint32_t)blocks);
		b[n + 12] = mapped ? 0x00 : 0x01; /* mapped / deallocated */
		n += 16;
		lba += blocks;
	}
	put_be32(b, n - 4);
	scsi_cmd_reply(c, b, n < alloc ? n : alloc);
out:
	scsi_cmd_done(c);
}

void scsi_prefetch(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	bool sixteen = t->cdb[0] == 0x90;
	uint64_t lba = sixteen ? get_be64(t->cdb + 2) : get_be32(t->cdb + 2);
	uint64_t n = sixteen ? get_be32(t->cdb + 10) : get_be16(t->cdb + 7);

	/* SBC-3 5.6: a hint; the page cache does the caching. */
	range_bad(c, lba, n);
	scsi_cmd_done(c);
}

static void sync_done(struct scsi_cmd *c)
{
	if (c->req.result < 0) {
		finish_err(c, false);
		return;
	}
	scsi_cmd_done(c);
}

void scsi_sync_cache(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	bool sixteen = t->cdb[0] == 0x91;
	uint64_t lba = sixteen ? get_be64(t->cdb + 2) : get_be32(t->cdb + 2);
	uint64_t n = sixteen ? get_be32(t->cdb + 10) : get_be16(t->cdb + 7);

	if (range_bad(c, lba, n)) {
		scsi_cmd_done(c);
		return;
	}
	if (c->d->ro) {
		scsi_cmd_done(c);
		return;
	}
	scsi_io(c, c->d, BDEV_OP_FLUSH, NULL, 0, 0, 0, false, sync_done);
}
