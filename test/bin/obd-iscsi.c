/*
 * obd-iscsi: the libiscsi client the integration tests drive the daemon with.
 *
 *   read [--offset B] [--length B] URL        sha256 of the LUN (or of a byte range)
 *   write [--fua] URL LBA COUNT SEED           COUNT blocks of pattern SEED at LBA
 *   verify URL LBA COUNT SEED                  those blocks hold pattern SEED
 *   crash-write URL JOURNAL LBA COUNT [--qd N] [--seconds S] [--max-len N]
 *        acknowledged writes (FUA, or WRITE then SYNCHRONIZE CACHE) into [LBA, LBA+COUNT),
 *        each logged to JOURNAL before it is issued ("I id lba len") and after it is
 *        acknowledged ("A id"); first re-issues writes the journal left unacknowledged
 *   fill URL JOURNAL LBA COUNT                 FUA writes, in order, until the first SCSI error
 *   crash-check URL JOURNAL LBA COUNT          every block holds what the journal allows
 *   soak --seconds S --sessions N URL...       N sessions over the URLs, checked against a model
 *   xcopy URL SRC DST SRC_LBA DST_LBA COUNT    one EXTENDED COPY (LID1) of COUNT blocks between the
 *        LUs named by NAA designators SRC and DST (hex, or an IQN whose designator the daemon
 *        derives: NAA 5, our OUI, SHA-256 of the name); prints the status ("GOOD",
 *        "RESERVATION CONFLICT" or "CHECK CONDITION KEY/ASC/ASCQ" in hex) and exits 0
 *
 * Every block a test writes is pattern(id, lba): a 24-byte header naming the write and the LBA,
 * then a pseudo-random stream seeded from both, so a block read back tells which write put it
 * there.  Id 0 is the all-zero block (never written, or unmapped with LBPRZ).
 *
 * Exit status: 0 ok, 1 check failed or SCSI error, 2 usage, 3 the connection was lost
 * (expected when a test kills the daemon under crash-write).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <openssl/evp.h>

#define BS 512u
#define EXIT_CHECK 1
#define EXIT_USAGE 2
#define EXIT_CONN 3

static const char *initiator = "iqn.2026-11.io.overlaybd.test:initiator";
static bool quiet;

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "obd-iscsi: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	/* Abandons whatever is in flight: no leak report for that, just the status. */
	fflush(NULL);
	_exit(code);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_state;

static uint64_t rnd(uint64_t n)
{
	return n ? splitmix(&rng_state) % n : 0;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void fill_block(uint8_t *b, uint64_t id, uint64_t lba)
{
	uint64_t s = id * 0x2545f4914f6cdd1dull ^ lba;
	unsigned i;

	if (id == 0) {
		memset(b, 0, BS);
		return;
	}
	memcpy(b, "OBDTEST\n", 8);
	put64(b + 8, id);
	put64(b + 16, lba);
	for (i = 24; i < BS; i += 8)
		put64(b + i, splitmix(&s));
}

static bool block_is(const uint8_t *b, uint64_t id, uint64_t lba)
{
	uint8_t want[BS];

	fill_block(want, id, lba);
	return memcmp(want, b, BS) == 0;
}

/* What a block holds, for messages: "zero", "write 17 of lba 9", or "foreign bytes". */
static void describe_block(const uint8_t *b, char *out, size_t len)
{
	static const uint8_t zero[BS];

	if (!memcmp(b, zero, BS))
		snprintf(out, len, "zero");
	else if (!memcmp(b, "OBDTEST\n", 8) && block_is(b, get64(b + 8), get64(b + 16)))
		snprintf(out, len, "write %" PRIu64 " made for lba %" PRIu64, get64(b + 8),
			 get64(b + 16));
	else
		snprintf(out, len, "bytes never written by this test (%02x%02x%02x%02x...)",
			 b[0], b[1], b[2], b[3]);
}

static void sense_str(struct scsi_task *t, char *out, size_t len)
{
	if (t->status == SCSI_STATUS_CHECK_CONDITION)
		snprintf(out, len, "CHECK CONDITION %s (0x%x) asc/ascq 0x%04x",
			 scsi_sense_key_str(t->sense.key), t->sense.key, t->sense.ascq);
	else
		snprintf(out, len, "status 0x%x", t->status);
}

/* ---- connections ---- */

struct conn {
	struct iscsi_context *ctx;
	struct iscsi_url *url;
	uint64_t blocks;	/* LUN size in 512-byte blocks */
	bool lbprz;
};

static struct iscsi_context *new_ctx(const char *url_str, struct iscsi_url **url_out)
{
	struct iscsi_context *ctx = iscsi_create_context(initiator);
	struct iscsi_url *url;

	if (!ctx)
		die(EXIT_USAGE, "cannot create an iSCSI context");
	url = iscsi_parse_full_url(ctx, url_str);
	if (!url)
		die(EXIT_USAGE, "bad URL %s: %s", url_str, iscsi_get_error(ctx));
	iscsi_set_targetname(ctx, url->target);
	iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	if (url->user[0])
		iscsi_set_initiator_username_pwd(ctx, url->user, url->passwd);
	if (url->target_user[0])
		iscsi_set_target_username_pwd(ctx, url->target_user, url->target_passwd);
	iscsi_set_noautoreconnect(ctx, 1);
	*url_out = url;
	return ctx;
}

static void read_capacity(struct conn *c)
{
	struct scsi_task *t;
	struct scsi_readcapacity16 *rc;

	t = iscsi_readcapacity16_sync(c->ctx, c->url->lun);
	if (!t || t->status != SCSI_STATUS_GOOD)
		die(EXIT_CHECK, "READ CAPACITY(16) failed: %s", iscsi_get_error(c->ctx));
	rc = scsi_datain_unmarshall(t);
	if (!rc)
		die(EXIT_CHECK, "READ CAPACITY(16): bad data");
	if (rc->block_length != BS)
		die(EXIT_CHECK, "expected 512-byte blocks, got %u", rc->block_length);
	c->blocks = rc->returned_lba + 1;
	c->lbprz = rc->lbprz;
	scsi_free_scsi_task(t);
}

static void conn_open(struct conn *c, const char *url_str)
{
	c->ctx = new_ctx(url_str, &c->url);
	if (iscsi_full_connect_sync(c->ctx, c->url->portal, c->url->lun) != 0)
		die(EXIT_CONN, "login to %s failed: %s", url_str, iscsi_get_error(c->ctx));
	read_capacity(c);
}

static void conn_close(struct conn *c)
{
	iscsi_logout_sync(c->ctx);
	iscsi_destroy_url(c->url);
	iscsi_destroy_context(c->ctx);
}

/* Service one context until *done (or the connection breaks: exit 3). */
static void run_until(struct iscsi_context *ctx, const int *done)
{
	struct pollfd pfd;

	while (!*done) {
		pfd.fd = iscsi_get_fd(ctx);
		pfd.events = iscsi_which_events(ctx);
		if (pfd.fd < 0)
			die(EXIT_CONN, "connection lost: %s", iscsi_get_error(ctx));
		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			die(EXIT_CONN, "poll: %s", strerror(errno));
		if (iscsi_service(ctx, pfd.revents) < 0)
			die(EXIT_CONN, "connection lost: %s", iscsi_get_error(ctx));
	}
}

/* ---- read: sha256 of the LUN through a window of concurrent READ(16)s ---- */

#define RD_CHUNK (256u * 1024)
#define RD_QD 8

struct rd_slot {
	struct scsi_task *task;
	uint8_t *buf;
	uint32_t len;
	int done;
};

static int rd_done_flag;

static void rd_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct rd_slot *s = priv;
	struct scsi_task *t = data;

	if (status != SCSI_STATUS_GOOD) {
		char why[128];

		sense_str(t, why, sizeof(why));
		die(EXIT_CHECK, "READ(16) failed: %s %s", why, iscsi_get_error(ctx));
	}
	if (t->datain.size != (int)s->len)
		die(EXIT_CHECK, "READ(16): expected %u bytes, got %d", s->len, t->datain.size);
	memcpy(s->buf, t->datain.data, s->len);
	s->done = 1;
	rd_done_flag = 1;
}

static int cmd_read(int argc, char **argv)
{
	uint64_t off = 0, len = UINT64_MAX, pos, end, next;
	struct rd_slot slots[RD_QD];
	unsigned char md[32];
	unsigned int mdlen;
	EVP_MD_CTX *h;
	struct conn c;
	unsigned head = 0, tail = 0, i;
	const char *url = NULL;

	for (i = 0; i < (unsigned)argc; i++) {
		if (!strcmp(argv[i], "--offset") && i + 1 < (unsigned)argc)
			off = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--length") && i + 1 < (unsigned)argc)
			len = strtoull(argv[++i], NULL, 0);
		else
			url = argv[i];
	}
	if (!url || off % BS || (len != UINT64_MAX && len % BS))
		die(EXIT_USAGE, "usage: read [--offset B] [--length B] URL (multiples of 512)");
	conn_open(&c, url);
	end = c.blocks * BS;
	if (off > end)
		die(EXIT_USAGE, "offset %" PRIu64 " beyond the LUN (%" PRIu64 " bytes)", off, end);
	if (len != UINT64_MAX && off + len < end)
		end = off + len;
	h = EVP_MD_CTX_new();
	EVP_DigestInit_ex(h, EVP_sha256(), NULL);
	memset(slots, 0, sizeof(slots));
	for (i = 0; i < RD_QD; i++)
		slots[i].buf = malloc(RD_CHUNK);
	next = off;
	pos = off;
	while (pos < end) {
		while (head - tail < RD_QD && next < end) {
			struct rd_slot *s = &slots[head % RD_QD];

			s->len = end - next < RD_CHUNK ? end - next : RD_CHUNK;
			s->done = 0;
			s->task = iscsi_read16_task(c.ctx, c.url->lun, next / BS, s->len, BS,
						    0, 0, 0, 0, 0, rd_cb, s);
			if (!s->task)
				die(EXIT_CONN, "READ(16) not sent: %s", iscsi_get_error(c.ctx));
			next += s->len;
			head++;
		}
		rd_done_flag = 0;
		if (!slots[tail % RD_QD].done)
			run_until(c.ctx, &slots[tail % RD_QD].done);
		while (tail != head && slots[tail % RD_QD].done) {
			struct rd_slot *s = &slots[tail % RD_QD];

			EVP_DigestUpdate(h, s->buf, s->len);
			pos += s->len;
			scsi_free_scsi_task(s->task);
			s->task = NULL;
			s->done = 0;
			tail++;
		}
	}
	EVP_DigestFinal_ex(h, md, &mdlen);
	EVP_MD_CTX_free(h);
	for (i = 0; i < mdlen; i++)
		printf("%02x", md[i]);
	printf("\n");
	for (i = 0; i < RD_QD; i++)
		free(slots[i].buf);
	conn_close(&c);
	return 0;
}

/* ---- write / verify: one pattern over a block range ---- */

#define WR_CHUNK 128u	/* blocks per command */

static int cmd_write(int argc, char **argv)
{
	uint64_t lba, count, seed, b, n, k;
	bool fua = false;
	char *pos[4];
	int npos = 0, i;
	uint8_t *buf;
	struct conn c;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--fua"))
			fua = true;
		else if (npos < 4)
			pos[npos++] = argv[i];
	}
	if (npos != 4)
		die(EXIT_USAGE, "usage: write [--fua] URL LBA COUNT SEED");
	lba = strtoull(pos[1], NULL, 0);
	count = strtoull(pos[2], NULL, 0);
	seed = strtoull(pos[3], NULL, 0);
	if (!seed)
		die(EXIT_USAGE, "SEED must not be 0 (0 is the zero block)");
	conn_open(&c, pos[0]);
	buf = malloc(WR_CHUNK * BS);
	for (b = 0; b < count; b += n) {
		struct scsi_task *t;

		n = count - b < WR_CHUNK ? count - b : WR_CHUNK;
		for (k = 0; k < n; k++)
			fill_block(buf + k * BS, seed, lba + b + k);
		t = iscsi_write16_sync(c.ctx, c.url->lun, lba + b, buf, n * BS, BS, 0, 0,
				       fua, 0, 0);
		if (!t)
			die(EXIT_CONN, "WRITE(16) at %" PRIu64 ": %s", lba + b,
			    iscsi_get_error(c.ctx));
		if (t->status != SCSI_STATUS_GOOD) {
			char why[128];

			sense_str(t, why, sizeof(why));
			die(EXIT_CHECK, "WRITE(16) at lba %" PRIu64 ": expected GOOD, got %s",
			    lba + b, why);
		}
		scsi_free_scsi_task(t);
	}
	free(buf);
	conn_close(&c);
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	uint64_t lba, count, seed, b, n, k, bad = 0;
	struct conn c;

	if (argc != 4)
		die(EXIT_USAGE, "usage: verify URL LBA COUNT SEED");
	lba = strtoull(argv[1], NULL, 0);
	count = strtoull(argv[2], NULL, 0);
	seed = strtoull(argv[3], NULL, 0);
	conn_open(&c, argv[0]);
	for (b = 0; b < count; b += n) {
		struct scsi_task *t;

		n = count - b < WR_CHUNK ? count - b : WR_CHUNK;
		t = iscsi_read16_sync(c.ctx, c.url->lun, lba + b, n * BS, BS, 0, 0, 0, 0, 0);
		if (!t || t->status != SCSI_STATUS_GOOD || t->datain.size != (int)(n * BS))
			die(EXIT_CHECK, "READ(16) at lba %" PRIu64 " failed: %s", lba + b,
			    iscsi_get_error(c.ctx));
		for (k = 0; k < n; k++) {
			if (block_is(t->datain.data + k * BS, seed, lba + b + k))
				continue;
			if (bad++ < 10) {
				char got[128];

				describe_block(t->datain.data + k * BS, got, sizeof(got));
				fprintf(stderr, "lba %" PRIu64 ": expected write %" PRIu64
					", got %s\n", lba + b + k, seed, got);
			}
		}
		scsi_free_scsi_task(t);
	}
	conn_close(&c);
	if (bad)
		die(EXIT_CHECK, "%" PRIu64 " of %" PRIu64 " blocks differ", bad, count);
	if (!quiet)
		printf("verified %" PRIu64 " blocks of write %" PRIu64 "\n", count, seed);
	return 0;
}

/* ---- the write journal of crash-write, fill and crash-check ---- */

struct jrec {
	uint64_t id, lba;
	uint32_t len;
	bool acked;
};

struct journal {
	struct jrec *r;
	size_t n, cap;
	uint64_t max_id;
	int fd;
};

static struct jrec *j_find(struct journal *j, uint64_t id)
{
	size_t i;

	for (i = j->n; i-- > 0;)
		if (j->r[i].id == id)
			return &j->r[i];
	return NULL;
}

static void j_load(struct journal *j, const char *path)
{
	char line[128];
	FILE *f;

	memset(j, 0, sizeof(*j));
	f = fopen(path, "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			uint64_t id, lba;
			uint32_t len;
			struct jrec *r;

			if (sscanf(line, "I %" SCNu64 " %" SCNu64 " %" SCNu32, &id, &lba, &len) == 3) {
				if (j_find(j, id))
					continue;
				if (j->n == j->cap) {
					j->cap = j->cap ? j->cap * 2 : 1024;
					j->r = realloc(j->r, j->cap * sizeof(*j->r));
				}
				j->r[j->n++] = (struct jrec){ id, lba, len, false };
				if (id > j->max_id)
					j->max_id = id;
			} else if (sscanf(line, "A %" SCNu64, &id) == 1) {
				r = j_find(j, id);
				if (!r)
					die(EXIT_CHECK, "journal %s: ack of unknown write %" PRIu64,
					    path, id);
				r->acked = true;
			}
		}
		fclose(f);
	}
	j->fd = -1;
}

static void j_open_append(struct journal *j, const char *path)
{
	j->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (j->fd < 0)
		die(EXIT_USAGE, "%s: %s", path, strerror(errno));
}

/* One write(2) per record: the client outlives the daemon it kills, so the page cache is
 * durable enough, and the record of an issue always precedes its acknowledgement. */
static void j_append(struct journal *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void j_append(struct journal *j, const char *fmt, ...)
{
	char line[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(j->fd, line, n) != n)
		die(EXIT_USAGE, "journal write: %s", strerror(errno));
}

/* ---- crash-write: concurrent, non-overlapping, acknowledged writes ---- */

struct cw_op {
	struct jrec rec;
	struct scsi_task *task;
	uint8_t *buf;
	bool fua, syncing, busy;
};

struct cw {
	struct conn c;
	struct journal j;
	struct cw_op *ops;
	unsigned qd, inflight;
	uint64_t acked, acked_blocks, sync_writes;
	uint8_t *busy;	/* per block of the region: an in-flight write covers it */
	uint64_t lba, count;
	int stop_on_error;	/* fill: stop at the first SCSI error */
	int scsi_error;
	char error[320];
};

static void cw_release(struct cw *w, struct cw_op *op)
{
	memset(w->busy + (op->rec.lba - w->lba), 0, op->rec.len);
	op->busy = false;
	w->inflight--;
}

static void cw_cb(struct iscsi_context *ctx, int status, void *data, void *priv);

static void cw_issue(struct cw *w, struct cw_op *op)
{
	uint32_t k;

	for (k = 0; k < op->rec.len; k++)
		fill_block(op->buf + k * BS, op->rec.id, op->rec.lba + k);
	memset(w->busy + (op->rec.lba - w->lba), 1, op->rec.len);
	op->busy = true;
	op->syncing = false;
	w->inflight++;
	j_append(&w->j, "I %" PRIu64 " %" PRIu64 " %" PRIu32 "\n", op->rec.id, op->rec.lba,
		 op->rec.len);
	op->task = iscsi_write16_task(w->c.ctx, w->c.url->lun, op->rec.lba, op->buf,
				      op->rec.len * BS, BS, 0, 0, op->fua, 0, 0, cw_cb, op);
	if (!op->task)
		die(EXIT_CONN, "WRITE(16) not sent: %s", iscsi_get_error(w->c.ctx));
}

static struct cw *cw_self;

static void cw_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct cw_op *op = priv;
	struct scsi_task *t = data;
	struct cw *w = cw_self;

	if (status == SCSI_STATUS_CANCELLED || status == SCSI_STATUS_ERROR)
		die(EXIT_CONN, "connection lost: %s", iscsi_get_error(ctx));
	if (status != SCSI_STATUS_GOOD) {
		char why[128];

		sense_str(t, why, sizeof(why));
		snprintf(w->error, sizeof(w->error), "%s at lba %" PRIu64 " len %" PRIu32 ": %s",
			 op->syncing ? "SYNCHRONIZE CACHE(16)" : "WRITE(16)", op->rec.lba,
			 op->rec.len, why);
		w->scsi_error = 1;
		scsi_free_scsi_task(t);
		cw_release(w, op);
		return;
	}
	scsi_free_scsi_task(t);
	if (!op->fua && !op->syncing) {
		/* SBC-3 5.22: GOOD from SYNCHRONIZE CACHE means the range is on the medium. */
		op->syncing = true;
		op->task = iscsi_synchronizecache16_task(ctx, w->c.url->lun, op->rec.lba,
							 op->rec.len, 0, 0, cw_cb, op);
		if (!op->task)
			die(EXIT_CONN, "SYNCHRONIZE CACHE not sent: %s", iscsi_get_error(ctx));
		return;
	}
	j_append(&w->j, "A %" PRIu64 "\n", op->rec.id);
	w->acked++;
	w->acked_blocks += op->rec.len;
	if (!op->fua)
		w->sync_writes++;
	cw_release(w, op);
}

static struct cw_op *cw_free_op(struct cw *w)
{
	unsigned i;

	for (i = 0; i < w->qd; i++)
		if (!w->ops[i].busy)
			return &w->ops[i];
	return NULL;
}

static void cw_service(struct cw *w, int timeout_ms)
{
	struct pollfd pfd;

	pfd.fd = iscsi_get_fd(w->c.ctx);
	pfd.events = iscsi_which_events(w->c.ctx);
	if (pfd.fd < 0)
		die(EXIT_CONN, "connection lost: %s", iscsi_get_error(w->c.ctx));
	if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
		die(EXIT_CONN, "poll: %s", strerror(errno));
	if (iscsi_service(w->c.ctx, pfd.revents) < 0)
		die(EXIT_CONN, "connection lost: %s", iscsi_get_error(w->c.ctx));
}

static void cw_setup(struct cw *w, int argc, char **argv, unsigned qd, uint32_t maxlen)
{
	unsigned i;

	memset(w, 0, sizeof(*w));
	cw_self = w;
	j_load(&w->j, argv[1]);
	j_open_append(&w->j, argv[1]);
	w->lba = strtoull(argv[2], NULL, 0);
	w->count = strtoull(argv[3], NULL, 0);
	if (!w->count || maxlen > w->count)
		die(EXIT_USAGE, "region too small");
	conn_open(&w->c, argv[0]);
	if (w->lba + w->count > w->c.blocks)
		die(EXIT_USAGE, "region beyond the LUN (%" PRIu64 " blocks)", w->c.blocks);
	w->qd = qd;
	w->ops = calloc(qd, sizeof(*w->ops));
	for (i = 0; i < qd; i++)
		w->ops[i].buf = malloc((size_t)maxlen * BS);
	w->busy = calloc(w->count, 1);
}

static void cw_teardown(struct cw *w)
{
	unsigned i;

	conn_close(&w->c);
	for (i = 0; i < w->qd; i++)
		free(w->ops[i].buf);
	free(w->ops);
	free(w->busy);
	free(w->j.r);
	close(w->j.fd);
}

static int cmd_crash_write(int argc, char **argv)
{
	unsigned qd = 4, i;
	uint32_t maxlen = 64;
	double secs = 1e9, t_end;
	uint64_t reissued = 0;
	struct cw w;
	size_t p;

	for (i = 4; i < (unsigned)argc; i++) {
		if (!strcmp(argv[i], "--qd") && i + 1 < (unsigned)argc)
			qd = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < (unsigned)argc)
			secs = atof(argv[++i]);
		else if (!strcmp(argv[i], "--max-len") && i + 1 < (unsigned)argc)
			maxlen = atoi(argv[++i]);
		else
			die(EXIT_USAGE, "crash-write: unknown option %s", argv[i]);
	}
	if (argc < 4 || !qd || !maxlen)
		die(EXIT_USAGE, "usage: crash-write URL JOURNAL LBA COUNT [--qd N] [--seconds S] [--max-len N]");
	cw_setup(&w, argc, argv, qd, maxlen);
	t_end = now_s() + secs;
	/* Writes a crash left unacknowledged go first, alone, so the region is exact again. */
	for (p = 0; p < w.j.n; p++) {
		struct cw_op *op = &w.ops[0];

		if (w.j.r[p].acked)
			continue;
		if (w.j.r[p].len > maxlen)
			die(EXIT_USAGE, "journal write longer than --max-len");
		op->rec = w.j.r[p];
		op->fua = true;
		cw_issue(&w, op);
		while (w.inflight)
			cw_service(&w, 1000);
		if (w.scsi_error)
			die(EXIT_CHECK, "%s", w.error);
		reissued++;
	}
	while (now_s() < t_end && !w.scsi_error) {
		struct cw_op *op;

		while ((op = cw_free_op(&w))) {
			uint32_t len = 1 + rnd(maxlen), k;
			uint64_t lba = w.lba + rnd(w.count - len + 1);

			for (k = 0; k < len && !w.busy[lba - w.lba + k]; k++)
				;
			if (k < len)
				break;
			op->rec = (struct jrec){ ++w.j.max_id, lba, len, false };
			op->fua = rnd(2);
			cw_issue(&w, op);
		}
		cw_service(&w, 100);
	}
	while (w.inflight)
		cw_service(&w, 1000);
	if (w.scsi_error)
		die(EXIT_CHECK, "%s", w.error);
	printf("crash-write: %" PRIu64 " writes acknowledged (%" PRIu64 " blocks, %" PRIu64
	       " by SYNCHRONIZE CACHE), %" PRIu64 " re-issued\n", w.acked, w.acked_blocks,
	       w.sync_writes, reissued);
	cw_teardown(&w);
	return 0;
}

static int cmd_fill(int argc, char **argv)
{
	uint32_t len = 64;
	uint64_t lba;
	struct cw w;

	if (argc != 4)
		die(EXIT_USAGE, "usage: fill URL JOURNAL LBA COUNT");
	cw_setup(&w, argc, argv, 1, len);
	for (lba = w.lba; lba + len <= w.lba + w.count && !w.scsi_error; lba += len) {
		struct cw_op *op = &w.ops[0];

		op->rec = (struct jrec){ ++w.j.max_id, lba, len, false };
		op->fua = true;
		cw_issue(&w, op);
		while (w.inflight)
			cw_service(&w, 1000);
	}
	printf("fill: %" PRIu64 " writes acknowledged (%" PRIu64 " KiB)\n", w.acked,
	       w.acked_blocks / 2);
	if (!w.scsi_error) {
		printf("fill: no SCSI error before the end of the region\n");
		cw_teardown(&w);
		return 5;
	}
	printf("fill: first error: %s\n", w.error);
	cw_teardown(&w);
	return 0;
}

/*
 * crash-check: block b may hold the last acknowledged write covering it (zero if none) or a
 * write left unacknowledged by a crash; crash-write never has two overlapping writes in
 * flight and re-issues the unacknowledged ones before anything new, so nothing else is
 * allowed.
 */
static int cmd_crash_check(int argc, char **argv)
{
	uint64_t lba, count, b, n, k, bad = 0, acked_blocks = 0, pending_new = 0, pending_old = 0;
	uint64_t *acked, *pending;
	struct journal j;
	struct conn c;
	size_t p;

	if (argc != 4)
		die(EXIT_USAGE, "usage: crash-check URL JOURNAL LBA COUNT");
	j_load(&j, argv[1]);
	lba = strtoull(argv[2], NULL, 0);
	count = strtoull(argv[3], NULL, 0);
	acked = calloc(count, sizeof(*acked));
	pending = calloc(count, sizeof(*pending));
	for (p = 0; p < j.n; p++) {
		struct jrec *r = &j.r[p];

		if (r->lba < lba || r->lba + r->len > lba + count)
			die(EXIT_USAGE, "journal write %" PRIu64 " outside the region", r->id);
		for (k = 0; k < r->len; k++) {
			if (r->acked) {
				acked[r->lba - lba + k] = r->id;
				pending[r->lba - lba + k] = 0;
			} else {
				pending[r->lba - lba + k] = r->id;
			}
		}
	}
	conn_open(&c, argv[0]);
	for (b = 0; b < count; b += n) {
		struct scsi_task *t;

		n = count - b < WR_CHUNK ? count - b : WR_CHUNK;
		t = iscsi_read16_sync(c.ctx, c.url->lun, lba + b, n * BS, BS, 0, 0, 0, 0, 0);
		if (!t || t->status != SCSI_STATUS_GOOD || t->datain.size != (int)(n * BS))
			die(EXIT_CHECK, "READ(16) at lba %" PRIu64 " failed: %s", lba + b,
			    iscsi_get_error(c.ctx));
		for (k = 0; k < n; k++) {
			const uint8_t *blk = t->datain.data + k * BS;
			uint64_t i = b + k;

			if (acked[i])
				acked_blocks++;
			if (block_is(blk, acked[i], lba + i)) {
				if (pending[i])
					pending_old++;
				continue;
			}
			if (pending[i] && block_is(blk, pending[i], lba + i)) {
				pending_new++;
				continue;
			}
			if (bad++ < 10) {
				char got[128];

				describe_block(blk, got, sizeof(got));
				fprintf(stderr, "lba %" PRIu64 ": expected write %" PRIu64
					" (acknowledged)%s, got %s\n", lba + i, acked[i],
					pending[i] ? " or the unacknowledged one" : "", got);
			}
		}
		scsi_free_scsi_task(t);
	}
	conn_close(&c);
	printf("crash-check: %" PRIu64 " blocks, %" PRIu64 " hold acknowledged writes, "
	       "unacknowledged: %" PRIu64 " landed, %" PRIu64 " not; %" PRIu64 " bad\n",
	       count, acked_blocks, pending_new, pending_old, bad);
	free(acked);
	free(pending);
	free(j.r);
	return bad ? EXIT_CHECK : 0;
}

/* ---- soak: many sessions, a model of every block, TMF aborts, re-logins ---- */

#define V_BASE 0		/* what the block held when the soak started */
#define V_ZERO UINT64_MAX	/* unmapped on an LBPRZ device */
#define V_ANY (UINT64_MAX - 1)	/* an aborted write may or may not have landed */
#define SOAK_QD 4
#define SOAK_MAXLEN 32

enum sstate { S_DOWN, S_CONNECTING, S_READY, S_DRAIN, S_LOGOUT, S_DEAD };

struct sop {
	struct sess *s;
	struct scsi_task *task;
	uint8_t buf[SOAK_MAXLEN * BS];
	uint64_t lba, ver;
	uint32_t len;
	int kind;	/* 0 read, 1 write, 2 unmap */
	bool busy, aborting, completed, good;
	struct unmap_list ul;
};

struct sess {
	int idx;
	const char *url_str;
	struct iscsi_context *ctx;
	struct iscsi_url *url;
	enum sstate st;
	uint64_t lba, count;
	uint64_t *ver;
	uint8_t *base;	/* the slice's content before the soak */
	uint8_t *busy;
	bool lbprz, have_base;
	struct sop ops[SOAK_QD];
	struct sop *abort_op;	/* to abort once the send queue is empty */
	bool aborting;		/* an ABORT TASK is outstanding */
	unsigned inflight;
};

static struct {
	uint64_t reads, writes, unmaps, aborts, abort_done, logins, logouts, blocks_checked;
	uint64_t data_errors, io_errors;
	uint64_t next_ver;
	bool no_unmap;
} st;

static void soak_error(struct sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void soak_error(struct sess *s, const char *fmt, ...)
{
	va_list ap;

	st.io_errors++;
	if (st.io_errors > 20)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "soak: session %d: ", s->idx);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static void soak_check(struct sess *s, struct sop *op, const uint8_t *data)
{
	uint32_t k;

	for (k = 0; k < op->len; k++) {
		uint64_t i = op->lba - s->lba + k, v = s->ver[i];
		const uint8_t *b = data + k * BS;
		bool ok;

		if (v == V_ANY)
			continue;
		st.blocks_checked++;
		if (v == V_BASE)
			ok = !s->have_base || !memcmp(b, s->base + i * BS, BS);
		else
			ok = block_is(b, v == V_ZERO ? 0 : v, op->lba + k);
		if (!ok) {
			char got[128];

			if (st.data_errors++ < 20) {
				describe_block(b, got, sizeof(got));
				fprintf(stderr, "soak: session %d lba %" PRIu64 ": expected %s %"
					PRIu64 ", got %s\n", s->idx, op->lba + k,
					v == V_BASE ? "the original block" : "write",
					v == V_BASE || v == V_ZERO ? 0 : v, got);
			}
		}
	}
}

static void sop_finish(struct sess *s, struct sop *op)
{
	uint32_t k;

	if (op->kind == 1 || op->kind == 2) {
		uint64_t v = op->kind == 2 ? (s->lbprz ? V_ZERO : V_ANY) : op->ver;

		if (!op->good)
			v = V_ANY;
		for (k = 0; k < op->len; k++)
			s->ver[op->lba - s->lba + k] = v;
	}
	memset(s->busy + (op->lba - s->lba), 0, op->len);
	if (op->task)
		scsi_free_scsi_task(op->task);
	op->task = NULL;
	op->busy = false;
	s->inflight--;
}

static void sop_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct sop *op = priv;
	struct sess *s = op->s;
	struct scsi_task *t = data;

	op->completed = true;
	if (status == SCSI_STATUS_CANCELLED) {
		op->good = false;
		if (!op->aborting)
			soak_error(s, "command cancelled: %s", iscsi_get_error(ctx));
	} else if (status == SCSI_STATUS_GOOD) {
		op->good = true;
		if (op->kind == 0)
			soak_check(s, op, t->datain.data);
	} else if (status == SCSI_STATUS_CHECK_CONDITION && op->aborting &&
		   t->sense.key == SCSI_SENSE_COMMAND_ABORTED) {
		op->good = false;
	} else {
		char why[128];

		op->good = false;
		sense_str(t, why, sizeof(why));
		soak_error(s, "%s lba %" PRIu64 " len %u: %s %s",
			   op->kind == 0 ? "READ(16)" : op->kind == 1 ? "WRITE(16)" : "UNMAP",
			   op->lba, op->len, why, status == SCSI_STATUS_ERROR ? iscsi_get_error(ctx) : "");
	}
	if (!op->aborting)
		sop_finish(s, op);
}

/* RFC 7143 11.5.1: after the ABORT TASK response the task is gone either way. */
static void tmf_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct sop *op = priv;
	struct sess *s = op->s;

	if (status != SCSI_STATUS_GOOD)
		soak_error(s, "ABORT TASK failed: %s", iscsi_get_error(ctx));
	else {
		uint32_t resp = *(uint32_t *)data;

		if (resp != ISCSI_TMR_FUNC_COMPLETE && resp != ISCSI_TMR_TASK_DOES_NOT_EXIST)
			soak_error(s, "ABORT TASK: response %u", resp);
		st.abort_done++;
	}
	if (!op->completed)
		iscsi_scsi_cancel_task(ctx, op->task);
	op->aborting = false;
	s->aborting = false;
	sop_finish(s, op);
}

static void sess_conn_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct sess *s = priv;

	if (status != SCSI_STATUS_GOOD) {
		soak_error(s, "login failed: %s", iscsi_get_error(ctx));
		s->st = S_DEAD;
		return;
	}
	st.logins++;
	s->st = S_READY;
}

static void sess_logout_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct sess *s = priv;

	if (status != SCSI_STATUS_GOOD)
		soak_error(s, "logout failed: %s", iscsi_get_error(ctx));
	st.logouts++;
	s->st = S_DOWN;
}

static void sess_connect(struct sess *s)
{
	if (s->ctx) {
		iscsi_destroy_url(s->url);
		iscsi_destroy_context(s->ctx);
	}
	s->ctx = new_ctx(s->url_str, &s->url);
	/* Half the sessions ask for header digests, half do not. */
	iscsi_set_header_digest(s->ctx, s->idx % 2 ? ISCSI_HEADER_DIGEST_CRC32C :
				ISCSI_HEADER_DIGEST_NONE);
	s->st = S_CONNECTING;
	if (iscsi_full_connect_async(s->ctx, s->url->portal, s->url->lun, sess_conn_cb, s))
		soak_error(s, "connect: %s", iscsi_get_error(s->ctx)), s->st = S_DEAD;
}

static void sess_start_op(struct sess *s, struct sop *op)
{
	uint32_t len = 1 + rnd(SOAK_MAXLEN), k;
	uint64_t lba = s->lba + rnd(s->count - len + 1);
	unsigned r = rnd(100);

	for (k = 0; k < len; k++)
		if (s->busy[lba - s->lba + k])
			return;
	op->s = s;
	op->lba = lba;
	op->len = len;
	op->kind = r < 50 ? 0 : r < 94 || st.no_unmap ? 1 : 2;
	op->aborting = op->completed = op->good = false;
	if (op->kind == 0) {
		op->task = iscsi_read16_task(s->ctx, s->url->lun, lba, len * BS, BS, 0, 0, 0, 0,
					     0, sop_cb, op);
		st.reads++;
	} else if (op->kind == 1) {
		op->ver = ++st.next_ver;
		for (k = 0; k < len; k++)
			fill_block(op->buf + k * BS, op->ver, lba + k);
		op->task = iscsi_write16_task(s->ctx, s->url->lun, lba, op->buf, len * BS, BS,
					      0, 0, rnd(4) == 0, 0, 0, sop_cb, op);
		st.writes++;
	} else {
		op->ul.lba = lba;
		op->ul.num = len;
		op->task = iscsi_unmap_task(s->ctx, s->url->lun, 0, 0, &op->ul, 1, sop_cb, op);
		st.unmaps++;
	}
	if (!op->task) {
		soak_error(s, "command not sent: %s", iscsi_get_error(s->ctx));
		s->st = S_DEAD;
		return;
	}
	memset(s->busy + (lba - s->lba), 1, len);
	op->busy = true;
	s->inflight++;
	/* Reads only: libiscsi cannot cancel a write whose Data-Out is still queued. */
	if (op->kind == 0 && rnd(25) == 0)
		s->abort_op = op;
}

/*
 * libiscsi gives an immediate TMF the session's next CmdSN and drops the connection if commands
 * queued behind it went out first, so the ABORT TASK waits for an empty send queue and nothing
 * new is queued while it is outstanding.
 */
static void sess_abort(struct sess *s)
{
	struct sop *op = s->abort_op;

	if (iscsi_out_queue_length(s->ctx) > 0)
		return;
	s->abort_op = NULL;
	if (op->completed)
		return;
	op->aborting = true;
	s->aborting = true;
	st.aborts++;
	if (iscsi_task_mgmt_abort_task_async(s->ctx, op->task, tmf_cb, op)) {
		op->aborting = false;
		s->aborting = false;
		soak_error(s, "ABORT TASK not sent: %s", iscsi_get_error(s->ctx));
		if (op->completed)
			sop_finish(s, op);
	}
}

static void sess_read_base(struct sess *s)
{
	uint64_t b, n;

	for (b = 0; b < s->count; b += n) {
		struct scsi_task *t;

		n = s->count - b < 256 ? s->count - b : 256;
		t = iscsi_read16_sync(s->ctx, s->url->lun, s->lba + b, n * BS, BS, 0, 0, 0, 0, 0);
		if (!t || t->status != SCSI_STATUS_GOOD)
			die(EXIT_CHECK, "session %d: initial READ(16) failed: %s", s->idx,
			    iscsi_get_error(s->ctx));
		memcpy(s->base + b * BS, t->datain.data, n * BS);
		scsi_free_scsi_task(t);
	}
	s->have_base = true;
}

static int cmd_soak(int argc, char **argv)
{
	unsigned nsess = 64, nurl = 0, i, slice = 2048, live;
	uint64_t base_lba = 1 << 20;
	double secs = 60, t0, t_end, t_report;
	const char *urls[256];
	struct pollfd *pfd;
	struct sess *ss;
	bool stopping = false;

	for (i = 0; i < (unsigned)argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < (unsigned)argc)
			secs = atof(argv[++i]);
		else if (!strcmp(argv[i], "--sessions") && i + 1 < (unsigned)argc)
			nsess = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--slice") && i + 1 < (unsigned)argc)
			slice = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--base-lba") && i + 1 < (unsigned)argc)
			base_lba = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--no-unmap"))
			st.no_unmap = true;
		else if (nurl < 256)
			urls[nurl++] = argv[i];
	}
	if (!nurl || !nsess || slice < SOAK_MAXLEN)
		die(EXIT_USAGE, "usage: soak [--seconds S] [--sessions N] [--slice BLOCKS] [--base-lba LBA] URL...");
	ss = calloc(nsess, sizeof(*ss));
	pfd = calloc(nsess, sizeof(*pfd));
	/* Session i owns slice i/nurl of target i%nurl, so the model of each block is exact. */
	for (i = 0; i < nsess; i++) {
		struct sess *s = &ss[i];
		struct conn c;

		s->idx = i;
		s->url_str = urls[i % nurl];
		s->lba = base_lba + (uint64_t)(i / nurl) * slice;
		s->count = slice;
		s->ver = calloc(slice, sizeof(*s->ver));
		s->busy = calloc(slice, 1);
		s->base = malloc((size_t)slice * BS);
		conn_open(&c, s->url_str);
		if (s->lba + s->count > c.blocks)
			die(EXIT_USAGE, "session %u: slice beyond the LUN", i);
		s->ctx = c.ctx;
		s->url = c.url;
		s->lbprz = c.lbprz;
		sess_read_base(s);
		st.logins++;
		s->st = S_READY;
	}
	t0 = now_s();
	t_end = t0 + secs;
	t_report = t0 + 10;
	for (;;) {
		double t = now_s();

		if (t >= t_end && !stopping) {
			stopping = true;
			for (i = 0; i < nsess; i++)
				if (ss[i].st == S_READY)
					ss[i].st = S_DRAIN;
		}
		if (t >= t_report) {
			fprintf(stderr, "soak: %.0fs reads %" PRIu64 " writes %" PRIu64 " unmaps %"
				PRIu64 " aborts %" PRIu64 " logins %" PRIu64 " errors %" PRIu64
				"/%" PRIu64 "\n", t - t0, st.reads, st.writes, st.unmaps,
				st.aborts, st.logins, st.data_errors, st.io_errors);
			for (i = 0; i < nsess; i++)
				fprintf(stderr, "%d/%u ", ss[i].st, ss[i].inflight);
			fprintf(stderr, "\n");
			t_report += 10;
		}
		live = 0;
		for (i = 0; i < nsess; i++) {
			struct sess *s = &ss[i];
			unsigned k;

			if (s->abort_op && s->abort_op->completed)
				s->abort_op = NULL;
			if (s->abort_op && s->st != S_DEAD)
				sess_abort(s);
			if (s->st == S_READY && !s->abort_op && !s->aborting) {
				if (rnd(2000) == 0)
					s->st = S_DRAIN;
				else
					for (k = 0; k < SOAK_QD; k++)
						if (!s->ops[k].busy)
							sess_start_op(s, &s->ops[k]);
			}
			if (s->st == S_DRAIN && s->inflight == 0) {
				s->st = S_LOGOUT;
				if (iscsi_logout_async(s->ctx, sess_logout_cb, s)) {
					soak_error(s, "logout: %s", iscsi_get_error(s->ctx));
					s->st = S_DEAD;
				}
			}
			if (s->st == S_DOWN && !stopping)
				sess_connect(s);
			pfd[i].fd = -1;
			pfd[i].events = 0;
			pfd[i].revents = 0;
			if (s->st == S_CONNECTING || s->st == S_READY || s->st == S_DRAIN ||
			    s->st == S_LOGOUT) {
				pfd[i].fd = iscsi_get_fd(s->ctx);
				pfd[i].events = iscsi_which_events(s->ctx);
				live++;
			}
		}
		if (!live)
			break;
		if (poll(pfd, nsess, 100) < 0 && errno != EINTR)
			die(EXIT_USAGE, "poll: %s", strerror(errno));
		for (i = 0; i < nsess; i++) {
			struct sess *s = &ss[i];

			if (pfd[i].fd < 0)
				continue;
			if (iscsi_service(s->ctx, pfd[i].revents) < 0) {
				soak_error(s, "connection lost: %s", iscsi_get_error(s->ctx));
				s->st = S_DEAD;
			}
		}
	}
	/* A last full read of every slice through fresh sessions. */
	for (i = 0; i < nsess; i++) {
		struct sess *s = &ss[i];
		struct sop op;
		struct conn c;
		uint64_t b, n;

		if (s->ctx) {
			iscsi_destroy_url(s->url);
			iscsi_destroy_context(s->ctx);
		}
		conn_open(&c, s->url_str);
		for (b = 0; b < s->count; b += n) {
			struct scsi_task *t;

			n = s->count - b < 256 ? s->count - b : 256;
			t = iscsi_read16_sync(c.ctx, c.url->lun, s->lba + b, n * BS, BS, 0, 0, 0,
					      0, 0);
			if (!t || t->status != SCSI_STATUS_GOOD) {
				soak_error(s, "final READ(16) failed: %s", iscsi_get_error(c.ctx));
				break;
			}
			op.lba = s->lba + b;
			op.len = n;
			soak_check(s, &op, t->datain.data);
			scsi_free_scsi_task(t);
		}
		conn_close(&c);
	}
	printf("soak: %u sessions over %u targets, %.0f s: %" PRIu64 " reads, %" PRIu64
	       " writes, %" PRIu64 " unmaps, %" PRIu64 " aborts (%" PRIu64 " answered), %" PRIu64
	       " logins, %" PRIu64 " logouts, %.0f IOPS, %" PRIu64 " blocks checked, "
	       "data errors %" PRIu64 ", I/O errors %" PRIu64 "\n", nsess, nurl, secs, st.reads,
	       st.writes, st.unmaps, st.aborts, st.abort_done, st.logins, st.logouts,
	       (st.reads + st.writes + st.unmaps) / secs, st.blocks_checked, st.data_errors,
	       st.io_errors);
	for (i = 0; i < nsess; i++) {
		free(ss[i].ver);
		free(ss[i].busy);
		free(ss[i].base);
	}
	free(ss);
	free(pfd);
	return st.data_errors || st.io_errors ? EXIT_CHECK : 0;
}

/* ---- xcopy: one EXTENDED COPY with designators chosen by the caller ---- */

/* SPC-4 6.4.3 parameter list header, 6.4.5.1 identification CSCD (E4h), 6.4.6.5
 * block-to-block segment (02h). */
#define XC_HDR 16
#define XC_CSCD 32
#define XC_SEG 28
#define XC_OUI 0x0200b5ull

static uint64_t xc_naa(const char *arg)
{
	unsigned char h[32];
	unsigned int n = sizeof(h);
	uint64_t v = 0;

	if (strncmp(arg, "iqn.", 4))
		return strtoull(arg, NULL, 16);
	/* The daemon's target_naa(): anyone who knows a target name can compute it. */
	EVP_Digest(arg, strlen(arg), h, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return 5ull << 60 | XC_OUI << 36 | (v & ((1ull << 36) - 1));
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static int cmd_xcopy(int argc, char **argv)
{
	uint8_t list[XC_HDR + 2 * XC_CSCD + XC_SEG] = { 0 };
	struct iscsi_data d = { sizeof(list), list };
	struct scsi_task *t;
	struct conn c;

	if (argc != 6)
		die(EXIT_USAGE, "usage: xcopy URL SRC DST SRC_LBA DST_LBA COUNT");
	list[1] = 3 << 3; /* LIST ID USAGE 11b: no list identifier */
	put_be(list + 2, 2 * XC_CSCD, 2);
	put_be(list + 8, XC_SEG, 4);
	for (int k = 0; k < 2; k++) {
		uint8_t *e = list + XC_HDR + k * XC_CSCD;

		e[0] = 0xe4;
		e[4] = 0x01; /* code set binary */
		e[5] = 0x03; /* designator type NAA, associated with the LU */
		e[7] = 8;
		put_be(e + 8, xc_naa(argv[1 + k]), 8);
		put_be(e + 29, BS, 3);
	}
	{
		uint8_t *g = list + XC_HDR + 2 * XC_CSCD;

		g[0] = 0x02;
		put_be(g + 2, XC_SEG - 4, 2);
		put_be(g + 4, 0, 2);
		put_be(g + 6, 1, 2);
		put_be(g + 10, strtoull(argv[5], NULL, 0), 2);
		put_be(g + 12, strtoull(argv[3], NULL, 0), 8);
		put_be(g + 20, strtoull(argv[4], NULL, 0), 8);
	}
	c.ctx = new_ctx(argv[0], &c.url);
	if (iscsi_full_connect_sync(c.ctx, c.url->portal, c.url->lun) != 0)
		die(EXIT_CONN, "login to %s failed: %s", argv[0], iscsi_get_error(c.ctx));
	/* A pending unit attention would answer instead of the copy. */
	for (int i = 0; i < 4; i++) {
		t = iscsi_testunitready_sync(c.ctx, c.url->lun);
		if (t && t->status == SCSI_STATUS_GOOD) {
			scsi_free_scsi_task(t);
			break;
		}
		if (t)
			scsi_free_scsi_task(t);
	}
	t = iscsi_extended_copy_sync(c.ctx, c.url->lun, &d);
	if (!t)
		die(EXIT_CONN, "EXTENDED COPY: %s", iscsi_get_error(c.ctx));
	if (t->status == SCSI_STATUS_GOOD)
		printf("GOOD\n");
	else if (t->status == SCSI_STATUS_RESERVATION_CONFLICT)
		printf("RESERVATION CONFLICT\n");
	else if (t->status == SCSI_STATUS_CHECK_CONDITION)
		printf("CHECK CONDITION %x/%04x\n", t->sense.key, t->sense.ascq);
	else
		printf("status 0x%x\n", t->status);
	scsi_free_scsi_task(t);
	conn_close(&c);
	return 0;
}

int main(int argc, char **argv)
{
	const char *env = getenv("OBD_SEED");

	rng_state = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	while (argc > 2 && argv[1][0] == '-') {
		if (!strcmp(argv[1], "--initiator")) {
			initiator = argv[2];
			argc -= 2;
			argv += 2;
		} else if (!strcmp(argv[1], "--quiet")) {
			quiet = true;
			argc--;
			argv++;
		} else {
			break;
		}
	}
	/* Options may also follow the command word. */
	if (argc > 3 && !strcmp(argv[2], "--initiator")) {
		initiator = argv[3];
		memmove(&argv[2], &argv[4], (argc - 3) * sizeof(*argv));
		argc -= 2;
	}
	if (argc < 2)
		die(EXIT_USAGE, "usage: obd-iscsi [--initiator IQN] read|write|verify|crash-write|"
		    "fill|crash-check|soak|xcopy ...");
	if (!strcmp(argv[1], "read"))
		return cmd_read(argc - 2, argv + 2);
	if (!strcmp(argv[1], "write"))
		return cmd_write(argc - 2, argv + 2);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 2, argv + 2);
	if (!strcmp(argv[1], "crash-write"))
		return cmd_crash_write(argc - 2, argv + 2);
	if (!strcmp(argv[1], "fill"))
		return cmd_fill(argc - 2, argv + 2);
	if (!strcmp(argv[1], "crash-check"))
		return cmd_crash_check(argc - 2, argv + 2);
	if (!strcmp(argv[1], "soak"))
		return cmd_soak(argc - 2, argv + 2);
	if (!strcmp(argv[1], "xcopy"))
		return cmd_xcopy(argc - 2, argv + 2);
	die(EXIT_USAGE, "unknown command %s", argv[1]);
}
