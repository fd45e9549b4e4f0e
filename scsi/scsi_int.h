/*
 * scsi_int: what the scsi/ files share and nobody else sees.
 *
 * Every command gets one struct scsi_cmd (task->sp) that carries its
 * block request, its continuation and, in its tail, the data-in bytes.  The
 * cmd lives until scsi_task_release() when the command produced data-in,
 * else it is freed before done() runs.  Everything here runs on the loop
 * thread; only the embedded bdev_req crosses to the pool.
 */
#ifndef OBD_SCSI_INT_H
#define OBD_SCSI_INT_H

#include "scsi.h"
#include "blockdev/bdev.h"

#include <stdbool.h>
#include <stdint.h>

struct scsi_cmd;
struct scsi_op;
typedef void (*scsi_cmd_fn)(struct scsi_cmd *c);

/* Unit attention conditions, reported lowest bit first (SAM-5 5.14). */
enum {
	UA_POWER_ON = 1u << 0,      /* 29h/00h */
	UA_LUN_RESET = 1u << 1,     /* 29h/03h */
	UA_NEXUS_LOSS = 1u << 2,    /* 29h/07h */
	UA_CAPACITY = 1u << 3,      /* 2Ah/09h */
	UA_RSV_PREEMPTED = 1u << 4, /* 2Ah/03h */
	UA_RSV_RELEASED = 1u << 5,  /* 2Ah/04h */
	UA_REG_PREEMPTED = 1u << 6, /* 2Ah/05h */
	UA_MODE_CHANGED = 1u << 7,  /* 2Ah/01h */
	UA_COUNT = 8,
};

/* Additional sense code / qualifier pairs used across files. */
#define ASC_NONE 0x0000
#define ASC_NOT_READY_INIT_REQUIRED 0x0402
#define ASC_UNREACHABLE_COPY_TARGET 0x0804
#define ASC_WRITE_ERROR 0x0c00
#define ASC_UNRECOVERED_READ_ERROR 0x1100
#define ASC_PARAM_LIST_LENGTH_ERROR 0x1a00
#define ASC_MISCOMPARE_VERIFY 0x1d00
#define ASC_INVALID_OPCODE 0x2000
#define ASC_LBA_OUT_OF_RANGE 0x2100
#define ASC_INVALID_FIELD_CDB 0x2400
#define ASC_LUN_NOT_SUPPORTED 0x2500
#define ASC_INVALID_FIELD_PARAM 0x2600
#define ASC_INVALID_RELEASE_PR 0x2604
#define ASC_TOO_MANY_TARGET_DESC 0x2606
#define ASC_UNSUPPORTED_TARGET_DESC 0x2607
#define ASC_TOO_MANY_SEGMENT_DESC 0x2608
#define ASC_UNSUPPORTED_SEGMENT_DESC 0x2609
#define ASC_WRITE_PROTECTED 0x2700
#define ASC_SPACE_ALLOC_FAILED_WP 0x2707
#define ASC_SAVING_NOT_SUPPORTED 0x3900
#define ASC_INTERNAL_TARGET_FAILURE 0x4400
#define ASC_INSUFFICIENT_REG_RESOURCES 0x5504
#define SCSI_SENSE_COPY_ABORTED 0xa

/* Limits we advertise in the block limits VPD page and enforce. */
#define SCSI_LBPPB_EXP 3u               /* 8 logical blocks per physical */
#define SCSI_LIM_XFER_BLOCKS 16384u    /* 8 MiB per READ/WRITE */
#define SCSI_LIM_CAW_BLOCKS 128u
#define SCSI_LIM_ATOMIC_BLOCKS SCSI_LIM_XFER_BLOCKS
#define SCSI_LIM_UNMAP_BLOCKS 0x100000u  /* 512 MiB per descriptor */
#define SCSI_LIM_UNMAP_DESCS 256u
#define SCSI_LIM_WSAME_BLOCKS 0xffffu

/* Command classes for reservation checks (SPC-4 5.13.1 tables 44-45). */
enum scsi_pr_class {
	PR_ALLOW = 0,  /* allowed under every reservation */
	PR_READ = 1,   /* allowed under Write Exclusive for everyone */
	PR_WRITE = 2,  /* conflicts for non-holders */
	PR_SELF = 3,   /* the handler decides (PR OUT, RESERVE/RELEASE) */
};

/* struct scsi_op flags */
#define OPF_SA 0x01       /* row is one service action of its opcode */
#define OPF_NO_UA 0x02    /* runs even with a unit attention pending */
#define OPF_RSV_OK 0x04   /* allowed under another nexus's RESERVE(6) */
#define OPF_ANY_LUN 0x08  /* also answers for a LUN we do not have */
#define OPF_RW 0x10       /* counted as read or write I/O in stats */

struct scsi_op {
	uint8_t opcode;
	uint8_t sa;
	uint8_t cdb_len;
	uint8_t flags;
	uint8_t pr_class;
	uint8_t usage[16]; /* SPC-4 6.35.3 CDB usage data; byte 0 = opcode */
	scsi_cmd_fn fn;
	const char *name;
};

struct scsi_pr_reg {
	struct scsi_pr_reg *next;
	uint64_t key;
	char port[]; /* initiator port name */
};

struct scsi_xcopy_result {
	bool valid;
	uint8_t list_id;
	uint8_t status;     /* RECEIVE COPY RESULTS copy management status */
	uint16_t segments;  /* segments processed */
	uint32_t blocks;    /* transfer count, in blocks */
};

struct scsi_itn {
	struct scsi_dev *d;
	struct scsi_itn *next, *prev;
	uint32_t ua;
	int refs;      /* 1 while attached + one per task in flight */
	bool attached;
	struct scsi_xcopy_result xcopy[4]; /* last LID1 results, by list id */
	char port[];
};

struct scsi_dev {
	struct bdev *bdev;
	struct bdev_pool *pool;
	struct scsi_dev_info info; /* strings owned */
	uint64_t blocks;
	bool ro;       /* no writable upper layer */
	bool swp;      /* control mode page SWP */
	bool wce;      /* caching mode page WCE */
	bool d_sense;  /* control mode page D_SENSE */
	bool stopped;  /* START STOP UNIT START=0 */
	struct scsi_itn *itns;
	struct scsi_itn *rsv6; /* RESERVE(6) holder */

	/* Persistent reservations (SPC-4 5.13): registrations by port name. */
	uint32_t pr_gen;
	struct scsi_pr_reg *regs;
	struct scsi_pr_reg *pr_holder; /* NULL = no reservation */
	uint8_t pr_type;

	/*
	 * Write ordering for COMPARE AND WRITE, ORWRITE and WRITE ATOMIC: such
	 * a command runs alone, once every earlier write is done; writes that
	 * arrive while one waits or runs are held until it finishes.
	 */
	uint32_t wr_inflight;
	struct scsi_cmd *excl_head, *excl_tail;
	bool excl_active;
	struct scsi_cmd *held_head, *held_tail;

	struct scsi_dev_stats stats;
};

struct scsi_cmd {
	struct bdev_req req;
	struct scsi_task *t;
	struct scsi_dev *d;
	const struct scsi_op *op;
	uint64_t lba;
	uint64_t nblk;
	uint64_t pos;       /* progress of multi-step commands */
	bool fua;
	bool counted_write; /* holds a d->wr_inflight count */
	int stage;
	scsi_cmd_fn next;   /* continuation after the block request */
	scsi_cmd_fn start;  /* deferred start (held or exclusive) */
	struct scsi_cmd *link;
	struct iovec iov[2];
	struct iovec *xiov; /* longer data-out vectors, freed with the cmd */
	uint8_t *buf;       /* scratch, freed with the cmd */
	size_t buflen;
	void *ctx;          /* per-command state (xcopy) */
	void (*ctx_free)(void *ctx);
	struct iovec in_iov;
	uint32_t in_cap;    /* bytes of data[]: what data-in can carry */
	uint8_t data[];
};

/* scsi_cdb.c */
/* Decode, check and run C's CDB (SPC-4 4.2, SAM-5 5.14 ordering of
 * checks: LUN, opcode, CDB fields, unit attention, reservations). */
void scsi_dispatch(struct scsi_cmd *c);
void scsi_rsoc(struct scsi_cmd *c);

/* scsi_dev.c */
void scsi_cmd_done(struct scsi_cmd *c);
/* Answer LEN bytes of data-in (already clamped to the allocation length);
 * the transport sends at most expected_len of them. */
void scsi_cmd_reply(struct scsi_cmd *c, const void *buf, uint32_t len);
/* Data-in produced in place: the first LEN bytes of c->data are valid. */
void scsi_cmd_in_len(struct scsi_cmd *c, uint32_t produced, uint32_t valid);
/* Copy the whole data-out (up to LEN bytes) into BUF; returns bytes copied. */
size_t scsi_cmd_copy_out(const struct scsi_task *t, void *buf, size_t len, size_t off);
void scsi_ua_set_others(struct scsi_dev *d, struct scsi_itn *except, uint32_t ua);
void scsi_ua_set_port(struct scsi_dev *d, const char *port, uint32_t ua);
void scsi_test_unit_ready(struct scsi_cmd *c);
void scsi_request_sense(struct scsi_cmd *c);
void scsi_report_luns(struct scsi_cmd *c);
void scsi_read_capacity10(struct scsi_cmd *c);
void scsi_read_capacity16(struct scsi_cmd *c);
void scsi_start_stop_unit(struct scsi_cmd *c);
void scsi_prevent_allow(struct scsi_cmd *c);
void scsi_read_defect10(struct scsi_cmd *c);
void scsi_read_defect12(struct scsi_cmd *c);

/* scsi_sense.c */
void scsi_sense_info(struct scsi_task *t, uint8_t key, uint16_t asc, uint64_t info);
/* ILLEGAL REQUEST, INVALID FIELD IN CDB (or PARAMETER LIST when !IN_CDB)
 * with the sense-key-specific field pointer (SPC-4 4.5.2.4.2). */
void scsi_sense_field(struct scsi_task *t, bool in_cdb, uint16_t byte, int bit);
/* Sense data for REQUEST SENSE into BUF (>= 18 bytes); returns length. */
uint32_t scsi_sense_build(uint8_t *buf, bool desc, uint8_t key, uint16_t asc);
uint16_t scsi_ua_asc(uint32_t bit);
void scsi_sense_errno(struct scsi_task *t, int err, bool reading);

/* scsi_inquiry.c */
void scsi_inquiry(struct scsi_cmd *c);

/* scsi_mode.c */
void scsi_mode_sense6(struct scsi_cmd *c);
void scsi_mode_sense10(struct scsi_cmd *c);
void scsi_mode_select6(struct scsi_cmd *c);
void scsi_mode_select10(struct scsi_cmd *c);

/* scsi_rw.c */
void scsi_read(struct scsi_cmd *c);
void scsi_write(struct scsi_cmd *c);
void scsi_verify(struct scsi_cmd *c);
void scsi_write_verify(struct scsi_cmd *c);
void scsi_write_same(struct scsi_cmd *c);
void scsi_unmap(struct scsi_cmd *c);
void scsi_compare_and_write(struct scsi_cmd *c);
void scsi_orwrite(struct scsi_cmd *c);
void scsi_write_atomic(struct scsi_cmd *c);
void scsi_get_lba_status(struct scsi_cmd *c);
void scsi_prefetch(struct scsi_cmd *c);
void scsi_sync_cache(struct scsi_cmd *c);
bool scsi_write_protected(const struct scsi_dev *d);
/* Submit one block request for C; NEXT runs on the loop with req.result. */
void scsi_io(struct scsi_cmd *c, struct scsi_dev *d, enum bdev_op op, struct iovec *iov,
	     int iovcnt, uint64_t off, uint64_t len, bool fua, scsi_cmd_fn next);
/* Ordering against exclusive commands: begin calls START now or later. */
void scsi_wr_begin(struct scsi_cmd *c, scsi_cmd_fn start);
void scsi_wr_end(struct scsi_cmd *c);
void scsi_excl_begin(struct scsi_cmd *c, scsi_cmd_fn start);
void scsi_excl_end(struct scsi_cmd *c);

/* scsi_pr.c */
void scsi_reserve(struct scsi_cmd *c);
void scsi_release(struct scsi_cmd *c);
void scsi_pr_in(struct scsi_cmd *c);
void scsi_pr_out(struct scsi_cmd *c);
/* true (and RESERVATION CONFLICT set) if OP may not run for ITN now. */
bool scsi_pr_conflict(struct scsi_dev *d, struct scsi_itn *itn, const struct scsi_op *op,
		      struct scsi_task *t);
void scsi_pr_free(struct scsi_dev *d);

/* scsi_xcopy.c */
void scsi_xcopy(struct scsi_cmd *c);
void scsi_receive_copy_results(struct scsi_cmd *c);

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get_be24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, v >> 32);
	put_be32(p + 4, (uint32_t)v);
}

#endif
