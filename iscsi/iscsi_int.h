/*
 * iscsi_int: what the files of iscsi/ share and nothing else sees.
 *
 * One connection per session (MaxConnections=1, ErrorRecoveryLevel=0), so a
 * session and its connection live and die together.  Every structure here
 * is touched only by the loop thread.
 */
#ifndef OBD_ISCSI_INT_H
#define OBD_ISCSI_INT_H

#include "iscsi.h"
#include "scsi/scsi.h"

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define ISCSI_BHS_LEN 48
#define ISCSI_DIGEST_LEN 4
/* RFC 7143 11.2.1.2: TotalAHSLength counts 4-byte words in one byte. */
#define ISCSI_AHS_MAX (255 * 4)
#define ISCSI_RSVD_TAG 0xffffffffu
/* RFC 7143 13.12: the declarable range of MaxRecvDataSegmentLength. */
#define ISCSI_DSL_MIN 512u
#define ISCSI_DSL_MAX 16777215u
/* Login and Text payloads are key=value text; this bounds what we collect
 * across C-bit continuations (RFC 7143 6.6) and what we answer with. */
#define ISCSI_TEXT_MAX 65536u
/* Largest write a single command may carry (the data-out buffer). */
#define ISCSI_EDTL_MAX (64u << 20)

/* RFC 7143 11.1.1 opcodes. */
enum {
	ISCSI_OP_NOP_OUT = 0x00,
	ISCSI_OP_SCSI_CMD = 0x01,
	ISCSI_OP_TMF_REQ = 0x02,
	ISCSI_OP_LOGIN_REQ = 0x03,
	ISCSI_OP_TEXT_REQ = 0x04,
	ISCSI_OP_DATA_OUT = 0x05,
	ISCSI_OP_LOGOUT_REQ = 0x06,
	ISCSI_OP_SNACK = 0x10,
	ISCSI_OP_NOP_IN = 0x20,
	ISCSI_OP_SCSI_RSP = 0x21,
	ISCSI_OP_TMF_RSP = 0x22,
	ISCSI_OP_LOGIN_RSP = 0x23,
	ISCSI_OP_TEXT_RSP = 0x24,
	ISCSI_OP_DATA_IN = 0x25,
	ISCSI_OP_LOGOUT_RSP = 0x26,
	ISCSI_OP_R2T = 0x31,
	ISCSI_OP_ASYNC = 0x32,
	ISCSI_OP_REJECT = 0x3f,
};

#define ISCSI_OPCODE_MASK 0x3f
#define ISCSI_FLAG_IMMEDIATE 0x40
#define ISCSI_FLAG_FINAL 0x80
#define ISCSI_FLAG_CONTINUE 0x40

/* RFC 7143 11.17.1 Reject reasons. */
enum {
	ISCSI_REJECT_DIGEST = 0x02,
	ISCSI_REJECT_SNACK = 0x03,
	ISCSI_REJECT_PROTOCOL = 0x04,
	ISCSI_REJECT_NOT_SUPPORTED = 0x05,
	ISCSI_REJECT_IMMEDIATE = 0x06,
	ISCSI_REJECT_IN_PROGRESS = 0x07,
	ISCSI_REJECT_INVALID_FIELD = 0x09,
	ISCSI_REJECT_OUT_OF_RESOURCES = 0x0a,
	ISCSI_REJECT_WAITING_LOGOUT = 0x0c,
};

/* RFC 7143 11.13.5 Login status, class << 8 | detail. */
enum {
	ISCSI_LOGIN_OK = 0x0000,
	ISCSI_LOGIN_INITIATOR_ERROR = 0x0200,
	ISCSI_LOGIN_AUTH_FAILED = 0x0201,
	ISCSI_LOGIN_FORBIDDEN = 0x0202,
	ISCSI_LOGIN_NOT_FOUND = 0x0203,
	ISCSI_LOGIN_TARGET_REMOVED = 0x0204,
	ISCSI_LOGIN_UNSUPPORTED_VERSION = 0x0205,
	ISCSI_LOGIN_TOO_MANY_CONNS = 0x0206,
	ISCSI_LOGIN_MISSING_PARAM = 0x0207,
	ISCSI_LOGIN_NO_SESSION_SPANNING = 0x0208,
	ISCSI_LOGIN_SESSION_TYPE = 0x0209,
	ISCSI_LOGIN_NO_SESSION = 0x020a,
	ISCSI_LOGIN_INVALID_REQUEST = 0x020b,
	ISCSI_LOGIN_TARGET_ERROR = 0x0300,
	ISCSI_LOGIN_UNAVAILABLE = 0x0301,
	ISCSI_LOGIN_NO_RESOURCES = 0x0302,
};

/* Big-endian field access on a BHS. */
static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t get_be24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}
static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}
static inline void put_be24(uint8_t *p, uint32_t v)
{
	p[0] = v >> 16;
	p[1] = v >> 8;
	p[2] = v;
}
static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, v >> 32);
	put_be32(p + 4, (uint32_t)v);
}

/* RFC 1982 serial number arithmetic on 32-bit sequence numbers. */
static inline bool sn_lt(uint32_t a, uint32_t b)
{
	return a != b && (int32_t)(a - b) < 0;
}
static inline bool sn_le(uint32_t a, uint32_t b)
{
	return a == b || (int32_t)(a - b) < 0;
}

/*
 * Negotiated values (RFC 7143 section 13), named as the keys are.  One set
 * per session; the two digest keys and MaxRecvDataSegmentLength are
 * per connection, which is the same thing here.
 */
struct iscsi_params {
	bool HeaderDigest;             /* CRC32C */
	bool DataDigest;
	uint32_t MaxConnections;
	bool InitialR2T;
	bool ImmediateData;
	uint32_t MaxRecvDataSegmentLength;     /* ours: what we accept */
	uint32_t PeerMaxRecvDataSegmentLength; /* theirs: what we may send */
	uint32_t MaxBurstLength;
	uint32_t FirstBurstLength;
	uint32_t DefaultTime2Wait;
	uint32_t DefaultTime2Retain;
	uint32_t MaxOutstandingR2T;
	bool DataPDUInOrder;
	bool DataSequenceInOrder;
	uint32_t ErrorRecoveryLevel;
	uint32_t iSCSIProtocolLevel;
};

/* A growing text buffer of key=value\0 pairs. */
struct iscsi_kv {
	char *buf;
	uint32_t len, cap;
	bool overflow;
};
void iscsi_kv_init(struct iscsi_kv *kv);
void iscsi_kv_free(struct iscsi_kv *kv);
void iscsi_kv_add(struct iscsi_kv *kv, const char *key, const char *val);
void iscsi_kv_addf(struct iscsi_kv *kv, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int iscsi_kv_append_raw(struct iscsi_kv *kv, const void *data, uint32_t len);
/*
 * Walk the key=value pairs of DATA[0..LEN).  CB gets each pair; a pair
 * without '=' or a key or value over its RFC 7143 6.1 limit is -EINVAL.
 */
typedef int (*iscsi_kv_fn)(void *arg, const char *key, const char *val);
int iscsi_kv_parse(const char *data, uint32_t len, iscsi_kv_fn cb, void *arg);

/* Login / text negotiation state for one connection (iscsi_param.c). */
enum iscsi_stage { ISCSI_STAGE_SECURITY = 0, ISCSI_STAGE_OPERATIONAL = 1, ISCSI_STAGE_FFP = 3 };

struct iscsi_neg {
	struct iscsi_params p;
	struct iscsi_params ours;  /* our side of each negotiation */
	bool discovery;
	enum iscsi_stage stage;
	uint64_t seen;             /* table rows already answered (6.2: once) */
	bool declared_mrdsl;       /* our MaxRecvDataSegmentLength sent */
};

/* Our offers, from the server config. */
struct iscsi_limits {
	uint32_t max_recv_dsl, max_burst, first_burst;
};

void iscsi_params_default(struct iscsi_params *p);
void iscsi_neg_init(struct iscsi_neg *n, const struct iscsi_limits *lim, bool discovery);
/*
 * Answer one key the initiator sent into OUT.  Returns 0 (answered, maybe
 * with NotUnderstood / Irrelevant / Reject), 1 when the key is not a
 * negotiation key (login keys and CHAP are handled by the caller), or,
 * when the login must fail with an initiator error, -EPROTO (6.2: a key
 * renegotiated, a reserved constant proposed) or -EINVAL (a declarative
 * key with a malformed or out-of-range value).
 */
int iscsi_param_negotiate(struct iscsi_neg *n, const char *key, const char *val,
			  struct iscsi_kv *out);
/* An RFC 7143 6.1 numerical-value (decimal, or 0x hex) within MIN..MAX:
 * 0, -EINVAL if malformed, -ERANGE if out of range. */
int iscsi_num_parse(const char *v, uint32_t min, uint32_t max, uint32_t *out);
/* After the operational stage: fix up values that depend on each other. */
void iscsi_param_finish(struct iscsi_neg *n);
/* True for keys a responder answers "NotUnderstood" (unknown, X- ...). */
bool iscsi_param_known(const char *key);

/* CHAP (iscsi_chap.c), RFC 1994 with RFC 7143 12.1.3. */
enum iscsi_chap_alg { ISCSI_CHAP_MD5 = 5, ISCSI_CHAP_SHA256 = 7 };
#define ISCSI_CHAP_MAX_DIGEST 32
#define ISCSI_CHAP_MAX_CHALLENGE 1024

struct iscsi_chap_state {
	int alg;                   /* 0 before CHAP_A */
	uint8_t id;
	uint8_t challenge[32];
	uint32_t challenge_len;
	bool challenge_sent;
};
/* Pick an algorithm from the initiator's CHAP_A list; 0 if none fits. */
int iscsi_chap_pick_alg(const char *list);
uint32_t iscsi_chap_digest_len(int alg);
/* H(id || secret || challenge) into OUT (digest_len bytes). */
int iscsi_chap_response(int alg, uint8_t id, const char *secret, const uint8_t *challenge,
			uint32_t clen, uint8_t *out);
/* Decode a CHAP binary value ("0x" hex or "0b" base64, RFC 7143 6.1). */
int iscsi_chap_decode(const char *val, uint8_t *out, uint32_t max, uint32_t *len);
/* Encode as "0x" hex into OUT (2 * len + 3 bytes). */
void iscsi_chap_encode(const uint8_t *in, uint32_t len, char *out);
/* Constant-time check of the initiator's CHAP_R. */
bool iscsi_chap_verify(int alg, uint8_t id, const char *secret, const uint8_t *challenge,
		       uint32_t clen, const uint8_t *resp, uint32_t rlen);
/* Fill a new challenge for ST (random id and bytes). */
int iscsi_chap_new_challenge(struct iscsi_chap_state *st, int alg);

/* Copied CHAP credentials. */
struct iscsi_auth {
	char *username, *password, *mutual_username, *mutual_password;
};
int iscsi_auth_set(struct iscsi_auth *a, const struct iscsi_chap *chap);
/* Replace DST with a private copy of SRC (0 or -errno). */
int iscsi_auth_copy(struct iscsi_auth *dst, const struct iscsi_auth *src);
void iscsi_auth_clear(struct iscsi_auth *a);
static inline bool iscsi_auth_required(const struct iscsi_auth *a)
{
	return a->username && a->username[0];
}

/* Transmit queue entries. */
struct iscsi_task;
struct iscsi_tx {
	struct iscsi_tx *next;
	uint8_t hdr[ISCSI_BHS_LEN + ISCSI_DIGEST_LEN];
	uint8_t tail[8];            /* pad + data digest */
	uint8_t hdr_len, tail_len;
	int iovcnt;
	struct iovec *iov;          /* data segment */
	uint32_t data_len;
	void *buf;                  /* owned copy of the data, freed when sent */
	struct iscsi_task *task;    /* Data-In from task buffers: a reference */
	struct iovec iov_small[2];
};

struct iscsi_server;
struct iscsi_session;
struct iscsi_conn;

enum iscsi_conn_state {
	CONN_LOGIN,
	CONN_FFP,
	CONN_LOGOUT,   /* logout response queued: close once sent */
	CONN_CLOSED,   /* socket closed; waiting for tasks in SCSI */
};

enum rx_state { RX_BHS, RX_AHS, RX_DATA, RX_TAIL };

struct iscsi_conn {
	struct iscsi_server *srv;
	struct iscsi_conn *next, *prev;
	int fd;
	enum iscsi_conn_state state;
	bool in_rx;                   /* in the receive loop: defer free */
	ev_io rio, wio;
	ev_timer timer;
	ev_prepare flush;
	ev_tstamp last_rx;
	ev_tstamp ping_sent;          /* 0 = no NOP-In outstanding */
	uint32_t ping_ttt;
	struct sockaddr_storage peer_sa, local_sa;
	char peer[64];                /* "addr:port" for logs */
	char peer_host[INET6_ADDRSTRLEN];
	char local_portal[80];        /* "addr:port" as SendTargets returns it */

	/* Receive: a ring for small PDUs, payloads read straight into place. */
	uint8_t *ring;
	uint32_t ring_cap, ring_rd, ring_wr;
	enum rx_state rx;
	uint8_t hdr[ISCSI_BHS_LEN + ISCSI_AHS_MAX + ISCSI_DIGEST_LEN];
	uint32_t hdr_need, hdr_got;
	uint32_t ahs_len, dsl;
	uint8_t *data;                /* where the data segment goes */
	uint32_t data_got;
	uint8_t *data_own;            /* conn-owned buffer, or NULL */
	uint32_t data_own_cap;
	uint8_t tail[8];
	uint32_t tail_need, tail_got;
	struct iscsi_task *rx_task;   /* Data-Out / immediate data target */
	bool rx_discard;              /* payload read and dropped */
	int rx_r2t;                   /* R2T slot of a Data-Out, -1 unsolicited */

	/* Transmit. */
	struct iscsi_tx *txq_head, *txq_tail;
	size_t tx_off;                /* bytes of the head already sent */
	bool wio_on;
	uint32_t tx_queued;

	/* Login. */
	struct iscsi_neg neg;
	struct iscsi_params params;   /* in force for the full feature phase */
	struct iscsi_kv login_in;     /* request text across C-bit PDUs */
	struct iscsi_kv login_out;    /* response text not yet sent */
	uint32_t login_out_off;
	uint8_t login_isid[6];
	uint16_t login_tsih;
	uint16_t cid;
	uint32_t login_itt;
	uint32_t login_cmdsn;
	bool login_first;             /* no response sent yet */
	bool login_auth_done;
	bool login_discovery;
	bool login_type_seen;
	bool login_need_chap;
	bool login_delayed;            /* a CHAP failure answer is held back */
	int login_chap_step;          /* 0 AuthMethod, 1 CHAP_A sent, 2 done */
	struct iscsi_chap_state chap;
	struct iscsi_auth login_creds; /* the secrets this login started with */
	char *initiator_name;
	char *target_name;
	char *initiator_alias;
	struct iscsi_target *login_target;
	ev_timer login_delay;         /* slowed-down CHAP failure answer */
	uint16_t login_fail_status;

	/* Text requests (RFC 7143 11.10): continuation both ways. */
	struct iscsi_kv text_in;
	struct iscsi_kv text_out;
	uint32_t text_out_off;
	uint32_t text_itt, text_ttt;

	/* Full feature phase. */
	struct iscsi_session *sess;
	uint32_t StatSN, ExpStatSN;
	uint32_t next_ttt;
	unsigned ntasks;              /* tasks alive (any state) */
};

/* A SCSI command through its life. */
enum iscsi_task_state {
	TASK_PENDING,     /* received ahead of ExpCmdSN, waiting */
	TASK_DATA_OUT,    /* collecting write data */
	TASK_EXEC,        /* in scsi_task_execute */
	TASK_SENDING,     /* response queued; waiting for the socket */
};

struct iscsi_task {
	struct scsi_task st;
	struct iscsi_conn *conn;
	struct iscsi_task *hnext;       /* ITT hash */
	struct iscsi_task *next, *prev; /* session list */
	struct iscsi_task *pnext;       /* pending-by-CmdSN list */
	enum iscsi_task_state state;
	bool immediate, aborted, in_scsi, in_hash, counted;
	bool dropped;                   /* let go: freed once nothing holds it */
	bool imm_counted;               /* holds an immediate-command slot */
	uint32_t itt, cmdsn, edtl;
	uint8_t lun_raw[8];
	uint8_t flags;                  /* R/W bits of the command */
	int refs;                       /* tx entries holding in_iov */

	/* Data-Out (RFC 7143 11.7, 11.8). */
	uint8_t *out_buf;
	struct iovec out_iov;
	uint32_t out_got;               /* bytes received */
	uint32_t unsol_len;             /* unsolicited bytes expected */
	uint32_t unsol_datasn;
	bool unsol_done;                /* no more unsolicited Data-Out */
	uint32_t r2t_next;              /* next offset to solicit */
	uint32_t r2tsn;
	unsigned r2t_active;
	struct iscsi_r2t {
		uint32_t ttt, off, len, got, datasn;
		bool used;
	} *r2t;                          /* MaxOutstandingR2T slots */
	uint32_t datasn_in;             /* Data-In DataSN */
	struct iscsi_tmf_wait *tmf;     /* a TMF waiting for this task */
};

#define ISCSI_TASK_HASH 256

struct iscsi_session {
	struct iscsi_server *srv;
	struct iscsi_session *next, *prev;
	struct iscsi_target *tgt;       /* NULL for discovery */
	struct iscsi_conn *conn;
	char *initiator_name;
	char *initiator_port;           /* "iqn,i,0x<isid>" */
	uint8_t isid[6];
	uint16_t tsih;
	bool discovery;
	struct scsi_itn *itn;
	uint32_t ExpCmdSN, MaxCmdSN;
	uint32_t cmds_window;           /* non-immediate tasks holding a slot */
	uint32_t queue_depth;
	struct iscsi_task *tasks;       /* every live task */
	struct iscsi_task *hash[ISCSI_TASK_HASH];
	struct iscsi_task *pending;     /* ahead of ExpCmdSN, by CmdSN */
	/* CmdSNs ahead of ExpCmdSN counted as received with no task waiting
	 * on them: one bit per CmdSN modulo ahead_mask + 1. */
	uint32_t *cmdsn_ahead;
	uint32_t ahead_mask;
	uint32_t nimmediate;            /* immediate SCSI tasks alive */
	uint32_t ninflight;
	uint64_t ntotal;
	ev_timer logout_timer;          /* target-requested logout grace */
	bool logout_requested;
};

struct iscsi_target {
	struct iscsi_server *srv;
	struct iscsi_target *next;
	char *name, *alias;
	struct scsi_dev *dev;
	struct iscsi_auth auth;
	char **acl;
	int nacl;
	bool removing;
	unsigned nsessions;
	void (*remove_done)(void *arg);
	void *remove_arg;
	ev_timer remove_check;        /* runs once the last session is gone */
};

struct iscsi_portal {
	struct iscsi_portal *next;
	int fd;
	ev_io io;
	struct iscsi_server *srv;
	char name[80];
};

/* Slow-down of repeated CHAP failures (issue 6), per source address and
 * target ("" for discovery): the secret belongs to the target, and the
 * InitiatorName is the peer's to choose, so it is no part of the key. */
#define ISCSI_AUTH_FAIL_SLOTS 64
struct iscsi_auth_fail {
	char host[INET6_ADDRSTRLEN];
	char target[ISCSI_NAME_MAX + 1];
	unsigned count;
	ev_tstamp last;
};
/* CHAP exchanges one source may run at once against one target: with a
 * failure answered late, this bounds its guesses per second. */
#define ISCSI_CHAP_PARALLEL_MAX 4

struct iscsi_server {
	struct ev_loop *loop;
	struct iscsi_server_config cfg;
	struct iscsi_limits lim;
	struct iscsi_portal *portals;
	struct iscsi_target *targets;
	struct iscsi_session *sessions;
	struct iscsi_conn *conns;
	unsigned nconns;
	uint16_t next_tsih;
	struct iscsi_auth disc_auth;
	struct iscsi_auth_fail fails[ISCSI_AUTH_FAIL_SLOTS];
	bool shutting_down;
	unsigned nimmediate;          /* immediate SCSI tasks of every session */
	ev_tstamp last_rx;            /* ev_now of the last received bytes */
	void (*shutdown_done)(void *arg);
	void *shutdown_arg;
	ev_timer shutdown_check;      /* runs once the last connection is gone */
};

/* iscsi_server.c */
struct iscsi_target *iscsi_server_find_target(struct iscsi_server *s, const char *name);
bool iscsi_target_allows(const struct iscsi_target *t, const char *initiator);
void iscsi_server_conn_gone(struct iscsi_server *s);
/* Seconds to hold back a failed CHAP answer from HOST to TARGET ("" for
 * discovery), and the note of each outcome that sets it. */
double iscsi_auth_fail_delay(struct iscsi_server *s, const char *host, const char *target);
void iscsi_auth_fail_note(struct iscsi_server *s, const char *host, const char *target,
			  bool failed);
/* CHAP exchanges C's source runs against C's target, C itself not counted. */
unsigned iscsi_chap_inflight(struct iscsi_server *s, const struct iscsi_conn *c);
void iscsi_target_session_gone(struct iscsi_target *t);

/* iscsi_conn.c */
struct iscsi_conn *iscsi_conn_new(struct iscsi_server *s, int fd);
/* Test seam: run the receive state machine over bytes as if they came from
 * the socket.  Returns -1 once the connection decided to close. */
int iscsi_conn_feed(struct iscsi_conn *c, const uint8_t *buf, size_t len);
void iscsi_conn_close(struct iscsi_conn *c, const char *why);
/* Stop reading, send what is queued (bounded by a short timer), close. */
void iscsi_conn_finish(struct iscsi_conn *c);
void iscsi_conn_enqueue(struct iscsi_conn *c, struct iscsi_tx *tx);
struct iscsi_tx *iscsi_tx_new(uint8_t opcode);
/* Attach a copy of DATA as the tx's data segment. */
int iscsi_tx_set_data(struct iscsi_tx *tx, const void *data, uint32_t len);
void iscsi_tx_free(struct iscsi_tx *tx);
void iscsi_conn_task_unref(struct iscsi_task *t);
void iscsi_conn_maybe_free(struct iscsi_conn *c);

/* iscsi_pdu.c: dispatch and small PDUs. */
int iscsi_pdu_dispatch(struct iscsi_conn *c);
/* The 48-byte header is in: refuse what no later byte can make right. */
int iscsi_pdu_check_bhs(struct iscsi_conn *c);
/*
 * Called once the header is in: decide where the data segment goes.  Sets
 * c->data (or c->rx_discard).  Negative = close the connection.
 */
int iscsi_pdu_data_dest(struct iscsi_conn *c);
void iscsi_send_reject(struct iscsi_conn *c, uint8_t reason, const uint8_t *bhs);
/* Fill StatSN / ExpCmdSN / MaxCmdSN at 24/28/32 (advancing StatSN). */
void iscsi_pdu_set_sn(struct iscsi_conn *c, uint8_t *bhs, bool advance_statsn);

/* iscsi_login.c */
int iscsi_login_pdu(struct iscsi_conn *c);
void iscsi_login_cleanup(struct iscsi_conn *c);

/* iscsi_name.c */
/* An InitiatorName or TargetName a peer may use (RFC 7143 4.2.7, RFC 3722). */
bool iscsi_name_valid(const char *name);
/* S with every byte outside printable ASCII escaped as \xNN, into BUF. */
const char *iscsi_log_str(const char *s, char *buf, size_t len);
/* Room for an escaped iSCSI name and then some. */
#define ISCSI_LOG_STR_MAX 256

/* iscsi_text.c */
int iscsi_text_pdu(struct iscsi_conn *c);

/* iscsi_session.c */
int iscsi_session_create(struct iscsi_conn *c, struct iscsi_target *t, bool discovery,
			 struct iscsi_session **out);
void iscsi_session_destroy(struct iscsi_session *s);
void iscsi_session_window(struct iscsi_session *s, uint32_t *exp, uint32_t *max);
/* Count CMDSN as received by a request that leaves no task behind. */
void iscsi_session_cmdsn_received(struct iscsi_session *s, uint32_t cmdsn);
/* CmdSN bookkeeping for non-SCSI requests (Text, TMF, Logout, NOP). */
int iscsi_session_check_cmdsn(struct iscsi_conn *c, const uint8_t *bhs);
int iscsi_scsi_cmd_pdu(struct iscsi_conn *c);
int iscsi_scsi_cmd_data_dest(struct iscsi_conn *c);
int iscsi_data_out_dest(struct iscsi_conn *c);
int iscsi_data_out_pdu(struct iscsi_conn *c);
int iscsi_scsi_cmd_done_rx(struct iscsi_conn *c);
struct iscsi_task *iscsi_task_find(struct iscsi_session *s, uint32_t itt);
/* Let T go; its memory is freed once nothing holds it (iscsi_tmf.c). */
void iscsi_task_free(struct iscsi_task *t);
/* C stops receiving into its rx_task; a task let go meanwhile is freed. */
void iscsi_task_rx_release(struct iscsi_conn *c);
/* Drop a task that has not reached SCSI, or mark one in SCSI aborted. */
void iscsi_task_abort(struct iscsi_task *t);
void iscsi_session_reinstate(struct iscsi_server *srv, const char *initiator,
			     const uint8_t isid[6], struct iscsi_target *t);

/* iscsi_tmf.c */
struct iscsi_tmf_wait;
int iscsi_tmf_pdu(struct iscsi_conn *c);
void iscsi_tmf_task_done(struct iscsi_task *t);

/* iscsi_nop.c */
int iscsi_nop_out_pdu(struct iscsi_conn *c);
void iscsi_nop_timer(struct iscsi_conn *c);

/* iscsi_logout.c */
int iscsi_logout_pdu(struct iscsi_conn *c);
void iscsi_session_request_logout(struct iscsi_session *s);

#endif
