/*
 * file: local files as struct bdev_file, and the generic helpers every
 * bdev_file shares.  The psync engine issues pread/pwrite from the calling
 * (worker) thread; the page cache does the rest.
 */
#include "bdev.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct local_file {
	struct bdev_file f;
	int fd;
	char *path;
};

static ssize_t local_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct local_file *lf = (struct local_file *)f;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(lf->fd, (char *)buf + done, len - done, off + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

static ssize_t local_pwrite(struct bdev_file *f, const void *buf, size_t len, uint64_t off)
{
	struct local_file *lf = (struct local_file *)f;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(lf->fd, (const char *)buf + done, len - done, off + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += n;
	}
	/* Writers append concurrently under their own lock; size only grows. */
	for (;;) {
		uint64_t cur = __atomic_load_n(&f->size, __ATOMIC_RELAXED);

		if (off + len <= cur ||
		    __atomic_compare_exchange_n(&f->size, &cur, off + len, false,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			break;
	}
	return done;
}

static int local_sync(struct bdev_file *f)
{
	struct local_file *lf = (struct local_file *)f;

	return fdatasync(lf->fd) < 0 ? -errno : 0;
}

static const char *local_name(struct bdev_file *f)
{
	return ((struct local_file *)f)->path;
}

static void local_close(struct bdev_file *f)
{
	struct local_file *lf = (struct local_file *)f;

	close(lf->fd);
	free(lf->path);
	free(lf);
}

static const struct bdev_file_ops local_ro_ops = {
	.pread = local_pread,
	.name = local_name,
	.close = local_close,
};

static const struct bdev_file_ops local_rw_ops = {
	.pread = local_pread,
	.pwrite = local_pwrite,
	.sync = local_sync,
	.name = local_name,
	.close = local_close,
};

int bdev_file_open_local(const char *path, int flags, enum bdev_io_engine engine,
			 struct bdev_file **out)
{
	struct local_file *lf;
	struct stat st;
	int fd;

	if (engine != BDEV_IO_PSYNC)
		return -ENOTSUP;
	fd = open(path, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int err = S_ISREG(st.st_mode) ? -errno : -EINVAL;

		close(fd);
		return err;
	}
	lf = calloc(1, sizeof(*lf));
	if (!lf || !(lf->path = strdup(path))) {
		free(lf);
		close(fd);
		return -ENOMEM;
	}
	lf->fd = fd;
	lf->f.size = st.st_size;
	lf->f.ops = (flags & O_ACCMODE) == O_RDONLY ? &local_ro_ops : &local_rw_ops;
	*out = &lf->f;
	return 0;
}

int bdev_file_pread_full(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	ssize_t n = f->ops->pread(f, buf, len, off);

	if (n < 0)
		return n;
	return (size_t)n == len ? 0 : -EIO;
}

void bdev_file_close(struct bdev_file *f)
{
	if (f)
		f->ops->close(f);
}

const char *bdev_file_name(struct bdev_file *f)
{
	const char *n = f->ops->name ? f->ops->name(f) : NULL;

	return n ? n : "(anonymous)";
}
