/*
 * scsi_cdb: the command set in one table, and the dispatcher that checks a
 * CDB against it before any handler runs.
 *
 * Each row is one operation code (or one service action of it) with its
 * CDB length, its CDB usage data (SPC-4 6.35.3: a 1 for every bit the
 * device server looks at) and its reservation class.  A CDB bit set where
 * the usage data has a 0 is a reserved or unsupported field: the command
 * ends with INVALID FIELD IN CDB pointing at that bit.  The same rows answer
 * REPORT SUPPORTED OPERATION CODES, so what we report is what we check.
 */
#include "scsi_int.h"

#include <pthread.h>
#include <string.h>

#define U6(a, b, c, d) { 0, a, b, c, d, 0 }
#define U10(a, b, c, d, e, f, g, h) { 0, a, b, c, d, e, f, g, h, 0 }
#define U12(a, b, c, d, e, f, g, h, i, j) { 0, a, b, c, d, e, f, g, h, i, j, 0 }
#define U16(a, b, c, d, e, f, g, h, i, j, k, l, m, n) \
	{ 0, a, b, c, d, e, f, g, h, i, j, k, l, m, n, 0 }
#define FF 0xff

/* CDB usage for the common LBA + length layouts: group number 0x1f. */
#define RW10(b1) U10(b1, FF, FF, FF, FF, 0x1f, FF, FF)
#define RW12(b1) U12(b1, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f)
#define RW16(b1) U16(b1, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f)

static const struct scsi_op ops[] = {
	/* SPC-4 6.37 */
	{ 0x00, 0, 6, 0, PR_ALLOW, U6(0, 0, 0, 0), scsi_test_unit_ready, "TEST UNIT READY" },
	/* SPC-4 6.39 */
	{ 0x03, 0, 6, OPF_NO_UA | OPF_RSV_OK | OPF_ANY_LUN, PR_ALLOW, U6(0x01, 0, 0, FF),
	  scsi_request_sense, "REQUEST SENSE" },
	/* SBC-3 5.11 */
	{ 0x08, 0, 6, OPF_RW, PR_READ, U6(0x1f, FF, FF, FF), scsi_read, "READ(6)" },
	/* SBC-3 5.33 */
	{ 0x0a, 0, 6, OPF_RW, PR_WRITE, U6(0x1f, FF, FF, FF), scsi_write, "WRITE(6)" },
	/* SPC-4 6.6 */
	{ 0x12, 0, 6, OPF_NO_UA | OPF_RSV_OK | OPF_ANY_LUN, PR_ALLOW, U6(0x01, FF, FF, FF),
	  scsi_inquiry, "INQUIRY" },
	/* SPC-4 6.9 */
	{ 0x15, 0, 6, 0, PR_WRITE, U6(0x11, 0, 0, FF), scsi_mode_select6, "MODE SELECT(6)" },
	/* SPC-2 7.21, 7.17 */
	{ 0x16, 0, 6, 0, PR_SELF, U6(0, 0, 0, 0), scsi_reserve, "RESERVE(6)" },
	{ 0x17, 0, 6, OPF_RSV_OK, PR_SELF, U6(0, 0, 0, 0), scsi_release, "RELEASE(6)" },
	/* SPC-4 6.11 */
	{ 0x1a, 0, 6, 0, PR_READ, U6(0x08, FF, FF, FF), scsi_mode_sense6, "MODE SENSE(6)" },
	/* SBC-3 5.25 */
	{ 0x1b, 0, 6, 0, PR_WRITE, U6(0x01, 0, 0x0f, 0xf7), scsi_start_stop_unit,
	  "START STOP UNIT" },
	/* SBC-3 5.12 */
	{ 0x1e, 0, 6, 0, PR_WRITE, U6(0, 0, 0, 0x03), scsi_prevent_allow,
	  "PREVENT ALLOW MEDIUM REMOVAL" },
	/* SBC-3 5.15 */
	{ 0x25, 0, 10, OPF_RSV_OK, PR_ALLOW, U10(0, FF, FF, FF, FF, 0, 0, 0x01),
	  scsi_read_capacity10, "READ CAPACITY(10)" },
	/* SBC-3 5.8 */
	{ 0x28, 0, 10, OPF_RW, PR_READ, RW10(0x1a), scsi_read, "READ(10)" },
	/* SBC-3 5.35 */
	{ 0x2a, 0, 10, OPF_RW, PR_WRITE, RW10(0x1a), scsi_write, "WRITE(10)" },
	/* SBC-3 5.38 */
	{ 0x2e, 0, 10, OPF_RW, PR_WRITE, RW10(0x12), scsi_write_verify, "WRITE AND VERIFY(10)" },
	/* SBC-3 5.29 */
	{ 0x2f, 0, 10, 0, PR_READ, RW10(0x16), scsi_verify, "VERIFY(10)" },
	/* SBC-3 5.6 */
	{ 0x34, 0, 10, 0, PR_READ, RW10(0x02), scsi_prefetch, "PRE-FETCH(10)" },
	/* SBC-3 5.22 */
	{ 0x35, 0, 10, 0, PR_WRITE, RW10(0x02), scsi_sync_cache, "SYNCHRONIZE CACHE(10)" },
	/* SBC-3 5.18 */
	{ 0x37, 0, 10, 0, PR_READ, U10(0, 0x1f, 0, 0, 0, 0, FF, FF), scsi_read_defect10,
	  "READ DEFECT DATA(10)" },
	/* SBC-3 5.45 */
	{ 0x41, 0, 10, OPF_RW, PR_WRITE, RW10(0x08), scsi_write_same, "WRITE SAME(10)" },
	/* SBC-3 5.28 */
	{ 0x42, 0, 10, 0, PR_WRITE, U10(0, 0, 0, 0, 0, 0x1f, FF, FF), scsi_unmap, "UNMAP" },
	/* SPC-4 6.10 */
	{ 0x55, 0, 10, 0, PR_WRITE, U10(0x11, 0, 0, 0, 0, 0, FF, FF), scsi_mode_select10,
	  "MODE SELECT(10)" },
	/* SPC-2 7.22, 7.18 */
	{ 0x56, 0, 10, 0, PR_SELF, U10(0, 0, 0, 0, 0, 0, 0, 0), scsi_reserve, "RESERVE(10)" },
	{ 0x57, 0, 10, OPF_RSV_OK, PR_SELF, U10(0, 0, 0, 0, 0, 0, 0, 0), scsi_release,
	  "RELEASE(10)" },
	/* SPC-4 6.12 */
	{ 0x5a, 0, 10, 0, PR_READ, U10(0x18, FF, FF, 0, 0, 0, FF, FF), scsi_mode_sense10,
	  "MODE SENSE(10)" },
	/* SPC-4 6.13: PERSISTENT RESERVE IN */
	{ 0x5e, 0x00, 10, OPF_SA, PR_ALLOW, U10(0x1f, 0, 0, 0, 0, 0, FF, FF), scsi_pr_in,
	  "PERSISTENT RESERVE IN/READ KEYS" },
	{ 0x5e, 0x01, 10, OPF_SA, PR_ALLOW, U10(0x1f, 0, 0, 0, 0, 0, FF, FF), scsi_pr_in,
	  "PERSISTENT RESERVE IN/READ RESERVATION" },
	{ 0x5e, 0x02, 10, OPF_SA, PR_ALLOW, U10(0x1f, 0, 0, 0, 0, 0, FF, FF), scsi_pr_in,
	  "PERSISTENT RESERVE IN/REPORT CAPABILITIES" },
	{ 0x5e, 0x03, 10, OPF_SA, PR_ALLOW, U10(0x1f, 0, 0, 0, 0, 0, FF, FF), scsi_pr_in,
	  "PERSISTENT RESERVE IN/READ FULL STATUS" },
	/* SPC-4 6.14: PERSISTENT RESERVE OUT */
#define PROUT(sa, name) \
	{ 0x5f, sa, 10, OPF_SA, PR_SELF, U10(0x1f, FF, 0, 0, FF, FF, FF, FF), scsi_pr_out, \
	  "PERSISTENT RESERVE OUT/" name }
	PROUT(0x00, "REGISTER"),
	PROUT(0x01, "RESERVE"),
	PROUT(0x02, "RELEASE"),
	PROUT(0x03, "CLEAR"),
	PROUT(0x04, "PREEMPT"),
	PROUT(0x05, "PREEMPT AND ABORT"),
	PROUT(0x06, "REGISTER AND IGNORE EXISTING KEY"),
	PROUT(0x07, "REGISTER AND MOVE"),
	PROUT(0x08, "REPLACE LOST RESERVATION"),
	/* SPC-4 6.4: EXTENDED COPY (LID1) */
	{ 0x83, 0x00, 16, OPF_SA, PR_WRITE,
	  U16(0x1f, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0), scsi_xcopy,
	  "EXTENDED COPY(LID1)" },
	/* SPC-4 6.22: RECEIVE COPY RESULTS */
	{ 0x84, 0x00, 16, OPF_SA, PR_READ,
	  U16(0x1f, FF, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0), scsi_receive_copy_results,
	  "RECEIVE COPY RESULTS/COPY STATUS" },
	{ 0x84, 0x03, 16, OPF_SA, PR_READ,
	  U16(0x1f, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0), scsi_receive_copy_results,
	  "RECEIVE COPY RESULTS/OPERATING PARAMETERS" },
	/* SBC-3 5.10, 5.37 */
	{ 0x88, 0, 16, OPF_RW, PR_READ, RW16(0x1a), scsi_read, "READ(16)" },
	/* SBC-3 5.2 */
	{ 0x89, 0, 16, OPF_RW, PR_WRITE,
	  U16(0x18, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0, 0, FF, 0x1f), scsi_compare_and_write,
	  "COMPARE AND WRITE" },
	{ 0x8a, 0, 16, OPF_RW, PR_WRITE, RW16(0x1a), scsi_write, "WRITE(16)" },
	/* SBC-3 5.5 */
	{ 0x8b, 0, 16, OPF_RW, PR_WRITE, RW16(0x18), scsi_orwrite, "ORWRITE(16)" },
	/* SBC-3 5.40 */
	{ 0x8e, 0, 16, OPF_RW, PR_WRITE, RW16(0x12), scsi_write_verify, "WRITE AND VERIFY(16)" },
	/* SBC-3 5.31 */
	{ 0x8f, 0, 16, 0, PR_READ, RW16(0x16), scsi_verify, "VERIFY(16)" },
	/* SBC-3 5.7 */
	{ 0x90, 0, 16, 0, PR_READ, RW16(0x02), scsi_prefetch, "PRE-FETCH(16)" },
	/* SBC-3 5.23 */
	{ 0x91, 0, 16, 0, PR_WRITE, RW16(0x02), scsi_sync_cache, "SYNCHRONIZE CACHE(16)" },
	/* SBC-3 5.46 */
	{ 0x93, 0, 16, OPF_RW, PR_WRITE, RW16(0x09), scsi_write_same, "WRITE SAME(16)" },
	/* SBC-4 5.48 */
	{ 0x9c, 0, 16, OPF_RW, PR_WRITE,
	  U16(0x18, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0, FF, FF, 0x1f), scsi_write_atomic,
	  "WRITE ATOMIC(16)" },
	/* SBC-3 5.16, 5.4: SERVICE ACTION IN(16) */
	{ 0x9e, 0x10, 16, OPF_SA | OPF_RSV_OK, PR_ALLOW,
	  U16(0x1f, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0), scsi_read_capacity16,
	  "READ CAPACITY(16)" },
	{ 0x9e, 0x12, 16, OPF_SA, PR_READ,
	  U16(0x1f, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0), scsi_get_lba_status,
	  "GET LBA STATUS" },
	/* SPC-4 6.33 */
	{ 0xa0, 0, 12, OPF_NO_UA | OPF_RSV_OK | OPF_ANY_LUN, PR_ALLOW,
	  U12(0, FF, 0, 0, 0, FF, FF, FF, FF, 0), scsi_report_luns, "REPORT LUNS" },
	/* SPC-4 6.35: MAINTENANCE IN */
	{ 0xa3, 0x0c, 12, OPF_SA | OPF_RSV_OK, PR_ALLOW,
	  U12(0x1f, 0x87, FF, FF, FF, FF, FF, FF, FF, 0), scsi_rsoc,
	  "REPORT SUPPORTED OPERATION CODES" },
	/* SBC-3 5.9, 5.36, 5.39, 5.30 */
	{ 0xa8, 0, 12, OPF_RW, PR_READ, RW12(0x1a), scsi_read, "READ(12)" },
	{ 0xaa, 0, 12, OPF_RW, PR_WRITE, RW12(0x1a), scsi_write, "WRITE(12)" },
	{ 0xae, 0, 12, OPF_RW, PR_WRITE, RW12(0x12), scsi_write_verify, "WRITE AND VERIFY(12)" },
	{ 0xaf, 0, 12, 0, PR_READ, RW12(0x16), scsi_verify, "VERIFY(12)" },
	/* SBC-3 5.19 */
	{ 0xb7, 0, 12, 0, PR_READ, U12(0x1f, FF, FF, FF, FF, FF, FF, FF, FF, 0),
	  scsi_read_defect12, "READ DEFECT DATA(12)" },
};

#define NOPS (sizeof(ops) / sizeof(ops[0]))

/* opcode -> first row + 1 (0 = unsupported); service-action rows follow
 * each other in the table. */
static uint8_t op_index[256];
static pthread_once_t op_once = PTHREAD_ONCE_INIT;

static void op_index_build(void)
{
	for (size_t i = NOPS; i-- > 0;)
		op_index[ops[i].opcode] = (uint8_t)(i + 1);
}

static bool op_has_sa(uint8_t opcode)
{
	pthread_once(&op_once, op_index_build);
	return op_index[opcode] && (ops[op_index[opcode] - 1].flags & OPF_SA);
}

/* The row for OPCODE/SA; *KNOWN says whether the opcode exists at all. */
static const struct scsi_op *op_find(uint8_t opcode, uint16_t sa, bool *known)
{
	pthread_once(&op_once, op_index_build);
	*known = op_index[opcode] != 0;
	if (!*known)
		return NULL;
	for (size_t i = op_index[opcode] - 1; i < NOPS && ops[i].opcode == opcode; i++)
		if (!(ops[i].flags & OPF_SA) || ops[i].sa == sa)
			return &ops[i];
	return NULL;
}

static int high_bit(uint8_t v)
{
	return 31 - __builtin_clz(v);
}

void scsi_dispatch(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	struct scsi_itn *itn = t->itn;
	uint8_t opcode = t->cdb[0];
	bool known;
	const struct scsi_op *op = op_find(opcode, t->cdb[1] & 0x1f, &known);

	c->op = op;
	/* SAM-5 5.14 / SPC-4 4.2: LUN first, then a pending unit attention,
	 * then the CDB itself, then reservations. */
	if (t->lun != 0 && !(op && (op->flags & OPF_ANY_LUN))) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_LUN_NOT_SUPPORTED);
		goto done;
	}
	if (itn->ua && t->lun == 0 && !(op && (op->flags & OPF_NO_UA))) {
		uint32_t bit = itn->ua & -itn->ua;

		itn->ua &= ~bit;
		scsi_set_sense(t, SCSI_SENSE_UNIT_ATTENTION, scsi_ua_asc(bit));
		goto done;
	}
	if (!known) {
		scsi_set_sense(t, SCSI_SENSE_ILLEGAL_REQUEST, ASC_INVALID_OPCODE);
		goto done;
	}
	if (!op) {
		scsi_sense_field(t, true, 1, 4);
		goto done;
	}
	for (int i = 1; i < op->cdb_len; i++) {
		uint8_t bad = t->cdb[i] & ~op->usage[i];

		if ((op->flags & OPF_SA) && i == 1)
			bad &= ~0x1f;
		if (bad) {
			scsi_sense_field(t, true, i, high_bit(bad));
			goto done;
		}
	}
	if (t->cdb_len && t->cdb_len < op->cdb_len) {
		scsi_sense_field(t, true, 0, 7);
		goto done;
	}
	/* SPC-2 5.5.1: another nexus's RESERVE(6) fences most commands. */
	if (d->rsv6 && d->rsv6 != itn && !(op->flags & OPF_RSV_OK)) {
		t->status = SCSI_STATUS_RESERVATION_CONFLICT;
		goto done;
	}
	if (scsi_pr_conflict(d, itn, op, t))
		goto done;
	op->fn(c);
	return;
done:
	scsi_cmd_done(c);
}

/* SPC-4 6.35.4: command timeouts descriptor; we have no timeouts. */
static uint32_t put_timeouts(uint8_t *p)
{
	memset(p, 0, 12);
	put_be16(p, 0x0a);
	return 12;
}

void scsi_rsoc(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	bool rctd = t->cdb[2] & 0x80;
	uint8_t opts = t->cdb[2] & 0x07;
	uint8_t req_op = t->cdb[3];
	uint16_t req_sa = get_be16(t->cdb + 4);
	uint32_t alloc = get_be32(t->cdb + 6);
	/* Every row as a descriptor with timeouts fits in this. */
	uint8_t buf[4 + NOPS * 20];
	uint32_t len = 0;

	memset(buf, 0, sizeof(buf));
	if (opts == 0) {
		/* SPC-4 6.35.2: all commands. */
		len = 4;
		for (size_t i = 0; i < NOPS; i++) {
			uint8_t *p = buf + len;

			p[0] = ops[i].opcode;
			if (ops[i].flags & OPF_SA) {
				put_be16(p + 2, ops[i].sa);
				p[5] |= 0x01; /* SERVACTV */
			}
			if (rctd)
				p[5] |= 0x02; /* CTDP */
			put_be16(p + 6, ops[i].cdb_len);
			len += 8;
			if (rctd)
				len += put_timeouts(buf + len);
		}
		put_be32(buf, len - 4);
	} else if (opts <= 3) {
		/* SPC-4 6.35.3: one command. */
		bool has_sa = op_has_sa(req_op), known;
		const struct scsi_op *op;

		if ((opts == 1 && has_sa) || (opts == 2 && !has_sa)) {
			scsi_sense_field(t, true, 2, 2);
			goto out;
		}
		if (opts == 1 || (opts == 3 && !has_sa))
			req_sa = 0;
		if (req_sa > 0x1f) {
			op = NULL;
		} else {
			op = op_find(req_op, req_sa, &known);
		}
		if (!op) {
			buf[1] = 0x01; /* not supported */
			len = 4;
		} else {
			buf[1] = 0x03 | (rctd ? 0x80 : 0);
			put_be16(buf + 2, op->cdb_len);
			memcpy(buf + 4, op->usage, op->cdb_len);
			buf[4] = op->opcode;
			if (op->flags & OPF_SA)
				buf[5] = (buf[5] & ~0x1f) | op->sa;
			len = 4 + op->cdb_len;
			if (rctd)
				len += put_timeouts(buf + len);
		}
	} else {
		scsi_sense_field(t, true, 2, 2);
		goto out;
	}
	scsi_cmd_reply(c, buf, len < alloc ? len : alloc);
out:
	scsi_cmd_done(c);
}
