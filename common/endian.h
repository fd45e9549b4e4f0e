/*
 * endian: fixed-width integers at unaligned addresses in a stated byte
 * order, for on-disk formats (little-endian, docs/) and wire formats
 * (big-endian, RFC 7143 and the SCSI standards).  memcpy keeps the access
 * legal at any alignment; the compiler turns it into one load or store.
 */
#ifndef OBD_ENDIAN_H
#define OBD_ENDIAN_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t get_le32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t get_le64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline void put_le32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put_le64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

#endif
