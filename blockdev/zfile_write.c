/*
 * zfile_write: the ZFile compressor and the whole-file decompressor.
 * Follows the reference writer step by step (zfile.md 7) so that the same
 * input, options and codec versions give the same bytes: header with zero
 * index fields, blocks back to back (each followed by its CRC when
 * verifying), the u32 length array, the trailer, and optionally the header
 * rewritten with the trailer's fields.
 */
#include "zfile_int.h"
#include "common/common.h"

#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define ZW_CHUNK (1u << 20)   /* input bytes compressed per round */
#define ZW_ZSTD_LEVEL 3       /* zfile.md 5 */

struct zw {
	struct bdev_file *dst;
	const struct zfile_opts *o;
	ZSTD_CCtx *cctx;
	uint8_t *in, *out;
	uint32_t *lens;
	uint64_t nblocks, pos;
};

static int put(struct zw *w, const void *buf, size_t len)
{
	ssize_t n = w->dst->ops->pwrite(w->dst, buf, len, w->pos);

	if (n < 0)
		return n;
	if ((size_t)n != len)
		return -EIO;
	w->pos += len;
	return 0;
}

/* Compress the N bytes at W->in (whole blocks, the last maybe short). */
static int compress_chunk(struct zw *w, size_t n)
{
	uint32_t bs = w->o->block_size;
	size_t max = zfile_max_stored(bs), used = 0;

	for (size_t off = 0; off < n; off += bs) {
		size_t len = n - off < bs ? n - off : bs, clen;
		uint8_t *dst = w->out + used;

		if (w->o->algo == ZFILE_LZ4) {
			int r = LZ4_compress_default((const char *)w->in + off, (char *)dst, len,
						     max - 4);

			if (r <= 0)
				return -EIO;
			clen = r;
		} else {
			clen = ZSTD_compressCCtx(w->cctx, dst, max - 4, w->in + off, len,
						 ZW_ZSTD_LEVEL);
			if (ZSTD_isError(clen))
				return -EIO;
		}
		if (w->o->verify) {
			uint32_t crc = htole32(crc32c_raw(ZF_BLOCK_CRC_SEED, dst, clen));

			memcpy(dst + clen, &crc, 4);
			clen += 4;
		}
		w->lens[w->nblocks++] = htole32(clen);
		used += clen;
	}
	return put(w, w->out, used);
}

static int write_all(struct zw *w, struct bdev_file *src, uint64_t len)
{
	uint32_t bs = w->o->block_size;
	struct zfile_ht ht = {
		.flags = ZF_FLAG_HEADER | ZF_FLAG_DATA | ZF_FLAG_DIGEST,
		.block_size = bs,
		.algo = w->o->algo,
		.verify = w->o->verify,
	};
	uint8_t b[ZF_HT_SIZE];
	int rc;

	zfile_ht_encode(&ht, b);
	rc = put(w, b, ZF_HT_SIZE);
	for (uint64_t off = 0; rc == 0 && off < len; off += ZW_CHUNK) {
		size_t n = len - off < ZW_CHUNK ? len - off : ZW_CHUNK;

		rc = bdev_file_pread_full(src, w->in, n, off);
		if (rc == 0)
			rc = compress_chunk(w, n);
	}
	if (rc)
		return rc;
	ht.index_offset = w->pos;
	ht.index_size = w->nblocks;
	ht.original_size = len;
	ht.index_crc = crc32c_raw(0, w->lens, w->nblocks * 4);
	rc = put(w, w->lens, w->nblocks * 4);
	if (rc)
		return rc;
	ht.flags = ZF_FLAG_DATA | ZF_FLAG_SEALED | ZF_FLAG_DIGEST;
	zfile_ht_encode(&ht, b);
	rc = put(w, b, ZF_HT_SIZE);
	if (rc || !w->o->overwrite_header)
		return rc;
	/* zfile.md 7.5: the trailer's content, as a header marked authoritative. */
	ht.flags = ZF_FLAG_HEADER | ZF_FLAG_DATA | ZF_FLAG_OVERWRITTEN | ZF_FLAG_DIGEST;
	zfile_ht_encode(&ht, b);
	ssize_t n = w->dst->ops->pwrite(w->dst, b, ZF_HT_SIZE, 0);

	return n < 0 ? (int)n : n == ZF_HT_SIZE ? 0 : -EIO;
}

int zfile_compress(struct bdev_file *src, uint64_t len, struct bdev_file *dst,
		   const struct zfile_opts *opts)
{
	static const struct zfile_opts defaults = { .algo = ZFILE_LZ4, .block_size = 4096 };
	const struct zfile_opts *o = opts ? opts : &defaults;
	uint32_t bs = o->block_size;
	uint64_t nblocks = (len + bs - 1) / (bs ? bs : 1);
	struct zw w = { .dst = dst, .o = o };
	int rc;

	if (bs < 4096 || bs > ZF_MAX_BLOCK || (bs & (bs - 1)) ||
	    (o->algo != ZFILE_LZ4 && o->algo != ZFILE_ZSTD) || !dst->ops->pwrite || dst->size ||
	    nblocks > ZF_MAX_BLOCKS)
		return -EINVAL;
	w.in = malloc(ZW_CHUNK);
	w.out = malloc(ZW_CHUNK / bs * zfile_max_stored(bs));
	w.lens = malloc(nblocks ? nblocks * 4 : 4);
	if (o->algo == ZFILE_ZSTD)
		w.cctx = ZSTD_createCCtx();
	if (!w.in || !w.out || !w.lens || (o->algo == ZFILE_ZSTD && !w.cctx))
		rc = -ENOMEM;
	else
		rc = write_all(&w, src, len);
	ZSTD_freeCCtx(w.cctx);
	free(w.in);
	free(w.out);
	free(w.lens);
	return rc;
}

int zfile_decompress(struct bdev_file *src, struct bdev_file *dst)
{
	struct bdev_file *v = NULL;
	uint8_t *buf;
	int rc = zfile_open_borrowed(src, &v);

	if (rc)
		return rc;
	buf = malloc(ZW_CHUNK);
	if (!buf)
		rc = -ENOMEM;
	for (uint64_t off = 0; rc == 0 && off < v->size; off += ZW_CHUNK) {
		size_t n = v->size - off < ZW_CHUNK ? v->size - off : ZW_CHUNK;

		rc = bdev_file_pread_full(v, buf, n, off);
		if (rc == 0 && dst) {
			ssize_t w = dst->ops->pwrite(dst, buf, n, off);

			rc = w < 0 ? (int)w : (size_t)w == n ? 0 : -EIO;
		}
	}
	free(buf);
	bdev_file_close(v);
	return rc;
}
