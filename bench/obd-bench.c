/*
 * obd-bench: an iSCSI client benchmark on libiscsi's asynchronous API, for
 * `make bench` (issue 5).  It measures any target the same way (ours and
 * tgt in the same run), so the figures can be compared as ratios.
 *
 * One thread drives every session from one poll() loop: each session keeps
 * QD commands in flight, and a completion submits the next command from its
 * callback.  Reads land straight in our buffers (the _iov_ task variants),
 * so the client copies no data.  Latency is taken per command from
 * submission to completion, kept per session so that the fairness check
 * (no session starved) can compare each session's p99 with the others'.
 *
 * Modes:
 *   run (default)   timed workload; prints a human summary and one
 *                   machine-readable "OBD-BENCH key=value ..." line
 *   --fill FILE     write FILE's bytes to the LUN (every chunk, or the
 *                   chunks i with i % STRIDE == PHASE), then SYNCHRONIZE
 *                   CACHE; bench/run.sh builds its layers this way
 *   --idle N        log in N sessions and keep them alive (answering the
 *                   target's NOP-In pings) until SIGTERM/SIGINT or --time;
 *                   prints "IDLE-READY n" once all are logged in
 *   --verify FILE   (with reads) compare every completed read with FILE
 *
 * Exit status: 0, 1 on a usage or connection error, 2 if a command failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum pattern { PAT_RAND, PAT_SEQ };
enum mode { MODE_RUN, MODE_FILL, MODE_IDLE };

struct opts {
	const char *url;
	const char *initiator;
	unsigned qd;
	uint32_t bs;
	enum pattern pattern;
	unsigned read_pct; /* 100 read, 0 write, else mixed */
	double seconds;
	double warmup;
	unsigned sessions;
	uint64_t span; /* bytes of the LUN used; 0 = all */
	enum mode mode;
	const char *file; /* --fill source or --verify reference */
	unsigned stride, phase;
	uint32_t chunk;
	bool quiet;
};

struct session;

struct slot {
	struct session *s;
	unsigned char *buf;
	struct scsi_iovec iov; /* libiscsi keeps a pointer to it until completion */
	uint64_t off;
	uint64_t t0;
	bool write;
	bool busy;
};

struct session {
	struct iscsi_context *ctx;
	int lun;
	unsigned idx;
	uint64_t cursor; /* next sequential offset */
	struct slot *slots;
	unsigned inflight;
	uint32_t *lat; /* ns, measured window only */
	size_t nlat, cap;
	uint64_t ios, bytes, errors;
	bool dead;
};

static struct opts o = {
	.initiator = "iqn.2026-11.io.overlaybd.bench:client",
	.qd = 1,
	.bs = 4096,
	.pattern = PAT_RAND,
	.read_pct = 100,
	.seconds = 10,
	.warmup = 1,
	.sessions = 1,
	.stride = 1,
	.chunk = 1 << 20,
};

static uint64_t lun_bytes;
static uint32_t lba_size = 512;
static uint64_t t_measure, t_stop; /* ns, CLOCK_MONOTONIC */
static bool stopping;
static volatile sig_atomic_t got_signal;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static int ref_fd = -1;
static uint64_t fill_next, fill_chunks, fill_done;
static uint64_t verify_bad;
static int first_error_reported;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: cheap, and good enough to spread offsets over the LUN. */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: obd-bench [options] iscsi://HOST:PORT/IQN/LUN\n"
		"  -q, --qd N           commands in flight per session (default 1)\n"
		"  -b, --bs SIZE        bytes per command, e.g. 4k, 128k, 1m (default 4k)\n"
		"  -p, --pattern P      rand (4 KiB-aligned offsets) or seq (default rand)\n"
		"  -w, --rw RW          read, write, or mix (default read)\n"
		"  -m, --mix PCT        reads in percent for --rw mix (default 70)\n"
		"  -t, --time SEC       measured seconds (default 10)\n"
		"  -W, --warmup SEC     seconds run before measuring (default 1)\n"
		"  -s, --sessions N     sessions, all driven by one poll loop (default 1)\n"
		"      --span SIZE      use only the first SIZE bytes of the LUN\n"
		"  -i, --initiator IQN  initiator name\n"
		"      --verify FILE    compare every read with FILE at the same offset\n"
		"      --fill FILE      write FILE to the LUN (then SYNCHRONIZE CACHE)\n"
		"      --stride N       --fill: only chunks i with i %% N == PHASE (default 1)\n"
		"      --phase K        (default 0)\n"
		"      --chunk SIZE     --fill chunk (default 1m)\n"
		"      --idle N         log in N sessions and keep them idle until a\n"
		"                       signal or --time (prints IDLE-READY N)\n"
		"  -Q, --quiet          only the OBD-BENCH line\n"
		"  -h, --help           this text\n");
}

static int parse_args(int argc, char **argv)
{
	enum { O_SPAN = 256, O_VERIFY, O_FILL, O_STRIDE, O_PHASE, O_CHUNK, O_IDLE };
	static const struct option lo[] = {
		{ "qd", required_argument, NULL, 'q' },
		{ "bs", required_argument, NULL, 'b' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "rw", required_argument, NULL, 'w' },
		{ "mix", required_argument, NULL, 'm' },
		{ "time", required_argument, NULL, 't' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "sessions", required_argument, NULL, 's' },
		{ "span", required_argument, NULL, O_SPAN },
		{ "initiator", required_argument, NULL, 'i' },
		{ "verify", required_argument, NULL, O_VERIFY },
		{ "fill", required_argument, NULL, O_FILL },
		{ "stride", required_argument, NULL, O_STRIDE },
		{ "phase", required_argument, NULL, O_PHASE },
		{ "chunk", required_argument, NULL, O_CHUNK },
		{ "idle", required_argument, NULL, O_IDLE },
		{ "quiet", no_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool mix = false, bs_given = false, qd_given = false;
	unsigned mix_pct = 70;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "q:b:p:w:m:t:W:s:i:Qh", lo, NULL)) != -1) {
		switch (c) {
		case 'q':
			o.qd = (unsigned)atoi(optarg);
			qd_given = true;
			break;
		case 'b':
			if (parse_size(optarg, &v) || v == 0 || v > (16u << 20))
				return -EINVAL;
			o.bs = (uint32_t)v;
			bs_given = true;
			break;
		case 'p':
			if (!strcmp(optarg, "rand"))
				o.pattern = PAT_RAND;
			else if (!strcmp(optarg, "seq"))
				o.pattern = PAT_SEQ;
			else
				return -EINVAL;
			break;
		case 'w':
			if (!strcmp(optarg, "read"))
				o.read_pct = 100;
			else if (!strcmp(optarg, "write"))
				o.read_pct = 0;
			else if (!strcmp(optarg, "mix"))
				mix = true;
			else
				return -EINVAL;
			break;
		case 'm':
			mix_pct = (unsigned)atoi(optarg);
			if (mix_pct > 100)
				return -EINVAL;
			break;
		case 't':
			o.seconds = atof(optarg);
			break;
		case 'W':
			o.warmup = atof(optarg);
			break;
		case 's':
			o.sessions = (unsigned)atoi(optarg);
			break;
		case O_SPAN:
			if (parse_size(optarg, &o.span))
				return -EINVAL;
			break;
		case 'i':
			o.initiator = optarg;
			break;
		case O_VERIFY:
			o.file = optarg;
			break;
		case O_FILL:
			o.file = optarg;
			o.mode = MODE_FILL;
			break;
		case O_STRIDE:
			o.stride = (unsigned)atoi(optarg);
			break;
		case O_PHASE:
			o.phase = (unsigned)atoi(optarg);
			break;
		case O_CHUNK:
			if (parse_size(optarg, &v) || v == 0 || v > (16u << 20))
				return -EINVAL;
			o.chunk = (uint32_t)v;
			break;
		case O_IDLE:
			o.sessions = (unsigned)atoi(optarg);
			o.mode = MODE_IDLE;
			break;
		case 'Q':
			o.quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (mix)
		o.read_pct = mix_pct;
	if (o.mode == MODE_FILL) {
		if (!bs_given)
			o.bs = o.chunk;
		if (!qd_given)
			o.qd = 8;
		o.read_pct = 0;
		o.sessions = 1;
		if (o.bs != o.chunk)
			o.bs = o.chunk;
	}
	if (argc - optind != 1 || !o.qd || o.qd > 1024 || !o.sessions || o.sessions > 65535 ||
	    !o.stride || o.phase >= o.stride || o.bs % 512 || o.seconds < 0 || o.warmup < 0)
		return -EINVAL;
	o.url = argv[optind];
	return 0;
}

static int session_open(struct session *s, unsigned idx, uint32_t isid_rnd)
{
	struct iscsi_url *u;

	s->idx = idx;
	s->ctx = iscsi_create_context(o.initiator);
	if (!s->ctx) {
		fprintf(stderr, "obd-bench: cannot create an iSCSI context\n");
		return -ENOMEM;
	}
	/* Distinct ISIDs keep one initiator's sessions apart (RFC 7143 10.12.5):
	 * the same ISID would reinstate, i.e. replace, the previous session. */
	iscsi_set_isid_random(s->ctx, isid_rnd, idx);
	iscsi_set_session_type(s->ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(s->ctx, ISCSI_HEADER_DIGEST_NONE);
	iscsi_set_noautoreconnect(s->ctx, 1);
	u = iscsi_parse_full_url(s->ctx, o.url);
	if (!u) {
		fprintf(stderr, "obd-bench: bad URL %s: %s\n", o.url, iscsi_get_error(s->ctx));
		return -EINVAL;
	}
	iscsi_set_targetname(s->ctx, u->target);
	if (u->user[0])
		iscsi_set_initiator_username_pwd(s->ctx, u->user, u->passwd);
	s->lun = u->lun;
	if (iscsi_full_connect_sync(s->ctx, u->portal, u->lun)) {
		fprintf(stderr, "obd-bench: session %u: login to %s failed: %s\n", idx, o.url,
			iscsi_get_error(s->ctx));
		iscsi_destroy_url(u);
		return -EIO;
	}
	iscsi_destroy_url(u);
	/* SAM-5 5.14: a new I_T nexus starts with a unit attention (power on or
	 * reset); take it with TEST UNIT READY so no measured command gets it. */
	for (int i = 0; i < 4; i++) {
		struct scsi_task *t = iscsi_testunitready_sync(s->ctx, s->lun);
		bool good = t && t->status == SCSI_STATUS_GOOD;

		if (t)
			scsi_free_scsi_task(t);
		if (good)
			break;
	}
	return 0;
}

static int read_capacity(struct session *s)
{
	struct scsi_task *t = iscsi_readcapacity16_sync(s->ctx, s->lun);
	struct scsi_readcapacity16 *rc;

	if (!t || t->status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "obd-bench: READ CAPACITY(16) failed: %s\n", iscsi_get_error(s->ctx));
		if (t)
			scsi_free_scsi_task(t);
		return -EIO;
	}
	rc = scsi_datain_unmarshall(t);
	if (!rc) {
		scsi_free_scsi_task(t);
		return -EIO;
	}
	lba_size = rc->block_length;
	lun_bytes = (rc->returned_lba + 1) * (uint64_t)rc->block_length;
	scsi_free_scsi_task(t);
	return 0;
}

static void lat_add(struct session *s, uint64_t ns)
{
	if (s->nlat == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 65536;
		uint32_t *n = realloc(s->lat, cap * sizeof(*n));

		if (!n)
			return;
		s->lat = n;
		s->cap = cap;
	}
	s->lat[s->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static uint64_t next_offset(struct session *s)
{
	uint64_t span = o.span && o.span < lun_bytes ? o.span : lun_bytes;
	uint64_t off;

	if (o.mode == MODE_FILL) {
		uint64_t i = fill_next * o.stride + o.phase;

		fill_next++;
		return i * o.chunk;
	}
	if (o.pattern == PAT_SEQ) {
		if (s->cursor + o.bs > span)
			s->cursor = 0;
		off = s->cursor;
		s->cursor += o.bs;
		return off;
	}
	/* 4 KiB-aligned random offsets, the block still inside the span */
	uint64_t blocks = (span - o.bs) / 4096 + 1;

	return (rnd() % blocks) * 4096;
}

static void command_done(struct iscsi_context *ctx, int status, void *data, void *priv);

static int submit(struct slot *sl)
{
	struct session *s = sl->s;
	struct scsi_task *t;
	uint32_t len = o.bs;

	if (o.mode == MODE_FILL) {
		if (fill_next >= fill_chunks)
			return 0;
		sl->off = next_offset(s);
		if (sl->off + len > lun_bytes)
			len = (uint32_t)(lun_bytes - sl->off);
		ssize_t n = pread(ref_fd, sl->buf, len, (off_t)sl->off);

		if (n < 0) {
			fprintf(stderr, "obd-bench: read %s: %s\n", o.file, strerror(errno));
			return -errno;
		}
		if ((uint32_t)n < len)
			memset(sl->buf + n, 0, len - (uint32_t)n);
		sl->write = true;
	} else {
		sl->off = next_offset(s);
		sl->write = o.read_pct == 0 || (o.read_pct < 100 && rnd() % 100 >= o.read_pct);
	}
	sl->iov.iov_base = sl->buf;
	sl->iov.iov_len = len;
	sl->t0 = now_ns();
	if (sl->write)
		t = iscsi_write16_iov_task(s->ctx, s->lun, sl->off / lba_size, NULL, len, (int)lba_size,
					   0, 0, 0, 0, 0, command_done, sl, &sl->iov, 1);
	else
		t = iscsi_read16_iov_task(s->ctx, s->lun, sl->off / lba_size, len, (int)lba_size,
					  0, 0, 0, 0, 0, command_done, sl, &sl->iov, 1);
	if (!t) {
		fprintf(stderr, "obd-bench: session %u: cannot queue a command: %s\n", s->idx,
			iscsi_get_error(s->ctx));
		s->dead = true;
		return -EIO;
	}
	sl->busy = true;
	s->inflight++;
	return 0;
}

static void check_read(struct slot *sl)
{
	static unsigned char *ref;
	ssize_t n;

	if (!ref && !(ref = malloc(o.bs)))
		return;
	n = pread(ref_fd, ref, o.bs, (off_t)sl->off);
	if (n != (ssize_t)o.bs || memcmp(ref, sl->buf, o.bs)) {
		if (!verify_bad)
			fprintf(stderr, "obd-bench: verify: bytes at offset %" PRIu64
				" differ from %s\n", sl->off, o.file);
		verify_bad++;
	}
}

static void command_done(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct scsi_task *t = data;
	struct slot *sl = priv;
	struct session *s = sl->s;
	uint64_t end = now_ns();

	sl->busy = false;
	s->inflight--;
	if (status != SCSI_STATUS_GOOD) {
		s->errors++;
		if (!first_error_reported++)
			fprintf(stderr, "obd-bench: session %u: %s at offset %" PRIu64 " failed: %s\n",
				s->idx, sl->write ? "write" : "read", sl->off, iscsi_get_error(ctx));
	} else {
		if (ref_fd >= 0 && o.mode == MODE_RUN && !sl->write)
			check_read(sl);
		if (o.mode == MODE_FILL)
			fill_done++;
		if (end >= t_measure && end <= t_stop) {
			s->ios++;
			s->bytes += o.bs;
			lat_add(s, end - sl->t0);
		}
	}
	if (t)
		scsi_free_scsi_task(t);
	if (!stopping && !s->dead && status != SCSI_STATUS_CANCELLED)
		submit(sl);
}

/* One poll() over every session; false once no session is usable. */
static bool service_all(struct session *ss, struct pollfd *pfd, int timeout_ms)
{
	unsigned live = 0;

	for (unsigned i = 0; i < o.sessions; i++) {
		pfd[i].fd = ss[i].dead ? -1 : iscsi_get_fd(ss[i].ctx);
		pfd[i].events = ss[i].dead ? 0 : (short)iscsi_which_events(ss[i].ctx);
		pfd[i].revents = 0;
		live += !ss[i].dead;
	}
	if (!live)
		return false;
	int n = poll(pfd, o.sessions, timeout_ms);

	if (n < 0)
		return errno == EINTR;
	for (unsigned i = 0; i < o.sessions && n > 0; i++) {
		if (!pfd[i].revents)
			continue;
		n--;
		if (iscsi_service(ss[i].ctx, pfd[i].revents) < 0) {
			fprintf(stderr, "obd-bench: session %u: %s\n", i, iscsi_get_error(ss[i].ctx));
			ss[i].dead = true;
		}
	}
	return true;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double pct_us(const uint32_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1] / 1000.0;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void on_signal(int sig)
{
	got_signal = sig;
}

static void report(struct session *ss, double secs, double cpu)
{
	uint64_t ios = 0, bytes = 0, errors = 0;
	size_t nlat = 0, k = 0;
	uint32_t *all;
	double *sp99 = calloc(o.sessions, sizeof(*sp99));
	double *siops = calloc(o.sessions, sizeof(*siops));

	for (unsigned i = 0; i < o.sessions; i++) {
		ios += ss[i].ios;
		bytes += ss[i].bytes;
		errors += ss[i].errors;
		nlat += ss[i].nlat;
	}
	all = malloc((nlat ? nlat : 1) * sizeof(*all));
	if (!all || !sp99 || !siops) {
		fprintf(stderr, "obd-bench: out of memory for the report\n");
		exit(1);
	}
	for (unsigned i = 0; i < o.sessions; i++) {
		qsort(ss[i].lat, ss[i].nlat, sizeof(uint32_t), cmp_u32);
		sp99[i] = pct_us(ss[i].lat, ss[i].nlat, 99);
		siops[i] = ss[i].ios / secs;
		memcpy(all + k, ss[i].lat, ss[i].nlat * sizeof(uint32_t));
		k += ss[i].nlat;
	}
	qsort(all, nlat, sizeof(uint32_t), cmp_u32);
	qsort(sp99, o.sessions, sizeof(double), cmp_dbl);
	qsort(siops, o.sessions, sizeof(double), cmp_dbl);

	double iops = ios / secs, mibs = bytes / secs / 1048576.0;
	double p50 = pct_us(all, nlat, 50), p99 = pct_us(all, nlat, 99);
	double p999 = pct_us(all, nlat, 99.9);
	double avg = 0;

	for (size_t i = 0; i < nlat; i++)
		avg += all[i];
	avg = nlat ? avg / nlat / 1000.0 : 0;
	double sp99_med = sp99[o.sessions / 2], sp99_max = sp99[o.sessions - 1];
	double client_us = ios ? cpu / ios * 1e6 : 0;
	const char *rw = o.read_pct == 100 ? "read" : o.read_pct == 0 ? "write" : "mix";

	if (!o.quiet) {
		printf("%s %s bs=%u qd=%u sessions=%u: %.0f IOPS, %.1f MiB/s, "
		       "latency avg %.1f p50 %.1f p99 %.1f p99.9 %.1f us\n",
		       o.pattern == PAT_SEQ ? "seq" : "rand", rw, o.bs, o.qd, o.sessions, iops,
		       mibs, avg, p50, p99, p999);
		if (o.sessions > 1)
			printf("per session: IOPS min %.0f max %.0f, p99 median %.1f max %.1f us\n",
			       siops[0], siops[o.sessions - 1], sp99_med, sp99_max);
		printf("client CPU %.1f us per I/O\n", client_us);
	}
	printf("OBD-BENCH pattern=%s rw=%s bs=%u qd=%u sessions=%u secs=%.3f ios=%" PRIu64
	       " iops=%.1f mibs=%.2f lat_avg_us=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f"
	       " sess_p99_med_us=%.1f sess_p99_max_us=%.1f sess_iops_min=%.1f"
	       " sess_iops_max=%.1f client_cpu_us=%.2f errors=%" PRIu64 " verify_bad=%" PRIu64 "\n",
	       o.pattern == PAT_SEQ ? "seq" : "rand", rw, o.bs, o.qd, o.sessions, secs, ios, iops,
	       mibs, avg, p50, p99, p999, sp99_med, sp99_max, siops[0], siops[o.sessions - 1],
	       client_us, errors, verify_bad);
	fflush(stdout);
	free(all);
	free(sp99);
	free(siops);
}

static int alloc_slots(struct session *s)
{
	s->slots = calloc(o.qd, sizeof(*s->slots));
	if (!s->slots)
		return -ENOMEM;
	for (unsigned j = 0; j < o.qd; j++) {
		struct slot *sl = &s->slots[j];

		sl->s = s;
		if (posix_memalign((void **)&sl->buf, 4096, o.bs))
			return -ENOMEM;
		for (uint32_t b = 0; b < o.bs; b += 8) {
			uint64_t r = rnd();

			memcpy(sl->buf + b, &r, 8);
		}
	}
	return 0;
}

static void raise_nofile(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur >= need + 64)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (rl.rlim_cur < need + 64 && geteuid() == 0)
		rl.rlim_cur = rl.rlim_max = need + 64;
	setrlimit(RLIMIT_NOFILE, &rl);
}

int main(int argc, char **argv)
{
	struct session *ss;
	struct pollfd *pfd;
	uint32_t isid_rnd;
	int rc = 0;

	if (parse_args(argc, argv)) {
		usage(stderr);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	rng_state ^= now_ns() ^ ((uint64_t)getpid() << 32);
	isid_rnd = (uint32_t)rnd() & 0xffffff;
	raise_nofile(o.sessions);
	if (o.file) {
		ref_fd = open(o.file, O_RDONLY);
		if (ref_fd < 0) {
			fprintf(stderr, "obd-bench: cannot open %s: %s\n", o.file, strerror(errno));
			return 1;
		}
	}
	ss = calloc(o.sessions, sizeof(*ss));
	pfd = calloc(o.sessions, sizeof(*pfd));
	if (!ss || !pfd)
		return 1;
	for (unsigned i = 0; i < o.sessions; i++) {
		if (session_open(&ss[i], i, isid_rnd))
			return 1;
		if (i == 0 && read_capacity(&ss[0]))
			return 1;
	}
	if (o.mode == MODE_IDLE) {
		uint64_t end = o.seconds > 0 ? now_ns() + (uint64_t)(o.seconds * 1e9) : UINT64_MAX;

		printf("IDLE-READY %u\n", o.sessions);
		fflush(stdout);
		while (!got_signal && now_ns() < end)
			if (!service_all(ss, pfd, 200))
				break;
		unsigned dead = 0;

		for (unsigned i = 0; i < o.sessions; i++)
			dead += ss[i].dead;
		printf("IDLE-DONE sessions=%u dropped=%u\n", o.sessions, dead);
		return dead ? 2 : 0;
	}
	if (o.bs > lun_bytes || (o.span && o.span < o.bs)) {
		fprintf(stderr, "obd-bench: block size %u is larger than the span\n", o.bs);
		return 1;
	}
	if (o.mode == MODE_FILL) {
		off_t fsize = lseek(ref_fd, 0, SEEK_END);
		uint64_t end = fsize > 0 && (uint64_t)fsize < lun_bytes ? (uint64_t)fsize : lun_bytes;
		uint64_t total = (end + o.chunk - 1) / o.chunk;

		fill_chunks = total > o.phase ? (total - o.phase + o.stride - 1) / o.stride : 0;
		o.warmup = 0;
	}
	for (unsigned i = 0; i < o.sessions; i++) {
		if (alloc_slots(&ss[i])) {
			fprintf(stderr, "obd-bench: out of memory\n");
			return 1;
		}
		/* each session streams its own part of the LUN */
		uint64_t span = o.span && o.span < lun_bytes ? o.span : lun_bytes;

		ss[i].cursor = span / o.sessions * i / o.bs * o.bs;
	}

	uint64_t t_start = now_ns();

	t_measure = t_start + (uint64_t)(o.warmup * 1e9);
	t_stop = o.mode == MODE_FILL ? UINT64_MAX : t_measure + (uint64_t)(o.seconds * 1e9);
	double cpu0 = 0;
	bool measuring = false;

	for (unsigned i = 0; i < o.sessions; i++)
		for (unsigned j = 0; j < o.qd; j++)
			if (submit(&ss[i].slots[j]))
				break;
	for (;;) {
		uint64_t t = now_ns();

		if (!measuring && t >= t_measure) {
			measuring = true;
			cpu0 = cpu_seconds();
		}
		if (got_signal)
			break;
		if (o.mode == MODE_FILL ? fill_done + ss[0].errors >= fill_chunks && !ss[0].inflight
					: t >= t_stop)
			break;
		if (!service_all(ss, pfd, 100))
			break;
	}
	uint64_t t_end = now_ns();
	double cpu = cpu_seconds() - cpu0;

	stopping = true;
	/* drain what is still in flight, so the target ends idle */
	uint64_t drain_end = now_ns() + 30000000000ull;

	for (;;) {
		unsigned busy = 0;

		for (unsigned i = 0; i < o.sessions; i++)
			busy += ss[i].dead ? 0 : ss[i].inflight;
		if (!busy || now_ns() > drain_end)
			break;
		if (!service_all(ss, pfd, 100))
			break;
	}
	if (o.mode == MODE_FILL && !ss[0].dead) {
		struct scsi_task *t = iscsi_synchronizecache16_sync(ss[0].ctx, ss[0].lun, 0, 0, 0, 0);

		if (!t || t->status != SCSI_STATUS_GOOD) {
			fprintf(stderr, "obd-bench: SYNCHRONIZE CACHE failed: %s\n",
				iscsi_get_error(ss[0].ctx));
			rc = 2;
		}
		if (t)
			scsi_free_scsi_task(t);
	}
	double secs = o.mode == MODE_FILL ? (t_end - t_start) / 1e9
					  : ((t_end < t_stop ? t_end : t_stop) - t_measure) / 1e9;

	report(ss, secs > 0 ? secs : 1e-9, cpu);
	for (unsigned i = 0; i < o.sessions; i++) {
		if (ss[i].errors || ss[i].dead)
			rc = 2;
		if (!ss[i].dead)
			iscsi_logout_sync(ss[i].ctx);
		iscsi_destroy_context(ss[i].ctx);
	}
	if (verify_bad)
		rc = 2;
	return rc;
}
