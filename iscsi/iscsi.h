/*
 * iscsi: the iSCSI target transport (RFC 7143).
 *
 * Owns portals, connections, PDUs, login and text negotiation, CHAP,
 * sessions and their command windows, R2T/Data-Out, Data-In, NOP, task
 * management and logout.  It never decodes a CDB: SCSI commands go to
 * scsi_task_execute() on the target's struct scsi_dev.  Everything runs on
 * one libev loop; nothing here blocks.
 */
#ifndef OBD_ISCSI_H
#define OBD_ISCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct scsi_dev;

#define ISCSI_NAME_MAX 223

/* CHAP secrets for one direction pair (RFC 7143 12.1.3).  An empty or NULL
 * username disables that direction. */
struct iscsi_chap {
	const char *username;        /* initiator must log in as this */
	const char *password;
	const char *mutual_username; /* target answers as this (mutual) */
	const char *mutual_password;
};

struct iscsi_server_config {
	/* Seconds of idle time before a NOP-In ping, and before an unanswered
	 * ping drops the connection. Defaults 5 and 15. */
	unsigned nop_interval;
	unsigned nop_timeout;
	/* Seconds a connection may spend in the login phase. Default 15. */
	unsigned login_timeout;
	/* Connection limits: per source address and in total. 0 = default
	 * (64 and 4096). */
	unsigned max_conns_per_source;
	unsigned max_conns;
	/* Connections of one source still in login; past it the oldest of
	 * them is dropped for the new one.  0 = default (32, and never more
	 * than max_conns_per_source). */
	unsigned max_login_conns_per_source;
	/* Our declared limits (RFC 7143 13.12-13.14); 0 = defaults. */
	uint32_t max_recv_data_segment_length; /* default 262144 */
	uint32_t max_burst_length;             /* default 16776192 */
	uint32_t first_burst_length;           /* default 262144 */
	uint32_t max_queue_depth;              /* commands per session, default 128 */
};

struct iscsi_server;
struct iscsi_target;

int iscsi_server_create(struct ev_loop *loop, const struct iscsi_server_config *cfg,
			struct iscsi_server **out);
/* Start listening on "ADDR:PORT" or "[V6ADDR]:PORT". */
int iscsi_server_listen(struct iscsi_server *s, const char *portal);
/* Discovery-session CHAP; NULL disables it. Copied. */
int iscsi_server_set_discovery_chap(struct iscsi_server *s, const struct iscsi_chap *chap);
/* Stop accepting, close every connection once its tasks finish; DONE runs
 * on the loop when nothing is left. */
void iscsi_server_shutdown(struct iscsi_server *s, void (*done)(void *arg), void *arg);
void iscsi_server_destroy(struct iscsi_server *s);
/* When some connection last received bytes (the loop's ev_now). */
double iscsi_server_last_rx(const struct iscsi_server *s);

/*
 * A target: NAME (the full IQN) serving DEV as LUN 0.  CHAP and ACL are
 * copied; ACL NULL (or nacl 0) lets any initiator in.  The scsi_dev stays
 * the caller's; it must outlive the target.
 */
int iscsi_target_create(struct iscsi_server *s, const char *name, const char *alias,
			struct scsi_dev *dev, const struct iscsi_chap *chap,
			const char *const *acl, int nacl, struct iscsi_target **out);
/* Replace CHAP and ACL of a live target (existing sessions stay). */
int iscsi_target_set_auth(struct iscsi_target *t, const struct iscsi_chap *chap,
			  const char *const *acl, int nacl);
/*
 * Remove a target: new logins are refused, sessions get an Async Message
 * (RFC 7143 11.9, "target requests logout") and are dropped after a grace
 * period; DONE runs on the loop once no session or task is left, after
 * which the caller may destroy the scsi_dev.
 */
void iscsi_target_remove(struct iscsi_target *t, void (*done)(void *arg), void *arg);

/* For status output. */
struct iscsi_session_info {
	const char *target;
	const char *initiator;
	uint64_t isid;
	uint16_t tsih;
	char peer[64];
	uint32_t cmds_inflight;
	uint64_t cmds_total;
};
typedef void (*iscsi_session_cb)(void *arg, const struct iscsi_session_info *info);
void iscsi_server_foreach_session(struct iscsi_server *s, iscsi_session_cb cb, void *arg);

#endif
