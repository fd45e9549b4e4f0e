/*
 * Helpers shared by the LSMT unit tests (test_lsmt.c, test_stack.c,
 * test_commit.c): opening the stack-a vectors, hashing device ranges, and
 * temporary copies of writable layers.  Included by each test, so
 * everything is static.
 */
#ifndef TEST_LSMT_HELPERS_H
#define TEST_LSMT_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "blockdev/bdev.h"
#include "common/common.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define VEC "test/data/stack-a/"

/* MANIFEST.md: expected device hashes of stack A */
#define L1_FULL "1fb389018ab69bcfc50b019d47ac89463c1bf19381c2ed99f8b6cdc15d26fbfe"
#define L1_32M "539c8964977c059e05a7a6fdf5c1680d9c068e46fe575895994c5981d6040140"
#define L12_FULL "5f38a71891007a75eba73c8893b24ee67eb54cca7e644b153d962cb96eeb674b"
#define L12_32M "416e04aa8ab6add6c54078b097a6b2e42ea91d946ec6c307fdfee5fc1b6bf545"
#define L123_FULL "7c77d72ce9d7cb7460334483bcc15a3d170c5381c7158ced5118931c0a583370"
#define L123_32M "34ec72abd9bc7fd3ae8e627e2c3a9eb7b66f0fe872b9247da0f38e4b087c28ef"
#define L1_LAST64K "ee7f70bc65a1a9204f100301862d82ce4eaff23e5b02f77df9309bf744a635c1"
#define L12_LAST64K "c914855a0ea408f6258492e2763d832d51a52aab7dda24f80ec421025f96a4f9"

static __attribute__((unused)) void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* sha256 of device bytes [off, off+len), read in 1 MiB requests. */
static __attribute__((unused)) void dev_sha256(struct bdev *d, uint64_t off, uint64_t len, char out[65])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t bs = 1 << 20;
	uint8_t *buf = malloc(bs), md[32];
	unsigned mdlen;

	assert_non_null(buf);
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while (len > 0) {
		size_t n = len < bs ? len : bs;
		int rc = bdev_pread(d, buf, n, off);

		if (rc)
			fail_msg("read at %llu: expected 0, got %d", (unsigned long long)off, rc);
		EVP_DigestUpdate(ctx, buf, n);
		off += n;
		len -= n;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	free(buf);
	hex(md, 32, out);
}

static __attribute__((unused)) void expect_sha(struct bdev *d, uint64_t off, uint64_t len, const char *want,
		       const char *what)
{
	char got[65];

	dev_sha256(d, off, len, got);
	if (strcmp(got, want))
		fail_msg("%s: sha256 of [%llu,+%llu): expected %s, got %s", what,
			 (unsigned long long)off, (unsigned long long)len, want, got);
}

static __attribute__((unused)) struct bdev_file *open_file(const char *path, int flags)
{
	struct bdev_file *f = NULL;
	int rc = bdev_file_open_local(path, flags, BDEV_IO_PSYNC, &f);

	if (rc)
		fail_msg("open %s: expected 0, got %d", path, rc);
	return f;
}

static __attribute__((unused)) struct lsmt_layer *open_ro(const char *path)
{
	struct lsmt_layer *l = NULL;
	int rc = lsmt_open_ro(open_file(path, O_RDONLY), &l);

	if (rc)
		fail_msg("lsmt_open_ro %s: expected 0, got %d", path, rc);
	return l;
}

static __attribute__((unused)) struct lsmt_layer *open_rw(const char *data, const char *index)
{
	struct lsmt_layer *l = NULL;
	int rc = lsmt_open_rw(open_file(data, O_RDWR), open_file(index, O_RDWR), &l);

	if (rc)
		fail_msg("lsmt_open_rw %s: expected 0, got %d", data, rc);
	return l;
}

static __attribute__((unused)) void copy_file(const char *from, const char *to)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	if (system(cmd) != 0)
		fail_msg("%s failed", cmd);
}

/* A fresh temporary directory; the caller removes it with rm_tmpdir. */
static __attribute__((unused)) char *make_tmpdir(void)
{
	char *t = strdup("/tmp/test_lsmt.XXXXXX");

	if (!mkdtemp(t))
		fail_msg("mkdtemp failed");
	return t;
}

static __attribute__((unused)) void rm_tmpdir(char *t)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t);
	if (system(cmd) != 0)
		fail_msg("%s failed", cmd);
	free(t);
}

static __attribute__((unused)) char *path_in(const char *dir, const char *name)
{
	static char buf[4][512];
	static int k;
	char *p = buf[k++ & 3];

	snprintf(p, 512, "%s/%s", dir, name);
	return p;
}

#endif
