/*
 * scsi_dev: logical units and I_T nexuses, the life of a task (execute,
 * done, release), unit attentions, task management effects, statistics,
 * and the commands that only read device state (TEST UNIT READY, REQUEST
 * SENSE, REPORT LUNS, READ CAPACITY, START STOP UNIT, READ DEFECT DATA).
 * It never touches a file: block I/O lives in scsi_rw.c.
 */
#include "scsi_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Largest data-in a command may produce: the maximum transfer length. */
#define SCSI_MAX_IN (SCSI_LIM_XFER_BLOCKS * SCSI_BLOCK_SIZE)

static char *dup_or(const char *s, const char *dflt)
{
	return strdup(s ? s : dflt);
}

int scsi_dev_create(struct bdev *bdev, struct bdev_pool *pool,
		    const struct scsi_dev_info *info, struct scsi_dev **out)
{
	struct scsi_dev *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->bdev = bdev;
	d->pool = pool;
	d->info = *info;
	d->info.vendor = dup_or(info->vendor, "OVERLAYB");
	d->info.product = dup_or(info->product, "overlaybd");
	d->info.revision = dup_or(info->revision, "1.0");
	d->info.serial = dup_or(info->serial, "0");
	d->info.target_name = dup_or(info->target_name, "");
	if (!d->info.vendor || !d->info.product || !d->info.revision || !d->info.serial ||
	    !d->info.target_name) {
		scsi_dev_destroy(d);
		return -ENOMEM;
	}
	if (!d->info.rel_port_id)
		d->info.rel_port_id = 1;
	d->blocks = bdev_size(bdev) / SCSI_BLOCK_SIZE;
	d->ro = !bdev_writable(bdev);
	d->wce = true;
	*out = d;
	return 0;
}

void scsi_dev_destroy(struct scsi_dev *d)
{
	if (!d)
		return;
	/* The transport detaches every nexus first; any left over goes now. */
	if (d->itns)
		log_warn("scsi: device %s destroyed with nexuses attached", d->info.target_name);
	while (d->itns) {
		struct scsi_itn *i = d->itns;

		d->itns = i->next;
		i->attached = false;
		if (--i->refs == 0)
			free(i);
	}
	scsi_pr_free(d);
	free((char *)d->info.vendor);
	free((char *)d->info.product);
	free((char *)d->info.revision);
	free((char *)d->info.serial);
	free((char *)d->info.target_name);
	free(d);
}

bool scsi_dev_busy(const struct scsi_dev *d)
{
	return d->stats.inflight > 0;
}

uint64_t scsi_dev_blocks(const struct scsi_dev *d)
{
	return d->blocks;
}

void scsi_dev_capacity_changed(struct scsi_dev *d)
{
	d->blocks = bdev_size(d->bdev) / SCSI_BLOCK_SIZE;
	scsi_ua_set_others(d, NULL, UA_CAPACITY);
}

void scsi_dev_stats(const struct scsi_dev *d, struct scsi_dev_stats *out)
{
	*out = d->stats;
}

struct scsi_itn *scsi_itn_attach(struct scsi_dev *d, const char *initiator_port)
{
	size_t n = strlen(initiator_port);
	struct scsi_itn *i = calloc(1, sizeof(*i) + n + 1);

	if (!i)
		return NULL;
	memcpy(i->port, initiator_port, n + 1);
	i->d = d;
	i->refs = 1;
	i->attached = true;
	/* SAM-5 6.3.2: a new nexus first sees POWER ON, RESET. */
	i->ua = UA_POWER_ON;
	i->next = d->itns;
	if (d->itns)
		d->itns->prev = i;
	d->itns = i;
	return i;
}

static void itn_put(struct scsi_itn *i)
{
	if (--i->refs == 0)
		free(i);
}

void scsi_itn_detach(struct scsi_itn *i)
{
	struct scsi_dev *d = i->d;

	if (!i->attached)
		return;
	i->attached = false;
	if (i->prev)
		i->prev->next = i->next;
	else
		d->itns = i->next;
	if (i->next)
		i->next->prev = i->prev;
	/* SPC-4 5.13.1 (SPC-2 reservations): nexus loss releases RESERVE(6);
	 * persistent reservations stay with the port name. */
	if (d->rsv6 == i)
		d->rsv6 = NULL;
	itn_put(i);
}

void scsi_ua_set_others(struct scsi_dev *d, struct scsi_itn *except, uint32_t ua)
{
	for (struct scsi_itn *i = d->itns; i; i = i->next)
		if (i != except)
			i->ua |= ua;
}

void scsi_ua_set_port(struct scsi_dev *d, const char *port, uint32_t ua)
{
	for (struct scsi_itn *i = d->itns; i; i = i->next)
		if (!strcmp(i->port, port))
			i->ua |= ua;
}

void scsi_tmf(struct scsi_itn *itn, enum scsi_tmf fn)
{
	struct scsi_dev *d = itn->d;

	if (!itn->attached)
		return;
	switch (fn) {
	case SCSI_TMF_ABORT_TASK:
	case SCSI_TMF_ABORT_TASK_SET:
	case SCSI_TMF_CLEAR_TASK_SET:
		/* The transport aborts the tasks; no LU state changes. */
		break;
	case SCSI_TMF_LUN_RESET:
	case SCSI_TMF_TARGET_WARM_RESET:
	case SCSI_TMF_TARGET_COLD_RESET:
		/* SAM-5 6.3.2: a reset releases SPC-2 reservations, returns
		 * mode pages to their defaults and leaves persistent
		 * reservations alone (SPC-4 5.13.11). */
		d->rsv6 = NULL;
		d->swp = false;
		d->d_sense = false;
		d->wce = true;
		d->stopped = false;
		scsi_ua_set_others(d, itn, fn == SCSI_TMF_LUN_RESET ? UA_LUN_RESET : UA_POWER_ON);
		break;
	case SCSI_TMF_I_T_NEXUS_RESET:
		/* SAM-5 6.3.4: as a nexus loss, seen by that nexus. */
		if (d->rsv6 == itn)
			d->rsv6 = NULL;
		itn->ua |= UA_NEXUS_LOSS;
		break;
	}
}

void scsi_task_execute(struct scsi_itn *itn, struct scsi_task *t, scsi_task_done_fn done)
{
	struct scsi_dev *d = itn->d;
	uint32_t cap = 0;
	struct scsi_cmd *c;

	t->itn = itn;
	t->done = done;
	t->status = SCSI_STATUS_GOOD;
	t->sense_len = 0;
	t->in_iov = NULL;
	t->in_iovcnt = 0;
	t->in_len = 0;
	t->out_want = 0;
	t->sp = NULL;
	if (t->dir == SCSI_DIR_READ) {
		/* Data past the expected length is never sent: do not make it. */
		cap = t->expected_len < SCSI_MAX_IN ? t->expected_len : SCSI_MAX_IN;
		cap = (cap + SCSI_BLOCK_SIZE - 1) & ~(SCSI_BLOCK_SIZE - 1);
	}
	c = malloc(sizeof(*c) + cap);
	if (!c) {
		t->status = SCSI_STATUS_BUSY;
		done(t);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->t = t;
	c->d = d;
	c->in_cap = cap;
	t->sp = c;
	itn->refs++;
	d->stats.inflight++;
	scsi_dispatch(c);
}

void scsi_cmd_done(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	struct scsi_itn *itn = t->itn;

	if (t->status != SCSI_STATUS_GOOD && t->status != SCSI_STATUS_CONDITION_MET) {
		d->stats.errors++;
		t->in_len = 0;
	}
	if (!c->op || !(c->op->flags & OPF_RW))
		d->stats.other_ops++;
	free(c->buf);
	c->buf = NULL;
	free(c->xiov);
	c->xiov = NULL;
	if (c->ctx_free)
		c->ctx_free(c->ctx);
	c->ctx_free = NULL;
	if (t->in_len && c->in_iov.iov_len) {
		t->in_iov = &c->in_iov;
		t->in_iovcnt = 1;
	} else {
		t->sp = NULL;
		free(c);
	}
	d->stats.inflight--;
	itn_put(itn);
	t->done(t);
}

void scsi_task_release(struct scsi_task *t)
{
	free(t->sp);
	t->sp = NULL;
	t->in_iov = NULL;
	t->in_iovcnt = 0;
}

void scsi_cmd_in_len(struct scsi_cmd *c, uint32_t produced, uint32_t valid)
{
	c->t->in_len = produced;
	c->in_iov.iov_base = c->data;
	c->in_iov.iov_len = valid < c->in_cap ? valid : c->in_cap;
}

void scsi_cmd_reply(struct scsi_cmd *c, const void *buf, uint32_t len)
{
	uint32_t n = len < c->in_cap ? len : c->in_cap;

	memcpy(c->data, buf, n);
	scsi_cmd_in_len(c, len, n);
}

size_t scsi_cmd_copy_out(const struct scsi_task *t, void *buf, size_t len, size_t off)
{
	size_t done = 0;

	for (int i = 0; i < t->out_iovcnt && done < len; i++) {
		size_t l = t->out_iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len - done)
			l = len - done;
		memcpy((uint8_t *)buf + done, (const uint8_t *)t->out_iov[i].iov_base + off, l);
		done += l;
		off = 0;
	}
	return done;
}

void scsi_test_unit_ready(struct scsi_cmd *c)
{
	scsi_cmd_done(c);
}

void scsi_request_sense(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_itn *itn = t->itn;
	uint8_t buf[SCSI_SENSE_MAX];
	bool desc = t->cdb[1] & 0x01;
	uint32_t len, alloc = t->cdb[4];

	/* SPC-4 6.39: a pending unit attention is reported and cleared. */
	if (itn->ua) {
		uint32_t bit = itn->ua & -itn->ua;

		len = scsi_sense_build(buf, desc, SCSI_SENSE_UNIT_ATTENTION, scsi_ua_asc(bit));
		itn->ua &= ~bit;
	} else {
		len = scsi_sense_build(buf, desc, SCSI_SENSE_NO_SENSE, ASC_NONE);
	}
	scsi_cmd_reply(c, buf, len < alloc ? len : alloc);
	scsi_cmd_done(c);
}

void scsi_report_luns(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint8_t buf[16] = { 0 };
	uint32_t alloc = get_be32(t->cdb + 6);
	uint8_t sel = t->cdb[2];
	uint32_t len = 16;

	/* SPC-4 6.33: SELECT REPORT 00h/02h list LUN 0, 01h only well-known
	 * LUNs (we have none); the allocation length must be >= 16. */
	if (sel > 2) {
		scsi_sense_field(t, true, 2, 7);
		goto out;
	}
	if (alloc < 16) {
		scsi_sense_field(t, true, 6, 7);
		goto out;
	}
	if (sel == 1) {
		len = 8;
	} else {
		put_be32(buf, 8);
	}
	scsi_cmd_reply(c, buf, len < alloc ? len : alloc);
out:
	scsi_cmd_done(c);
}

void scsi_read_capacity10(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint8_t buf[8];
	uint64_t last = c->d->blocks ? c->d->blocks - 1 : 0;

	/* SBC-3 5.15: without PMI the LBA field must be zero. */
	if (!(t->cdb[8] & 1) && get_be32(t->cdb + 2)) {
		scsi_sense_field(t, true, 2, 7);
		goto out;
	}
	put_be32(buf, last > 0xffffffffu ? 0xffffffffu : (uint32_t)last);
	put_be32(buf + 4, SCSI_BLOCK_SIZE);
	scsi_cmd_reply(c, buf, sizeof(buf));
out:
	scsi_cmd_done(c);
}

void scsi_read_capacity16(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint8_t buf[32] = { 0 };
	uint32_t alloc = get_be32(t->cdb + 10);

	/* SBC-3 5.16: 4 KiB physical blocks (exponent 3, see GET LBA STATUS
	 * in scsi_rw.c), thin provisioned (LBPME) unless read-only, unmapped
	 * blocks read as zero (LBPRZ). */
	put_be64(buf, c->d->blocks ? c->d->blocks - 1 : 0);
	put_be32(buf + 8, SCSI_BLOCK_SIZE);
	buf[13] = SCSI_LBPPB_EXP;
	buf[14] = (c->d->ro ? 0 : 0x80) | 0x40;
	scsi_cmd_reply(c, buf, alloc < sizeof(buf) ? alloc : sizeof(buf));
	scsi_cmd_done(c);
}

void scsi_start_stop_unit(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint8_t pc = t->cdb[4] >> 4;

	/* SBC-3 5.25: the medium is not removable (LOEJ has no effect) and
	 * there is nothing to spin; power conditions are accepted as no-ops. */
	switch (pc) {
	case 0x0: case 0x1: case 0x2: case 0x3: case 0x7: case 0xa: case 0xb:
		break;
	default:
		scsi_sense_field(t, true, 4, 7);
		break;
	}
	scsi_cmd_done(c);
}

void scsi_prevent_allow(struct scsi_cmd *c)
{
	/* SBC-3 5.12: nothing to lock on a non-removable medium. */
	scsi_cmd_done(c);
}

void scsi_read_defect10(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint8_t buf[4] = { 0 };
	uint32_t alloc = get_be16(t->cdb + 7);

	/* SBC-3 5.17: an empty list in the format asked for. */
	buf[1] = t->cdb[2] & 0x1f;
	scsi_cmd_reply(c, buf, alloc < sizeof(buf) ? alloc : sizeof(buf));
	scsi_cmd_done(c);
}

void scsi_read_defect12(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	uint8_t buf[8] = { 0 };
	uint32_t alloc = get_be32(t->cdb + 6);

	buf[1] = t->cdb[1] & 0x1f;
	scsi_cmd_reply(c, buf, alloc < sizeof(buf) ? alloc : sizeof(buf));
	scsi_cmd_done(c);
}
