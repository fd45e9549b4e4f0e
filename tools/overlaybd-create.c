/*
 * overlaybd-create: make a new, empty writable layer (lsmt.md 4.2), or with
 * -s a sparse one (lsmt.md 4.4: the device in place in DATA, INDEX empty).
 *
 *   overlaybd-create [-u PARENT_UUID] [-s] DATA INDEX SIZE_GB
 *
 * Both files are written under a temporary name and renamed into place, so
 * a failed run never leaves a half-made layer behind.
 */
#include "blockdev/bdev.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	if (!*gb || *end || n == 0 || n > (1ull << 33))
		return die("SIZE_GB must be a positive whole number of GiB, got \"%s\"", gb);

	char tdata[4096], tindex[4096];
	struct bdev_file *df = NULL, *xf = NULL;
	int err;

	snprintf(tdata, sizeof(tdata), "%s.tmp", data);
	snprintf(tindex, sizeof(tindex), "%s.tmp", index);
	log_open("/dev/null"); /* failures are reported in one line below */
	err = bdev_file_open_local(tdata, O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC, &df);
	if (err)
		return die("cannot create %s", tdata);
	err = bdev_file_open_local(tindex, O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC, &xf);
	if (err) {
		bdev_file_close(df);
		unlink(tdata);
		return die("cannot create %s", tindex);
	}
	err = sparse ? lsmt_create_sparse(df, xf, n << 30, parent)
		     : lsmt_create_rw(df, xf, n << 30, parent);
	bdev_file_close(df);
	bdev_file_close(xf);
	if (!err && (rename(tdata, data) || rename(tindex, index)))
		err = -errno;
	if (err) {
		unlink(tdata);
		unlink(tindex);
		fprintf(stderr, "overlaybd-create: cannot write the layer: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
