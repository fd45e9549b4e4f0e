/*
 * overlaybd-merge: squash a stack of layers into one layer blob
 * (lsmt.md 7, "overlaybd-merge").
 *
 *   overlaybd-merge [options] IMAGE_CONFIG OUT
 *   overlaybd-merge [options] -l LAYER [-l LAYER]... OUT
 *
 * IMAGE_CONFIG is a device config (config.md 1): its local lowers, and its
 * upper when it has one, bottom first.  The output, like the reference's,
 * has the null uuid, the bottom layer's parent, entry tags naming the
 * source layer, and by default is a ZFile (lz4, 4 KiB, CRC on).  It is
 * written under temporary names and renamed to OUT when complete.
 */
#include "blockdev/bdev.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *to)
{
	fprintf(to,
		"usage: overlaybd-merge [options] IMAGE_CONFIG OUT\n"
		"       overlaybd-merge [options] -l LAYER [-l LAYER]... OUT\n"
		"Merge the layers of an image config (local lowers, then the upper if any),\n"
		"or the LAYER blobs given bottom first, into the single layer blob OUT.\n"
		"  -l, --layer FILE     a layer blob (plain, ZFile or tar); repeat, bottom first\n"
		"      --compress=BOOL  ZFile output (default true)\n"
		"      --algorithm A    lz4 (default) or zstd\n"
		"      --bs N           ZFile block size 4K..64K (default 4K)\n"
		"  -v, --verbose        debug log\n"
		"  -h, --help           this text\n");
}

static int fail(const char *what, const char *arg)
{
	fprintf(stderr, "overlaybd-merge: %s%s\n", what, arg ? arg : "");
	return 1;
}

static bool exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

/* Open a read-only layer blob: unwrap tar/ZFile, then LSMT (lsmt.md 8). */
static int open_blob(const char *path, struct lsmt_layer **l)
{
	struct bdev_file *f;
	int err = bdev_file_open_local(path, O_RDONLY, BDEV_IO_PSYNC, &f);

	if (!err)
		err = bdev_file_unwrap(f, &f);
	if (!err)
		err = lsmt_open_ro(f, l);
	return err;
}

/* config.md 1.1: file, then dir/overlaybd.commit, dir/.commit, dir/overlaybd.sealed */
static int lower_path(json_t *lo, char *out, size_t len)
{
	static const char *const names[] = { "overlaybd.commit", ".commit", "overlaybd.sealed" };
	const char *file = json_string_value(json_object_get(lo, "file"));
	const char *dir = json_string_value(json_object_get(lo, "dir"));

	if (file && *file && exists(file)) {
		snprintf(out, len, "%s", file);
		return 0;
	}
	for (int i = 0; dir && *dir && i < 3; i++) {
		snprintf(out, len, "%s/%s", dir, names[i]);
		if (exists(out))
			return 0;
	}
	return -ENOENT;
}

static int load_config(const char *path, struct lsmt_layer **layers, int *n)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr), *lowers, *upper;
	char p[4096];
	int err = 0;

	if (!root || !json_is_object(root)) {
		fprintf(stderr, "overlaybd-merge: %s: not a JSON object (%s)\n", path,
			root ? "" : jerr.text);
		json_decref(root);
		return -EINVAL;
	}
	lowers = json_object_get(root, "lowers");
	if (lowers && !json_is_array(lowers)) {
		fprintf(stderr, "overlaybd-merge: %s: \"lowers\" must be an array\n", path);
		json_decref(root);
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(lowers) && !err; i++) {
		if (*n >= BDEV_MAX_LAYERS) {
			fprintf(stderr, "overlaybd-merge: more than %d layers\n", BDEV_MAX_LAYERS);
			err = -EINVAL;
		} else if (lower_path(json_array_get(lowers, i), p, sizeof(p))) {
			fprintf(stderr, "overlaybd-merge: layer %zu has no local file\n", i);
			err = -ENOENT;
		} else if ((err = open_blob(p, &layers[*n]))) {
			fprintf(stderr, "overlaybd-merge: cannot open layer %zu (%s): %s\n", i, p,
				strerror(-err));
		} else {
			(*n)++;
		}
	}
	upper = json_object_get(root, "upper");
	const char *ud = json_string_value(json_object_get(upper, "data"));
	const char *ui = json_string_value(json_object_get(upper, "index"));
	if (!err && ud && *ud && ui && *ui) {
		struct bdev_file *df = NULL, *xf = NULL;

		err = bdev_file_open_local(ud, O_RDONLY, BDEV_IO_PSYNC, &df);
		if (!err) {
			err = bdev_file_open_local(ui, O_RDONLY, BDEV_IO_PSYNC, &xf);
			if (err)
				bdev_file_close(df);
		}
		if (!err)
			err = lsmt_open_rw(df, xf, &layers[*n]);
		/* The merged blob is a snapshot: no writer may append meanwhile. */
		if (!err && (err = lsmt_lock_snapshot(layers[*n])))
			lsmt_close(layers[*n]);
		if (err)
			fprintf(stderr, "overlaybd-merge: cannot open the upper layer %s: %s\n", ud,
				strerror(-err));
		else
			(*n)++;
	}
	json_decref(root);
	if (!err && *n == 0) {
		fprintf(stderr, "overlaybd-merge: %s: no layers\n", path);
		err = -EINVAL;
	}
	return err;
}

static uint32_t parse_bs(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || (*end && strcasecmp(end, "k") && strcasecmp(end, "kb")))
		return 0;
	if (v <= 64)
		v *= 1024;
	if (v < 4096 || v > 65536 || (v & (v - 1)))
		return 0;
	return v;
}

int main(int argc, char **argv)
{
	enum { OPT_COMPRESS = 256, OPT_ALGO, OPT_BS };
	static const struct option longopts[] = {
		{ "layer", required_argument, NULL, 'l' },
		{ "compress", optional_argument, NULL, OPT_COMPRESS },
		{ "algorithm", required_argument, NULL, OPT_ALGO },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	/* lsmt.md 7: merge output is lz4 4 KiB with CRC, header not overwritten */
	struct zfile_opts z = { .algo = ZFILE_LZ4, .block_size = 4096, .verify = true };
	struct lsmt_layer *layers[BDEV_MAX_LAYERS];
	const char *files[BDEV_MAX_LAYERS];
	int nfiles = 0, n = 0, c, err;
	bool compress = true, verbose = false;

	log_set_level(LOG_LVL_WARN);
	while ((c = getopt_long(argc, argv, "l:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (nfiles == BDEV_MAX_LAYERS)
				return fail("too many layers", NULL);
			files[nfiles++] = optarg;
			break;
		case OPT_COMPRESS:
			if (!optarg || !strcasecmp(optarg, "true") || !strcmp(optarg, "1"))
				compress = true;
			else if (!strcasecmp(optarg, "false") || !strcmp(optarg, "0"))
				compress = false;
			else
				return fail("--compress takes true or false, got ", optarg);
			break;
		case OPT_ALGO:
			if (!strcasecmp(optarg, "lz4"))
				z.algo = ZFILE_LZ4;
			else if (!strcasecmp(optarg, "zstd"))
				z.algo = ZFILE_ZSTD;
			else
				return fail("unknown algorithm (lz4 or zstd): ", optarg);
			break;
		case OPT_BS:
			z.block_size = parse_bs(optarg);
			if (!z.block_size)
				return fail("block size must be 4K, 8K, 16K, 32K or 64K, got ", optarg);
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
	if (argc - optind != (nfiles ? 1 : 2)) {
		usage(stderr);
		return 1;
	}
	const char *out = argv[argc - 1];

	if (nfiles) {
		for (; n < nfiles; n++) {
			err = open_blob(files[n], &layers[n]);
			if (err) {
				fprintf(stderr, "overlaybd-merge: cannot open layer %s: %s\n", files[n],
					strerror(-err));
				break;
			}
		}
		err = n == nfiles ? 0 : err;
	} else {
		err = load_config(argv[optind], layers, &n);
	}

	char tmp[4096], tlsmt[4096];
	struct bdev_file *dst = NULL, *src = NULL;

	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	snprintf(tlsmt, sizeof(tlsmt), "%s.lsmt.tmp", out);
	const char *first = compress ? tlsmt : tmp;
	/* Opening errors were reported where they happened: one line only. */
	bool said = err != 0, have_tmp = false, have_tlsmt = false;

	/* New files made by this run, never a link planted at the names; a
	 * name that already exists is refused and left alone. */
	if (!err && !(err = bdev_file_reserve(tmp)))
		have_tmp = true;
	if (!err && compress && !(err = bdev_file_reserve(tlsmt)))
		have_tlsmt = true;
	if (err && !said) {
		fprintf(stderr, "overlaybd-merge: cannot create %s: %s\n", have_tmp ? tlsmt : tmp,
			strerror(-err));
		said = true;
	}
	if (!err)
		err = bdev_file_open_local(first, O_RDWR | O_TRUNC | O_NOFOLLOW, BDEV_IO_PSYNC, &dst);
	if (!err)
		err = lsmt_commit(layers, n, dst, &(struct lsmt_commit_opts){ 0 }, true);
	if (!err && dst->ops->sync)
		err = dst->ops->sync(dst);
	bdev_file_close(dst);
	dst = NULL;
	for (int i = 0; i < n; i++)
		lsmt_close(layers[i]);
	if (!err && compress) {
		err = bdev_file_open_local(tlsmt, O_RDONLY, BDEV_IO_PSYNC, &src);
		if (!err)
			err = bdev_file_open_local(tmp, O_RDWR | O_TRUNC | O_NOFOLLOW, BDEV_IO_PSYNC,
						   &dst);
		if (!err)
			err = zfile_compress(src, src->size, dst, &z);
		if (!err && dst->ops->sync)
			err = dst->ops->sync(dst);
		bdev_file_close(src);
		bdev_file_close(dst);
		unlink(tlsmt);
	}
	if (!err && rename(tmp, out))
		err = -errno;
	if (err) {
		if (have_tmp)
			unlink(tmp);
		if (have_tlsmt)
			unlink(tlsmt);
		if (!said)
			fprintf(stderr, "overlaybd-merge: merge failed: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
