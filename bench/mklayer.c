/*
 * mklayer: make a sealed LSMT layer blob of random data for the registry
 * benchmark, through the block engine (a writable layer, written, then
 * committed, as overlaybd-create / writes / overlaybd-commit would).
 *
 *   mklayer OUT DATA_MiB [OFFSET_MiB] [SEED]
 *   mklayer OUT --image RAW
 *
 * The device is 4 GiB; DATA_MiB of random bytes start at OFFSET_MiB.  With
 * --image the device is RAW (a disk image, e.g. from mke2fs -d) and the
 * layer holds its non-zero 64 KiB pieces.
 */
#include "blockdev/bdev.h"
#include "common/common.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define IMAGE_PIECE (64u << 10)

static int die(const char *what, int err)
{
	fprintf(stderr, "mklayer: %s: %s\n", what, strerror(-err));
	return 1;
}

/* DATA_MiB random MiB at AT. */
static int fill_random(struct bdev *d, uint64_t mib, uint64_t at, unsigned seed)
{
	uint8_t *buf = malloc(CHUNK);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	srandom(seed);
	for (uint64_t i = 0; i < mib && !err; i++) {
		for (unsigned k = 0; k < CHUNK / 4; k++)
			((uint32_t *)buf)[k] = random();
		err = bdev_pwrite(d, buf, CHUNK, at + i * CHUNK);
	}
	free(buf);
	return err;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* A raw disk image's bytes, skipping the 64 KiB pieces that are all zero,
 * so the layer holds only what the image holds. */
static int fill_image(struct bdev *d, int fd, uint64_t size)
{
	uint8_t *buf = malloc(IMAGE_PIECE);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < size && !err; off += IMAGE_PIECE) {
		size_t n = size - off < IMAGE_PIECE ? size - off : IMAGE_PIECE;

		if (pread(fd, buf, n, off) != (ssize_t)n) {
			err = -EIO;
			break;
		}
		if (!all_zero(buf, n))
			err = bdev_pwrite(d, buf, n, off);
	}
	free(buf);
	return err;
}

static int open_image(const char *path, int *fd, uint64_t *vsize)
{
	struct stat st;

	*fd = open(path, O_RDONLY);
	if (*fd < 0 || fstat(*fd, &st) < 0)
		return -errno;
	if (st.st_size % BDEV_SECTOR)
		return -EINVAL;
	*vsize = st.st_size;
	return 0;
}

static int commit(const char *out_path, const char *data, const char *index)
{
	struct bdev_file *df, *xf, *out;
	struct lsmt_layer *l;
	int err;

	if ((err = bdev_file_open_local(data, O_RDWR, BDEV_IO_PSYNC, &df)) ||
	    (err = bdev_file_open_local(index, O_RDWR, BDEV_IO_PSYNC, &xf)) ||
	    (err = lsmt_open_rw(df, xf, &l)))
		return die("reopen", err);
	if ((err = bdev_file_open_local(out_path, O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC,
					&out)))
		return die(out_path, err);
	if ((err = lsmt_commit(&l, 1, out, NULL, false)))
		return die("commit", err);
	lsmt_close(l);
	bdev_file_close(out);
	unlink(data);
	unlink(index);
	return 0;
}

int main(int argc, char **argv)
{
	bool image = argc == 4 && !strcmp(argv[2], "--image");
	uint64_t vsize = 4ull << 30;
	struct bdev_file *df, *xf;
	struct lsmt_layer *l;
	char data[4096], index[4096];
	struct bdev *d;
	int err, fd = -1;

	if (argc < 3) {
		fprintf(stderr, "usage: mklayer OUT DATA_MiB [OFFSET_MiB] [SEED]\n"
				"       mklayer OUT --image RAW\n");
		return 2;
	}
	if (image && (err = open_image(argv[3], &fd, &vsize)))
		return die(argv[3], err);
	log_set_level(LOG_LVL_WARN);
	snprintf(data, sizeof(data), "%s.data", argv[1]);
	snprintf(index, sizeof(index), "%s.index", argv[1]);
	if ((err = bdev_file_open_local(data, O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC, &df)) ||
	    (err = bdev_file_open_local(index, O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC, &xf)))
		return die("create", err);
	if ((err = lsmt_create_rw(df, xf, vsize, NULL)))
		return die("lsmt_create_rw", err);
	if ((err = lsmt_open_rw(df, xf, &l)) || (err = bdev_open(NULL, 0, l, &d)))
		return die("open", err);
	if (image)
		err = fill_image(d, fd, vsize);
	else
		err = fill_random(d, strtoull(argv[2], NULL, 0),
				  argc > 3 ? strtoull(argv[3], NULL, 0) << 20 : 0,
				  argc > 4 ? strtoul(argv[4], NULL, 0) : 1);
	if (err)
		return die("write", err);
	if ((err = bdev_flush(d)))
		return die("flush", err);
	bdev_close(d);
	return commit(argv[1], data, index);
}
