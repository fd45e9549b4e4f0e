/*
 * scsi_pr: reservations.  SPC-2 RESERVE/RELEASE(6/10) belong to one I_T
 * nexus and die with it; persistent reservations (SPC-4 5.13) belong to
 * registered initiator port names and survive nexus loss and resets (not a
 * restart: we do not offer APTPL).  RESERVE/RELEASE next to persistent
 * reservations follow the CRH=1 rules of SPC-4 5.13.3.
 */
#include "scsi_int.h"

#include <stdlib.h>
#include <string.h>

/* SPC-4 6.15.4: REGISTER AND MOVE parameter list header, and the smallest
 * iSCSI TransportID (SPC-4 7.6.4.6: 4 bytes + a name padded to 20). */
#define PR_OUT_HDR 24u
#define PR_TID_MIN 24u
/*
 * SPC-4 5.13.7: registrations belong to initiator port names and persist
 * across I_T nexus loss, so any initiator could otherwise grow the list
 * without bound by logging in under new ISIDs.  Past this many per LU a new
 * registration gets INSUFFICIENT REGISTRATION RESOURCES (SPC-4 6.15.1);
 * existing registrants can still change or drop their keys.
 */
#define PR_MAX_REGS 256u

enum {
	PR_WE = 1,
	PR_EA = 3,
	PR_WE_RO = 5,
	PR_EA_RO = 6,
	PR_WE_AR = 7,
	PR_EA_AR = 8,
};

static bool type_valid(uint8_t type)
{
	return type == PR_WE || type == PR_EA || type == PR_WE_RO || type == PR_EA_RO ||
	       type == PR_WE_AR || type == PR_EA_AR;
}

static bool type_all_reg(uint8_t type)
{
	return type == PR_WE_AR || type == PR_EA_AR;
}

static bool type_reg_only(uint8_t type)
{
	return type == PR_WE_RO || type == PR_EA_RO || type_all_reg(type);
}

static struct scsi_pr_reg *reg_find(struct scsi_dev *d, const char *port)
{
	for (struct scsi_pr_reg *r = d->regs; r; r = r->next)
		if (!strcmp(r->port, port))
			return r;
	return NULL;
}

/* SPC-4 5.13.10: all registrants hold an all-registrants reservation. */
static bool is_holder(struct scsi_dev *d, struct scsi_pr_reg *r)
{
	if (!d->pr_holder || !r)
		return false;
	return type_all_reg(d->pr_type) || d->pr_holder == r;
}

static void reg_remove(struct scsi_dev *d, struct scsi_pr_reg *r)
{
	for (struct scsi_pr_reg **p = &d->regs; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	if (d->pr_holder == r) {
		/* SPC-4 5.13.11.2.3: an all-registrants reservation lasts while
		 * anyone is registered; others end with their holder, and the
		 * registrants of a registrants-only one are told. */
		if (type_all_reg(d->pr_type) && d->regs) {
			d->pr_holder = d->regs;
		} else {
			if (type_reg_only(d->pr_type))
				for (struct scsi_pr_reg *o = d->regs; o; o = o->next)
					scsi_ua_set_port(d, o->port, UA_RSV_RELEASED);
			d->pr_holder = NULL;
		}
	}
	free(r);
}

void scsi_pr_free(struct scsi_dev *d)
{
	while (d->regs) {
		struct scsi_pr_reg *r = d->regs;

		d->regs = r->next;
		free(r);
	}
	d->pr_holder = NULL;
}

bool scsi_pr_conflict(struct scsi_dev *d, struct scsi_itn *itn, const struct scsi_op *op,
		      struct scsi_task *t)
{
	struct scsi_pr_reg *r;
	bool conflict;

	if (!d->pr_holder || op->pr_class == PR_ALLOW || op->pr_class == PR_SELF)
		return false;
	r = reg_find(d, itn->port);
	if (is_holder(d, r))
		return false;
	/* SPC-4 5.13.1 tables 44-45. */
	switch (d->pr_type) {
	case PR_WE:
		conflict = op->pr_class == PR_WRITE;
		break;
	case PR_WE_RO:
	case PR_WE_AR:
		conflict = !r && op->pr_class == PR_WRITE;
		break;
	case PR_EA_RO:
	case PR_EA_AR:
		conflict = !r;
		break;
	default:
		conflict = true;
		break;
	}
	if (conflict)
		t->status = SCSI_STATUS_RESERVATION_CONFLICT;
	return conflict;
}

void scsi_reserve(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;

	if (d->pr_holder) {
		if (!is_holder(d, reg_find(d, t->itn->port)))
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
	} else if (d->rsv6 && d->rsv6 != t->itn) {
		t->status = SCSI_STATUS_RESERVATION_CONFLICT;
	} else {
		d->rsv6 = t->itn;
	}
	scsi_cmd_done(c);
}

void scsi_release(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;

	if (d->pr_holder) {
		if (!is_holder(d, reg_find(d, t->itn->port)))
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
	} else if (d->rsv6 == t->itn) {
		/* SPC-2 7.17: releasing someone else's reservation is a no-op. */
		d->rsv6 = NULL;
	}
	scsi_cmd_done(c);
}

/* SPC-4 7.6.4.6: iSCSI TransportID, format 01b when the port name carries
 * ",i,0x<ISID>", else 00b.  Returns the length (multiple of 4). */
static uint32_t transport_id(uint8_t *p, const char *port)
{
	size_t n = strlen(port) + 1;
	uint32_t len = (uint32_t)((n + 3) & ~3u);

	if (len < 20)
		len = 20;
	if (p) {
		memset(p, 0, 4 + len);
		p[0] = (strstr(port, ",i,0x") ? 0x40 : 0x00) | 0x05;
		put_be16(p + 2, (uint16_t)len);
		memcpy(p + 4, port, n);
	}
	return 4 + len;
}

static void pr_in_reply(struct scsi_cmd *c, uint8_t *buf, uint32_t len)
{
	uint32_t alloc = get_be16(c->t->cdb + 7);

	scsi_cmd_reply(c, buf, len < alloc ? len : alloc);
}

void scsi_pr_in(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	uint32_t alloc = get_be16(t->cdb + 7);
	uint32_t need = 8, n = 8;
	uint8_t *buf;

	for (struct scsi_pr_reg *r = d->regs; r; r = r->next)
		need += 24 + transport_id(NULL, r->port);
	if (need < 32)
		need = 32;
	buf = calloc(1, need);
	if (!buf) {
		t->status = SCSI_STATUS_BUSY;
		scsi_cmd_done(c);
		return;
	}
	put_be32(buf, d->pr_gen);
	switch (t->cdb[1] & 0x1f) {
	case 0x00: /* SPC-4 6.13.2 READ KEYS */
		for (struct scsi_pr_reg *r = d->regs; r; r = r->next, n += 8)
			put_be64(buf + n, r->key);
		put_be32(buf + 4, n - 8);
		break;
	case 0x01: /* SPC-4 6.13.3 READ RESERVATION */
		if (d->pr_holder) {
			/* An all-registrants reservation reports key 0. */
			put_be64(buf + 8, type_all_reg(d->pr_type) ? 0 : d->pr_holder->key);
			buf[21] = d->pr_type & 0x0f;
			n = 24;
		}
		put_be32(buf + 4, n - 8);
		break;
	case 0x02: /* SPC-4 6.13.4 REPORT CAPABILITIES: CRH, ATP_C, TMV,
		    * ALLOW COMMANDS 001b, and every type. */
		memset(buf, 0, 8);
		put_be16(buf, 8);
		buf[2] = 0x10 | 0x04;
		buf[3] = 0x80 | 0x10;
		buf[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
		buf[5] = 0x01;
		n = 8;
		break;
	case 0x03: /* SPC-4 6.13.5 READ FULL STATUS */
		for (struct scsi_pr_reg *r = d->regs; r; r = r->next) {
			uint8_t *p = buf + n;
			uint32_t tl = transport_id(p + 24, r->port);

			put_be64(p, r->key);
			p[12] = 0x02; /* ALL_TG_PT: we have one target port */
			if (is_holder(d, r)) {
				p[12] |= 0x01;
				p[13] = d->pr_type & 0x0f;
			}
			put_be16(p + 18, d->info.rel_port_id);
			put_be32(p + 20, tl);
			n += 24 + tl;
		}
		put_be32(buf + 4, n - 8);
		break;
	default:
		free(buf);
		scsi_sense_field(t, true, 1, 4);
		scsi_cmd_done(c);
		return;
	}
	(void)alloc;
	pr_in_reply(c, buf, n);
	free(buf);
	scsi_cmd_done(c);
}

/* NULL when out of memory or at PR_MAX_REGS. */
static struct scsi_pr_reg *reg_add(struct scsi_dev *d, const char *port, uint64_t key)
{
	size_t n = strlen(port);
	struct scsi_pr_reg *r, **p;
	uint32_t count = 0;

	/* Keep registration order for READ KEYS. */
	for (p = &d->regs; *p; p = &(*p)->next)
		count++;
	if (count >= PR_MAX_REGS)
		return NULL;
	r = calloc(1, sizeof(*r) + n + 1);
	if (!r)
		return NULL;
	memcpy(r->port, port, n + 1);
	r->key = key;
	*p = r;
	return r;
}

/* Remove every registration with KEY except KEEP, telling each port. */
static int preempt_key(struct scsi_dev *d, uint64_t key, struct scsi_pr_reg *keep)
{
	int n = 0;
	struct scsi_pr_reg *r = d->regs;

	while (r) {
		struct scsi_pr_reg *nx = r->next;

		if (r != keep && (r->key == key)) {
			scsi_ua_set_port(d, r->port, UA_REG_PREEMPTED);
			if (d->pr_holder == r)
				d->pr_holder = NULL;
			reg_remove(d, r);
			n++;
		}
		r = nx;
	}
	return n;
}

static void preempt_all_but(struct scsi_dev *d, struct scsi_pr_reg *keep)
{
	struct scsi_pr_reg *r = d->regs;

	while (r) {
		struct scsi_pr_reg *nx = r->next;

		if (r != keep) {
			scsi_ua_set_port(d, r->port, UA_REG_PREEMPTED);
			if (d->pr_holder == r)
				d->pr_holder = NULL;
			reg_remove(d, r);
		}
		r = nx;
	}
}

/* SPC-4 5.13.11.4: PREEMPT (and PREEMPT AND ABORT; aborting tasks is the
 * transport's business and ours to skip: we run nothing queued). */
static void pr_preempt(struct scsi_cmd *c, struct scsi_pr_reg *me, uint64_t sa_key,
		       uint8_t scope, uint8_t type)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;

	if (!d->pr_holder) {
		if (!sa_key) {
			scsi_sense_field(t, false, 8, 7);
			return;
		}
		if (!preempt_key(d, sa_key, NULL))
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
		else
			d->pr_gen++;
		return;
	}
	if (scope != 0) {
		scsi_sense_field(t, true, 2, 7);
		return;
	}
	if (!type_valid(type)) {
		scsi_sense_field(t, true, 2, 3);
		return;
	}
	if (type_all_reg(d->pr_type)) {
		if (sa_key == 0) {
			preempt_all_but(d, me);
			d->pr_holder = me;
			d->pr_type = type;
		} else if (!preempt_key(d, sa_key, me)) {
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
			return;
		}
		d->pr_gen++;
		return;
	}
	if (sa_key == d->pr_holder->key) {
		preempt_key(d, sa_key, me);
		d->pr_holder = me;
		d->pr_type = type;
		d->pr_gen++;
		return;
	}
	if (!sa_key) {
		scsi_sense_field(t, false, 8, 7);
		return;
	}
	if (!preempt_key(d, sa_key, me))
		t->status = SCSI_STATUS_RESERVATION_CONFLICT;
	else
		d->pr_gen++;
}

/* SPC-4 5.13.8: REGISTER AND MOVE, to the port named by a TransportID. */
static void pr_register_move(struct scsi_cmd *c, struct scsi_pr_reg *me, const uint8_t *p,
			     uint32_t plen)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	uint64_t sa_key = get_be64(p + 8);
	bool unreg = p[17] & 0x02;
	uint32_t tidlen = get_be32(p + 20);
	char port[512];
	struct scsi_pr_reg *dst;
	size_t n;

	if (p[17] & 0x01) {
		scsi_sense_field(t, false, 17, 0);
		return;
	}
	if (!d->pr_holder || !is_holder(d, me) || type_all_reg(d->pr_type)) {
		t->status = SCSI_STATUS_RESERVATION_CONFLICT;
		return;
	}
	if (!sa_key) {
		scsi_sense_field(t, false, 8, 7);
		return;
	}
	/* SPC-4 6.15.4: the TransportID follows the 24-byte header; compare
	 * against what is left so a length near 2^32 cannot wrap the sum. */
	if (tidlen < PR_TID_MIN || tidlen > plen - PR_OUT_HDR || (p[24] & 0x3f) != 0x05) {
		scsi_sense_field(t, false, 24, 7);
		return;
	}
	n = strnlen((const char *)p + 28, tidlen - 4);
	if (n == 0 || n >= sizeof(port)) {
		scsi_sense_field(t, false, 28, 7);
		return;
	}
	memcpy(port, p + 28, n);
	port[n] = 0;
	if (!strcmp(port, me->port)) {
		scsi_sense_field(t, false, 24, 7);
		return;
	}
	dst = reg_find(d, port);
	if (!dst)
		dst = reg_add(d, port, sa_key);
	else
		dst->key = sa_key;
	if (!dst) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_INSUFFICIENT_REG_RESOURCES);
		return;
	}
	d->pr_holder = dst;
	if (unreg)
		reg_remove(d, me);
	d->pr_gen++;
}

void scsi_pr_out(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	uint8_t sa = t->cdb[1] & 0x1f;
	uint8_t scope = t->cdb[2] >> 4, type = t->cdb[2] & 0x0f;
	uint32_t plen = get_be32(t->cdb + 5);
	uint8_t p[24 + 4 + 512] = { 0 };
	uint64_t key, sa_key;
	struct scsi_pr_reg *me;

	t->out_want = plen;
	/* SPC-4 6.14.1: 24 bytes, except REGISTER AND MOVE. */
	if (sa == 0x07 ? (plen < 24 || plen > sizeof(p)) : plen != 24) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		goto out;
	}
	if (t->out_len < plen) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		goto out;
	}
	scsi_cmd_copy_out(t, p, plen, 0);
	key = get_be64(p);
	sa_key = get_be64(p + 8);
	me = reg_find(d, t->itn->port);
	if (sa != 0x07) {
		if (p[20] & 0x08) { /* SPEC_I_PT: SIP_C is 0 */
			scsi_sense_field(t, false, 20, 3);
			goto out;
		}
		if (p[20] & 0x01) { /* APTPL: PTPL_C is 0 */
			scsi_sense_field(t, false, 20, 0);
			goto out;
		}
	}
	switch (sa) {
	case 0x00: /* REGISTER */
	case 0x06: /* REGISTER AND IGNORE EXISTING KEY */
		if (sa == 0x00 && (me ? me->key != key : key != 0)) {
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
			break;
		}
		if (!me) {
			if (sa_key && !reg_add(d, t->itn->port, sa_key)) {
				scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST,
					       ASC_INSUFFICIENT_REG_RESOURCES);
				break;
			}
		} else if (!sa_key) {
			reg_remove(d, me);
		} else {
			me->key = sa_key;
		}
		d->pr_gen++;
		break;
	case 0x01: /* RESERVE */
		if (!me || me->key != key) {
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
			break;
		}
		if (scope != 0) {
			scsi_sense_field(t, true, 2, 7);
			break;
		}
		if (!type_valid(type)) {
			scsi_sense_field(t, true, 2, 3);
			break;
		}
		if (d->pr_holder) {
			if (!is_holder(d, me) || d->pr_type != type)
				t->status = SCSI_STATUS_RESERVATION_CONFLICT;
			break;
		}
		d->pr_holder = me;
		d->pr_type = type;
		break;
	case 0x02: /* RELEASE */
		if (!me || me->key != key) {
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
			break;
		}
		if (!d->pr_holder || !is_holder(d, me))
			break;
		if (scope != 0 || type != d->pr_type) {
			scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_INVALID_RELEASE_PR);
			break;
		}
		/* SPC-4 5.13.11.2.2: registrants of RO/AR types are told. */
		if (type_reg_only(d->pr_type))
			for (struct scsi_pr_reg *o = d->regs; o; o = o->next)
				if (o != me)
					scsi_ua_set_port(d, o->port, UA_RSV_RELEASED);
		d->pr_holder = NULL;
		break;
	case 0x03: /* CLEAR */
		if (!me || me->key != key) {
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
			break;
		}
		for (struct scsi_pr_reg *o = d->regs; o; o = o->next)
			if (o != me)
				scsi_ua_set_port(d, o->port, UA_RSV_PREEMPTED);
		d->pr_holder = NULL;
		scsi_pr_free(d);
		d->pr_gen++;
		break;
	case 0x04: /* PREEMPT */
	case 0x05: /* PREEMPT AND ABORT */
		if (!me || me->key != key) {
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
			break;
		}
		pr_preempt(c, me, sa_key, scope, type);
		break;
	case 0x07: /* REGISTER AND MOVE */
		if (!me || me->key != key) {
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
			break;
		}
		pr_register_move(c, me, p, plen);
		break;
	case 0x08: /* REPLACE LOST RESERVATION: none is ever lost, so this
		    * takes the reservation like RESERVE would, replacing any. */
		if (!me || me->key != key) {
			t->status = SCSI_STATUS_RESERVATION_CONFLICT;
			break;
		}
		if (scope != 0 || !type_valid(type)) {
			scsi_sense_field(t, true, 2, scope ? 7 : 3);
			break;
		}
		d->pr_holder = me;
		d->pr_type = type;
		break;
	default:
		scsi_sense_field(t, true, 1, 4);
		break;
	}
out:
	scsi_cmd_done(c);
}
