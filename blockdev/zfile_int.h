/*
 * Internal declarations shared by zfile.c (reader) and zfile_write.c
 * (compressor): the 512-byte header/trailer codec and the codec helpers.
 * Nothing here is public API.
 */
#ifndef OBD_ZFILE_INT_H
#define OBD_ZFILE_INT_H

#include "bdev.h"

#define ZF_HT_SIZE 512u
#define ZF_HT_USED 96u           /* zfile.md 2: "size" field */
#define ZF_MAX_BLOCK 65536u      /* zfile.md 2: readers reject larger blocks */
#define ZF_MAX_BLOCKS 1000000000ull /* zfile.md 3.3 */
#define ZF_BLOCK_CRC_SEED 100007u   /* zfile.md 4: per-block checksum seed */

/* zfile.md 2: flags */
#define ZF_FLAG_HEADER 0x01u
#define ZF_FLAG_DATA 0x02u
#define ZF_FLAG_SEALED 0x04u
#define ZF_FLAG_OVERWRITTEN 0x08u
#define ZF_FLAG_DIGEST 0x10u
#define ZF_FLAG_INDEX_COMPRESSED 0x20u

struct zfile_ht {
	uint32_t digest; /* as stored */
	uint64_t flags;
	uint64_t index_offset;
	uint64_t index_size; /* blocks */
	uint64_t original_size;
	uint32_t index_crc;
	uint32_t block_size;
	uint8_t algo;
	uint8_t level;
	uint8_t use_dict;
	uint32_t dict_size;
	uint8_t verify;
};

/* Encode H into OUT, computing the digest (zfile.md 4) into OUT and H. */
void zfile_ht_encode(struct zfile_ht *h, uint8_t out[ZF_HT_SIZE]);
/* -EINVAL on a bad magic; fills H without judging the flags. */
int zfile_ht_decode(const uint8_t in[ZF_HT_SIZE], struct zfile_ht *h);
/* The digest of a 512-byte block (bytes 28..31 taken as zero). */
uint32_t zfile_ht_digest(const uint8_t in[ZF_HT_SIZE]);

/* zfile_open without taking ownership: closing the view leaves RAW open. */
int zfile_open_borrowed(struct bdev_file *raw, struct bdev_file **out);

/* Largest stored block (compressed bytes plus CRC) a valid file can hold. */
size_t zfile_max_stored(uint32_t block_size);

#endif
