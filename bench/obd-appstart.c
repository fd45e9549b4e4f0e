/*
 * obd-appstart: an application start, replayed from user space over iSCSI
 * for `make bench-coldstart` (docs/coldstart.md).
 *
 *   obd-appstart [--initiator IQN] URL LIST
 *
 * LIST holds the files an application opened while it started, in the
 * order it first opened them (bench/coldstart.sh takes them from strace of
 * the real start in a chroot).  For each one, the ext4 filesystem on the
 * LUN is walked with libext2fs (our extfs/): directory lookups, inodes and
 * extent trees, then the file's data, read in 128 KiB requests, one at a
 * time, as a starting process waits on each read before the next.
 * Filesystem metadata is kept once read, as the kernel's page cache would.
 *
 * Output: "OBD-APPSTART files=N found=F data_bytes=B meta_bytes=M reads=R
 * ms=T", the time from the first read to the last.  Exit 0, 1 on a SCSI or
 * filesystem error, 2 on usage.
 */
#include "extfs/extfs.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BS 512u
#define READ_MAX (128u << 10) /* the kernel's default read-ahead window */
#define META_BLOCK 4096u
#define META_SLOTS 65536u    /* 256 MiB of metadata at most; a start reads far less */

struct lun {
	struct iscsi_context *ctx;
	struct iscsi_url *url;
	uint64_t size;
	uint64_t reads, data_bytes, meta_bytes;
};

struct meta_block {
	uint64_t no; /* block number + 1; 0 = empty */
	uint8_t *data;
};

static struct meta_block meta[META_SLOTS];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "obd-appstart: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int lun_read(struct lun *l, void *buf, uint64_t off, uint32_t len)
{
	struct scsi_task *t = iscsi_read16_sync(l->ctx, l->url->lun, off / BS, len, BS, 0, 0, 0, 0,
						 0);
	int rc = 0;

	if (!t || t->status != SCSI_STATUS_GOOD || t->datain.size != (int)len)
		rc = -EIO;
	else
		memcpy(buf, t->datain.data, len);
	if (t)
		scsi_free_scsi_task(t);
	l->reads++;
	return rc;
}

/* One 4 KiB metadata block, from the cache or the LUN. */
static const uint8_t *meta_get(struct lun *l, uint64_t no)
{
	struct meta_block *m = &meta[no % META_SLOTS];

	if (m->no == no + 1)
		return m->data;
	if (!m->data && !(m->data = malloc(META_BLOCK)))
		return NULL;
	if (lun_read(l, m->data, no * META_BLOCK, META_BLOCK) < 0)
		return NULL;
	m->no = no + 1;
	l->meta_bytes += META_BLOCK;
	return m->data;
}

/* extfs reads metadata through here. */
static int meta_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct lun *l = ctx;
	uint8_t *p = buf;

	while (len) {
		uint64_t no = off / META_BLOCK;
		size_t in = off % META_BLOCK;
		size_t n = META_BLOCK - in < len ? META_BLOCK - in : len;
		const uint8_t *b = meta_get(l, no);

		if (!b)
			return -EIO;
		memcpy(p, b + in, n);
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* A file's data, as the starting process reads it. */
static int data_range(void *ctx, uint64_t off, uint64_t len)
{
	static uint8_t buf[READ_MAX];
	struct lun *l = ctx;

	while (len) {
		uint32_t n = len < READ_MAX ? len : READ_MAX;

		if (lun_read(l, buf, off, n) < 0)
			return -EIO;
		l->data_bytes += n;
		off += n;
		len -= n;
	}
	return 0;
}

static void lun_connect(struct lun *l, const char *initiator, const char *url)
{
	struct scsi_readcapacity16 *rc;
	struct scsi_task *t;

	l->ctx = iscsi_create_context(initiator);
	if (!l->ctx)
		die("no iSCSI context");
	l->url = iscsi_parse_full_url(l->ctx, url);
	if (!l->url)
		die("bad URL %s: %s", url, iscsi_get_error(l->ctx));
	iscsi_set_targetname(l->ctx, l->url->target);
	iscsi_set_session_type(l->ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(l->ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	if (iscsi_full_connect_sync(l->ctx, l->url->portal, l->url->lun) != 0)
		die("login to %s: %s", url, iscsi_get_error(l->ctx));
	t = iscsi_readcapacity16_sync(l->ctx, l->url->lun);
	if (!t || t->status != SCSI_STATUS_GOOD || !(rc = scsi_datain_unmarshall(t)))
		die("READ CAPACITY(16) failed");
	l->size = (rc->returned_lba + 1) * (uint64_t)rc->block_length;
	scsi_free_scsi_task(t);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Every path of LIST in order; returns the number found. */
static unsigned start_app(struct lun *l, struct extfs *fs, FILE *list, unsigned *files)
{
	char line[4096];
	unsigned found = 0;

	while (fgets(line, sizeof(line), list)) {
		int rc;

		line[strcspn(line, "\n")] = '\0';
		if (!*line)
			continue;
		(*files)++;
		rc = extfs_file_ranges(fs, line, 0, data_range, l);
		if (rc == 0)
			found++;
		else if (rc != -ENOENT)
			die("%s: %s", line, strerror(-rc));
	}
	return found;
}

int main(int argc, char **argv)
{
	const char *initiator = "iqn.2026-11.io.overlaybd.test:appstart";
	static const struct option longopts[] = { { "initiator", required_argument, NULL, 'i' },
						  { NULL, 0, NULL, 0 } };
	struct lun l = { 0 };
	struct extfs_source src = { .pread = meta_pread, .ctx = &l };
	struct extfs *fs;
	unsigned files = 0, found;
	double t0;
	FILE *list;
	int c, rc;

	while ((c = getopt_long(argc, argv, "i:", longopts, NULL)) != -1) {
		if (c != 'i') {
			fprintf(stderr, "usage: obd-appstart [--initiator IQN] URL LIST\n");
			return 2;
		}
		initiator = optarg;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: obd-appstart [--initiator IQN] URL LIST\n");
		return 2;
	}
	list = fopen(argv[optind + 1], "r");
	if (!list)
		die("%s: %s", argv[optind + 1], strerror(errno));
	lun_connect(&l, initiator, argv[optind]);
	src.size = l.size;
	t0 = now_ms();
	rc = extfs_open(&src, &fs);
	if (rc < 0)
		die("no ext4 filesystem on the LUN: %s", strerror(-rc));
	found = start_app(&l, fs, list, &files);
	printf("OBD-APPSTART files=%u found=%u data_bytes=%" PRIu64 " meta_bytes=%" PRIu64
	       " reads=%" PRIu64 " ms=%.1f\n", files, found, l.data_bytes, l.meta_bytes, l.reads,
	       now_ms() - t0);
	extfs_close(fs);
	iscsi_logout_sync(l.ctx);
	iscsi_destroy_context(l.ctx);
	return 0;
}
