/*
 * devfile: the merged device as a read-only struct bdev_file, for code that
 * reads a whole image through the byte-source interface (a file list's
 * filesystem walk, docs/trace.md).  It borrows the device: closing the file
 * leaves the device open.  Reads that are not sector aligned go through a
 * bounce buffer, since the device takes only whole sectors.
 */
#include "bdev_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct dev_file {
	struct bdev_file f;
	struct bdev *d;
};

static int read_unaligned(struct bdev *d, void *buf, size_t len, uint64_t off)
{
	uint64_t start = off / BDEV_SECTOR * BDEV_SECTOR;
	uint64_t end = (off + len + BDEV_SECTOR - 1) / BDEV_SECTOR * BDEV_SECTOR;
	uint8_t *bounce = malloc(end - start);
	int rc;

	if (!bounce)
		return -ENOMEM;
	rc = bdev_pread(d, bounce, end - start, start);
	if (rc == 0)
		memcpy(buf, bounce + (off - start), len);
	free(bounce);
	return rc;
}

static ssize_t dev_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct dev_file *df = (struct dev_file *)f;
	int rc;

	if (off >= f->size)
		return 0;
	if (len > f->size - off)
		len = f->size - off;
	if (off % BDEV_SECTOR || len % BDEV_SECTOR)
		rc = read_unaligned(df->d, buf, len, off);
	else
		rc = bdev_pread(df->d, buf, len, off);
	return rc < 0 ? rc : (ssize_t)len;
}

static const char *dev_name(struct bdev_file *f)
{
	return "device";
}

static void dev_close(struct bdev_file *f)
{
	free(f);
}

static const struct bdev_file_ops dev_file_ops = {
	.pread = dev_pread,
	.name = dev_name,
	.close = dev_close,
};

int bdev_file_of_device(struct bdev *d, struct bdev_file **out)
{
	struct dev_file *df = calloc(1, sizeof(*df));

	if (!df)
		return -ENOMEM;
	df->f.ops = &dev_file_ops;
	df->f.size = bdev_size(d);
	df->d = d;
	*out = &df->f;
	return 0;
}
