/*
 * unwrap: peel the container layers off a read-only layer blob in the
 * order the reference uses (zfile.md 8, lsmt.md 8): a ustar archive first,
 * then a ZFile; what remains is handed to the LSMT reader, which judges
 * its own magic.
 */
#include "bdev.h"

#include <string.h>

/* The first 512 bytes of F, zero-filled when F is shorter. */
static int first_block(struct bdev_file *f, uint8_t b[BDEV_SECTOR])
{
	ssize_t n;

	memset(b, 0, BDEV_SECTOR);
	n = bdev_file_pread(f, b, BDEV_SECTOR, 0);
	return n < 0 ? (int)n : 0;
}

int bdev_file_unwrap(struct bdev_file *raw, struct bdev_file **out)
{
	uint8_t b[BDEV_SECTOR];
	struct bdev_file *f = raw;
	int rc = first_block(f, b);

	if (rc == 0 && tar_is_tar(b)) {
		rc = tar_open(f, &f);
		if (rc)
			return rc;
		rc = first_block(f, b);
	}
	if (rc == 0 && zfile_is_zfile(b)) {
		rc = zfile_open(f, &f);
		if (rc)
			return rc;
	}
	if (rc) {
		bdev_file_close(f);
		return rc;
	}
	*out = f;
	return 0;
}
