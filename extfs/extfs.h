/*
 * extfs: the files inside an ext2/3/4 filesystem image, read through a
 * byte source the caller supplies, for prefetching a list of files
 * (docs/trace.md, "File lists").
 *
 * Owns the glue to libext2fs: an io_manager that reads through the
 * caller's callback (never a file descriptor of its own), and the walk from
 * a path to the device ranges that hold the file's data.  It only reads:
 * the filesystem is opened read-only and nothing is ever written.  It
 * knows nothing of layers, the registry or SCSI; the image is whatever the
 * callback returns, so the daemon can hand it the merged device.
 */
#ifndef OBD_EXTFS_H
#define OBD_EXTFS_H

#include <stddef.h>
#include <stdint.h>

struct extfs_source {
	/* Read LEN bytes at byte offset OFF: 0 or -errno.  Called from the
	 * thread that calls extfs_open and extfs_file_ranges. */
	int (*pread)(void *ctx, void *buf, size_t len, uint64_t off);
	void *ctx;
	uint64_t size; /* bytes */
};

struct extfs;

/* Open the filesystem on SRC read-only.  -EINVAL if it is not ext2/3/4. */
int extfs_open(const struct extfs_source *src, struct extfs **out);
void extfs_close(struct extfs *fs);

/* Called with the device byte ranges of a file's data, in file order;
 * adjacent blocks come as one range.  Non-zero stops the walk. */
typedef int (*extfs_range_fn)(void *arg, uint64_t off, uint64_t len);

/*
 * The data of PATH (absolute, inside the filesystem).  A regular file gives
 * its ranges; a directory gives those of every regular file below it when
 * RECURSIVE, else nothing.  Symlinks are not followed.  -ENOENT when PATH
 * is not there.
 */
int extfs_file_ranges(struct extfs *fs, const char *path, int recursive, extfs_range_fn fn,
		      void *arg);

#endif
