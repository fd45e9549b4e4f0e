/*
 * test_zfile: the ZFile reader, the tar view and bdev_file_unwrap
 * (blockdev/zfile.c, tar.c, unwrap.c) against the reference vectors, the
 * compressor (zfile_write.c) against the same vectors, and hostile input:
 * corrupt blocks, truncated files, bad headers and jump tables.
 */
/* Shared helpers; not every one is used here. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "lsmt_helpers.h"

#include <pthread.h>
#include <sys/stat.h>

#define EXT4 "test/data/ext4/"
#define EXT4_PLAIN_SHA "b12a70f3614323ea41d2499f608f64840533bc59b2b11c5ebe1dde9925ff67da"
#define EXT4_PLAIN_SIZE 1726464
#define EXT4_DEV_SHA "08a2be25e3ea4ff5e715b4282c8b8f36960bdf6ee688580ed8852568f6ea3961"

struct vec {
	const char *wrapped, *plain;
};

/* MANIFEST.md: every wrapped form and the plain blob it holds. */
static const struct vec vectors[] = {
	{ VEC "l1.lz4.zfile", VEC "l1.lsmt" },
	{ VEC "l2.lz4.zfile", VEC "l2.lsmt" },
	{ VEC "l3.lz4.zfile", VEC "l3.lsmt" },
	{ VEC "l1.zstd.zfile", VEC "l1.lsmt" },
	{ VEC "l2.zstd-bs64.zfile", VEC "l2.lsmt" },
	{ VEC "l3.lz4-bs16.zfile", VEC "l3.lsmt" },
	{ VEC "l3.lz4.tar", VEC "l3.lsmt" },
	{ VEC "l1.lsmt.lz4-noov.zfile", VEC "l1.lsmt" },
	{ VEC "l1.lsmt.lz4-noverify.zfile", VEC "l1.lsmt" },
	{ VEC "l2.lsmt.zstd-bs8-noverify.zfile", VEC "l2.lsmt" },
	{ VEC "merged123.zfile", VEC "merged123.lsmt" },
	{ VEC "l1.lsmt", VEC "l1.lsmt" },
};

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	struct stat st;
	uint8_t *b;

	if (!fp || fstat(fileno(fp), &st))
		fail_msg("open %s failed", path);
	b = malloc(st.st_size + 1);
	assert_non_null(b);
	if (fread(b, 1, st.st_size, fp) != (size_t)st.st_size)
		fail_msg("read %s failed", path);
	fclose(fp);
	*len = st.st_size;
	return b;
}

static uint32_t le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static struct bdev_file *mem_file(const void *data, size_t len)
{
	struct bdev_file *f = NULL;
	int rc = bdev_file_open_mem(data, len, &f);

	if (rc)
		fail_msg("bdev_file_open_mem: expected 0, got %d", rc);
	return f;
}

static struct bdev_file *unwrap_path(const char *path)
{
	struct bdev_file *v = NULL;
	int rc = bdev_file_unwrap(open_file(path, O_RDONLY), &v);

	if (rc)
		fail_msg("unwrap %s: expected 0, got %d", path, rc);
	return v;
}

static void sha256_hex(const void *d, size_t n, char out[65])
{
	uint8_t md[32];
	unsigned mdlen;

	EVP_Digest(d, n, md, &mdlen, EVP_sha256(), NULL);
	hex(md, 32, out);
}

/* Whole view read with requests of STEP bytes, compared with WANT. */
static void expect_view(struct bdev_file *v, const uint8_t *want, size_t len, size_t step,
			const char *what)
{
	uint8_t *got = malloc(len + step);

	assert_non_null(got);
	if (v->size != len)
		fail_msg("%s: size: expected %zu, got %llu", what, len,
			 (unsigned long long)v->size);
	for (size_t off = 0; off < len; off += step) {
		ssize_t n = bdev_file_pread(v, got + off, step, off);
		size_t exp = len - off < step ? len - off : step;

		if (n != (ssize_t)exp)
			fail_msg("%s: read %zu at %zu: expected %zu, got %zd", what, step, off, exp,
				 n);
	}
	for (size_t i = 0; i < len; i++)
		if (got[i] != want[i])
			fail_msg("%s (step %zu): byte %zu: expected 0x%02x, got 0x%02x", what, step, i,
				 want[i], got[i]);
	free(got);
}

static void test_vectors_unwrap(void **state)
{
	static const size_t steps[] = { 512, 4096, 1000, 65536, 1 << 20 };

	for (size_t k = 0; k < sizeof(vectors) / sizeof(vectors[0]); k++) {
		size_t len;
		uint8_t *plain = slurp(vectors[k].plain, &len);

		for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			struct bdev_file *v = unwrap_path(vectors[k].wrapped);

			expect_view(v, plain, len, steps[s], vectors[k].wrapped);
			assert_int_equal(bdev_file_pread(v, plain, 512, len), 0);
			bdev_file_close(v);
		}
		free(plain);
	}
}

static void test_ext4_unwrap(void **state)
{
	struct bdev_file *v = unwrap_path(EXT4 "ext4.lz4.zfile");
	uint8_t *b = malloc(EXT4_PLAIN_SIZE);
	char got[65];

	assert_non_null(b);
	assert_int_equal(v->size, EXT4_PLAIN_SIZE);
	assert_int_equal(bdev_file_pread_full(v, b, EXT4_PLAIN_SIZE, 0), 0);
	sha256_hex(b, EXT4_PLAIN_SIZE, got);
	if (strcmp(got, EXT4_PLAIN_SHA))
		fail_msg("ext4 plain blob: expected %s, got %s", EXT4_PLAIN_SHA, got);
	free(b);
	bdev_file_close(v);
}

/* Random unaligned reads from several threads at once. */
struct par_arg {
	struct bdev_file *v;
	const uint8_t *plain;
	size_t len;
	unsigned seed;
	int bad;
};

static void *par_reader(void *p)
{
	struct par_arg *a = p;
	uint8_t buf[70000];

	/* Odd threads stream 4 KiB reads (the readahead window), from different places. */
	for (size_t off = a->seed * 40960 % a->len, k = 0; (a->seed & 1) && k < 200 && !a->bad;
	     k++, off = (off + 4096) % a->len) {
		size_t exp = a->len - off < 4096 ? a->len - off : 4096;

		if (bdev_file_pread(a->v, buf, 4096, off) != (ssize_t)exp ||
		    memcmp(buf, a->plain + off, exp))
			a->bad = 1 + (int)off;
	}
	for (int i = 0; i < 3000 && !a->bad; i++) {
		size_t off = rand_r(&a->seed) % a->len;
		size_t n = rand_r(&a->seed) % sizeof(buf) + 1;
		size_t exp = n < a->len - off ? n : a->len - off;

		if (bdev_file_pread(a->v, buf, n, off) != (ssize_t)exp || memcmp(buf, a->plain + off, exp))
			a->bad = 1 + (int)off;
	}
	return NULL;
}

static void test_parallel_reads(void **state)
{
	static const char *const files[] = { VEC "l1.lz4.zfile", VEC "l1.zstd.zfile" };

	for (int k = 0; k < 2; k++) {
		size_t len;
		uint8_t *plain = slurp(VEC "l1.lsmt", &len);
		struct bdev_file *v = unwrap_path(files[k]);
		struct par_arg a[4];
		pthread_t th[4];

		for (int t = 0; t < 4; t++) {
			a[t] = (struct par_arg){ .v = v, .plain = plain, .len = len, .seed = t + 1 };
			pthread_create(&th[t], NULL, par_reader, &a[t]);
		}
		for (int t = 0; t < 4; t++) {
			pthread_join(th[t], NULL);
			if (a[t].bad)
				fail_msg("%s: thread %d: read at %d differs from l1.lsmt", files[k], t,
					 a[t].bad - 1);
		}
		bdev_file_close(v);
		free(plain);
	}
}

/*
 * The loop thread's fast path: cached blocks, the readahead window, and small
 * LZ4 blocks whose stored bytes the raw file has in the page cache; never a
 * read that could block, and never a bad block's bytes.
 */
static void test_nowait(void **state)
{
	size_t len, zlen;
	uint8_t *plain = slurp(VEC "l1.lsmt", &len), *zf = slurp(VEC "l1.lz4.zfile", &zlen);
	uint8_t buf[8192];
	struct bdev_file *v = unwrap_path(VEC "l1.lz4.zfile");
	char tmp[] = "/tmp/test_zfile.XXXXXX";
	uint32_t nb = le64(zf + 48), bad = nb / 2;
	uint64_t ioff = le64(zf + 40), pos = 512;
	int fd;

	/* slurp() just read the file: its blocks decode on the spot. */
	assert_non_null(v->ops->pread_nowait);
	assert_int_equal(v->ops->pread_nowait(v, buf, 8192, 4096), 8192);
	assert_memory_equal(buf, plain + 4096, 8192);
	assert_int_equal(v->ops->pread_nowait(v, buf, 512, 16384 + 1024), 512);
	assert_memory_equal(buf, plain + 16384 + 1024, 512);
	bdev_file_close(v);

	/* A damaged block is left to the worker path, which fails it. */
	for (uint32_t i = 0; i < bad; i++)
		pos += le32(zf + ioff + 4 * i);
	zf[pos + le32(zf + ioff + 4 * bad) / 2] ^= 0x40;
	fd = mkstemp(tmp);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, zf, zlen), (ssize_t)zlen);
	close(fd);
	v = unwrap_path(tmp);
	assert_int_equal(v->ops->pread_nowait(v, buf, 4096, (uint64_t)bad * 4096), -EAGAIN);
	assert_int_equal(bdev_file_pread(v, buf, 4096, (uint64_t)bad * 4096), -EIO);
	assert_int_equal(v->ops->pread_nowait(v, buf, 4096, (uint64_t)(bad + 1) * 4096), 4096);
	assert_memory_equal(buf, plain + (size_t)(bad + 1) * 4096, 4096);
	bdev_file_close(v);
	unlink(tmp);
	zf[pos + le32(zf + ioff + 4 * bad) / 2] ^= 0x40;

	/* Over a raw file with no fast path, only the cache and the window serve. */
	assert_int_equal(zfile_open(mem_file(zf, zlen), &v), 0);
	assert_non_null(v->ops->pread_nowait);
	assert_int_equal(v->ops->pread_nowait(v, buf, 4096, 0), -EAGAIN);
	/* A partial read puts block 0 in the cache. */
	assert_int_equal(bdev_file_pread(v, buf, 512, 0), 512);
	assert_int_equal(v->ops->pread_nowait(v, buf, 3584, 512), 3584);
	assert_memory_equal(buf, plain + 512, 3584);
	assert_int_equal(v->ops->pread_nowait(v, buf, 4096, 4096), -EAGAIN);
	/* Two sequential reads fill the readahead window; the next block comes from it. */
	assert_int_equal(bdev_file_pread(v, buf, 4096, 8192), 4096);
	assert_int_equal(bdev_file_pread(v, buf, 4096, 12288), 4096);
	assert_int_equal(v->ops->pread_nowait(v, buf, 8192, 16384), 8192);
	assert_memory_equal(buf, plain + 16384, 8192);
	assert_int_equal(v->ops->pread_nowait(v, buf, 512, len), 0);
	bdev_file_close(v);
	free(zf);

	/* zstd blocks are never decoded on the loop thread. */
	v = unwrap_path(VEC "l1.zstd.zfile");
	assert_int_equal(bdev_file_pread(v, buf, 4096, 8192), 4096);
	assert_int_equal(bdev_file_pread(v, buf, 4096, 12288), 4096);
	assert_int_equal(v->ops->pread_nowait(v, buf, 4096, 16384), -EAGAIN);
	assert_int_equal(bdev_file_pread(v, buf, 512, 16384), 512);
	assert_int_equal(v->ops->pread_nowait(v, buf, 512, 16384 + 512), 512);
	assert_memory_equal(buf, plain + 16384 + 512, 512);
	bdev_file_close(v);
	free(plain);

	/* A tar member has the fast path exactly when its archive does. */
	plain = slurp(VEC "l3.lz4.zfile", &len);
	assert_int_equal(tar_open(open_file(VEC "l3.lz4.tar", O_RDONLY), &v), 0);
	assert_non_null(v->ops->pread_nowait);
	assert_int_equal(bdev_file_pread(v, buf, len, 0), len);
	ssize_t n = v->ops->pread_nowait(v, buf, 4096, 0);

	if (n != -EAGAIN && (n != (ssize_t)len || memcmp(buf, plain, len)))
		fail_msg("tar nowait read: expected -EAGAIN or the %zu member bytes, got %zd", len, n);
	bdev_file_close(v);
	free(plain);
	plain = slurp(VEC "l3.lz4.tar", &len);
	assert_int_equal(tar_open(mem_file(plain, len), &v), 0);
	assert_null(v->ops->pread_nowait);
	bdev_file_close(v);
	free(plain);
}

static struct bdev *open_stack_files(const char *const *files, int n)
{
	struct lsmt_layer *l[8];
	struct bdev *d = NULL;
	int rc;

	for (int i = 0; i < n; i++) {
		rc = lsmt_open_ro(unwrap_path(files[i]), &l[i]);
		if (rc)
			fail_msg("lsmt_open_ro %s: expected 0, got %d", files[i], rc);
	}
	rc = bdev_open(l, n, NULL, &d);
	if (rc)
		fail_msg("bdev_open: expected 0, got %d", rc);
	return d;
}

static void test_stacks(void **state)
{
	static const char *const s1[] = { VEC "l1.lz4.zfile", VEC "l2.zstd-bs64.zfile",
					  VEC "l3.lz4.tar" };
	static const char *const s2[] = { VEC "l1.lsmt.lz4-noverify.zfile",
					  VEC "l2.lsmt.zstd-bs8-noverify.zfile",
					  VEC "l3.lz4-bs16.zfile" };
	static const char *const s3[] = { VEC "l1.zstd.zfile", VEC "l2.lz4.zfile" };
	static const char *const s4[] = { VEC "l1.lsmt.lz4-noov.zfile" };
	static const char *const s5[] = { VEC "merged123.zfile" };
	static const char *const s6[] = { EXT4 "ext4.lz4.zfile" };
	struct bdev *d;

	d = open_stack_files(s1, 3);
	expect_sha(d, 0, GiB, L123_FULL, "lz4 + zstd-bs64 + tar");
	bdev_close(d);
	d = open_stack_files(s2, 3);
	expect_sha(d, 0, 32 * MiB, L123_32M, "noverify lz4 + zstd-bs8 + lz4-bs16, first 32 MiB");
	expect_sha(d, GiB - 65536, 65536, L12_LAST64K, "same, last 64 KiB");
	bdev_close(d);
	d = open_stack_files(s3, 2);
	expect_sha(d, 0, GiB, L12_FULL, "zstd + lz4");
	bdev_close(d);
	d = open_stack_files(s4, 1);
	expect_sha(d, 0, 32 * MiB, L1_32M, "header not overwritten, first 32 MiB");
	expect_sha(d, GiB - 65536, 65536, L1_LAST64K, "same, last 64 KiB");
	bdev_close(d);
	d = open_stack_files(s5, 1);
	expect_sha(d, 0, GiB, L123_FULL, "merged123.zfile");
	bdev_close(d);
	d = open_stack_files(s6, 1);
	expect_sha(d, 0, GiB, EXT4_DEV_SHA, "ext4.lz4.zfile device");
	bdev_close(d);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, v);
	put32(p + 4, v >> 32);
}

/* zfile.md 2, 4: recompute the digest of the 512-byte HT at P. */
static void fix_digest(uint8_t *p)
{
	put32(p + 28, 0);
	put32(p + 28, crc32c_raw(0, p, 512));
}

/* zfile.md 3.7: one corrupt block fails only the reads that touch it. */
static void test_corrupt_block(void **state)
{
	static const char *const files[] = { VEC "l1.lz4.zfile", VEC "l1.zstd.zfile",
					     VEC "l3.lz4-bs16.zfile" };
	static const char *const plains[] = { VEC "l1.lsmt", VEC "l1.lsmt", VEC "l3.lsmt" };

	for (int k = 0; k < 3; k++) {
		size_t len, plen;
		uint8_t *z = slurp(files[k], &len), *plain = slurp(plains[k], &plen);
		uint64_t ioff = le64(z + 40);
		uint32_t bs = le32(z + 72), nb = le64(z + 48), bad = nb / 2;
		uint64_t pos = 512;
		struct bdev_file *v = NULL;
		uint8_t *buf = malloc(plen);
		int rc;

		for (uint32_t i = 0; i < bad; i++)
			pos += le32(z + ioff + 4 * i);
		z[pos + le32(z + ioff + 4 * bad) / 2] ^= 0x40;
		rc = zfile_open(mem_file(z, len), &v);
		if (rc)
			fail_msg("%s: open with a corrupt block: expected 0, got %d", files[k], rc);
		for (uint32_t i = 0; i < nb; i++) {
			size_t n = (size_t)bs * (i + 1) <= plen ? bs : plen - (size_t)bs * i;
			ssize_t got = bdev_file_pread(v, buf, n, (uint64_t)bs * i);

			if (i == bad && got != -EIO)
				fail_msg("%s: corrupt block %u: expected %d, got %zd", files[k], i, -EIO,
					 got);
			if (i != bad && (got != (ssize_t)n || memcmp(buf, plain + (size_t)bs * i, n)))
				fail_msg("%s: good block %u: expected %zu matching bytes, got %zd",
					 files[k], i, n, got);
		}
		/* A 512-byte read inside the bad block, and one spanning it. */
		assert_int_equal(bdev_file_pread(v, buf, 512, (uint64_t)bs * bad + 512), -EIO);
		assert_int_equal(bdev_file_pread(v, buf, 3 * bs, (uint64_t)bs * (bad - 1)), -EIO);
		assert_int_equal(bdev_file_pread(v, buf, 512, 0), 512);
		bdev_file_close(v);
		free(buf);
		free(z);
		free(plain);
	}
}

/* Open Z (LEN bytes) as a ZFile; expect failure with one of two codes. */
static void expect_open_fails(const uint8_t *z, size_t len, const char *what)
{
	struct bdev_file *v = NULL;
	int rc = zfile_open(mem_file(z, len), &v);

	if (rc != -EINVAL && rc != -EIO)
		fail_msg("%s: expected -EINVAL or -EIO, got %d", what, rc);
}

static void test_bad_headers(void **state)
{
	size_t len;
	uint8_t *orig = slurp(VEC "l2.lz4.zfile", &len), *z = malloc(len);
	size_t tr = len - 512;
	uint64_t ioff = le64(orig + 40);

	assert_non_null(z);
#define MUTATE(what, stmt)                          \
	do {                                        \
		memcpy(z, orig, len);               \
		stmt;                               \
		expect_open_fails(z, len, what);    \
	} while (0)
	MUTATE("wrong magic", z[0] = 'X');
	MUTATE("header digest", z[100] = 1);
	MUTATE("no digest flag", (z[32] &= ~0x10, fix_digest(z)));
	MUTATE("trailer flag on the header", (z[32] &= ~0x01, fix_digest(z)));
	MUTATE("algo 0", (z[76] = 0, fix_digest(z)));
	MUTATE("algo 3", (z[76] = 3, fix_digest(z)));
	MUTATE("block size 3000", (put32(z + 72, 3000), fix_digest(z)));
	MUTATE("block size 128K", (put32(z + 72, 131072), fix_digest(z)));
	MUTATE("dictionary", (put32(z + 84, 16), fix_digest(z)));
	MUTATE("index compressed", (z[32] |= 0x20, fix_digest(z)));
	MUTATE("index_size too big", (put32(z + 48, 1000), fix_digest(z)));
	MUTATE("index_size huge", (z[55] = 0x40, fix_digest(z)));
	MUTATE("original size mismatch", (put32(z + 56, 4096 * 30), fix_digest(z)));
	MUTATE("index past the end", (put32(z + 40, len), fix_digest(z)));
	MUTATE("index offset 0", (put32(z + 40, 0), fix_digest(z)));
	/* original_size + block_size - 1 wraps to a count of 0 blocks. */
	MUTATE("original size near 2^64, no blocks",
	       (put64(z + 48, 0), put64(z + 56, UINT64_MAX - 100), put32(z + 64, 0),
		fix_digest(z)));
	MUTATE("block size 0", (put32(z + 72, 0), fix_digest(z)));
	MUTATE("index offset near 2^64", (put64(z + 40, UINT64_MAX - 3), fix_digest(z)));
	MUTATE("corrupt jump table", put32(z + ioff + 8, le32(z + ioff + 8) + 1));
	MUTATE("zero-length block", (put32(z + ioff + 8, 0), put32(z + 64, crc32c_raw(0, z + ioff, 21 * 4)),
				     fix_digest(z)));
	MUTATE("huge block", (put32(z + ioff + 8, 1u << 30),
			      put32(z + 64, crc32c_raw(0, z + ioff, 21 * 4)), fix_digest(z)));
	MUTATE("blocks overrun the index",
	       (put32(z + ioff + 8, le32(z + ioff + 8) + 3000),
		put32(z + 64, crc32c_raw(0, z + ioff, 21 * 4)), fix_digest(z)));
	/* Header not overwritten: the trailer is authoritative (zfile.md 3.2). */
	MUTATE("trailer magic", (z[32] &= ~0x08, fix_digest(z), z[tr + 3] = 0));
	MUTATE("trailer digest", (z[32] &= ~0x08, fix_digest(z), z[tr + 200] = 1));
	MUTATE("trailer not sealed", (z[32] &= ~0x08, fix_digest(z), z[tr + 32] &= ~0x04,
				      fix_digest(z + tr)));
	MUTATE("trailer flagged header", (z[32] &= ~0x08, fix_digest(z), z[tr + 32] |= 0x01,
					  fix_digest(z + tr)));
#undef MUTATE
	for (size_t cut = 0; cut < len; cut += cut < 1100 ? 97 : 411)
		expect_open_fails(orig, cut, "truncated");
	free(z);
	free(orig);
}

/* A file that opens but whose blocks do not decompress to the sizes the
 * header promises fails reads with -EIO and never writes past the buffer. */
static void test_bad_block_content(void **state)
{
	size_t len;
	uint8_t *z = slurp(VEC "l1.lsmt.lz4-noverify.zfile", &len);
	struct bdev_file *v = NULL;
	uint8_t *buf = malloc(8192);
	uint64_t ioff = le64(z + len - 512 + 40); /* header not overwritten: use the trailer */

	/* Block 1's bytes replaced by block 0's: both decode, block 1 is
	 * garbage-in-garbage-out without a CRC; make it undecodable instead. */
	memset(z + 512 + le32(z + ioff), 0xff, le32(z + ioff + 4));
	assert_int_equal(zfile_open(mem_file(z, len), &v), 0);
	assert_int_equal(bdev_file_pread(v, buf, 4096, 4096), -EIO);
	assert_int_equal(bdev_file_pread(v, buf, 4096, 0), 4096);
	bdev_file_close(v);
	free(buf);
	free(z);
}

static void test_tar(void **state)
{
	size_t len;
	uint8_t *t = slurp(VEC "l3.lz4.tar", &len), *z2 = malloc(len);
	struct bdev_file *v = NULL;

	assert_true(tar_is_tar(t));
	assert_false(tar_is_tar(t + 1536));
	assert_true(zfile_is_zfile(t + 1536));
	assert_int_equal(tar_open(mem_file(t, len), &v), 0);
	assert_int_equal(v->size, 2034);
	bdev_file_close(v);

	/* Checksum off by one: not tar; then unwrap hands the bytes on as they are. */
	memcpy(z2, t, len);
	z2[0] ^= 1;
	assert_false(tar_is_tar(z2));
	assert_int_equal(tar_open(mem_file(z2, len), &v), -EINVAL);
	assert_int_equal(bdev_file_unwrap(mem_file(z2, len), &v), 0);
	assert_int_equal(v->size, len);
	bdev_file_close(v);

	/* Member larger than the archive, and archives cut short. */
	assert_int_equal(tar_open(mem_file(t, 1536 + 1000), &v), -EINVAL);
	for (size_t cut = 0; cut < 1536; cut += 100) {
		int rc = bdev_file_unwrap(mem_file(t, cut), &v);

		if (rc == 0) {
			if (cut >= 512)
				fail_msg("tar cut at %zu: expected an error, got 0", cut);
			bdev_file_close(v);
		}
	}
	free(z2);
	free(t);
}

/* lsmt.md 8: tar_wrap gives the bytes of `overlaybd-commit -t`. */
static void test_tar_wrap(void **state)
{
	size_t zlen, tlen;
	uint8_t *z = slurp(VEC "l3.lz4.zfile", &zlen), *t = slurp(VEC "l3.lz4.tar", &tlen);
	struct bdev_file *src = mem_file(z, zlen), *dst = mem_file(NULL, 0);
	const uint8_t *got;

	assert_int_equal(tar_wrap(src, zlen, dst), 0);
	got = bdev_file_mem_data(dst);
	if (dst->size != tlen)
		fail_msg("tar_wrap size: expected %zu, got %llu", tlen, (unsigned long long)dst->size);
	for (size_t i = 0; i < tlen; i++)
		if (got[i] != t[i])
			fail_msg("tar_wrap byte %zu: expected 0x%02x, got 0x%02x", i, t[i], got[i]);
	assert_int_equal(tar_wrap(src, zlen, dst), -EINVAL); /* not empty */
	bdev_file_close(dst);
	/* A payload whose size is a multiple of 512, and an empty one. */
	for (size_t n = 0; n <= 1024; n += 1024) {
		struct bdev_file *v = NULL;

		dst = mem_file(NULL, 0);
		assert_int_equal(tar_wrap(src, n, dst), 0);
		assert_int_equal(dst->size, 1536 + n + 1024);
		assert_int_equal(tar_open(mem_file(bdev_file_mem_data(dst), dst->size), &v), 0);
		assert_int_equal(v->size, n);
		bdev_file_close(v);
		bdev_file_close(dst);
	}
	bdev_file_close(src);
	free(z);
	free(t);
}

static void test_info(void **state)
{
	struct zfile_opts o;
	uint64_t size;
	struct bdev_file *f = open_file(VEC "l2.zstd-bs64.zfile", O_RDONLY);

	assert_int_equal(zfile_info(f, &o, &size), 0);
	assert_int_equal(o.algo, ZFILE_ZSTD);
	assert_int_equal(o.block_size, 65536);
	assert_true(o.verify);
	assert_true(o.overwrite_header);
	assert_int_equal(size, 86016);
	bdev_file_close(f);
	f = open_file(VEC "l1.lsmt.lz4-noverify.zfile", O_RDONLY);
	assert_int_equal(zfile_info(f, &o, &size), 0);
	assert_int_equal(o.algo, ZFILE_LZ4);
	assert_false(o.verify);
	assert_false(o.overwrite_header);
	assert_int_equal(size, 329216);
	bdev_file_close(f);
	f = open_file(VEC "l1.lsmt", O_RDONLY);
	assert_int_equal(zfile_info(f, &o, &size), -EINVAL);
	bdev_file_close(f);
}

/* zfile.md 7: our compressor reproduces the reference's bytes. */
struct cvec {
	const char *plain, *zfile;
	struct zfile_opts o;
};

static const struct cvec cvectors[] = {
	{ VEC "l1.lsmt", VEC "l1.lz4.zfile", { ZFILE_LZ4, 4096, true, true } },
	{ VEC "l2.lsmt", VEC "l2.lz4.zfile", { ZFILE_LZ4, 4096, true, true } },
	{ VEC "l3.lsmt", VEC "l3.lz4.zfile", { ZFILE_LZ4, 4096, true, true } },
	{ VEC "l1.lsmt", VEC "l1.zstd.zfile", { ZFILE_ZSTD, 4096, true, true } },
	{ VEC "l2.lsmt", VEC "l2.zstd-bs64.zfile", { ZFILE_ZSTD, 65536, true, true } },
	{ VEC "l3.lsmt", VEC "l3.lz4-bs16.zfile", { ZFILE_LZ4, 16384, true, true } },
	{ VEC "l1.lsmt", VEC "l1.lsmt.lz4-noov.zfile", { ZFILE_LZ4, 4096, true, false } },
	{ VEC "l1.lsmt", VEC "l1.lsmt.lz4-noverify.zfile", { ZFILE_LZ4, 4096, false, false } },
	{ VEC "l2.lsmt", VEC "l2.lsmt.zstd-bs8-noverify.zfile", { ZFILE_ZSTD, 8192, false, true } },
	{ VEC "merged123.lsmt", VEC "merged123.zfile", { ZFILE_LZ4, 4096, true, false } },
};

static void test_compress_vectors(void **state)
{
	for (size_t k = 0; k < sizeof(cvectors) / sizeof(cvectors[0]); k++) {
		const struct cvec *c = &cvectors[k];
		size_t plen, zlen;
		uint8_t *plain = slurp(c->plain, &plen), *want = slurp(c->zfile, &zlen);
		struct bdev_file *src = mem_file(plain, plen), *dst = mem_file(NULL, 0);
		const uint8_t *got;
		int rc = zfile_compress(src, plen, dst, &c->o);

		if (rc)
			fail_msg("compress %s: expected 0, got %d", c->plain, rc);
		got = bdev_file_mem_data(dst);
		if (dst->size != zlen)
			fail_msg("compress to %s: size: expected %zu, got %llu", c->zfile, zlen,
				 (unsigned long long)dst->size);
		for (size_t i = 0; i < zlen; i++)
			if (got[i] != want[i])
				fail_msg("compress to %s: byte %zu: expected 0x%02x, got 0x%02x",
					 c->zfile, i, want[i], got[i]);
		bdev_file_close(src);
		bdev_file_close(dst);
		free(plain);
		free(want);
	}
}

/* Round trips through compress and decompress for every option. */
static void test_round_trip(void **state)
{
	static const uint32_t sizes[] = { 4096, 8192, 16384, 32768, 65536 };
	size_t len = 300000 + 123;
	uint8_t *data = malloc(len);
	unsigned seed = 7;

	assert_non_null(data);
	for (size_t i = 0; i < len; i++)
		data[i] = i % 7000 < 3000 ? (uint8_t)rand_r(&seed) : (uint8_t)(i / 512);
	for (int algo = ZFILE_LZ4; algo <= ZFILE_ZSTD; algo++)
		for (size_t s = 0; s < 5; s++)
			for (int flags = 0; flags < 4; flags++) {
				struct zfile_opts o = { algo, sizes[s], flags & 1, flags & 2 };
				struct bdev_file *src = mem_file(data, len), *dst = mem_file(NULL, 0);
				struct bdev_file *back = mem_file(NULL, 0), *v = NULL;
				char what[64];

				snprintf(what, sizeof(what), "algo %d bs %u verify %d overwrite %d", algo,
					 sizes[s], flags & 1, !!(flags & 2));
				assert_int_equal(zfile_compress(src, len, dst, &o), 0);
				assert_int_equal(zfile_open(mem_file(bdev_file_mem_data(dst), dst->size),
							    &v), 0);
				expect_view(v, data, len, 4096, what);
				bdev_file_close(v);
				assert_int_equal(zfile_decompress(dst, back), 0);
				if (back->size != len || memcmp(bdev_file_mem_data(back), data, len))
					fail_msg("%s: zfile_decompress differs from the input", what);
				bdev_file_close(src);
				bdev_file_close(dst);
				bdev_file_close(back);
			}
	free(data);
}

static void test_compress_empty_and_errors(void **state)
{
	struct zfile_opts o = { ZFILE_LZ4, 4096, true, false };
	struct bdev_file *src = mem_file("abc", 3), *dst = mem_file(NULL, 0), *v = NULL;

	assert_int_equal(zfile_compress(src, 0, dst, &o), 0);
	assert_int_equal(zfile_open(mem_file(bdev_file_mem_data(dst), dst->size), &v), 0);
	assert_int_equal(v->size, 0);
	bdev_file_close(v);
	/* DST not empty, bad block size, source shorter than LEN. */
	assert_int_equal(zfile_compress(src, 3, dst, &o), -EINVAL);
	bdev_file_close(dst);
	o.block_size = 6000;
	dst = mem_file(NULL, 0);
	assert_int_equal(zfile_compress(src, 3, dst, &o), -EINVAL);
	o.block_size = 4096;
	assert_int_equal(zfile_compress(src, 10, dst, &o), -EIO);
	bdev_file_close(dst);
	bdev_file_close(src);
	/* Decompressing something that is not a ZFile. */
	src = mem_file("not a zfile", 11);
	dst = mem_file(NULL, 0);
	assert_int_equal(zfile_decompress(src, dst), -EINVAL);
	bdev_file_close(dst);
	bdev_file_close(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_unwrap),
		cmocka_unit_test(test_ext4_unwrap),
		cmocka_unit_test(test_parallel_reads),
		cmocka_unit_test(test_nowait),
		cmocka_unit_test(test_stacks),
		cmocka_unit_test(test_corrupt_block),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_bad_block_content),
		cmocka_unit_test(test_tar),
		cmocka_unit_test(test_tar_wrap),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_compress_vectors),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_compress_empty_and_errors),
	};

	log_open("/dev/null"); /* the failures below are intended */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
