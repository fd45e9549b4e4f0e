/*
 * stack: the block device, a merged view of read-only layers with an
 * optional writable upper layer on top (lsmt.md 5, 6).
 *
 * The read-only layers' indexes are merged once at open into one table of
 * 16-byte segments (the layer number in the tag; lsmt_index.c), so a read
 * of the lowers is one search and a walk, with no lock: nothing in the
 * table changes after open.  The writable upper keeps its own map
 * (lsmt_map.c); a read takes its read lock only to copy out the upper
 * segments of a batch of the request, then does the I/O unlocked.  Every
 * piece is read straight into the caller's iovec.
 */
#include "bdev_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define UPPER_BATCH 32 /* upper segments copied per lock hold */

struct bdev {
	int nlayers;                /* read-only layers merged into SEGS */
	struct lsmt_layer **layers; /* indexed by segment tag; [0] = base */
	struct bdev_file **files;   /* layers[i]->data, for the read path */
	struct mtable idx;          /* merged lowers, zeroed ranges dropped */
	struct lsmt_layer *upper;   /* writable, or NULL */
	uint64_t size;
};

struct iov_cur {
	const struct iovec *iov;
	int cnt, i;
	size_t off;
	bool nowait; /* bdev_try_preadv */
};

static void cur_zero(struct iov_cur *c, size_t n)
{
	while (n > 0) {
		size_t k = c->iov[c->i].iov_len - c->off;

		if (k > n)
			k = n;
		memset((char *)c->iov[c->i].iov_base + c->off, 0, k);
		n -= k;
		c->off += k;
		if (c->off == c->iov[c->i].iov_len) {
			c->i++;
			c->off = 0;
		}
	}
}

/* With C->nowait, a file that might wait answers -EAGAIN, which is passed
 * up without a log line: the caller retries on a worker. */
static int cur_pread(struct iov_cur *c, struct bdev_file *f, uint64_t foff, size_t n)
{
	if (c->nowait && !f->ops->pread_nowait)
		return -EAGAIN;
	while (n > 0) {
		size_t k = c->iov[c->i].iov_len - c->off;
		char *dst = (char *)c->iov[c->i].iov_base + c->off;
		ssize_t got;

		if (k > n)
			k = n;
		got = c->nowait ? f->ops->pread_nowait(f, dst, k, foff) : f->ops->pread(f, dst, k, foff);
		if (got == -EAGAIN && c->nowait)
			return -EAGAIN;
		if (got < 0) {
			log_error("%s: read at %llu failed: %s", bdev_file_name(f),
				  (unsigned long long)foff, strerror(-got));
			return got;
		}
		/* lsmt.md 5: a short read at end of file reads as zeros */
		if ((size_t)got < k)
			memset((char *)c->iov[c->i].iov_base + c->off + got, 0, k - got);
		n -= k;
		foff += k;
		c->off += k;
		if (c->off == c->iov[c->i].iov_len) {
			c->i++;
			c->off = 0;
		}
	}
	return 0;
}

/* Merge one upper list over one lower list: upper wins, lower is clipped. */
static int merge2(const struct seg *u, size_t nu, const struct seg *l, size_t nl,
		  struct seg **out, size_t *nout)
{
	struct seg *o = malloc((2 * nu + nl) * sizeof(*o) + 1);
	size_t i = 0, k = 0;

	if (!o)
		return -ENOMEM;
	for (size_t j = 0; j < nl; j++) {
		uint64_t s = seg_lba(&l[j]), e = seg_end(&l[j]);

		while (s < e) {
			while (i < nu && seg_end(&u[i]) <= s)
				o[k++] = u[i++];
			if (i < nu && seg_lba(&u[i]) <= s) {
				s = seg_end(&u[i]);
				continue;
			}
			uint64_t ns = i < nu && seg_lba(&u[i]) < e ? seg_lba(&u[i]) : e;

			o[k++] = seg_clip(&l[j], s, ns - s);
			s = ns;
		}
	}
	while (i < nu)
		o[k++] = u[i++];
	*out = o;
	*nout = k;
	return 0;
}

static int merge_range(const struct seg *const *lists, const size_t *counts,
		       const unsigned *tags, int lo, int hi, struct seg **out, size_t *nout)
{
	if (hi - lo == 1) {
		struct seg *o = malloc(counts[lo] * sizeof(*o) + 1);

		if (!o)
			return -ENOMEM;
		for (size_t j = 0; j < counts[lo]; j++) {
			o[j] = lists[lo][j];
			o[j].val = (o[j].val & (SEG_MOFF_MASK | SEG_ZEROED)) | (uint64_t)tags[lo] << 56;
		}
		*out = o;
		*nout = counts[lo];
		return 0;
	}
	int mid = (lo + hi) / 2;
	struct seg *a, *b;
	size_t na, nb;
	int err = merge_range(lists, counts, tags, lo, mid, &a, &na);

	if (err)
		return err;
	err = merge_range(lists, counts, tags, mid, hi, &b, &nb);
	if (err) {
		free(a);
		return err;
	}
	err = merge2(b, nb, a, na, out, nout);
	free(a);
	free(b);
	return err;
}

int seg_merge(const struct seg *const *lists, const size_t *counts, const unsigned *tags,
	      int n, bool drop_zeroed, struct seg **out, size_t *nout)
{
	struct seg *o;
	size_t no;
	int err;

	if (n == 0) {
		*out = malloc(1);
		*nout = 0;
		return *out ? 0 : -ENOMEM;
	}
	err = merge_range(lists, counts, tags, 0, n, &o, &no);
	if (err)
		return err;
	if (drop_zeroed) {
		size_t k = 0;

		for (size_t j = 0; j < no; j++)
			if (!seg_zeroed(&o[j]))
				o[k++] = o[j];
		no = k;
	}
	struct seg *shrunk = realloc(o, no * sizeof(*o) + 1);

	*out = shrunk ? shrunk : o;
	*nout = no;
	return 0;
}

static void check_chain(struct bdev *d)
{
	/* lsmt.md 6: the reference never enforces the uuid chain; we only warn. */
	for (int i = 1; i < d->nlayers; i++) {
		const char *p = d->layers[i]->info.parent_uuid;

		if (strcmp(p, lsmt_null_uuid) && strcasecmp(p, d->layers[i - 1]->info.uuid))
			log_warn("layer %d (%s): parent uuid %s is not the uuid of the layer below (%s)",
				 i, bdev_file_name(d->layers[i]->data), p, d->layers[i - 1]->info.uuid);
	}
}

int bdev_open(struct lsmt_layer **lowers, int nlowers, struct lsmt_layer *upper,
	      struct bdev **out)
{
	struct bdev *d = calloc(1, sizeof(*d));
	int n = nlowers + (upper && !lsmt_is_rw(upper));
	const struct seg **lists = NULL;
	size_t *counts = NULL;
	unsigned *tags = NULL;
	bool *owned = NULL;
	int err = 0, got = 0;

	if (!d) {
		err = -ENOMEM;
		goto fail_layers;
	}
	if (nlowers < 0 || n > BDEV_MAX_LAYERS) {
		log_error("bdev: %d layers, at most %d are supported", n, BDEV_MAX_LAYERS);
		err = -EINVAL;
		goto fail_layers;
	}
	d->layers = calloc(n + 1, sizeof(*d->layers));
	d->files = calloc(n + 1, sizeof(*d->files));
	lists = calloc(n + 1, sizeof(*lists));
	counts = calloc(n + 1, sizeof(*counts));
	tags = calloc(n + 1, sizeof(*tags));
	owned = calloc(n + 1, sizeof(*owned));
	if (!d->layers || !d->files || !lists || !counts || !tags || !owned) {
		err = -ENOMEM;
		goto fail_layers;
	}
	if (nlowers > 0)
		memcpy(d->layers, lowers, nlowers * sizeof(*lowers));
	if (upper && !lsmt_is_rw(upper))
		d->layers[nlowers] = upper;
	else
		d->upper = upper;
	d->nlayers = n;
	for (got = 0; got < n; got++) {
		err = lsmt_segments(d->layers[got], &lists[got], &counts[got], &owned[got]);
		if (err)
			goto fail;
		tags[got] = got;
		d->files[got] = d->layers[got]->data;
	}
	struct seg *merged;
	size_t nmerged;

	err = seg_merge(lists, counts, tags, n, true, &merged, &nmerged);
	if (err)
		goto fail;
	err = mtable_build(merged, nmerged, &d->idx);
	free(merged);
	if (err)
		goto fail;
	/* lsmt.md 6: size of the topmost layer with a non-zero virtual_size */
	for (int i = n - 1; i >= 0 && !d->size; i--)
		d->size = d->layers[i]->info.virtual_size;
	if (d->upper) {
		/* A read-only open of an upper (overlaybd-cat) leaves its file as is. */
		if (d->upper->info.virtual_size == 0 && d->size && d->upper->data->ops->pwrite) {
			err = lsmt_rw_set_vsize(d->upper, d->size);
			if (err)
				goto fail;
		}
		if (d->upper->info.virtual_size || !d->size)
			d->size = d->upper->info.virtual_size;
	}
	check_chain(d);
	for (int i = 0; i < got; i++)
		if (owned[i])
			free((void *)lists[i]);
	free(lists);
	free(counts);
	free(tags);
	free(owned);
	*out = d;
	return 0;

fail:
	for (int i = 0; i < got; i++)
		if (owned[i])
			free((void *)lists[i]);
	free(lists);
	free(counts);
	free(tags);
	free(owned);
	bdev_close(d);
	return err;

fail_layers:
	for (int i = 0; i < nlowers; i++)
		lsmt_close(lowers[i]);
	lsmt_close(upper);
	free(lists);
	free(counts);
	free(tags);
	free(owned);
	if (d) {
		free(d->layers);
		free(d->files);
		free(d);
	}
	return err;
}

void bdev_close(struct bdev *d)
{
	if (!d)
		return;
	for (int i = 0; i < d->nlayers; i++)
		lsmt_close(d->layers[i]);
	lsmt_close(d->upper);
	free(d->layers);
	free(d->files);
	mtable_free(&d->idx);
	free(d);
}

uint64_t bdev_size(const struct bdev *d)
{
	return d->size;
}

bool bdev_writable(const struct bdev *d)
{
	return d->upper != NULL;
}

int bdev_nlayers(const struct bdev *d)
{
	return d->nlayers + (d->upper != NULL);
}

size_t bdev_index_bytes(const struct bdev *d)
{
	size_t b = d->idx.n * sizeof(struct seg);

	if (d->upper)
		b += __atomic_load_n(&d->upper->map.count, __ATOMIC_RELAXED) * sizeof(struct seg);
	return b;
}

/* Read sectors [s, e) of the merged read-only layers into C. */
static int lower_read(const struct bdev *d, struct iov_cur *c, uint64_t s, uint64_t e)
{
	const struct mtable *t = &d->idx;
	size_t k = mtable_find(t, s);

	while (s < e) {
		if (k == 0 || (t->key[k] >> 14) >= e) {
			cur_zero(c, (e - s) * BDEV_SECTOR);
			return 0;
		}
		struct seg x = mtable_seg(t, k);

		if (seg_lba(&x) > s) {
			cur_zero(c, (seg_lba(&x) - s) * BDEV_SECTOR);
			s = seg_lba(&x);
		}
		uint64_t xe = seg_end(&x);
		uint64_t foff = seg_moff(&x) + (s - seg_lba(&x));

		/* Neighbours contiguous in the same file become one read. */
		while (xe < e) {
			size_t nk = mtable_next(t, k);

			if (!nk)
				break;
			struct seg y = mtable_seg(t, nk);

			if (seg_lba(&y) != xe || seg_tag(&y) != seg_tag(&x) ||
			    seg_moff(&y) != seg_moff(&x) + (xe - seg_lba(&x)))
				break;
			k = nk;
			xe = seg_end(&y);
		}
		if (xe > e)
			xe = e;
		int err = cur_pread(c, d->files[seg_tag(&x)], foff * BDEV_SECTOR,
				    (xe - s) * BDEV_SECTOR);
		if (err)
			return err;
		s = xe;
		k = mtable_next(t, k);
	}
	return 0;
}

static int upper_read(const struct bdev *d, struct iov_cur *c, uint64_t s, uint64_t e)
{
	struct lsmt_layer *up = d->upper;
	struct seg buf[UPPER_BATCH];
	int err;

	while (s < e) {
		pthread_rwlock_rdlock(&up->lock);
		size_t n = umap_collect(&up->map, s, e, buf, UPPER_BATCH);
		pthread_rwlock_unlock(&up->lock);
		uint64_t limit = n == UPPER_BATCH ? seg_end(&buf[n - 1]) : e;

		for (size_t i = 0; i < n; i++) {
			uint64_t bs = seg_lba(&buf[i]);

			if (bs > s) {
				err = lower_read(d, c, s, bs);
				if (err)
					return err;
			}
			if (seg_zeroed(&buf[i])) {
				cur_zero(c, seg_len(&buf[i]) * BDEV_SECTOR);
			} else {
				err = cur_pread(c, up->data, seg_moff(&buf[i]) * BDEV_SECTOR,
						seg_len(&buf[i]) * BDEV_SECTOR);
				if (err)
					return err;
			}
			s = seg_end(&buf[i]);
		}
		if (s < limit) {
			err = lower_read(d, c, s, limit);
			if (err)
				return err;
			s = limit;
		}
	}
	return 0;
}

static int iov_bytes(const struct iovec *iov, int iovcnt, uint64_t off, uint64_t *len)
{
	uint64_t n = 0;

	if (iovcnt < 0)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	if (off % BDEV_SECTOR || n % BDEV_SECTOR)
		return -EINVAL; /* lsmt.md 1: sector-aligned I/O only */
	*len = n;
	return 0;
}

static int preadv_cur(struct bdev *d, const struct iovec *iov, int iovcnt, uint64_t off,
		      bool nowait)
{
	struct iov_cur c = { .iov = iov, .cnt = iovcnt, .nowait = nowait };
	uint64_t len;
	int err = iov_bytes(iov, iovcnt, off, &len);

	if (err || len == 0)
		return err;
	uint64_t s = off / BDEV_SECTOR, e = s + len / BDEV_SECTOR;

	return d->upper ? upper_read(d, &c, s, e) : lower_read(d, &c, s, e);
}

int bdev_preadv(struct bdev *d, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return preadv_cur(d, iov, iovcnt, off, false);
}

int bdev_try_preadv(struct bdev *d, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return preadv_cur(d, iov, iovcnt, off, true);
}

int bdev_pread(struct bdev *d, void *buf, size_t len, uint64_t off)
{
	struct iovec v = { .iov_base = buf, .iov_len = len };

	return bdev_preadv(d, &v, 1, off);
}

int bdev_pwritev(struct bdev *d, const struct iovec *iov, int iovcnt, uint64_t off)
{
	uint64_t len;
	int err = iov_bytes(iov, iovcnt, off, &len);

	if (err)
		return err;
	if (!d->upper)
		return -EROFS;
	if (len == 0)
		return 0;
	/* lsmt.md 3: a segment cannot name a sector past 2^50 - 1. */
	if (lsmt_check_range(off, len))
		return -EINVAL;
	if (d->upper->sparse)
		return lsmt_sparse_write_dev(d, d->upper, iov, iovcnt, off, len);
	return lsmt_rw_write(d->upper, iov, iovcnt, off, len);
}

int bdev_pwrite(struct bdev *d, const void *buf, size_t len, uint64_t off)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };

	return bdev_pwritev(d, &v, 1, off);
}

/*
 * A sparse upper over lowers cannot record a discard as a hole: lsmt.md 4.4
 * rebuilds its map from allocated extents at open, so after a restart the
 * lowers' old bytes would show through where the initiator was told the
 * blocks read as zeros.  Writing zeros keeps the promise across reopens.
 */
static int discard_as_zeros(struct bdev *d, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[256 << 10];

	while (len) {
		struct iovec v = { .iov_base = (void *)zeros,
				   .iov_len = len < sizeof(zeros) ? len : sizeof(zeros) };
		int err = lsmt_sparse_write_dev(d, d->upper, &v, 1, off, v.iov_len);

		if (err)
			return err;
		off += v.iov_len;
		len -= v.iov_len;
	}
	return 0;
}

int bdev_discard(struct bdev *d, uint64_t off, uint64_t len)
{
	if (off % BDEV_SECTOR || len % BDEV_SECTOR || lsmt_check_range(off, len))
		return -EINVAL;
	if (!d->upper)
		return -EROFS;
	if (len && d->upper->sparse && d->nlayers > 0)
		return discard_as_zeros(d, off, len);
	return len ? lsmt_rw_discard(d->upper, off, len) : 0;
}

int bdev_flush(struct bdev *d)
{
	return d->upper ? lsmt_rw_sync(d->upper) : 0;
}

/* State at sector S and the end of the stretch from S with that state. */
static void state_at(struct bdev *d, uint64_t s, uint64_t limit, bool *mapped, uint64_t *end)
{
	if (d->upper) {
		struct seg x;
		size_t n;

		pthread_rwlock_rdlock(&d->upper->lock);
		n = umap_collect(&d->upper->map, s, limit, &x, 1);
		pthread_rwlock_unlock(&d->upper->lock);
		if (n && seg_lba(&x) == s) {
			*mapped = !seg_zeroed(&x);
			*end = seg_end(&x);
			return;
		}
		if (n)
			limit = seg_lba(&x);
	}
	size_t k = mtable_find(&d->idx, s);
	struct seg x = k ? mtable_seg(&d->idx, k) : (struct seg){ 0, 0 };

	if (k && seg_lba(&x) <= s) {
		*mapped = true;
		*end = seg_end(&x) < limit ? seg_end(&x) : limit;
	} else {
		*mapped = false;
		*end = k && seg_lba(&x) < limit ? seg_lba(&x) : limit;
	}
}

int bdev_map_status(struct bdev *d, uint64_t off, uint64_t *len, bool *mapped)
{
	if (off % BDEV_SECTOR || off >= d->size)
		return -EINVAL;
	/* A partial last sector still counts as one. */
	uint64_t s = off / BDEV_SECTOR, limit = (d->size + BDEV_SECTOR - 1) / BDEV_SECTOR, end;
	bool first, m;

	state_at(d, s, limit, &first, &end);
	while (end < limit) {
		state_at(d, end, limit, &m, &s);
		if (m != first)
			break;
		end = s;
	}
	*mapped = first;
	*len = (end - off / BDEV_SECTOR) * BDEV_SECTOR;
	if (*len > d->size - off)
		*len = d->size - off;
	return 0;
}
