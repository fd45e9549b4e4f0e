/*
 * scsi_mode: MODE SENSE and MODE SELECT (SPC-4 6.9-6.12) over four pages:
 * read-write error recovery, caching (WCE), control (D_SENSE, SWP) and
 * informational exceptions.  Nothing is saveable; a reset brings back the
 * defaults (scsi_dev.c).  The WP bit reports a read-only stack or SWP.
 */
#include "scsi_int.h"

#include <stdlib.h>
#include <string.h>

enum { PC_CURRENT = 0, PC_CHANGEABLE = 1, PC_DEFAULT = 2, PC_SAVED = 3 };

struct mode_state {
	bool wce, swp, d_sense;
};

/* Build page CODE for PC into P; returns its length, 0 if unknown. */
static uint32_t mode_page(uint8_t code, int pc, const struct mode_state *s, uint8_t *p)
{
	bool ch = pc == PC_CHANGEABLE;

	switch (code) {
	case 0x01: /* SBC-3 6.5.8 read-write error recovery: AWRE, ARRE */
		memset(p, 0, 12);
		p[0] = 0x01;
		p[1] = 0x0a;
		if (!ch)
			p[2] = 0xc0;
		return 12;
	case 0x08: /* SBC-3 6.5.5 caching */
		memset(p, 0, 20);
		p[0] = 0x08;
		p[1] = 0x12;
		p[2] = ch ? 0x04 : (s->wce ? 0x04 : 0);
		return 20;
	case 0x0a: /* SPC-4 7.5.8 control: unrestricted reordering, no
		    * saved logs (GLTSD), no busy timeout limit */
		memset(p, 0, 12);
		p[0] = 0x0a;
		p[1] = 0x0a;
		if (ch) {
			p[2] = 0x04;
			p[4] = 0x08;
			return 12;
		}
		p[2] = 0x02 | (s->d_sense ? 0x04 : 0);
		p[3] = 0x10;
		p[4] = s->swp ? 0x08 : 0;
		put_be16(p + 8, 0xffff);
		return 12;
	case 0x1c: /* SPC-4 7.5.12 informational exceptions: disabled */
		memset(p, 0, 12);
		p[0] = 0x1c;
		p[1] = 0x0a;
		if (!ch)
			p[2] = 0x08;
		return 12;
	default:
		return 0;
	}
}

static const uint8_t all_pages[] = { 0x01, 0x08, 0x0a, 0x1c };

static void mode_sense(struct scsi_cmd *c, bool ten)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	const uint8_t *cdb = t->cdb;
	bool dbd = cdb[1] & 0x08, llba = ten && (cdb[1] & 0x10);
	int pc = cdb[2] >> 6;
	uint8_t page = cdb[2] & 0x3f, sub = cdb[3];
	uint32_t alloc = ten ? get_be16(cdb + 7) : cdb[4];
	uint32_t hdr = ten ? 8 : 4, n, bdl = 0;
	struct mode_state def = { .wce = true }, cur = { d->wce, d->swp, d->d_sense };
	const struct mode_state *s = pc == PC_DEFAULT ? &def : &cur;
	uint8_t b[256];

	if (pc == PC_SAVED) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_SAVING_NOT_SUPPORTED);
		goto out;
	}
	memset(b, 0, sizeof(b));
	n = hdr;
	if (!dbd) {
		bdl = llba ? 16 : 8;
		if (llba) {
			put_be64(b + n, d->blocks);
			put_be32(b + n + 12, SCSI_BLOCK_SIZE);
		} else {
			put_be32(b + n, d->blocks > 0xffffffffu ? 0xffffffffu : (uint32_t)d->blocks);
			put_be32(b + n + 4, SCSI_BLOCK_SIZE);
		}
		n += bdl;
	}
	if (page == 0x3f) {
		/* No subpages: 00h and FFh both mean every page. */
		if (sub != 0x00 && sub != 0xff) {
			scsi_sense_field(t, true, 3, 7);
			goto out;
		}
		for (size_t i = 0; i < sizeof(all_pages); i++)
			n += mode_page(all_pages[i], pc, s, b + n);
	} else {
		uint32_t l = mode_page(page, pc, s, b + n);

		if (!l) {
			scsi_sense_field(t, true, 2, 5);
			goto out;
		}
		if (sub != 0) {
			scsi_sense_field(t, true, 3, 7);
			goto out;
		}
		n += l;
	}
	/* SPC-4 7.5.4: device-specific parameter, WP and DPOFUA. */
	if (ten) {
		put_be16(b, (uint16_t)(n - 2));
		b[3] = (d->ro || d->swp ? 0x80 : 0) | 0x10;
		b[4] = llba ? 0x01 : 0;
		put_be16(b + 6, (uint16_t)bdl);
	} else {
		b[0] = (uint8_t)(n - 1);
		b[2] = (d->ro || d->swp ? 0x80 : 0) | 0x10;
		b[3] = (uint8_t)bdl;
	}
	scsi_cmd_reply(c, b, n < alloc ? n : alloc);
out:
	scsi_cmd_done(c);
}

void scsi_mode_sense6(struct scsi_cmd *c)
{
	mode_sense(c, false);
}

void scsi_mode_sense10(struct scsi_cmd *c)
{
	mode_sense(c, true);
}

static void mode_select(struct scsi_cmd *c, bool ten)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	const uint8_t *cdb = t->cdb;
	uint32_t plen = ten ? get_be16(cdb + 7) : cdb[4];
	uint32_t hdr = ten ? 8 : 4, bdl, off;
	struct mode_state cur = { d->wce, d->swp, d->d_sense }, next = cur;
	uint8_t *p;

	t->out_want = plen;
	if (cdb[1] & 0x01) { /* SP: nothing is saveable */
		scsi_sense_field(t, true, 1, 0);
		goto out;
	}
	if (plen == 0)
		goto out;
	if (!(cdb[1] & 0x10)) { /* only the SPC page format */
		scsi_sense_field(t, true, 1, 4);
		goto out;
	}
	if (plen < hdr || t->out_len < plen) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		goto out;
	}
	p = c->buf = malloc(plen);
	if (!p) {
		t->status = SCSI_STATUS_BUSY;
		goto out;
	}
	scsi_cmd_copy_out(t, p, plen, 0);
	bdl = ten ? get_be16(p + 6) : p[3];
	if (hdr + bdl > plen) {
		scsi_sense_field(t, false, ten ? 6 : 3, 7);
		goto out;
	}
	if (bdl) {
		/* SPC-4 7.5.5: the block length must stay 512. */
		bool llba = ten && (p[4] & 0x01);
		uint32_t want = llba ? 16 : 8, blen;

		if (bdl != want) {
			scsi_sense_field(t, false, ten ? 6 : 3, 7);
			goto out;
		}
		blen = llba ? get_be32(p + hdr + 12) : get_be24(p + hdr + 5);
		if (blen != SCSI_BLOCK_SIZE) {
			scsi_sense_field(t, false, hdr + (llba ? 12 : 5), 7);
			goto out;
		}
	}
	for (off = hdr + bdl; off < plen;) {
		uint8_t code = p[off] & 0x3f, cur_p[32], ch_p[32];
		uint32_t l;

		if (off + 2 > plen || (p[off] & 0x40)) {
			scsi_sense_field(t, false, off, 6);
			goto out;
		}
		l = mode_page(code, PC_CURRENT, &cur, cur_p);
		if (!l) {
			scsi_sense_field(t, false, off, 5);
			goto out;
		}
		if (p[off + 1] != l - 2) {
			scsi_sense_field(t, false, off + 1, 7);
			goto out;
		}
		if (off + l > plen) {
			scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
			goto out;
		}
		mode_page(code, PC_CHANGEABLE, &cur, ch_p);
		/* SPC-4 6.9: a changed bit that is not changeable is an error
		 * (the PS bit is reserved here). */
		for (uint32_t i = 2; i < l; i++) {
			uint8_t bad = (p[off + i] ^ cur_p[i]) & ~ch_p[i];

			if (bad) {
				scsi_sense_field(t, false, off + i, 31 - __builtin_clz(bad));
				goto out;
			}
		}
		if (code == 0x08)
			next.wce = p[off + 2] & 0x04;
		if (code == 0x0a) {
			next.d_sense = p[off + 2] & 0x04;
			next.swp = p[off + 4] & 0x08;
		}
		off += l;
	}
	if (next.wce != cur.wce || next.swp != cur.swp || next.d_sense != cur.d_sense) {
		d->wce = next.wce;
		d->swp = next.swp;
		d->d_sense = next.d_sense;
		/* SPC-4 7.5.1: other nexuses learn of the change. */
		scsi_ua_set_others(d, t->itn, UA_MODE_CHANGED);
	}
out:
	scsi_cmd_done(c);
}

void scsi_mode_select6(struct scsi_cmd *c)
{
	mode_select(c, false);
}

void scsi_mode_select10(struct scsi_cmd *c)
{
	mode_select(c, true);
}
