/*
 * Internal declarations shared by the LSMT files of blockdev/ (lsmt.c,
 * lsmt_rw.c, lsmt_commit.c, stack.c).  Nothing here is public API.
 */
#ifndef OBD_BDEV_INT_H
#define OBD_BDEV_INT_H

#include "bdev.h"

#include <assert.h>
#include <pthread.h>

#define LSMT_HT_SIZE 4096u
#define LSMT_MAX_LEN 16383u                /* lsmt.md 3: 2^14 - 1 sectors */
#define LSMT_INVALID_OFF ((1ull << 50) - 1) /* lsmt.md 3: padding entry */
/* lsmt.md 3: an entry's offset is 50 bits of sectors and the all-ones value
 * marks padding, so a layer addresses sectors [0, LSMT_MAX_SECTORS) only;
 * a segment KEY (lba << 14) past that would wrap. */
#define LSMT_MAX_SECTORS LSMT_INVALID_OFF
#define LSMT_MAX_VSIZE (LSMT_MAX_SECTORS * BDEV_SECTOR)
#define LSMT_MAX_RO_ENTRIES 1000000ull      /* lsmt.md 3: size limits */
#define LSMT_MAX_RW_ENTRIES 128000000ull
#define LSMT_WRITE_PIECE (4u << 20)         /* lsmt.md 4.2: writes split at 4 MiB */

/* lsmt.md 2: flags */
#define HT_HEADER 0x01u
#define HT_DATA 0x02u
#define HT_SEALED 0x04u
#define HT_SPARSE 0x10u

/*
 * One mapping segment, 16 bytes.  KEY = lba << 14 | length, so sorting or
 * searching by KEY orders segments by first sector with a single compare;
 * VAL = moffset | zeroed << 55 | tag << 56 (the on-disk word1).  In the
 * merged table of a stack the tag is the layer number.
 */
struct seg {
	uint64_t key;
	uint64_t val;
};

#define SEG_MOFF_MASK ((1ull << 55) - 1)
#define SEG_ZEROED (1ull << 55)

static inline uint64_t seg_lba(const struct seg *s) { return s->key >> 14; }
static inline uint32_t seg_len(const struct seg *s) { return s->key & 0x3fff; }
static inline uint64_t seg_end(const struct seg *s) { return seg_lba(s) + seg_len(s); }
static inline uint64_t seg_moff(const struct seg *s) { return s->val & SEG_MOFF_MASK; }
static inline bool seg_zeroed(const struct seg *s) { return s->val & SEG_ZEROED; }
static inline unsigned seg_tag(const struct seg *s) { return s->val >> 56; }

static inline struct seg seg_make(uint64_t lba, uint32_t len, uint64_t moff, bool zeroed,
				  unsigned tag)
{
	/* Callers bound every range at the edge (open, write); this is the
	 * invariant that keeps KEY from wrapping. */
	assert(lba < LSMT_MAX_SECTORS && len <= LSMT_MAX_LEN);
	struct seg s = {
		.key = lba << 14 | len,
		.val = (moff & SEG_MOFF_MASK) | (zeroed ? SEG_ZEROED : 0) | (uint64_t)tag << 56,
	};
	return s;
}

/* Sub-range [lba, lba+len) of S (which must contain it), moffset moved along. */
static inline struct seg seg_clip(const struct seg *s, uint64_t lba, uint64_t len)
{
	uint64_t moff = seg_moff(s);

	if (!seg_zeroed(s))
		moff += lba - seg_lba(s);
	return seg_make(lba, len, moff, seg_zeroed(s), seg_tag(s));
}

/* Index of the first segment of the sorted array with end > LBA (N if none). */
size_t seg_find(const struct seg *a, size_t n, uint64_t lba);

/*
 * The merged read-only index of a stack (lsmt_index.c): segments in
 * Eytzinger order, positions 1..N; position 0 means "none".
 */
struct mtable {
	uint64_t *key, *val;
	size_t n;
};

int mtable_build(const struct seg *sorted, size_t n, struct mtable *t);
void mtable_free(struct mtable *t);
/* Position of the first segment (in LBA order) with end > LBA, or 0. */
size_t mtable_find(const struct mtable *t, uint64_t lba);
/* Position of the segment after K in LBA order, or 0. */
size_t mtable_next(const struct mtable *t, size_t k);

static inline struct seg mtable_seg(const struct mtable *t, size_t k)
{
	struct seg s = { t->key[k], t->val[k] };

	return s;
}

/*
 * Writable layer map (lsmt.md 4.2): an interval map kept as a list of
 * sorted chunks so an insert moves at most one chunk's entries.
 */
struct umap {
	struct seg **chunk;
	uint32_t *cn;      /* entries in each chunk */
	uint64_t *cfirst;  /* lba of each chunk's first entry */
	size_t nchunks, cap;
	uint64_t count;
};

void umap_init(struct umap *m);
void umap_free(struct umap *m);
/* Newer segment S replaces whatever it overlaps (lsmt.md 4.2 replay). */
int umap_insert(struct umap *m, struct seg s);
/*
 * Copy up to MAX segments that overlap [lba, end), in order, clipped to
 * the range.  Returns the count.
 */
size_t umap_collect(const struct umap *m, uint64_t lba, uint64_t end, struct seg *out,
		    size_t max);
/* All segments as one sorted array (caller frees). */
int umap_export(const struct umap *m, struct seg **out, size_t *n);

struct lsmt_layer {
	struct bdev_file *data;  /* sealed blob or writable data file */
	struct bdev_file *index; /* writable index log; NULL when sealed */
	struct lsmt_info info;   /* info.virtual_size etc. */
	uint32_t hdr_flags;      /* of the (data) header */

	/* sealed: the validated index */
	struct seg *segs;
	size_t nsegs;

	/* writable */
	struct umap map;
	pthread_rwlock_t lock;   /* guards MAP: many readers, one inserter */
	pthread_mutex_t log_mu;  /* orders log appends with map inserts */
	uint64_t data_end;       /* bytes; next append position */
	uint64_t index_end;      /* bytes; next log position */
	bool sparse;             /* lsmt.md 4.4: in-place data, INDEX unused */
	uint32_t sparse_bs;      /* host block size of a sparse data file */
};

static inline bool lsmt_is_rw(const struct lsmt_layer *l) { return l->index != NULL; }

/* The layer's segments as one sorted array: borrowed (*OWNED false) for a
 * sealed layer, a snapshot for a writable one. */
int lsmt_segments(struct lsmt_layer *l, const struct seg **out, size_t *n, bool *owned);

/* -EINVAL, logged with NAME, when VSIZE is past what segments can address. */
int lsmt_check_vsize(const char *name, uint64_t vsize);
/* -EINVAL when bytes [OFF, OFF+LEN) reach past what segments can address. */
int lsmt_check_range(uint64_t off, uint64_t len);

/* Header/trailer block helpers (lsmt.c). */
struct lsmt_ht {
	uint32_t flags;
	uint64_t index_offset, index_size, virtual_size;
	char uuid[37], parent_uuid[37];
	char user_tag[257];
};

void lsmt_ht_encode(const struct lsmt_ht *h, uint8_t out[LSMT_HT_SIZE]);
/* -EINVAL when the magic does not match. */
int lsmt_ht_decode(const uint8_t in[LSMT_HT_SIZE], struct lsmt_ht *h);
void lsmt_info_from_ht(struct lsmt_info *info, const struct lsmt_ht *h);
bool lsmt_uuid_valid(const char *s);
void lsmt_uuid_generate(char out[37]);
extern const char lsmt_null_uuid[37];

/* The buffered descriptor of a local file (file.c), -EINVAL for any other
 * kind: sparse layers need lseek(SEEK_DATA) and fallocate on it. */
int bdev_file_local_fd(struct bdev_file *f);

/* Sparse writable layer (lsmt_sparse.c, lsmt.md 4.4): the map from the data
 * file's allocated extents; I/O in place at 4096 + offset. */
int lsmt_sparse_load(struct lsmt_layer *l);
int lsmt_sparse_write(struct lsmt_layer *l, const struct iovec *iov, int iovcnt, uint64_t off,
		      size_t len);
/* A write into device D whose upper is the sparse L, widened to whole host
 * blocks so a reopen's extent map never hides the lowers. */
int lsmt_sparse_write_dev(struct bdev *d, struct lsmt_layer *l, const struct iovec *iov,
			  int iovcnt, uint64_t off, size_t len);
int lsmt_sparse_discard(struct lsmt_layer *l, uint64_t off, uint64_t len);
int lsmt_sparse_set_vsize(struct lsmt_layer *l, uint64_t vsize);

/* Writable layer I/O (lsmt_rw.c); offsets and lengths in bytes. */
int lsmt_rw_write(struct lsmt_layer *l, const struct iovec *iov, int iovcnt, uint64_t off,
		  size_t len);
int lsmt_rw_discard(struct lsmt_layer *l, uint64_t off, uint64_t len);
int lsmt_rw_sync(struct lsmt_layer *l);
/* lsmt.md 6: a stacked writable layer with virtual_size 0 takes the lowers'. */
int lsmt_rw_set_vsize(struct lsmt_layer *l, uint64_t vsize);

/*
 * Merge sorted segment lists into the view where the topmost wins (lsmt.md 6).
 * LISTS[0] is the bottom.  Each output segment's tag is TAGS[i] of its
 * list.  Zeroed segments are dropped when DROP_ZEROED.
 */
int seg_merge(const struct seg *const *lists, const size_t *counts, const unsigned *tags,
	      int n, bool drop_zeroed, struct seg **out, size_t *nout);

/* trace_fmt.c: the trace file's bytes (docs/trace.md). */
#define TRACE_HDR_SIZE 24
#define TRACE_REC_SIZE 24
#define TRACE_OP_READ 'R'
#define TRACE_OP_WRITE 'W'

struct trace_fmt_rec {
	char op;
	uint32_t layer;
	uint64_t count, offset;
};

/* Does BUF start like a trace?  (Else it may be a file list.) */
bool trace_fmt_has_magic(const uint8_t *buf, size_t size);
/* Header magic, size against the file's SIZE, checksum; logs and -EINVAL. */
int trace_fmt_check(const uint8_t *buf, size_t size, const char *path);
/* Record I of a checked file. */
void trace_fmt_get(const uint8_t *buf, size_t i, struct trace_fmt_rec *r);
/* Fill record I of a file being written, then the header over NRECS. */
void trace_fmt_put(uint8_t *buf, size_t i, const struct trace_fmt_rec *r);
void trace_fmt_put_header(uint8_t *buf, size_t nrecs);

#endif
