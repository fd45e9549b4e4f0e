/*
 * scsi: SCSI block device emulation (SPC-4, SBC-3) over a struct bdev.
 *
 * Owns CDB decoding (one dispatch table, opcode -> handler), sense data,
 * INQUIRY/VPD, mode pages, reservations, persistent reservations, unit
 * attentions and EXTENDED COPY.  It never sees a PDU or a socket: the
 * transport hands it a task with a CDB and the data-out bytes, and gets the
 * task back with status, sense and data-in.  All entry points run on the
 * event-loop thread; block I/O goes to the bdev worker pool.
 */
#ifndef OBD_SCSI_H
#define OBD_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct bdev;
struct bdev_pool;

#define SCSI_BLOCK_SIZE 512u
#define SCSI_SENSE_MAX 32

enum scsi_status {
	SCSI_STATUS_GOOD = 0x00,
	SCSI_STATUS_CHECK_CONDITION = 0x02,
	SCSI_STATUS_CONDITION_MET = 0x04,
	SCSI_STATUS_BUSY = 0x08,
	SCSI_STATUS_RESERVATION_CONFLICT = 0x18,
	SCSI_STATUS_TASK_SET_FULL = 0x28,
	SCSI_STATUS_TASK_ABORTED = 0x40,
};

enum scsi_dir {
	SCSI_DIR_NONE = 0,
	SCSI_DIR_READ = 1,  /* data-in: target to initiator */
	SCSI_DIR_WRITE = 2, /* data-out */
};

enum scsi_task_attr {
	SCSI_ATTR_SIMPLE = 0,
	SCSI_ATTR_ORDERED = 1,
	SCSI_ATTR_HEAD_OF_QUEUE = 2,
	SCSI_ATTR_ACA = 3,
};

/* Identity of a logical unit, fixed at creation. */
struct scsi_dev_info {
	const char *vendor;      /* 8 chars, space padded on the wire */
	const char *product;     /* 16 */
	const char *revision;    /* 4 */
	const char *serial;      /* VPD 0x80 */
	uint64_t naa;            /* NAA IEEE Registered designator (VPD 0x83) */
	const char *target_name; /* iSCSI name, for the target-port designators */
	uint16_t rel_port_id;    /* relative target port identifier, 1.. */
	uint16_t tpg_id;         /* target portal group tag */
};

struct scsi_dev;

/* One I_T nexus: an initiator port ("iqn...,i,0x<isid>") on this device. */
struct scsi_itn;

struct scsi_task;
typedef void (*scsi_task_done_fn)(struct scsi_task *t);

struct scsi_task {
	/* Filled by the transport. */
	uint8_t cdb[16];
	uint8_t cdb_len;
	uint64_t lun;                 /* decoded LUN number */
	enum scsi_task_attr attr;
	uint32_t expected_len;        /* iSCSI EDTL for the declared direction */
	enum scsi_dir dir;            /* direction the initiator declared */
	const struct iovec *out_iov;  /* data-out, received in full */
	int out_iovcnt;
	uint32_t out_len;

	/* Filled by scsi_task_execute() before done(). */
	enum scsi_status status;
	uint8_t sense[SCSI_SENSE_MAX];
	uint8_t sense_len;
	/* Data-in: owned by the task; released by scsi_task_release(). */
	struct iovec *in_iov;
	int in_iovcnt;
	uint32_t in_len;              /* bytes the command produced (before
	                                 clamping to expected_len) */
	/* Data-out bytes the CDB asked for (its transfer or parameter list
	 * length), for the write residual of RFC 7143 11.4.5.1: more than
	 * expected_len is an overflow, less an underflow.  When data-out
	 * falls short, the whole blocks that arrived are written. */
	uint32_t out_want;

	/* Transport-private. */
	void *priv;

	/* SCSI-private. */
	struct scsi_itn *itn;
	scsi_task_done_fn done;
	void *sp;
};

int scsi_dev_create(struct bdev *bdev, struct bdev_pool *pool,
		    const struct scsi_dev_info *info, struct scsi_dev **out);
/* Only once no task is in flight (scsi_dev_busy() == false). */
void scsi_dev_destroy(struct scsi_dev *d);
bool scsi_dev_busy(const struct scsi_dev *d);
uint64_t scsi_dev_blocks(const struct scsi_dev *d);
/* The device changed size: every nexus gets CAPACITY DATA HAS CHANGED. */
void scsi_dev_capacity_changed(struct scsi_dev *d);

struct scsi_dev_stats {
	uint64_t read_ops, write_ops, other_ops;
	uint64_t read_bytes, write_bytes;
	uint64_t errors;
	uint32_t inflight;
};
void scsi_dev_stats(const struct scsi_dev *d, struct scsi_dev_stats *out);

/* A new nexus starts with a POWER ON/RESET unit attention pending. */
struct scsi_itn *scsi_itn_attach(struct scsi_dev *d, const char *initiator_port);
/* I_T nexus loss (SPC-4 6.16): tasks in flight still complete. */
void scsi_itn_detach(struct scsi_itn *itn);

/*
 * Execute one command.  DONE is called exactly once, maybe before this
 * returns (commands that need no I/O), always on the loop thread.
 */
void scsi_task_execute(struct scsi_itn *itn, struct scsi_task *t, scsi_task_done_fn done);
/* Free data-in buffers after the transport has sent them. */
void scsi_task_release(struct scsi_task *t);

/* Task management (SAM-5 7).  Return a SAM TMF service response. */
enum scsi_tmf {
	SCSI_TMF_ABORT_TASK,
	SCSI_TMF_ABORT_TASK_SET,
	SCSI_TMF_CLEAR_TASK_SET,
	SCSI_TMF_LUN_RESET,
	SCSI_TMF_TARGET_WARM_RESET,
	SCSI_TMF_TARGET_COLD_RESET,
	SCSI_TMF_I_T_NEXUS_RESET,
};
/* LUN/target reset: reservations released, every other nexus gets a
 * unit attention.  Aborting tasks in flight is the transport's job. */
void scsi_tmf(struct scsi_itn *itn, enum scsi_tmf fn);

/* Sense helpers, shared with the transport for its own errors. */
void scsi_set_sense(struct scsi_task *t, uint8_t key, uint16_t asc_ascq);

#define SCSI_SENSE_NO_SENSE 0x0
#define SCSI_SENSE_NOT_READY 0x2
#define SCSI_SENSE_MEDIUM_ERROR 0x3
#define SCSI_SENSE_HARDWARE_ERROR 0x4
#define SCSI_SENSE_ILLEGAL_REQUEST 0x5
#define SCSI_SENSE_UNIT_ATTENTION 0x6
#define SCSI_SENSE_DATA_PROTECT 0x7
#define SCSI_SENSE_ABORTED_COMMAND 0xb
#define SCSI_SENSE_MISCOMPARE 0xe

#endif
