/*
 * overlaybd-create: make a new, empty writable layer (lsmt.md 4.2), or with
 * -s a sparse one (lsmt.md 4.4: the device in place in DATA, INDEX empty).
 *
 *   overlaybd-create [-u PARENT_UUID] [-s] DATA INDEX SIZE_GB
 *
 * Both files are written under a temporary name and renamed into place, so
 * a failed run never leaves a half-made layer behind.  An existing layer a
 * daemon serves is never replaced (it holds a lock on it, lsmt_rw.c).
 */
#include "blockdev/bdev.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* lsmt.md 3: a layer addresses 2^50 - 1 sectors, just under 2^29 GiB. */
#define MAX_GB ((1ull << 29) - 1)

static void usage(FILE *to)
{
	fprintf(to,
		"usage: overlaybd-create [-u PARENT_UUID] [-s] DATA INDEX SIZE_GB\n"
		"Create a writable overlaybd layer: DATA and INDEX files for a device of\n"
		"SIZE_GB GiB (a whole number).\n"
		"  -u, --parent-uuid U  uuid of the layer below (default: the null uuid)\n"
		"  -s, --sparse         sparse layer: DATA holds the device in place (a sparse\n"
		"                       file of SIZE_GB GiB), INDEX is created empty\n"
		"  -h, --help           this text\n");
}

/* lsmt.md 2: 36 characters, hex digits with dashes at 8, 13, 18, 23 */
static bool uuid_ok(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	}
	return true;
}

/*
 * Hold PATH, if it exists, with the lock a writer takes (lsmt_rw.c), so it
 * is not replaced under a daemon that would go on writing to the unlinked
 * file.  *FD is -1 when there is nothing to hold.  -EWOULDBLOCK when busy.
 */
static int hold_existing(const char *path, int *fd)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd < 0)
		return 0; /* absent or not a file we could lock: rename replaces it */
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	int err = -errno;

	close(*fd);
	*fd = -1;
	return err;
}

static int die(const char *fmt, const char *arg)
{
	fprintf(stderr, "overlaybd-create: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "parent-uuid", required_argument, NULL, 'u' },
		{ "sparse", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *parent = NULL;
	bool sparse = false;
	int c;

	while ((c = getopt_long(argc, argv, "u:sh", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			parent = optarg;
			break;
		case 's':
			sparse = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (argc - optind != 3) {
		usage(stderr);
		return 1;
	}
	const char *data = argv[optind], *index = argv[optind + 1], *gb = argv[optind + 2];
	char *end;
	unsigned long long n = strtoull(gb, &end, 10);

	if (parent && !uuid_ok(parent))
		return die("\"%s\" is not a uuid", parent);
	if (!*gb || *end || n == 0 || n > MAX_GB)
		return die("SIZE_GB must be a whole number of GiB from 1 to 536870911, got \"%s\"",
			   gb);

	char tdata[4096], tindex[4096];
	struct bdev_file *df = NULL, *xf = NULL;
	int err, hd = -1, hx = -1;

	if (hold_existing(data, &hd) || hold_existing(index, &hx)) {
		if (hd >= 0)
			close(hd);
		return die("%s is in use by a writer (locked); not replacing it",
			   hd >= 0 ? index : data);
	}

	snprintf(tdata, sizeof(tdata), "%s.tmp", data);
	snprintf(tindex, sizeof(tindex), "%s.tmp", index);
	log_open("/dev/null"); /* failures are reported in one line below */
	/* New files made by this run, never a link planted at the names; a
	 * name that already exists is refused and left alone. */
	if (bdev_file_reserve(tdata))
		return die("cannot create %s", tdata);
	if (bdev_file_reserve(tindex)) {
		unlink(tdata);
		return die("cannot create %s", tindex);
	}
	err = bdev_file_open_local(tdata, O_RDWR | O_TRUNC | O_NOFOLLOW, BDEV_IO_PSYNC, &df);
	if (!err)
		err = bdev_file_open_local(tindex, O_RDWR | O_TRUNC | O_NOFOLLOW, BDEV_IO_PSYNC, &xf);
	if (err) {
		bdev_file_close(df);
		unlink(tdata);
		unlink(tindex);
		return die("cannot open %s", tdata);
	}
	err = sparse ? lsmt_create_sparse(df, xf, n << 30, parent)
		     : lsmt_create_rw(df, xf, n << 30, parent);
	bdev_file_close(df);
	bdev_file_close(xf);
	if (!err && (rename(tdata, data) || rename(tindex, index)))
		err = -errno;
	if (hd >= 0)
		close(hd);
	if (hx >= 0)
		close(hx);
	if (err) {
		unlink(tdata);
		unlink(tindex);
		fprintf(stderr, "overlaybd-create: cannot write the layer: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
