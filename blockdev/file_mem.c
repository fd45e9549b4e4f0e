/*
 * file_mem: a byte buffer as a bdev_file, for tests, fuzzers and tools
 * that build a small blob before writing it out.  Reads and writes take a
 * lock, so it is as thread-safe as a local file; writes past the end grow
 * the buffer.
 */
#include "bdev.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct mem_file {
	struct bdev_file f;
	pthread_mutex_t mu;
	uint8_t *buf;
	size_t cap;
};

static ssize_t mem_pread(struct bdev_file *f, void *buf, size_t len, uint64_t off)
{
	struct mem_file *m = (struct mem_file *)f;

	pthread_mutex_lock(&m->mu);
	if (off >= f->size)
		len = 0;
	else if (len > f->size - off)
		len = f->size - off;
	if (len)
		memcpy(buf, m->buf + off, len);
	pthread_mutex_unlock(&m->mu);
	return len;
}

static ssize_t mem_pwrite(struct bdev_file *f, const void *buf, size_t len, uint64_t off)
{
	struct mem_file *m = (struct mem_file *)f;
	ssize_t rc = len;

	if (off > SIZE_MAX / 2 || len > SIZE_MAX / 2 - off)
		return -EFBIG;
	pthread_mutex_lock(&m->mu);
	if (off + len > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		uint8_t *nb;

		while (cap < off + len)
			cap *= 2;
		nb = realloc(m->buf, cap);
		if (!nb) {
			rc = -ENOMEM;
			goto out;
		}
		memset(nb + m->cap, 0, cap - m->cap);
		m->buf = nb;
		m->cap = cap;
	}
	memcpy(m->buf + off, buf, len);
	if (off + len > f->size)
		f->size = off + len;
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static const char *mem_name(struct bdev_file *f)
{
	return "(memory)";
}

static void mem_close(struct bdev_file *f)
{
	struct mem_file *m = (struct mem_file *)f;

	pthread_mutex_destroy(&m->mu);
	free(m->buf);
	free(m);
}

static const struct bdev_file_ops mem_ops = {
	.pread = mem_pread,
	.pwrite = mem_pwrite,
	.name = mem_name,
	.close = mem_close,
};

int bdev_file_open_mem(const void *data, size_t len, struct bdev_file **out)
{
	struct mem_file *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	m->f.ops = &mem_ops;
	if (len && (m->buf = malloc(len)) == NULL) {
		mem_close(&m->f);
		return -ENOMEM;
	}
	if (len)
		memcpy(m->buf, data, len);
	m->cap = len;
	m->f.size = len;
	*out = &m->f;
	return 0;
}

const void *bdev_file_mem_data(struct bdev_file *f)
{
	return f->ops == &mem_ops ? ((struct mem_file *)f)->buf : NULL;
}
