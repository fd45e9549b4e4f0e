/*
 * mklayer: make a sealed LSMT layer blob of random data for the registry
 * benchmark, through the block engine (a writable layer, written, then
 * committed, as overlaybd-create / writes / overlaybd-commit would).
 *
 *   mklayer OUT DATA_MiB [OFFSET_MiB] [SEED]
 *
 * The device is 4 GiB; DATA_MiB of random bytes start at OFFSET_MiB.
 */
#include "blockdev/bdev.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static int die(const char *what, int err)
{
	fprintf(stderr, "mklayer: %s: %s\n", what, strerror(-err));
	return 1;
}

int main(int argc, char **argv)
{
	struct bdev_file *df, *xf, *out;
	struct lsmt_layer *l;
	struct bdev *d;
	char data[4096], index[4096];
	uint64_t mib, at;
	unsigned seed;
	uint8_t *buf;
	int err;

	if (argc < 3) {
		fprintf(stderr, "usage: mklayer OUT DATA_MiB [OFFSET_MiB] [SEED]\n");
		return 2;
	}
	mib = strtoull(argv[2], NULL, 0);
	at = argc > 3 ? strtoull(argv[3], NULL, 0) << 20 : 0;
	seed = argc > 4 ? strtoul(argv[4], NULL, 0) : 1;
	log_set_level(LOG_LVL_WARN);
	snprintf(data, sizeof(data), "%s.data", argv[1]);
	snprintf(index, sizeof(index), "%s.index", argv[1]);
	if ((err = bdev_file_open_local(data, O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC, &df)) ||
	    (err = bdev_file_open_local(index, O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC, &xf)))
		return die("create", err);
	if ((err = lsmt_create_rw(df, xf, 4ull << 30, NULL)))
		return die("lsmt_create_rw", err);
	if ((err = lsmt_open_rw(df, xf, &l)) || (err = bdev_open(NULL, 0, l, &d)))
		return die("open", err);
	buf = malloc(CHUNK);
	srandom(seed);
	for (uint64_t i = 0; i < mib; i++) {
		for (unsigned k = 0; k < CHUNK / 4; k++)
			((uint32_t *)buf)[k] = random();
		if ((err = bdev_pwrite(d, buf, CHUNK, at + i * CHUNK)))
			return die("write", err);
	}
	free(buf);
	if ((err = bdev_flush(d)))
		return die("flush", err);
	bdev_close(d);
	if ((err = bdev_file_open_local(data, O_RDWR, BDEV_IO_PSYNC, &df)) ||
	    (err = bdev_file_open_local(index, O_RDWR, BDEV_IO_PSYNC, &xf)) ||
	    (err = lsmt_open_rw(df, xf, &l)))
		return die("reopen", err);
	if ((err = bdev_file_open_local(argv[1], O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC, &out)))
		return die(argv[1], err);
	if ((err = lsmt_commit(&l, 1, out, NULL, false)))
		return die("commit", err);
	lsmt_close(l);
	bdev_file_close(out);
	unlink(data);
	unlink(index);
	return 0;
}
