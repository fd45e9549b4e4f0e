/*
 * overlaybd-zfile: compress any file into a ZFile, extract one, or check
 * every block CRC of one (zfile.md 7).
 *
 *   overlaybd-zfile [--algorithm lz4|zstd] [--bs KB] [-t] IN OUT
 *   overlaybd-zfile -x IN OUT
 *   overlaybd-zfile --verify IN
 *
 * Like the reference tool it always writes per-block CRCs and leaves the
 * header as first written.  OUT is written as OUT.tmp and renamed only
 * when complete.
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
		"usage: overlaybd-zfile [options] IN OUT   compress IN into the ZFile OUT\n"
		"       overlaybd-zfile -x IN OUT            extract the ZFile IN into OUT\n"
		"       overlaybd-zfile --verify IN          check every block CRC of IN\n"
		"  --algorithm lz4|zstd  codec (default lz4)\n"
		"  --bs KB               block size in KiB: 4, 8, 16, 32 or 64 (default 4)\n"
		"  -t, --tar             wrap OUT in a tar archive, as overlaybd-commit -t\n"
		"  -x, --extract         decompress (IN may be tar-wrapped)\n"
		"      --verify          only check IN\n"
		"  -v, --verbose         debug log\n"
		"  -h, --help            this text\n");
}

static int fail(const char *what, const char *arg, int err)
{
	fprintf(stderr, "overlaybd-zfile: %s%s%s%s\n", what, arg ? arg : "", err ? ": " : "",
		err ? strerror(-err) : "");
	return 1;
}

/* zfile.md 7: --bs takes KiB, a power of two from 4 to 64 ("64" or "64K"). */
static bool parse_bs(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || (*end && strcmp(end, "K") && strcmp(end, "k")))
		return false;
	if (v < 4 || v > 64 || (v & (v - 1)))
		return false;
	*out = v * 1024;
	return true;
}

/* IN; with UNTAR its first member when IN is a tar archive. */
static int open_input(const char *path, bool untar, struct bdev_file **out)
{
	struct bdev_file *f;
	uint8_t b[512] = { 0 };
	int rc = bdev_file_open_local(path, O_RDONLY, BDEV_IO_PSYNC, &f);

	if (rc)
		return rc;
	if (untar && bdev_file_pread(f, b, sizeof(b), 0) == sizeof(b) && tar_is_tar(b))
		return tar_open(f, out);
	*out = f;
	return 0;
}

static int verify(const char *in)
{
	struct bdev_file *f;
	struct zfile_opts o;
	uint64_t size;
	int rc = open_input(in, true, &f);

	if (rc)
		return fail("cannot open ", in, rc);
	rc = zfile_info(f, &o, &size);
	if (rc == 0 && !o.verify)
		rc = -ENODATA;
	if (rc == 0)
		rc = zfile_decompress(f, NULL);
	bdev_file_close(f);
	if (rc == -EINVAL || rc == -ENODATA)
		return fail("not a valid zfile blob or checksum can't be found: ", in, 0);
	if (rc)
		return fail("verify failed: ", in, rc);
	printf("%s: %llu bytes, every block CRC matches\n", in, (unsigned long long)size);
	return 0;
}

static int run(const char *in, const char *tmp, bool extract, bool tar,
	       const struct zfile_opts *o)
{
	struct bdev_file *src, *dst, *mid = NULL;
	int rc = open_input(in, extract, &src);

	if (rc)
		return fail("cannot open ", in, rc);
	/* TMP was made by this run (bdev_file_reserve): never a planted link. */
	rc = bdev_file_open_local(tmp, O_RDWR | O_TRUNC | O_NOFOLLOW, BDEV_IO_PSYNC, &dst);
	if (rc) {
		bdev_file_close(src);
		return fail("cannot create ", tmp, rc);
	}
	if (extract) {
		rc = zfile_decompress(src, dst);
		if (rc == -EINVAL)
			rc = fail("not a valid zfile blob: ", in, 0);
		else if (rc)
			rc = fail("cannot extract ", in, rc);
	} else {
		if (tar)
			rc = bdev_file_open_mem(NULL, 0, &mid);
		if (rc == 0)
			rc = zfile_compress(src, src->size, tar ? mid : dst, o);
		if (rc == 0 && tar)
			rc = tar_wrap(mid, mid->size, dst);
		if (rc)
			rc = fail("cannot compress ", in, rc);
	}
	if (rc == 0) {
		int s = dst->ops->sync(dst);

		if (s)
			rc = fail("cannot sync ", tmp, s);
	}
	bdev_file_close(mid);
	bdev_file_close(src);
	bdev_file_close(dst);
	return rc;
}

int main(int argc, char **argv)
{
	enum { OPT_ALGO = 256, OPT_BS, OPT_VERIFY };
	static const struct option longopts[] = {
		{ "algorithm", required_argument, NULL, OPT_ALGO },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "tar", no_argument, NULL, 't' },
		{ "extract", no_argument, NULL, 'x' },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct zfile_opts o = { .algo = ZFILE_LZ4, .block_size = 4096, .verify = true };
	bool extract = false, tar = false, check = false, verbose = false;
	char *tmp;
	int c, rc;

	while ((c = getopt_long(argc, argv, "txvh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ALGO:
			if (!strcmp(optarg, "lz4"))
				o.algo = ZFILE_LZ4;
			else if (!strcmp(optarg, "zstd"))
				o.algo = ZFILE_ZSTD;
			else
				return fail("unknown algorithm ", optarg, 0);
			break;
		case OPT_BS:
			if (!parse_bs(optarg, &o.block_size))
				return fail("--bs must be 4, 8, 16, 32 or 64 (KiB), not ", optarg, 0);
			break;
		case 't':
			tar = true;
			break;
		case 'x':
			extract = true;
			break;
		case OPT_VERIFY:
			check = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	/* One line per failure: the library's own log only with -v. */
	if (verbose)
		log_set_level(LOG_LVL_DEBUG);
	else
		log_open("/dev/null");
	if (check) {
		if (argc - optind != 1)
			return fail("--verify takes one file (see --help)", NULL, 0);
		return verify(argv[optind]);
	}
	if (argc - optind != 2)
		return fail("need IN and OUT (see --help)", NULL, 0);
	if (extract && tar)
		return fail("-t only applies when compressing", NULL, 0);
	if (asprintf(&tmp, "%s.tmp", argv[optind + 1]) < 0)
		return fail("out of memory", NULL, 0);
	rc = bdev_file_reserve(tmp);
	if (rc) {
		/* Not ours: left for whoever made it. */
		rc = fail("cannot create ", tmp, rc);
		free(tmp);
		return rc;
	}
	rc = run(argv[optind], tmp, extract, tar, &o);
	if (rc == 0 && rename(tmp, argv[optind + 1]) < 0)
		rc = fail("cannot rename to ", argv[optind + 1], -errno);
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}
