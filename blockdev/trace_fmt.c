/*
 * trace_fmt: the bytes of a trace file (docs/trace.md), kept apart from
 * recording and replay (trace.c).  The reference writes its structs as
 * they lie in memory on x86-64, so every field sits at a fixed offset with
 * padding between; padding is written as zeros and read as whatever the
 * writer left, since the checksum covers it.
 */
#include "bdev_int.h"
#include "common/common.h"
#include "common/endian.h"

#include <errno.h>
#include <string.h>

#define TRACE_MAGIC 3270449184u /* docs/trace.md: CRC-32 of its format's name */
#define TRACE_HDR_MAGIC 0
#define TRACE_HDR_DATA_SIZE 8
#define TRACE_HDR_CHECKSUM 16
#define TRACE_REC_OP 0
#define TRACE_REC_LAYER 4
#define TRACE_REC_COUNT 8
#define TRACE_REC_OFFSET 16

bool trace_fmt_has_magic(const uint8_t *buf, size_t size)
{
	return size >= TRACE_HDR_SIZE && get_le32(buf + TRACE_HDR_MAGIC) == TRACE_MAGIC;
}

int trace_fmt_check(const uint8_t *buf, size_t size, const char *path)
{
	uint64_t data_size;

	if (size < TRACE_HDR_SIZE || get_le32(buf + TRACE_HDR_MAGIC) != TRACE_MAGIC) {
		log_warn("trace %s: no trace magic; the trace is not used", path);
		return -EINVAL;
	}
	data_size = get_le64(buf + TRACE_HDR_DATA_SIZE);
	if (data_size != size - TRACE_HDR_SIZE || data_size % TRACE_REC_SIZE) {
		log_warn("trace %s: header says %llu bytes of records, the file holds %zu; "
			 "the trace is not used", path, (unsigned long long)data_size,
			 size - TRACE_HDR_SIZE);
		return -EINVAL;
	}
	if (crc32c_raw(0, buf + TRACE_HDR_SIZE, data_size) !=
	    get_le32(buf + TRACE_HDR_CHECKSUM)) {
		log_warn("trace %s: checksum mismatch; the trace is not used", path);
		return -EINVAL;
	}
	return 0;
}

void trace_fmt_get(const uint8_t *buf, size_t i, struct trace_fmt_rec *r)
{
	const uint8_t *p = buf + TRACE_HDR_SIZE + i * TRACE_REC_SIZE;

	r->op = p[TRACE_REC_OP];
	r->layer = get_le32(p + TRACE_REC_LAYER);
	r->count = get_le64(p + TRACE_REC_COUNT);
	r->offset = get_le64(p + TRACE_REC_OFFSET);
}

void trace_fmt_put(uint8_t *buf, size_t i, const struct trace_fmt_rec *r)
{
	uint8_t *p = buf + TRACE_HDR_SIZE + i * TRACE_REC_SIZE;

	memset(p, 0, TRACE_REC_SIZE);
	p[TRACE_REC_OP] = r->op;
	put_le32(p + TRACE_REC_LAYER, r->layer);
	put_le64(p + TRACE_REC_COUNT, r->count);
	put_le64(p + TRACE_REC_OFFSET, r->offset);
}

void trace_fmt_put_header(uint8_t *buf, size_t nrecs)
{
	uint64_t data_size = (uint64_t)nrecs * TRACE_REC_SIZE;

	memset(buf, 0, TRACE_HDR_SIZE);
	put_le32(buf + TRACE_HDR_MAGIC, TRACE_MAGIC);
	put_le64(buf + TRACE_HDR_DATA_SIZE, data_size);
	put_le32(buf + TRACE_HDR_CHECKSUM, crc32c_raw(0, buf + TRACE_HDR_SIZE, data_size));
}
