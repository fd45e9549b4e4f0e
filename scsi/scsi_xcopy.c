/*
 * scsi_xcopy: EXTENDED COPY (LID1, SPC-4 6.4) for block-to-block segments
 * within the logical unit the command addressed, named by its NAA
 * designator, and RECEIVE COPY RESULTS (SPC-4 6.22).  The copy runs chunk by
 * chunk through the worker pool: read from the source, write to the
 * destination.  It must never reach an LU the I_T nexus could not address
 * itself: that LU's ACL, CHAP and reservations were checked for this
 * nexus only (see xc_cscd).
 */
#include "scsi_int.h"

#include <stdlib.h>
#include <string.h>

#define XC_MAX_CSCD 8u
#define XC_MAX_SEGS 64u
#define XC_CSCD_LEN 32u
#define XC_SEG_LEN 28u
#define XC_CHUNK_BLOCKS 2048u

struct xc_seg {
	struct scsi_dev *src, *dst;
	uint64_t src_lba, dst_lba;
	uint32_t nblk;
};

struct xc_ctx {
	struct xc_seg seg[XC_MAX_SEGS];
	uint32_t nseg, cur;
	uint32_t done_in_seg;
	uint32_t chunk;
	uint64_t blocks_done;
	uint8_t list_id;
	bool record;
};

static void xc_record(struct scsi_cmd *c, uint8_t status)
{
	struct xc_ctx *x = c->ctx;
	struct scsi_itn *itn = c->t->itn;
	struct scsi_xcopy_result *r = &itn->xcopy[x->list_id % 4];

	if (!x->record)
		return;
	r->valid = true;
	r->list_id = x->list_id;
	r->status = status;
	r->segments = (uint16_t)x->cur;
	r->blocks = (uint32_t)x->blocks_done;
}

static void xc_step(struct scsi_cmd *c);

static void xc_write_done(struct scsi_cmd *c)
{
	struct xc_ctx *x = c->ctx;

	if (c->req.result < 0) {
		xc_record(c, 0x02);
		scsi_set_sense(c->t, SCSI_SENSE_COPY_ABORTED, ASC_WRITE_ERROR);
		scsi_cmd_done(c);
		return;
	}
	x->done_in_seg += x->chunk;
	x->blocks_done += x->chunk;
	x->seg[x->cur].dst->stats.write_ops++;
	x->seg[x->cur].dst->stats.write_bytes += (uint64_t)x->chunk * SCSI_BLOCK_SIZE;
	if (x->done_in_seg == x->seg[x->cur].nblk) {
		x->cur++;
		x->done_in_seg = 0;
	}
	xc_step(c);
}

static void xc_read_done(struct scsi_cmd *c)
{
	struct xc_ctx *x = c->ctx;
	struct xc_seg *s = &x->seg[x->cur];

	if (c->req.result < 0) {
		xc_record(c, 0x02);
		scsi_set_sense(c->t, SCSI_SENSE_COPY_ABORTED, ASC_UNRECOVERED_READ_ERROR);
		scsi_cmd_done(c);
		return;
	}
	scsi_io(c, s->dst, BDEV_OP_WRITE, c->iov, 1,
		(s->dst_lba + x->done_in_seg) * SCSI_BLOCK_SIZE, 0, !s->dst->wce, xc_write_done);
}

static void xc_step(struct scsi_cmd *c)
{
	struct xc_ctx *x = c->ctx;
	struct xc_seg *s;
	uint32_t left;

	while (x->cur < x->nseg && x->seg[x->cur].nblk == 0)
		x->cur++;
	if (x->cur == x->nseg) {
		xc_record(c, 0x01);
		scsi_cmd_done(c);
		return;
	}
	s = &x->seg[x->cur];
	left = s->nblk - x->done_in_seg;
	x->chunk = left < XC_CHUNK_BLOCKS ? left : XC_CHUNK_BLOCKS;
	c->iov[0].iov_base = c->buf;
	c->iov[0].iov_len = (size_t)x->chunk * SCSI_BLOCK_SIZE;
	scsi_io(c, s->src, BDEV_OP_READ, c->iov, 1, (s->src_lba + x->done_in_seg) * SCSI_BLOCK_SIZE,
		0, false, xc_read_done);
}

/*
 * SPC-4 6.4.5.1: identification descriptor (E4h) naming one of our LUs.
 * Each target has one LU, and an I_T nexus was admitted (ACL, CHAP) to that
 * target only, so the only copy target it may name is the LU it addressed;
 * its reservations were checked by scsi_dispatch() for this command.  Any
 * other designator, another target's included, gets the answer of one that
 * exists nowhere (SPC-4 6.4.5.1: COPY ABORTED, UNREACHABLE COPY TARGET), so
 * the answer tells nothing about which target names exist.
 */
static int xc_cscd(struct scsi_cmd *c, const uint8_t *p, uint32_t off, struct scsi_dev **out)
{
	struct scsi_task *t = c->t;
	uint8_t dlen = p[7];

	if (p[0] != 0xe4) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_UNSUPPORTED_TARGET_DESC);
		return -1;
	}
	if ((p[1] & 0x1f) != 0x00) { /* peripheral device type: block */
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_UNSUPPORTED_TARGET_DESC);
		return -1;
	}
	if ((p[5] & 0x0f) != 0x03 || dlen != 8 || (p[5] & 0x30) != 0) {
		/* We are found by the LU's NAA designator only. */
		scsi_sense_field(t, false, off + 5, 3);
		return -1;
	}
	if (get_be24(p + 29) != SCSI_BLOCK_SIZE) {
		scsi_sense_field(t, false, off + 29, 7);
		return -1;
	}
	if (get_be64(p + 8) != c->d->info.naa) {
		scsi_set_sense(t, SCSI_SENSE_COPY_ABORTED, ASC_UNREACHABLE_COPY_TARGET);
		return -1;
	}
	*out = c->d;
	return 0;
}

void scsi_xcopy(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint32_t plen = get_be32(t->cdb + 10), cscd_len, seg_len, inl, ncscd, off;
	struct scsi_dev *cscd[XC_MAX_CSCD];
	struct xc_ctx *x;
	uint8_t *p;

	t->out_want = plen;
	if (plen == 0)
		goto out;
	if (plen < 16 || t->out_len < plen) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		goto out;
	}
	p = c->buf = malloc(plen);
	x = c->ctx = calloc(1, sizeof(*x));
	if (!p || !x) {
		t->status = SCSI_STATUS_BUSY;
		goto out;
	}
	c->ctx_free = free;
	scsi_cmd_copy_out(t, p, plen, 0);
	cscd_len = get_be16(p + 2);
	seg_len = get_be32(p + 8);
	inl = get_be32(p + 12);
	/* SPC-4 6.4.3: LIST ID USAGE 11b means no list identifier. */
	x->list_id = p[0];
	x->record = ((p[1] >> 3) & 3) != 3;
	if (((p[1] >> 3) & 3) == 3 && p[0] != 0) {
		scsi_sense_field(t, false, 0, 7);
		goto out;
	}
	if (inl) {
		scsi_sense_field(t, false, 12, 7);
		goto out;
	}
	/* SPC-4 6.4.3: past MAXIMUM DESCRIPTOR LIST LENGTH, or past the data. */
	if ((uint64_t)16 + cscd_len + seg_len > plen ||
	    (uint64_t)cscd_len + seg_len > XC_MAX_CSCD * XC_CSCD_LEN + XC_MAX_SEGS * XC_SEG_LEN) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		goto out;
	}
	if (cscd_len % XC_CSCD_LEN) {
		scsi_sense_field(t, false, 2, 7);
		goto out;
	}
	ncscd = cscd_len / XC_CSCD_LEN;
	if (ncscd > XC_MAX_CSCD) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_TOO_MANY_TARGET_DESC);
		goto out;
	}
	for (uint32_t i = 0; i < ncscd; i++)
		if (xc_cscd(c, p + 16 + i * XC_CSCD_LEN, 16 + i * XC_CSCD_LEN, &cscd[i]) < 0)
			goto out;
	for (off = 16 + cscd_len; off < 16 + cscd_len + seg_len;) {
		const uint8_t *s = p + off;
		struct xc_seg *g;
		uint16_t si, di;

		if (off + 4 > 16 + cscd_len + seg_len) {
			scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
			goto out;
		}
		if (s[0] != 0x02) {
			scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_UNSUPPORTED_SEGMENT_DESC);
			goto out;
		}
		if (get_be16(s + 2) != XC_SEG_LEN - 4) {
			scsi_sense_field(t, false, off + 2, 7);
			goto out;
		}
		if (off + XC_SEG_LEN > 16 + cscd_len + seg_len) {
			scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
			goto out;
		}
		if (x->nseg == XC_MAX_SEGS) {
			scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_TOO_MANY_SEGMENT_DESC);
			goto out;
		}
		si = get_be16(s + 4);
		di = get_be16(s + 6);
		/* SPC-4 6.4.6.1: a segment that cannot be processed aborts
		 * the copy. */
		if (si >= ncscd || di >= ncscd) {
			scsi_set_sense(t, SCSI_SENSE_COPY_ABORTED, ASC_UNREACHABLE_COPY_TARGET);
			goto out;
		}
		g = &x->seg[x->nseg++];
		g->src = cscd[si];
		g->dst = cscd[di];
		g->nblk = get_be16(s + 10);
		g->src_lba = get_be64(s + 12);
		g->dst_lba = get_be64(s + 20);
		/* SPC-4 6.4.6.5: DC=0 counts blocks of the source. */
		if (g->src_lba >= g->src->blocks || g->nblk > g->src->blocks - g->src_lba ||
		    g->dst_lba >= g->dst->blocks || g->nblk > g->dst->blocks - g->dst_lba) {
			/* libiscsi accepts only NO ADDITIONAL SENSE here; the
			 * copy is aborted before any block moved. */
			scsi_set_sense(t, SCSI_SENSE_COPY_ABORTED, ASC_NONE);
			goto out;
		}
		if (scsi_write_protected(g->dst)) {
			scsi_set_sense(t, SCSI_SENSE_DATA_PROTECT, ASC_WRITE_PROTECTED);
			goto out;
		}
		off += XC_SEG_LEN;
	}
	free(c->buf);
	c->buf = malloc((size_t)XC_CHUNK_BLOCKS * SCSI_BLOCK_SIZE);
	if (!c->buf) {
		t->status = SCSI_STATUS_BUSY;
		goto out;
	}
	xc_step(c);
	return;
out:
	scsi_cmd_done(c);
}

void scsi_receive_copy_results(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint32_t alloc = get_be32(t->cdb + 10), n;
	uint8_t b[64];

	memset(b, 0, sizeof(b));
	if ((t->cdb[1] & 0x1f) == 0x03) {
		/* SPC-4 6.22.4 OPERATING PARAMETERS */
		put_be16(b + 8, XC_MAX_CSCD);
		put_be16(b + 10, XC_MAX_SEGS);
		put_be32(b + 12, XC_MAX_CSCD * XC_CSCD_LEN + XC_MAX_SEGS * XC_SEG_LEN);
		put_be32(b + 16, 0xffffu * SCSI_BLOCK_SIZE);
		put_be16(b + 34, 1);
		b[36] = 1;
		b[37] = 9; /* data segment granularity: 2^9 */
		b[43] = 2;
		b[44] = 0x02;
		b[45] = 0xe4;
		n = 46;
		put_be32(b, n - 4);
	} else {
		/* SPC-4 6.22.2 COPY STATUS */
		const struct scsi_xcopy_result *r = &t->itn->xcopy[t->cdb[2] % 4];
		uint64_t bytes;

		if (!r->valid || r->list_id != t->cdb[2]) {
			scsi_sense_field(t, true, 2, 7);
			scsi_cmd_done(c);
			return;
		}
		bytes = (uint64_t)r->blocks * SCSI_BLOCK_SIZE;
		put_be32(b, 8);
		b[4] = r->status;
		put_be16(b + 5, r->segments);
		if (bytes > 0xffffffffu) {
			b[7] = 0x01; /* KiB */
			put_be32(b + 8, (uint32_t)(bytes >> 10));
		} else {
			put_be32(b + 8, (uint32_t)bytes);
		}
		n = 12;
	}
	scsi_cmd_reply(c, b, n < alloc ? n : alloc);
	scsi_cmd_done(c);
}
