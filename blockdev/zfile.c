/*
 * zfile: the decompressed view of a ZFile blob (zfile.md) as a read-only
 * bdev_file.  Never writes, never trusts the file: every field is checked
 * at open, and a block whose CRC or codec fails gives -EIO for the read
 * that touched it only.
 *
 * Block positions live in a jump table: one u64 base per group of 64
 * blocks plus a u32 offset inside the group per block (4.125 bytes a
 * block; zfile.md 3.5 describes the reference's denser u16 variant, which
 * cannot hold incompressible 64 KiB blocks).
 *
 * Decompressed blocks go through a small direct-mapped cache (slot = block
 * number modulo the slot count), locked per shard of slots, so sequential
 * reads smaller than a block decompress each block once.  Reads that cover
 * a whole block decompress straight into the caller's buffer.  A small
 * read that continues where the previous one ended is served from a
 * readahead window of stored (compressed) bytes, so a stream of 4 KiB
 * reads costs one raw read per window instead of one per block, and still
 * decompresses straight into the caller's buffer.
 */
#include "zfile_int.h"
#include "common/common.h"

#include <errno.h>
#include <lz4.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define ZF_GROUP 64u
#define ZF_SHARDS 16u
#define ZF_CACHE_BYTES (1u << 20)   /* per open file */
#define ZF_WINDOW (256u << 10)      /* stored bytes read ahead for small sequential reads */
#define ZF_BATCH (1u << 20)         /* uncompressed bytes per raw read */
#define ZF_NOWAIT_DECODE 16384u    /* largest LZ4 block decoded on the loop thread */
#define ZF_INDEX_CHUNK 16384u       /* index entries read at a time at open */
#define ZF_CRC_TRIES 3              /* zfile.md 3.7: the reference retries */
#define ZF_NO_BLOCK UINT64_MAX

static const uint8_t zf_magic0[8] = { 'Z', 'F', 'i', 'l', 'e', 0x00, 0x01, 0x00 };
static const uint8_t zf_magic1[16] = { 't', 'u', 'j', 'i', '.', 'y', 'y', 'f',
				       '@', 'A', 'l', 'i', 'b', 'a', 'b', 'a' };

struct zf_slot {
	uint64_t blk;
	uint8_t *buf;
};

struct zf_shard {
	pthread_mutex_t mu;
} __attribute__((aligned(64)));

/* Per-call working memory, kept for the next call: one per concurrent reader. */
struct zf_scratch {
	uint8_t *raw;     /* stored bytes of a batch */
	size_t cap;
	uint8_t *spare;   /* a block buffer on its way into the cache */
	ZSTD_DCtx *dctx;
	struct zf_scratch *next;
};

/* Stored bytes of blocks [first, end), read ahead. */
struct zf_window {
	pthread_rwlock_t lock;
	uint64_t first, end;
	uint8_t *buf;
	size_t cap;
};

struct zfile {
	struct bdev_file f;
	struct bdev_file *raw;
	bool own_raw;
	char *name;
	uint32_t bs, bs_shift;
	uint8_t algo;
	bool verify;
	uint64_t nblocks;
	uint64_t *base;  /* nblocks / ZF_GROUP + 1 */
	uint32_t *delta; /* nblocks + 1: start of block i = base[i / G] + delta[i] */

	struct zf_shard shard[ZF_SHARDS];
	struct zf_slot *slot;
	uint32_t nslots;
	uint64_t seq_next; /* block after the previous read; readahead hint */
	struct zf_window win;

	pthread_mutex_t scratch_mu;
	struct zf_scratch *scratch_free;
};

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static inline void wr64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

uint32_t zfile_ht_digest(const uint8_t in[ZF_HT_SIZE])
{
	static const uint8_t zero[4];
	uint32_t crc = crc32c_raw(0, in, 28);

	crc = crc32c_raw(crc, zero, 4);
	return crc32c_raw(crc, in + 32, ZF_HT_SIZE - 32);
}

void zfile_ht_encode(struct zfile_ht *h, uint8_t out[ZF_HT_SIZE])
{
	memset(out, 0, ZF_HT_SIZE);
	memcpy(out, zf_magic0, 8);
	memcpy(out + 8, zf_magic1, 16);
	wr32(out + 24, ZF_HT_USED);
	wr64(out + 32, h->flags);
	wr64(out + 40, h->index_offset);
	wr64(out + 48, h->index_size);
	wr64(out + 56, h->original_size);
	wr32(out + 64, h->index_crc);
	wr32(out + 72, h->block_size);
	out[76] = h->algo;
	out[77] = h->level;
	out[78] = h->use_dict;
	wr32(out + 84, h->dict_size);
	out[88] = h->verify;
	h->digest = zfile_ht_digest(out);
	wr32(out + 28, h->digest);
}

int zfile_ht_decode(const uint8_t in[ZF_HT_SIZE], struct zfile_ht *h)
{
	if (!zfile_is_zfile(in))
		return -EINVAL;
	h->digest = rd32(in + 28);
	h->flags = rd64(in + 32);
	h->index_offset = rd64(in + 40);
	h->index_size = rd64(in + 48);
	h->original_size = rd64(in + 56);
	h->index_crc = rd32(in + 64);
	h->block_size = rd32(in + 72);
	h->algo = in[76];
	h->level = in[77];
	h->use_dict = in[78];
	h->dict_size = rd32(in + 84);
	h->verify = in[88];
	return 0;
}

bool zfile_is_zfile(const void *first512)
{
	const uint8_t *p = first512;

	return !memcmp(p, zf_magic0, 8) && !memcmp(p + 8, zf_magic1, 16);
}

size_t zfile_max_stored(uint32_t block_size)
{
	size_t lz = LZ4_compressBound(block_size), zs = ZSTD_compressBound(block_size);

	return (lz > zs ? lz : zs) + 4;
}

static inline uint64_t blk_start(const struct zfile *z, uint64_t i)
{
	return z->base[i / ZF_GROUP] + z->delta[i];
}

static inline uint32_t blk_len(const struct zfile *z, uint64_t i)
{
	uint64_t end = i + 1 == z->nblocks ? z->f.size : (i + 1) << z->bs_shift;

	return end - (i << z->bs_shift);
}

/* Pop a free scratch, or make one; called with scratch_mu held, releases it. */
static struct zf_scratch *scratch_pop(struct zfile *z)
{
	struct zf_scratch *s = z->scratch_free;

	if (s)
		z->scratch_free = s->next;
	pthread_mutex_unlock(&z->scratch_mu);
	return s ? s : calloc(1, sizeof(*s));
}

static struct zf_scratch *scratch_get(struct zfile *z)
{
	pthread_mutex_lock(&z->scratch_mu);
	return scratch_pop(z);
}

/* scratch_get for the loop thread, which never waits for a lock: NULL if busy. */
static struct zf_scratch *scratch_tryget(struct zfile *z)
{
	return pthread_mutex_trylock(&z->scratch_mu) ? NULL : scratch_pop(z);
}

static void scratch_put(struct zfile *z, struct zf_scratch *s)
{
	pthread_mutex_lock(&z->scratch_mu);
	s->next = z->scratch_free;
	z->scratch_free = s;
	pthread_mutex_unlock(&z->scratch_mu);
}

static void scratch_free(struct zf_scratch *s)
{
	free(s->raw);
	free(s->spare);
	ZSTD_freeDCtx(s->dctx);
	free(s);
}

/*
 * Check and decompress stored block I (zfile.md 3.7) from SRC into DST,
 * which holds the block's uncompressed length (a longer output is
 * corrupt).  -EIO on a CRC or codec failure.
 */
static int decode_block(struct zfile *z, uint64_t i, const uint8_t *src, uint32_t stored,
			uint8_t *dst, struct zf_scratch *s)
{
	uint32_t want = blk_len(z, i), clen = stored;

	if (z->verify) {
		clen -= 4;
		if (crc32c_raw(ZF_BLOCK_CRC_SEED, src, clen) != rd32(src + clen))
			return -EIO;
	}
	if (z->algo == ZFILE_LZ4) {
		int n = LZ4_decompress_safe((const char *)src, (char *)dst, clen, want);

		return n == (int)want ? 0 : -EIO;
	}
	if (!s->dctx && !(s->dctx = ZSTD_createDCtx()))
		return -ENOMEM;
	size_t n = ZSTD_decompressDCtx(s->dctx, dst, want, src, clen);

	return !ZSTD_isError(n) && n == want ? 0 : -EIO;
}

/* Copy part of block I from the cache; false on a miss (or, with TRY, a busy shard). */
static bool cache_get(struct zfile *z, uint64_t i, void *dst, uint32_t from, uint32_t len,
		      bool try)
{
	uint32_t s = i % z->nslots;
	struct zf_shard *sh = &z->shard[s % ZF_SHARDS];
	bool hit;

	if (!try)
		pthread_mutex_lock(&sh->mu);
	else if (pthread_mutex_trylock(&sh->mu))
		return false;
	hit = z->slot[s].blk == i;
	if (hit)
		memcpy(dst, z->slot[s].buf + from, len);
	pthread_mutex_unlock(&sh->mu);
	return hit;
}

/* Put BUF (block I) into its slot; returns the buffer it displaced. */
static uint8_t *cache_put(struct zfile *z, uint64_t i, uint8_t *buf)
{
	uint32_t s = i % z->nslots;
	struct zf_shard *sh = &z->shard[s % ZF_SHARDS];
	uint8_t *old;

	pthread_mutex_lock(&sh->mu);
	old = z->slot[s].buf;
	z->slot[s].buf = buf;
	z->slot[s].blk = i;
	pthread_mutex_unlock(&sh->mu);
	return old;
}

static int read_stored(struct zfile *z, uint8_t *dst, uint64_t first, uint64_t end)
{
	uint64_t off = blk_start(z, first);

	return bdev_file_pread_full(z->raw, dst, blk_start(z, end) - off, off);
}

/*
 * Decode block I from its stored bytes SRC for the request at BUF (which
 * starts at uncompressed offset OFF, LEN bytes): straight into BUF when the
 * request covers the whole block, else through the cache.
 */
static int serve_block(struct zfile *z, struct zf_scratch *s, uint64_t i, const uint8_t *src,
		       uint32_t stored, uint8_t *buf, uint64_t off, size_t len)
{
	uint64_t bstart = i << z->bs_shift, bend = bstart + blk_len(z, i);
	uint64_t from = off > bstart ? off : bstart;
	uint64_t to = off + len < bend ? off + len : bend;
	bool whole = from == bstart && to == bend;
	int rc;

	if (whole)
		return decode_block(z, i, src, stored, buf + (bstart - off), s);
	if (!s->spare && !(s->spare = malloc(z->bs)))
		return -ENOMEM;
	rc = decode_block(z, i, src, stored, s->spare, s);
	if (rc)
		return rc;
	memcpy(buf + (from - off), s->spare + (from - bstart), to - from);
	s->spare = cache_put(z, i, s->spare);
	return 0;
}

/* Blocks [FIRST, END) of the request, with one raw read. */
static int read_batch(struct zfile *z, uint64_t first, uint64_t end, uint8_t *buf,
		      uint64_t off, size_t len)
{
	uint64_t base = blk_start(z, first), need = blk_start(z, end) - base;
	struct zf_scratch *s = scratch_get(z);
	int rc;

	if (!s)
		return -ENOMEM;
	if (s->cap < need) {
		free(s->raw);
		s->cap = 0;
		if (!(s->raw = malloc(need))) {
			scratch_put(z, s);
			return -ENOMEM;
		}
		s->cap = need;
	}
	rc = read_stored(z, s->raw, first, end);
	for (uint64_t i = first; rc == 0 && i < end; i++) {
		uint32_t stored = blk_start(z, i + 1) - blk_start(z, i);
		uint8_t *src = s->raw + (blk_start(z, i) - base);

		rc = serve_block(z, s, i, src, stored, buf, off, len);
		for (int t = 1; rc == -EIO && t < ZF_CRC_TRIES; t++) {
			/* zfile.md 3.7: a remote source may return good bytes on a retry. */
			if (bdev_file_pread_full(z->raw, src, stored, blk_start(z, i)) == 0)
				rc = serve_block(z, s, i, src, stored, buf, off, len);
		}
		if (rc == -EIO)
			log_error("%s: block %llu (offset %llu) fails its %s check", z->name,
				  (unsigned long long)i, (unsigned long long)i << z->bs_shift,
				  z->verify ? "CRC" : "decompression");
	}
	scratch_put(z, s);
	return rc;
}

/* Serve block I from the window: -ENOENT when the window does not hold it
 * (with TRY, also while a fill holds the window). */
static int window_serve(struct zfile *z, uint64_t i, uint8_t *buf, uint64_t off, size_t len,
			bool try)
{
	struct zf_window *w = &z->win;
	struct zf_scratch *s;
	int rc = -ENOENT;

	if (!try)
		pthread_rwlock_rdlock(&w->lock);
	else if (pthread_rwlock_tryrdlock(&w->lock))
		return -ENOENT;
	s = scratch_get(z);
	if (!s)
		rc = -ENOMEM;
	else if (i >= w->first && i < w->end)
		rc = serve_block(z, s, i, w->buf + (blk_start(z, i) - blk_start(z, w->first)),
				 blk_start(z, i + 1) - blk_start(z, i), buf, off, len);
	pthread_rwlock_unlock(&w->lock);
	if (s)
		scratch_put(z, s);
	return rc;
}

/* Load the window with as many blocks from I on as ZF_WINDOW stored bytes hold. */
static int window_fill(struct zfile *z, uint64_t i)
{
	struct zf_window *w = &z->win;
	uint64_t base = blk_start(z, i), end = i + 1;
	int rc = 0;

	while (end < z->nblocks && blk_start(z, end + 1) - base <= ZF_WINDOW)
		end++;
	pthread_rwlock_wrlock(&w->lock);
	if (i < w->first || i >= w->end) {
		size_t need = blk_start(z, end) - base;

		w->first = w->end = 0;
		if (w->cap < need) {
			free(w->buf);
			w->cap = need > ZF_WINDOW ? need : ZF_WINDOW;
			if (!(w->buf = malloc(w->cap)))
				w->cap = 0;
		}
		rc = w->buf ? read_stored(z, w->buf, i, end) : -ENOMEM;
		if (rc == 0) {
			w->first = i;
			w->end = end;
		}
	}
	pthread_rwlock_unlock(&w->lock);
	return rc;
}

static ssize_t zf_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct zfile *z = (struct zfile *)f;
	uint64_t first, last, i, batch_blocks;
	bool windowed;

	if (off >= f->size || len == 0)
		return 0;
	if (len > f->size - off)
		len = f->size - off;
	first = off >> z->bs_shift;
	last = (off + len - 1) >> z->bs_shift;
	/* Small reads that continue the previous one use the window. */
	windowed = len <= ZF_WINDOW / 2 &&
		   __atomic_load_n(&z->seq_next, __ATOMIC_RELAXED) == first;
	__atomic_store_n(&z->seq_next, (off + len) >> z->bs_shift, __ATOMIC_RELAXED);
	batch_blocks = ZF_BATCH >> z->bs_shift;

	for (i = first; i <= last;) {
		uint64_t bstart = i << z->bs_shift, bend = bstart + blk_len(z, i);
		uint64_t from = off > bstart ? off : bstart;
		uint64_t to = off + len < bend ? off + len : bend;
		uint64_t end;
		int rc;

		if (cache_get(z, i, (uint8_t *)buf + (from - off), from - bstart, to - from, false)) {
			i++;
			continue;
		}
		if (windowed) {
			rc = window_serve(z, i, buf, off, len, false);
			if (rc == -ENOENT && window_fill(z, i) == 0)
				rc = window_serve(z, i, buf, off, len, false);
			if (rc == 0) {
				i++;
				continue;
			}
			/* Anything else: the direct path below reads again and retries. */
		}
		end = windowed ? i + 1 : last + 1;
		if (end - i > batch_blocks)
			end = i + batch_blocks;
		rc = read_batch(z, i, end, buf, off, len);
		if (rc)
			return rc;
		i = end;
	}
	return len;
}

/*
 * Small LZ4 block I decoded on the loop thread from stored bytes the raw
 * file has in the page cache (its own pread_nowait): a few microseconds,
 * less than handing a random read to a worker and back.  -EAGAIN for
 * anything that would block, and for a bad block, which the worker path
 * retries and logs.
 */
static int direct_nowait(struct zfile *z, uint64_t i, uint8_t *buf, uint64_t off, size_t len)
{
	uint64_t at = blk_start(z, i);
	uint32_t stored = blk_start(z, i + 1) - at;
	struct zf_scratch *s;
	int rc = -EAGAIN;

	if (!z->raw->ops->pread_nowait || !(s = scratch_tryget(z)))
		return -EAGAIN;
	if (s->cap < stored) {
		size_t want = z->bs > stored ? z->bs : stored;

		free(s->raw);
		s->raw = malloc(want);
		s->cap = s->raw ? want : 0;
	}
	if (s->cap >= stored && z->raw->ops->pread_nowait(z->raw, s->raw, stored, at) == stored &&
	    serve_block(z, s, i, s->raw, stored, buf, off, len) == 0)
		rc = 0;
	scratch_put(z, s);
	return rc;
}

/*
 * The event loop's fast path (bdev_file_ops.pread_nowait): blocks already
 * decompressed in the cache, and small LZ4 blocks from the readahead window
 * or the page cache (a few microseconds of decoding); never a read that
 * could block, nor a wait for a lock.  Anything else is -EAGAIN and goes
 * to a worker.
 */
static ssize_t zf_pread_nowait(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct zfile *z = (struct zfile *)f;
	bool decode = z->algo == ZFILE_LZ4 && z->bs <= ZF_NOWAIT_DECODE;
	uint64_t first, last;

	if (off >= f->size || len == 0)
		return 0;
	if (len > f->size - off)
		len = f->size - off;
	first = off >> z->bs_shift;
	last = (off + len - 1) >> z->bs_shift;
	for (uint64_t i = first; i <= last; i++) {
		uint64_t bstart = i << z->bs_shift, bend = bstart + blk_len(z, i);
		uint64_t from = off > bstart ? off : bstart;
		uint64_t to = off + len < bend ? off + len : bend;

		if (cache_get(z, i, (uint8_t *)buf + (from - off), from - bstart, to - from, true))
			continue;
		if (!decode)
			return -EAGAIN;
		if (window_serve(z, i, buf, off, len, true) == 0)
			continue;
		if (direct_nowait(z, i, buf, off, len) != 0)
			return -EAGAIN;
	}
	__atomic_store_n(&z->seq_next, (off + len) >> z->bs_shift, __ATOMIC_RELAXED);
	return len;
}

static const char *zf_name(struct bdev_file *f)
{
	return ((struct zfile *)f)->name;
}

static void zf_close(struct bdev_file *f)
{
	struct zfile *z = (struct zfile *)f;

	if (!z)
		return;
	for (uint32_t s = 0; z->slot && s < z->nslots; s++)
		free(z->slot[s].buf);
	for (unsigned s = 0; s < ZF_SHARDS; s++)
		pthread_mutex_destroy(&z->shard[s].mu);
	while (z->scratch_free) {
		struct zf_scratch *s = z->scratch_free;

		z->scratch_free = s->next;
		scratch_free(s);
	}
	pthread_mutex_destroy(&z->scratch_mu);
	pthread_rwlock_destroy(&z->win.lock);
	free(z->win.buf);
	if (z->own_raw)
		bdev_file_close(z->raw);
	free(z->slot);
	free(z->base);
	free(z->delta);
	free(z->name);
	free(z);
}

static const struct bdev_file_ops zfile_ops = {
	.pread = zf_pread,
	.pread_nowait = zf_pread_nowait,
	.name = zf_name,
	.close = zf_close,
};

/*
 * zfile.md 3.3: the fields of the chosen header or trailer, every one read
 * from an untrusted file, so each size computation is checked for overflow
 * before it is compared: a wrapped block count would let a tiny index
 * describe a huge device and send reads past the jump table.  LIMIT is
 * where the trailer starts.
 */
static int check_fields(const struct zfile_ht *ht, uint64_t limit, const char **why)
{
	uint64_t nblocks, index_bytes, index_end;

	if (ht->flags & ZF_FLAG_INDEX_COMPRESSED)
		return *why = "compressed index is not supported", -EINVAL;
	if (ht->algo != ZFILE_LZ4 && ht->algo != ZFILE_ZSTD)
		return *why = "unsupported algorithm", -EINVAL;
	if (ht->use_dict || ht->dict_size)
		return *why = "dictionaries are not supported", -EINVAL;
	if (ht->block_size < 512 || ht->block_size > ZF_MAX_BLOCK ||
	    (ht->block_size & (ht->block_size - 1)))
		return *why = "bad block size", -EINVAL;
	/* A round-up division that cannot wrap, unlike (size + bs - 1) / bs. */
	nblocks = ht->original_size / ht->block_size + (ht->original_size % ht->block_size != 0);
	if (ht->index_size > ZF_MAX_BLOCKS || ht->index_size != nblocks)
		return *why = "block count does not match the size", -EINVAL;
	if (ht->index_offset < ZF_HT_SIZE ||
	    __builtin_mul_overflow(ht->index_size, (uint64_t)sizeof(uint32_t), &index_bytes) ||
	    __builtin_add_overflow(ht->index_offset, index_bytes, &index_end) || index_end > limit)
		return *why = "index outside the file", -EINVAL;
	return 0;
}

/* zfile.md 3.1-3.3: pick the header or the trailer and check its fields. */
static int load_ht(struct zfile *z, struct zfile_ht *ht, const char **why)
{
	uint8_t b[ZF_HT_SIZE];
	struct zfile_ht t;
	uint64_t fsize = z->raw->size, limit;
	int rc;

	if (fsize < ZF_HT_SIZE)
		return *why = "shorter than a header", -EINVAL;
	rc = bdev_file_pread_full(z->raw, b, ZF_HT_SIZE, 0);
	if (rc)
		return *why = "cannot read the header", rc;
	if (zfile_ht_decode(b, ht) || !(ht->flags & ZF_FLAG_HEADER))
		return *why = "bad header magic", -EINVAL;
	if (!(ht->flags & ZF_FLAG_DIGEST) || zfile_ht_digest(b) != ht->digest)
		return *why = "header digest mismatch", -EINVAL;
	/* The writer always ends with a trailer; an authoritative header does
	 * not make a file cut short of it valid. */
	if (fsize < 2 * ZF_HT_SIZE)
		return *why = "no room for a trailer", -EINVAL;
	limit = fsize - ZF_HT_SIZE;
	if (!(ht->flags & ZF_FLAG_OVERWRITTEN)) {
		if (!(ht->flags & ZF_FLAG_DATA))
			return *why = "header lacks the data flag", -EINVAL;
		rc = bdev_file_pread_full(z->raw, b, ZF_HT_SIZE, limit);
		if (rc)
			return *why = "cannot read the trailer", rc;
		if (zfile_ht_decode(b, &t) || (t.flags & ZF_FLAG_HEADER) ||
		    !(t.flags & ZF_FLAG_DATA) || !(t.flags & ZF_FLAG_SEALED))
			return *why = "bad trailer", -EINVAL;
		/* zfile.md 9.2: the reference skips this check; the writer always sets it. */
		if ((t.flags & ZF_FLAG_DIGEST) && zfile_ht_digest(b) != t.digest)
			return *why = "trailer digest mismatch", -EINVAL;
		*ht = t;
	}
	return check_fields(ht, limit, why);
}

/* zfile.md 3.4-3.5: read the length array into the jump table. */
static int load_index(struct zfile *z, const struct zfile_ht *ht, const char **why)
{
	uint64_t n = ht->index_size, pos = ZF_HT_SIZE, gbase = pos;
	size_t max = zfile_max_stored(z->bs), min = z->verify ? 5 : 1;
	uint32_t *chunk = malloc(ZF_INDEX_CHUNK * 4), crc = 0;
	int rc = 0;

	z->base = calloc(n / ZF_GROUP + 1, sizeof(*z->base));
	z->delta = calloc(n + 1, sizeof(*z->delta));
	if (!chunk || !z->base || !z->delta) {
		free(chunk);
		return *why = "out of memory", -ENOMEM;
	}
	for (uint64_t i = 0; i < n && rc == 0;) {
		uint64_t cnt = n - i < ZF_INDEX_CHUNK ? n - i : ZF_INDEX_CHUNK;

		rc = bdev_file_pread_full(z->raw, chunk, cnt * 4, ht->index_offset + i * 4);
		if (rc) {
			*why = "cannot read the index";
			break;
		}
		crc = crc32c_raw(crc, chunk, cnt * 4);
		for (uint64_t k = 0; k < cnt; k++, i++) {
			uint32_t l = le32toh(chunk[k]);

			if (i % ZF_GROUP == 0)
				z->base[i / ZF_GROUP] = gbase = pos;
			z->delta[i] = pos - gbase;
			if (l < min || l > max) {
				*why = "bad block length in the index";
				rc = -EINVAL;
				break;
			}
			pos += l;
		}
	}
	free(chunk);
	if (rc)
		return rc;
	if (n % ZF_GROUP == 0)
		z->base[n / ZF_GROUP] = gbase = pos;
	z->delta[n] = pos - gbase;
	if (pos > ht->index_offset)
		return *why = "blocks run into the index", -EINVAL;
	if ((ht->flags & ZF_FLAG_DIGEST) && crc != ht->index_crc)
		return *why = "index CRC mismatch", -EINVAL;
	return 0;
}

static int open_view(struct bdev_file *raw, bool own, struct bdev_file **out)
{
	struct zfile *z = calloc(1, sizeof(*z));
	const char *why = NULL, *rname = bdev_file_name(raw);
	struct zfile_ht ht;
	int rc;

	if (!z) {
		if (own)
			bdev_file_close(raw);
		return -ENOMEM;
	}
	z->raw = raw;
	z->own_raw = own;
	z->f.ops = &zfile_ops;
	for (unsigned s = 0; s < ZF_SHARDS; s++)
		pthread_mutex_init(&z->shard[s].mu, NULL);
	pthread_mutex_init(&z->scratch_mu, NULL);
	pthread_rwlock_init(&z->win.lock, NULL);
	z->seq_next = ZF_NO_BLOCK;
	rc = load_ht(z, &ht, &why);
	if (rc == 0) {
		z->bs = ht.block_size;
		z->bs_shift = __builtin_ctz(ht.block_size);
		z->algo = ht.algo;
		z->verify = ht.verify != 0;
		z->nblocks = ht.index_size;
		z->f.size = ht.original_size;
		rc = load_index(z, &ht, &why);
	}
	if (rc == 0) {
		z->nslots = ZF_CACHE_BYTES / z->bs;
		z->slot = malloc(z->nslots * sizeof(*z->slot));
		if (asprintf(&z->name, "zfile(%s)", rname) < 0)
			z->name = NULL;
		if (!z->slot || !z->name) {
			why = "out of memory";
			rc = -ENOMEM;
		}
	}
	if (rc) {
		log_error("%s: not a valid ZFile: %s", rname, why);
		zf_close(&z->f);
		return rc;
	}
	for (uint32_t s = 0; s < z->nslots; s++)
		z->slot[s] = (struct zf_slot){ .blk = ZF_NO_BLOCK };
	*out = &z->f;
	return 0;
}

int zfile_open(struct bdev_file *raw, struct bdev_file **out)
{
	return open_view(raw, true, out);
}

int zfile_open_borrowed(struct bdev_file *raw, struct bdev_file **out)
{
	return open_view(raw, false, out);
}

int zfile_info(struct bdev_file *raw, struct zfile_opts *opts, uint64_t *size)
{
	struct zfile *z = calloc(1, sizeof(*z));
	struct zfile_ht ht;
	const char *why = NULL;
	int rc;

	if (!z)
		return -ENOMEM;
	z->raw = raw;
	rc = load_ht(z, &ht, &why);
	free(z);
	if (rc)
		return rc;
	opts->algo = ht.algo;
	opts->block_size = ht.block_size;
	opts->verify = ht.verify != 0;
	opts->overwrite_header = (ht.flags & ZF_FLAG_OVERWRITTEN) != 0;
	*size = ht.original_size;
	return 0;
}
