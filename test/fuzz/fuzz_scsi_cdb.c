/*
 * fuzz_scsi_cdb: random CDBs with random data-out against a small writable
 * device (8 MiB, temp files) and a second LU that EXTENDED COPY must not
 * reach (its designator is answered as unreachable).  Input layout: 16 CDB
 * bytes, one control byte (bits 0-1 direction, bit 2 a nonzero LUN, bits
 * 3-7 the expected length in KiB steps), then data-out.
 * Every command must complete exactly once with a sane status.
 */
#include "blockdev/bdev.h"
#include "common/common.h"
#include "scsi/scsi.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct bdev_pool *pool;
static struct scsi_dev *dev, *dev2;
static struct scsi_itn *itn, *itn2;
static int done_count;

static struct bdev *make_dev(const char *dir, const char *name)
{
	char dn[512], xn[512];
	struct bdev_file *df, *xf;
	struct lsmt_layer *l;
	struct bdev *d;

	snprintf(dn, sizeof(dn), "%s/%s.data", dir, name);
	snprintf(xn, sizeof(xn), "%s/%s.index", dir, name);
	if (bdev_file_open_local(dn, O_RDWR | O_CREAT, BDEV_IO_PSYNC, &df) ||
	    bdev_file_open_local(xn, O_RDWR | O_CREAT, BDEV_IO_PSYNC, &xf) ||
	    lsmt_create_rw(df, xf, 8u << 20, NULL))
		abort();
	bdev_file_close(df);
	bdev_file_close(xf);
	if (bdev_file_open_local(dn, O_RDWR, BDEV_IO_PSYNC, &df) ||
	    bdev_file_open_local(xn, O_RDWR, BDEV_IO_PSYNC, &xf) || lsmt_open_rw(df, xf, &l) ||
	    bdev_open(NULL, 0, l, &d))
		abort();
	return d;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/fuzz_scsi.XXXXXX";
	struct scsi_dev_info info = { "OVERLAYB", "fuzz", "0001", "F1", 0x6001405000000001ull,
				      "iqn.2026-11.io.overlaybd:fuzz", 1, 1 };

	(void)argc;
	(void)argv;
	log_set_level(LOG_LVL_ERROR);
	if (!mkdtemp(dir) || bdev_pool_create(2, &pool))
		abort();
	if (scsi_dev_create(make_dev(dir, "a"), pool, &info, &dev))
		abort();
	info.naa = 0x6001405000000002ull;
	info.serial = "F2";
	if (scsi_dev_create(make_dev(dir, "b"), pool, &info, &dev2))
		abort();
	itn = scsi_itn_attach(dev, "iqn.fuzz:a,i,0x1");
	itn2 = scsi_itn_attach(dev, "iqn.fuzz:b,i,0x2");
	(void)dev2;
	return 0;
}

static void on_done(struct scsi_task *t)
{
	uint32_t n = 0;

	for (int i = 0; i < t->in_iovcnt; i++)
		n += t->in_iov[i].iov_len;
	if (t->in_iovcnt && n > ((t->expected_len + 511) & ~511u))
		abort();
	scsi_task_release(t);
	done_count++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scsi_task t;
	struct iovec v[2];
	uint8_t ctl;
	int before = done_count;

	if (size < 17)
		return 0;
	memset(&t, 0, sizeof(t));
	memcpy(t.cdb, data, 16);
	t.cdb_len = 16;
	ctl = data[16];
	t.dir = (enum scsi_dir)(ctl & 3) == 3 ? SCSI_DIR_NONE : (enum scsi_dir)(ctl & 3);
	t.lun = (ctl & 4) ? 1 : 0;
	data += 17;
	size -= 17;
	/* Data-out split in two vectors to exercise the gather paths. */
	v[0].iov_base = (void *)data;
	v[0].iov_len = size / 2;
	v[1].iov_base = (void *)(data + size / 2);
	v[1].iov_len = size - size / 2;
	t.out_iov = v;
	t.out_iovcnt = t.dir == SCSI_DIR_WRITE ? 2 : 0;
	t.out_len = t.dir == SCSI_DIR_WRITE ? (uint32_t)size : 0;
	t.expected_len = t.dir == SCSI_DIR_WRITE ? t.out_len : (uint32_t)(ctl >> 3) * 1024;
	scsi_task_execute((ctl & 0x80) ? itn2 : itn, &t, on_done);
	while (done_count == before) {
		struct pollfd p = { .fd = bdev_pool_fd(pool), .events = POLLIN };

		if (poll(&p, 1, 30000) <= 0)
			abort();
		bdev_pool_service(pool);
	}
	if (done_count != before + 1)
		abort();
	return 0;
}
