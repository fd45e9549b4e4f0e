/*
 * lsmt_map: the writable layer's interval map (lsmt.md 4.2).  Segments are
 * kept sorted in chunks of at most CHUNK entries, with each chunk's first
 * lba in a flat array: a lookup is two binary searches, an insert moves at
 * most one chunk, and memory stays near 16 bytes per segment.  The caller
 * (lsmt_rw.c) serialises inserts against lookups.
 */
#include "bdev_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 512

void umap_init(struct umap *m)
{
	memset(m, 0, sizeof(*m));
}

void umap_free(struct umap *m)
{
	for (size_t i = 0; i < m->nchunks; i++)
		free(m->chunk[i]);
	free(m->chunk);
	free(m->cn);
	free(m->cfirst);
	umap_init(m);
}

/* Last chunk whose first lba is <= LBA, or 0. */
static size_t chunk_for(const struct umap *m, uint64_t lba)
{
	size_t lo = 0, hi = m->nchunks;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (m->cfirst[mid] <= lba)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static int add_chunk(struct umap *m, size_t at)
{
	if (m->nchunks == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct seg **c = realloc(m->chunk, cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		m->chunk = c;
		uint32_t *cn = realloc(m->cn, cap * sizeof(*cn));
		if (!cn)
			return -ENOMEM;
		m->cn = cn;
		uint64_t *cf = realloc(m->cfirst, cap * sizeof(*cf));
		if (!cf)
			return -ENOMEM;
		m->cfirst = cf;
		m->cap = cap;
	}
	struct seg *c = malloc(CHUNK * sizeof(*c));

	if (!c)
		return -ENOMEM;
	size_t tail = m->nchunks - at;
	memmove(m->chunk + at + 1, m->chunk + at, tail * sizeof(*m->chunk));
	memmove(m->cn + at + 1, m->cn + at, tail * sizeof(*m->cn));
	memmove(m->cfirst + at + 1, m->cfirst + at, tail * sizeof(*m->cfirst));
	m->chunk[at] = c;
	m->cn[at] = 0;
	m->cfirst[at] = 0;
	m->nchunks++;
	return 0;
}

static void drop_chunk(struct umap *m, size_t at)
{
	size_t tail = m->nchunks - at - 1;

	free(m->chunk[at]);
	memmove(m->chunk + at, m->chunk + at + 1, tail * sizeof(*m->chunk));
	memmove(m->cn + at, m->cn + at + 1, tail * sizeof(*m->cn));
	memmove(m->cfirst + at, m->cfirst + at + 1, tail * sizeof(*m->cfirst));
	m->nchunks--;
}

/* Insert S, which overlaps nothing already in the map. */
static int put(struct umap *m, struct seg s)
{
	uint64_t lba = seg_lba(&s);
	size_t ci;
	int err;

	if (m->nchunks == 0) {
		err = add_chunk(m, 0);
		if (err)
			return err;
	}
	ci = chunk_for(m, lba);
	if (m->cn[ci] == CHUNK) {
		err = add_chunk(m, ci + 1);
		if (err)
			return err;
		uint32_t half = CHUNK / 2;
		memcpy(m->chunk[ci + 1], m->chunk[ci] + half, (CHUNK - half) * sizeof(struct seg));
		m->cn[ci + 1] = CHUNK - half;
		m->cn[ci] = half;
		m->cfirst[ci + 1] = seg_lba(&m->chunk[ci + 1][0]);
		if (lba >= m->cfirst[ci + 1])
			ci++;
	}
	struct seg *c = m->chunk[ci];
	uint32_t n = m->cn[ci];
	uint32_t k = seg_find(c, n, lba);

	memmove(c + k + 1, c + k, (n - k) * sizeof(*c));
	c[k] = s;
	m->cn[ci] = n + 1;
	if (k == 0)
		m->cfirst[ci] = lba;
	m->count++;
	return 0;
}

int umap_insert(struct umap *m, struct seg s)
{
	uint64_t S = seg_lba(&s), E = seg_end(&s);
	struct seg tail;
	bool has_tail = false;
	size_t ci = m->nchunks ? chunk_for(m, S) : 0;

	/* Punch [S, E) out of the existing segments, chunk by chunk. */
	while (ci < m->nchunks) {
		struct seg *c = m->chunk[ci];
		uint32_t n = m->cn[ci];
		uint32_t k = seg_find(c, n, S), del_from, del_to;
		bool done = false;

		if (k < n && seg_lba(&c[k]) < S) {
			struct seg x = c[k];

			c[k] = seg_clip(&x, seg_lba(&x), S - seg_lba(&x));
			if (seg_end(&x) > E) {
				/* strictly contains the new range: split in two */
				tail = seg_clip(&x, E, seg_end(&x) - E);
				has_tail = true;
				break;
			}
			k++;
		}
		del_from = k;
		while (k < n && seg_end(&c[k]) <= E)
			k++;
		del_to = k;
		if (k < n) {
			done = true;
			if (seg_lba(&c[k]) < E)
				c[k] = seg_clip(&c[k], E, seg_end(&c[k]) - E);
		}
		if (del_to > del_from) {
			memmove(c + del_from, c + del_to, (n - del_to) * sizeof(*c));
			m->cn[ci] = n - (del_to - del_from);
			m->count -= del_to - del_from;
		}
		if (m->cn[ci] == 0) {
			drop_chunk(m, ci);
		} else {
			m->cfirst[ci] = seg_lba(&c[0]);
			ci++;
		}
		if (done)
			break;
	}
	int err = put(m, s);

	if (!err && has_tail)
		err = put(m, tail);
	return err;
}

size_t umap_collect(const struct umap *m, uint64_t lba, uint64_t end, struct seg *out,
		    size_t max)
{
	size_t got = 0;

	if (m->nchunks == 0)
		return 0;
	size_t ci = chunk_for(m, lba);
	uint32_t k = seg_find(m->chunk[ci], m->cn[ci], lba);

	while (got < max && ci < m->nchunks) {
		if (k == m->cn[ci]) {
			ci++;
			k = 0;
			continue;
		}
		const struct seg *x = &m->chunk[ci][k++];
		uint64_t s = seg_lba(x), e = seg_end(x);

		if (s >= end)
			break;
		if (s < lba)
			s = lba;
		if (e > end)
			e = end;
		out[got++] = seg_clip(x, s, e - s);
	}
	return got;
}

int umap_export(const struct umap *m, struct seg **out, size_t *n)
{
	struct seg *a = malloc(m->count * sizeof(*a) + 1);
	size_t k = 0;

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < m->nchunks; i++) {
		memcpy(a + k, m->chunk[i], m->cn[i] * sizeof(*a));
		k += m->cn[i];
	}
	*out = a;
	*n = k;
	return 0;
}
