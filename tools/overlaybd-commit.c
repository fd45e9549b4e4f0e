/*
 * overlaybd-commit: seal a writable layer into a layer blob, compacting its
 * index as the reference does (lsmt.md 7).
 *
 *   overlaybd-commit [options] DATA INDEX OUT
 *   overlaybd-commit [options] --commit_sealed IN OUT
 *   overlaybd-commit --seal DATA INDEX OUT
 *
 * --seal (lsmt.md 4.3) appends the index and a trailer to DATA itself and
 * then renames DATA to OUT (by convention overlaybd.sealed); a failure
 * truncates DATA back, so the writable layer survives.
 * With -z the sealed blob is then ZFile-compressed (lsmt.md 7: per-block
 * CRC always on, header overwritten), with -t wrapped in a tar (lsmt.md 8).
 * Every stage writes a temporary file; OUT appears only when all are done.
 */
#include "blockdev/bdev.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void usage(FILE *to)
{
	fprintf(to,
		"usage: overlaybd-commit [options] DATA INDEX OUT\n"
		"       overlaybd-commit [options] --commit_sealed IN OUT\n"
		"       overlaybd-commit --seal DATA INDEX OUT\n"
		"Seal the writable layer DATA+INDEX (or a sealed-in-place data file IN)\n"
		"into the layer blob OUT.\n"
		"  -m, --message MSG    commit message (user tag, at most 256 bytes)\n"
		"      --uuid U         uuid of the new layer (default: the null uuid)\n"
		"  -p, --parent-uuid U  parent uuid (default: the source's)\n"
		"      --commit_sealed  the source is one sealed-in-place data file\n"
		"      --seal           seal DATA in place and rename it to OUT (usually\n"
		"                       overlaybd.sealed), for a later --commit_sealed\n"
		"  -z, --compress       ZFile-compress the blob\n"
		"      --algorithm A    lz4 (default) or zstd, with -z\n"
		"      --bs N           ZFile block size 4K, 8K, 16K, 32K or 64K (default 4K)\n"
		"  -t, --tar            wrap the result in a tar archive\n"
		"      --verify         read OUT back and compare it with the source\n"
		"  -v, --verbose        debug log\n"
		"  -h, --help           this text\n");
}

static int fail(const char *what, const char *arg, int err)
{
	fprintf(stderr, "overlaybd-commit: %s%s%s%s\n", what, arg ? arg : "",
		err && arg ? ": " : "", err ? strerror(-err) : "");
	return 1;
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

/* Every run of SRC must have the same state and bytes in OUT. */
static int verify(struct bdev *src, struct bdev *out)
{
	size_t bs = 1 << 20;
	char *a = malloc(bs), *b = malloc(bs);
	uint64_t pos = 0, size = bdev_size(src);
	int err = 0;

	if (!a || !b) {
		free(a);
		free(b);
		return -ENOMEM;
	}
	if (bdev_size(out) != size)
		err = -EINVAL;
	while (!err && pos < size) {
		uint64_t l1, l2;
		bool m1, m2;

		err = bdev_map_status(src, pos, &l1, &m1);
		if (!err)
			err = bdev_map_status(out, pos, &l2, &m2);
		if (err)
			break;
		if (m1 != m2 || !l1 || !l2) {
			err = -EINVAL;
			break;
		}
		uint64_t n = l1 < l2 ? l1 : l2;

		for (uint64_t done = 0; m1 && done < n && !err; done += bs) {
			size_t k = n - done < bs ? n - done : bs;

			err = bdev_pread(src, a, k, pos + done);
			if (!err)
				err = bdev_pread(out, b, k, pos + done);
			if (!err && memcmp(a, b, k))
				err = -EINVAL;
		}
		pos += n;
	}
	if (err == -EINVAL)
		fprintf(stderr, "overlaybd-commit: verify: output differs from the source near byte %llu\n",
			(unsigned long long)pos);
	free(a);
	free(b);
	return err;
}

/* "4", "4K", "4k" or "4096" -> 4096; 0 if not one of 4K..64K. */
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

/* One output stage: FROM compressed with Z, or tar-wrapped when Z is NULL, into TO. */
static int stage(const char *from, const char *to, const struct zfile_opts *z)
{
	struct bdev_file *src, *dst;
	int err = bdev_file_open_local(from, O_RDONLY, BDEV_IO_PSYNC, &src);

	if (err)
		return err;
	err = bdev_file_open_local(to, O_RDWR | O_TRUNC | O_NOFOLLOW, BDEV_IO_PSYNC, &dst);
	if (err) {
		bdev_file_close(src);
		return err;
	}
	err = z ? zfile_compress(src, src->size, dst, z) : tar_wrap(src, src->size, dst);
	if (!err && dst->ops->sync)
		err = dst->ops->sync(dst);
	bdev_file_close(src);
	bdev_file_close(dst);
	return err;
}

/*
 * Make the N temporary outputs NAMES as new files (bdev_file_reserve), so
 * every later stage writes a file this run created, never through a link
 * planted at one of the names.  On failure none is left, and a name that
 * already existed is not touched.
 */
static int reserve_all(const char *const *names, int n)
{
	for (int i = 0; i < n; i++) {
		int err = bdev_file_reserve(names[i]);

		if (err) {
			fail("cannot create ", names[i], err);
			for (int k = 0; k < i; k++)
				unlink(names[k]);
			return 1;
		}
	}
	return 0;
}

static int open_source(const char *data, const char *index, bool sealed, struct lsmt_layer **l)
{
	struct bdev_file *df, *xf;
	int err = bdev_file_open_local(data, O_RDONLY, BDEV_IO_PSYNC, &df);

	if (err)
		return fail("cannot open ", data, 0);
	if (sealed) {
		err = lsmt_open_ro(df, l);
		return err ? fail("not a sealed layer: ", data, err) : 0;
	}
	err = bdev_file_open_local(index, O_RDONLY, BDEV_IO_PSYNC, &xf);
	if (err) {
		bdev_file_close(df);
		return fail("cannot open ", index, 0);
	}
	err = lsmt_open_rw(df, xf, l);
	if (err)
		return fail("not a writable layer: ", data, err);
	/* The committed blob is a snapshot: no writer may append meanwhile. */
	err = lsmt_lock_snapshot(*l);
	if (err) {
		lsmt_close(*l);
		return fail("in use by a writer: ", data, err);
	}
	return 0;
}

/* lsmt.md 4.3: the writable layer sealed in place, DATA renamed to OUT. */
static int seal(const char *data, const char *index, const char *out)
{
	struct bdev_file *df, *xf;
	struct lsmt_layer *l;
	int err = bdev_file_open_local(data, O_RDWR, BDEV_IO_PSYNC, &df);

	if (err)
		return fail("cannot open ", data, err);
	uint64_t old = df->size;

	err = bdev_file_open_local(index, O_RDONLY, BDEV_IO_PSYNC, &xf);
	if (err) {
		bdev_file_close(df);
		return fail("cannot open ", index, err);
	}
	err = lsmt_open_rw(df, xf, &l);
	if (err)
		return fail(err == -EBUSY ? "in use by another writer: " : "not a writable layer: ",
			    data, err);
	err = lsmt_seal(l);
	lsmt_close(l);
	if (!err && strcmp(data, out) && rename(data, out))
		err = -errno;
	if (err) {
		if (truncate(data, old))
			fprintf(stderr, "overlaybd-commit: cannot truncate %s back to %llu bytes\n",
				data, (unsigned long long)old);
		return fail("sealing failed: ", data, err);
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_UUID = 256, OPT_SEALED, OPT_VERIFY, OPT_ALGO, OPT_BS, OPT_SEAL };
	static const struct option longopts[] = {
		{ "message", required_argument, NULL, 'm' },
		{ "uuid", required_argument, NULL, OPT_UUID },
		{ "parent-uuid", required_argument, NULL, 'p' },
		{ "commit_sealed", no_argument, NULL, OPT_SEALED },
		{ "seal", no_argument, NULL, OPT_SEAL },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "compress", no_argument, NULL, 'z' },
		{ "algorithm", required_argument, NULL, OPT_ALGO },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "tar", no_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct lsmt_commit_opts o = { 0 };
	struct zfile_opts z = { .algo = ZFILE_LZ4, .block_size = 4096, .verify = true,
				.overwrite_header = true };
	bool sealed = false, check = false, compress = false, tar = false, zset = false;
	bool verbose = false, do_seal = false;
	int c;

	log_set_level(LOG_LVL_WARN);
	while ((c = getopt_long(argc, argv, "m:p:zthv", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			o.user_tag = optarg;
			break;
		case OPT_UUID:
			o.uuid = optarg;
			break;
		case 'p':
			o.parent_uuid = optarg;
			break;
		case OPT_SEALED:
			sealed = true;
			break;
		case OPT_SEAL:
			do_seal = true;
			break;
		case OPT_VERIFY:
			check = true;
			break;
		case 'z':
			compress = true;
			break;
		case 't':
			tar = true;
			break;
		case OPT_ALGO:
			zset = true;
			if (!strcasecmp(optarg, "lz4"))
				z.algo = ZFILE_LZ4;
			else if (!strcasecmp(optarg, "zstd"))
				z.algo = ZFILE_ZSTD;
			else
				return fail("unknown algorithm (lz4 or zstd): ", optarg, 0);
			break;
		case OPT_BS:
			zset = true;
			z.block_size = parse_bs(optarg);
			if (!z.block_size)
				return fail("block size must be 4K, 8K, 16K, 32K or 64K, got ", optarg, 0);
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
	if (argc - optind != (sealed ? 2 : 3)) {
		usage(stderr);
		return 1;
	}
	if (do_seal) {
		if (sealed || compress || tar || check || o.uuid || o.parent_uuid || o.user_tag)
			return fail("--seal takes no other option", NULL, 0);
		return seal(argv[optind], argv[optind + 1], argv[optind + 2]);
	}
	if (zset && !compress)
		fprintf(stderr, "overlaybd-commit: warning: --algorithm/--bs are ignored without -z\n");
	if (o.uuid && !uuid_ok(o.uuid))
		return fail("not a uuid: ", o.uuid, 0);
	if (o.parent_uuid && !uuid_ok(o.parent_uuid))
		return fail("not a uuid: ", o.parent_uuid, 0);
	if (o.user_tag && strlen(o.user_tag) > 256)
		return fail("the message is longer than 256 bytes", NULL, 0);

	const char *data = argv[optind], *index = sealed ? NULL : argv[optind + 1];
	const char *out = argv[argc - 1];
	char tmp[4096];
	struct lsmt_layer *l;
	struct bdev_file *dst;
	int err;

	if (open_source(data, index, sealed, &l))
		return 1;
	char tlsmt[4096], tzf[4096];
	const char *stagename = "commit failed: ";

	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	snprintf(tlsmt, sizeof(tlsmt), "%s.lsmt.tmp", out);
	snprintf(tzf, sizeof(tzf), "%s.zfile.tmp", out);
	const char *cur = compress || tar ? tlsmt : tmp;
	const char *names[] = { tmp, tlsmt, tzf };
	int nnames = 1 + (compress || tar) + (compress && tar);

	if (reserve_all(names, nnames)) {
		lsmt_close(l);
		return 1;
	}
	err = bdev_file_open_local(cur, O_RDWR | O_TRUNC | O_NOFOLLOW, BDEV_IO_PSYNC, &dst);
	if (err) {
		lsmt_close(l);
		for (int k = 0; k < nnames; k++)
			unlink(names[k]);
		return fail("cannot create ", cur, 0);
	}
	err = lsmt_commit(&l, 1, dst, &o, false);
	if (!err && dst->ops->sync)
		err = dst->ops->sync(dst);
	bdev_file_close(dst);
	if (!err && compress) {
		const char *next = tar ? tzf : tmp;

		err = stage(cur, next, &z);
		unlink(cur);
		cur = next;
		if (err)
			stagename = "zfile compression failed: ";
	}
	if (!err && tar) {
		err = stage(cur, tmp, NULL);
		unlink(cur);
		if (err)
			stagename = "tar wrapping failed: ";
	}
	if (!err && check) {
		struct bdev *sd = NULL, *od = NULL;
		struct lsmt_layer *ol = NULL;
		struct bdev_file *of;

		err = bdev_open(NULL, 0, l, &sd);
		l = NULL;
		if (!err)
			err = bdev_file_open_local(tmp, O_RDONLY, BDEV_IO_PSYNC, &of);
		if (!err)
			err = bdev_file_unwrap(of, &of);
		if (!err)
			err = lsmt_open_ro(of, &ol);
		if (!err)
			err = bdev_open(&ol, 1, NULL, &od);
		if (!err)
			err = verify(sd, od);
		bdev_close(sd);
		bdev_close(od);
	}
	lsmt_close(l);
	if (!err && rename(tmp, out))
		err = -errno;
	if (err) {
		for (int k = 0; k < nnames; k++)
			unlink(names[k]);
		return fail(stagename, NULL, err);
	}
	return 0;
}
