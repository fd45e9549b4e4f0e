/*
 * cache_store: the cache directory.  Knows every blob file in it (open or
 * not) with its cached bytes and last use, which is what eviction needs;
 * at start-up it rescans the directory so a restart keeps the cache.
 */
#include "cache_int.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Count the durable units of one map file; -1 when it is not ours. */
static int64_t map_units(int dfd, const char *name, uint32_t unit)
{
	struct cache_map_hdr h;
	uint8_t buf[4096];
	int64_t n = 0;
	uint64_t off = CACHE_MAP_HDR, end;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return -1;
	if (pread(fd, &h, sizeof(h), 0) != sizeof(h) || memcmp(h.magic, CACHE_MAP_MAGIC, 8) ||
	    h.unit != unit) {
		close(fd);
		return -1;
	}
	/* The bitmap only: the CRCs follow it. */
	end = CACHE_MAP_HDR + ((h.size + unit - 1) / unit + 7) / 8;
	while (off < end &&
	       (r = pread(fd, buf, end - off < sizeof(buf) ? end - off : sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			n += __builtin_popcount(buf[i]);
		off += r;
	}
	close(fd);
	return n;
}

/*
 * Every "<digest>.map" with a valid header becomes an entry; data files
 * without a usable map (or maps with another unit size) are leftovers of
 * another configuration and go.
 */
static void scan(struct cache_store *s)
{
	DIR *d = opendir(s->dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char name[NAME_MAX + 1];
		size_t n = strlen(de->d_name);
		struct cache_blob *b;
		struct stat st;
		int64_t units;

		if (de->d_name[0] == '.')
			continue;
		if (n > 4 && !strcmp(de->d_name + n - 4, ".map")) {
			memcpy(name, de->d_name, n - 4);
			name[n - 4] = 0;
			units = map_units(dirfd(d), de->d_name, s->unit);
			if (units < 0 || fstatat(dirfd(d), name, &st, 0)) {
				unlinkat(dirfd(d), name, 0);
				unlinkat(dirfd(d), de->d_name, 0);
				continue;
			}
			b = calloc(1, sizeof(*b));
			if (!b || !(b->digest = strdup(name))) {
				free(b);
				continue;
			}
			b->s = s;
			b->fd = b->map_fd = -1;
			b->bytes = (uint64_t)units * s->unit;
			/* Older files first: mtime orders the LRU after a restart. */
			b->atime_ms = 0;
			b->next = s->blobs;
			s->blobs = b;
			s->usage += b->bytes;
		} else {
			char map[NAME_MAX + 8];

			snprintf(map, sizeof(map), "%s.map", de->d_name);
			if (faccessat(dirfd(d), map, F_OK, 0))
				unlinkat(dirfd(d), de->d_name, 0);
		}
	}
	closedir(d);
}

int cache_store_open(const struct cache_store_opts *o, struct cache_store **out)
{
	struct cache_store *s;
	int err;

	if (!o->dir || !*o->dir || !o->unit || (o->unit & (o->unit - 1)) || o->unit < 4096)
		return -EINVAL;
	if (mkdir(o->dir, 0755) && errno != EEXIST)
		return -errno;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(o->dir))) {
		free(s);
		return -ENOMEM;
	}
	s->limit = o->limit;
	s->free_floor = o->free_floor;
	s->unit = o->unit;
	s->scan_ms = o->scan_ms ? o->scan_ms : 10000;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_cond_init(&s->evict_done, NULL);
	pthread_cond_init(&s->settled, NULL);
	pthread_mutex_init(&s->ra_lock, NULL);
	pthread_cond_init(&s->ra_cv, NULL);
	scan(s);
	log_info("cache: %s holds %" PRIu64 " MiB (limit %" PRIu64 " MiB)", s->dir,
		 s->usage >> 20, s->limit >> 20);
	err = cache_evict_start(s);
	if (!err)
		err = cache_ra_start(s);
	if (err) {
		cache_store_close(s);
		return err;
	}
	*out = s;
	return 0;
}

void cache_store_close(struct cache_store *s)
{
	if (!s)
		return;
	cache_ra_stop(s);
	cache_evict_stop(s);
	/* Leave the directory within its limit for the next start. */
	cache_store_evict(s);
	while (s->blobs) {
		struct cache_blob *b = s->blobs;

		s->blobs = b->next;
		cache_blob_free(b);
	}
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->evict_done);
	pthread_cond_destroy(&s->settled);
	pthread_cond_destroy(&s->ra_cv);
	pthread_mutex_destroy(&s->ra_lock);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

uint64_t cache_store_usage(struct cache_store *s)
{
	uint64_t u;

	pthread_mutex_lock(&s->lock);
	u = s->usage;
	pthread_mutex_unlock(&s->lock);
	return u;
}

int cache_known_size(struct cache_store *s, const char *digest, uint64_t *size)
{
	char data[PATH_MAX], map[PATH_MAX];
	struct cache_map_hdr h;
	struct cache_blob *b;
	int fd, err = cache_blob_paths(s, digest, data, map, sizeof(data));

	if (err)
		return err;
	/* Only a blob with data counts: a map is created before the first
	 * fetch, which may have been refused. */
	pthread_mutex_lock(&s->lock);
	for (b = s->blobs; b; b = b->next)
		if (!strcmp(b->digest, digest))
			break;
	if (!b || !b->bytes) {
		pthread_mutex_unlock(&s->lock);
		return -ENOENT;
	}
	if (b->refs) {
		*size = b->size;
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	pthread_mutex_unlock(&s->lock);
	fd = open(map, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	if (pread(fd, &h, sizeof(h), 0) != sizeof(h) || memcmp(h.magic, CACHE_MAP_MAGIC, 8) ||
	    h.unit != s->unit)
		err = -ENOENT;
	else
		*size = h.size;
	close(fd);
	return err;
}
