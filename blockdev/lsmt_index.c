/*
 * lsmt_index: the merged read-only index of a stack, searched at open-time
 * cost and 16 bytes per segment.  Keys and values are kept in two arrays
 * in Eytzinger (breadth-first) order: a search touches one cache line per
 * tree level and prefetches the lines four levels ahead, so lookups stay
 * fast on tables far larger than the CPU caches, and the search loop has
 * no data-dependent branch.  A walk in LBA order follows in-order
 * successors, which is amortised O(1).
 */
#include "bdev_int.h"

#include <errno.h>
#include <stdlib.h>

static size_t fill(struct mtable *t, const struct seg *s, size_t i, size_t k)
{
	/* in-order traversal of the implicit tree assigns sorted segments */
	if (k <= t->n) {
		i = fill(t, s, i, 2 * k);
		t->key[k] = s[i].key;
		t->val[k] = s[i].val;
		i = fill(t, s, i + 1, 2 * k + 1);
	}
	return i;
}

int mtable_build(const struct seg *s, size_t n, struct mtable *t)
{
	t->n = n;
	t->key = malloc((n + 1) * sizeof(*t->key));
	t->val = malloc((n + 1) * sizeof(*t->val));
	if (!t->key || !t->val) {
		mtable_free(t);
		return -ENOMEM;
	}
	t->key[0] = t->val[0] = 0;
	fill(t, s, 0, 1);
	return 0;
}

void mtable_free(struct mtable *t)
{
	free(t->key);
	free(t->val);
	t->key = t->val = NULL;
	t->n = 0;
}

size_t mtable_find(const struct mtable *t, uint64_t lba)
{
	const uint64_t *key = t->key;
	size_t k = 1, n = t->n;

	while (k <= n) {
		uint64_t x = key[k];

		__builtin_prefetch(key + 16 * k);
		/* go right while the segment ends at or before LBA */
		k = 2 * k + ((x >> 14) + (x & 0x3fff) <= lba);
	}
	/* drop the trailing right turns and the last left one */
	return k >> __builtin_ffsll(~k);
}

size_t mtable_next(const struct mtable *t, size_t k)
{
	if (2 * k + 1 <= t->n) {
		k = 2 * k + 1;
		while (2 * k <= t->n)
			k *= 2;
		return k;
	}
	while (k & 1)
		k >>= 1;
	return k >> 1;
}
