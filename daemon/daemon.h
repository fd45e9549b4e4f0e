/*
 * daemon: the overlaybd-iscsid process around the engine and the transport.
 *
 * Owns the global config (config.md section 2 plus our iSCSI keys), the
 * device specs of the spool directory (config.md section 1 plus `chap` and
 * `acl`), opening images off the loop, one iSCSI target per spec, the
 * control socket and the signals.  It glues blockdev/, scsi/, iscsi/ and
 * registry/ together and never blocks the event loop on an image open:
 * those run on worker threads and report back through ev_async.
 */
#ifndef OBD_DAEMON_H
#define OBD_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DAEMON_DEFAULT_CONFIG "/etc/overlaybd/overlaybd-iscsid.json"

/* CHAP block, shared by discoveryAuth and a spec's `chap`.  NULL = unset. */
struct cfg_chap {
	char *username;
	char *password;
	char *mutual_username;
	char *mutual_password;
};

/* config.md section 6. */
struct cfg_download {
	bool enable;
	unsigned delay;       /* seconds */
	unsigned delay_extra; /* seconds of random extra; 0 means 30 */
	unsigned max_mbps;    /* 0 = unthrottled */
	unsigned try_cnt;
	uint32_t block_size;
};

struct cfg {
	int log_level;            /* 0 debug .. 3 error */
	char *log_path;           /* NULL = stderr */
	int io_engine;            /* enum bdev_io_engine */
	char *registry_cache_dir; /* NULL = no disk cache */
	uint64_t registry_cache_size_gb;
	char *credential_file_path; /* NULL = anonymous */
	/* Registry client options (struct reg_config); NULL / 0 = its default. */
	char *registry_ca_file, *registry_client_cert, *registry_client_key;
	char *registry_proxy, *user_agent;
	unsigned registry_timeout_sec; /* retry deadline per read */
	uint32_t registry_refill_size; /* cache fill unit */
	struct cfg_download download;
	char **portals;
	int nportals;
	char *spool_dir;
	char *iqn_prefix;
	char *control_socket;
	struct cfg_chap discovery_auth;
	char **acl; /* default ACL of specs without one; nacl 0 = anyone */
	int nacl;
	unsigned io_threads;
	unsigned busy_poll_us; /* after a PDU, poll instead of sleeping this long */
	unsigned nop_interval, nop_timeout, login_timeout;
	unsigned max_connections_per_source, max_connections;
	uint32_t max_recv_data_segment_length, max_burst_length, first_burst_length;
	uint32_t queue_depth;
};

/*
 * Parse a config document.  Unknown keys are warned about; a wrong type or
 * a bad value fails with -EINVAL and ERR naming the key.  Secret files
 * (passwordFile, mutualPasswordFile) are read here.
 */
int cfg_parse(const char *text, size_t len, struct cfg **out, char *err, size_t errlen);
int cfg_load(const char *path, struct cfg **out, char *err, size_t errlen);
/* The defaults alone (no file). */
int cfg_default(struct cfg **out);
void cfg_free(struct cfg *c);

/* One lower of a spec (config.md 1.1).  NULL strings are unset. */
struct spec_lower {
	char *file;
	char *digest;
	char *dir;
	uint64_t size;
};

struct spec {
	char *name; /* NAME of NAME.json */
	char *iqn;  /* <iqnPrefix>:<name lowercased, '_' -> '-'> */
	char *repo_blob_url;
	struct spec_lower *lowers; /* [0] = bottom */
	int nlowers;
	char *upper_data, *upper_index; /* both set, or the device is read-only */
	char *result_file;              /* NULL = not written */
	struct cfg_download download;   /* the spec's, else the config's */
	struct cfg_chap chap;           /* per-target CHAP; username NULL = none */
	char **acl;                     /* the spec's, else the config's default */
	int nacl;
	/* docs/trace.md: recordTracePath, or the acceleration layer's
	 * <dir>/trace (replay only); NULL = no trace. */
	char *trace_path;
	bool trace_replay_only;
};

#define SPEC_SUFFIX ".json"

/*
 * Is NAME (the file name without .json) usable as a device name?  Letters,
 * digits, '.', '-' and '_' only, no "..", not starting with '.', and the
 * resulting IQN fits RFC 7143's 223 bytes.  0 or -EINVAL with ERR set.
 */
int spec_name_check(const char *prefix, const char *name, char *err, size_t errlen);

/*
 * Parse and validate a spec document for device NAME under CFG.  On
 * failure ERR holds the reason written after "failed:" to resultFile.
 */
int spec_parse(const char *text, size_t len, const struct cfg *cfg, const char *name,
	       struct spec **out, char *err, size_t errlen);
/* Best effort: the resultFile of a spec that may be invalid otherwise. */
char *spec_peek_result_file(const char *text, size_t len);
void spec_free(struct spec *s);

/*
 * Read SPOOL/FNAME: refuses a symlink that leads outside the spool and
 * anything that is not a regular file.  *TEXT is malloc'ed and
 * NUL-terminated.
 */
int spec_read(const char *spool, const char *fname, char **text, size_t *len, char *err,
	      size_t errlen);

/* Write "success" or "failed:<reason>" (no newline) to PATH, atomically. */
int spec_write_result(const char *path, const char *reason);

/* Run the daemon in the foreground until SIGTERM.  Returns the exit code. */
int daemon_run(const char *config_path);
/* `overlaybd-iscsid status`: print the running daemon's state to stdout. */
int daemon_status(const char *socket_path);

#endif
