/*
 * common: logging and checksums shared by every module.
 *
 * Owns the process-wide log sink and the CRC-32C routines.  It must never
 * depend on any other folder of the project: every module may include it.
 */
#ifndef OBD_COMMON_H
#define OBD_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_DEBUG = 0,
	LOG_LVL_INFO = 1,
	LOG_LVL_WARN = 2,
	LOG_LVL_ERROR = 3,
};

/* Messages below this level are dropped.  Default LOG_LVL_INFO. */
void log_set_level(int level);
int log_get_level(void);
/* Send log lines to PATH (appended) instead of stderr; NULL goes back to stderr. */
int log_open(const char *path);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

/*
 * CRC-32C (Castagnoli, reflected 0x82F63B78) as a raw register update: no
 * initial and no final inversion.  ZFile uses this form directly
 * (zfile.md section 4); the standard CRC-32C used by iSCSI digests is
 * crc32c() below.  Uses SSE4.2 when the CPU has it.
 */
uint32_t crc32c_raw(uint32_t seed, const void *buf, size_t len);

/* RFC 7143 13.1 / RFC 3385: the standard CRC-32C with pre and post inversion. */
static inline uint32_t crc32c(const void *buf, size_t len)
{
	return ~crc32c_raw(~0u, buf, len);
}

/* Continue a standard CRC-32C over several buffers: start from 0. */
static inline uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
	return ~crc32c_raw(~crc, buf, len);
}

#endif
