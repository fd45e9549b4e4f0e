/*
 * test_commit: compaction (blockdev/lsmt_commit.c).  Our commit of the
 * reference's writable layers must equal the reference's sealed blobs byte
 * for byte, our merge of the three layers must equal merged123.lsmt, and
 * committed blobs must read back as the device they came from.
 */
#include "lsmt_helpers.h"

#include <sys/stat.h>

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *b;

	if (!f || fstat(fileno(f), &st))
		fail_msg("cannot open %s", path);
	b = malloc(st.st_size + 1);
	assert_non_null(b);
	if (fread(b, 1, st.st_size, f) != (size_t)st.st_size)
		fail_msg("short read of %s", path);
	fclose(f);
	*len = st.st_size;
	return b;
}

static void expect_same_file(const char *got, const char *want)
{
	size_t ng, nw;
	uint8_t *g = slurp(got, &ng), *w = slurp(want, &nw);

	if (ng != nw)
		fail_msg("%s: expected %zu bytes (as %s), got %zu", got, nw, want, ng);
	for (size_t i = 0; i < nw; i++)
		if (g[i] != w[i])
			fail_msg("%s: byte %zu: expected %#x (as %s), got %#x", got, i, w[i], want, g[i]);
	free(g);
	free(w);
}

static void commit_to(struct lsmt_layer **l, int n, const char *out,
		      const struct lsmt_commit_opts *o, bool by_layer)
{
	struct bdev_file *dst = open_file(out, O_RDWR | O_CREAT | O_TRUNC);
	int rc = lsmt_commit(l, n, dst, o, by_layer);

	if (rc)
		fail_msg("lsmt_commit -> %s: expected 0, got %d", out, rc);
	bdev_file_close(dst);
}

static void test_commit_matches_reference(void **state)
{
	static const char *const uuids[] = { "A1000000-0000-4000-8000-000000000001",
					     "A2000000-0000-4000-8000-000000000002",
					     "A3000000-0000-4000-8000-000000000003" };
	static const char *const msgs[] = { "layer-1", "layer-2", "layer-3" };
	char *t = make_tmpdir();

	for (int i = 1; i <= 3; i++) {
		char data[64], index[64], want[64], out[64];
		struct lsmt_commit_opts o = { .uuid = uuids[i - 1], .user_tag = msgs[i - 1] };

		snprintf(data, sizeof(data), VEC "l%d.data", i);
		snprintf(index, sizeof(index), VEC "l%d.index", i);
		snprintf(want, sizeof(want), VEC "l%d.lsmt", i);
		snprintf(out, sizeof(out), "l%d.lsmt", i);
		struct lsmt_layer *l = NULL;
		int rc = lsmt_open_rw(open_file(data, O_RDONLY), open_file(index, O_RDONLY), &l);

		assert_int_equal(rc, 0);
		commit_to(&l, 1, path_in(t, out), &o, false);
		lsmt_close(l);
		expect_same_file(path_in(t, out), want);
	}
	rm_tmpdir(t);
}

static void test_merge_matches_reference(void **state)
{
	char *t = make_tmpdir();
	struct lsmt_layer *l[3] = { open_ro(VEC "l1.lsmt"), open_ro(VEC "l2.lsmt"),
				    open_ro(VEC "l3.lsmt") };

	commit_to(l, 3, path_in(t, "m.lsmt"), &(struct lsmt_commit_opts){ 0 }, true);
	for (int i = 0; i < 3; i++)
		lsmt_close(l[i]);
	expect_same_file(path_in(t, "m.lsmt"), VEC "merged123.lsmt");
	rm_tmpdir(t);
}

static void test_commit_options(void **state)
{
	char *t = make_tmpdir();
	struct lsmt_layer *l = open_ro(VEC "l3.lsmt");
	char longtag[300];
	struct lsmt_info info;
	struct lsmt_commit_opts o = { .uuid = "not-a-uuid", .parent_uuid = "b2000000-0000-4000-8000-00000000000b",
				      .user_tag = "msg" };

	memset(longtag, 'x', sizeof(longtag) - 1);
	longtag[sizeof(longtag) - 1] = 0;
	struct bdev_file *dst = open_file(path_in(t, "bad"), O_RDWR | O_CREAT | O_TRUNC);
	assert_int_equal(lsmt_commit(&l, 1, dst, &(struct lsmt_commit_opts){ .user_tag = longtag },
				     false), -EINVAL);
	bdev_file_close(dst);
	commit_to(&l, 1, path_in(t, "o.lsmt"), &o, false);
	lsmt_close(l);
	l = open_ro(path_in(t, "o.lsmt"));
	lsmt_info(l, &info);
	assert_string_equal(info.uuid, "00000000-0000-0000-0000-000000000000");
	assert_string_equal(info.parent_uuid, "b2000000-0000-4000-8000-00000000000b");
	assert_string_equal(info.user_tag, "msg");
	assert_int_equal(info.virtual_size, GiB);
	assert_int_equal(info.nentries, 4);
	lsmt_close(l);
	rm_tmpdir(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_matches_reference),
		cmocka_unit_test(test_merge_matches_reference),
		cmocka_unit_test(test_commit_options),
	};

	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
