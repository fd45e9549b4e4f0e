/*
 * cache_store: the cache directory, one subdirectory per origin
 * (docs/cache.md).  Knows every blob file in it (open or not) with its
 * cached bytes and last use, which is what eviction needs; at start-up it
 * rescans the directory so a restart keeps the cache.
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
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
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

/* A regular file (never a symlink's target) of that name in DFD. */
static bool is_file(int dfd, const char *name, struct stat *st)
{
	return !fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st->st_mode);
}

/* One "<digest>.map" (NAME, of length N) in origin dir NS (fd DFD): an
 * entry, or both files go. */
static void scan_map(struct cache_store *s, const char *ns, int dfd, const char *name, size_t n)
{
	char data[NAME_MAX + 1];
	struct cache_blob *b;
	struct stat st;
	int64_t units;

	memcpy(data, name, n - 4);
	data[n - 4] = 0;
	if (!cache_digest_ok(data))
		return;
	units = map_units(dfd, name, s->unit);
	if (units < 0 || !is_file(dfd, data, &st)) {
		/* unlinkat removes a name, never what a link points to. */
		unlinkat(dfd, data, 0);
		unlinkat(dfd, name, 0);
		return;
	}
	b = calloc(1, sizeof(*b));
	if (!b || !(b->digest = strdup(data))) {
		free(b);
		return;
	}
	b->s = s;
	memcpy(b->ns, ns, sizeof(b->ns));
	b->fd = b->map_fd = -1;
	b->bytes = (uint64_t)units * s->unit;
	/* Older files first: mtime orders the LRU after a restart. */
	b->atime_ms = 0;
	b->next = s->blobs;
	s->blobs = b;
	s->usage += b->bytes;
}

/* One origin's dir: "<digest>.map" with a valid header becomes an entry;
 * a data file without a usable map (or maps with another unit size) is a
 * leftover of another configuration and goes. */
static void scan_ns(struct cache_store *s, int top, const char *ns)
{
	int dfd = openat(top, ns, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char map[NAME_MAX + 8];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (n > 4 && !strcmp(de->d_name + n - 4, ".map")) {
			scan_map(s, ns, dirfd(d), de->d_name, n);
			continue;
		}
		if (!cache_digest_ok(de->d_name) || !is_file(dirfd(d), de->d_name, &st))
			continue;
		snprintf(map, sizeof(map), "%s.map", de->d_name);
		if (fstatat(dirfd(d), map, &st, AT_SYMLINK_NOFOLLOW))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/* "<digest>" or "<digest>.map" right in the cache dir. */
static bool flat_name(const char *name)
{
	char base[NAME_MAX + 1];
	size_t n = strlen(name);

	if (n > 4 && !strcmp(name + n - 4, ".map")) {
		memcpy(base, name, n - 4);
		base[n - 4] = 0;
		return cache_digest_ok(base);
	}
	return cache_digest_ok(name);
}

/*
 * The cache dir holds one subdirectory per origin (docs/cache.md).  Files
 * of the old flat layout (<dir>/<digest>) carry no origin, so no spec may
 * trust them: they are removed, never served.  Only names the cache gives
 * its files are ever removed (registryCacheDir may hold other things), and
 * no symlink is followed: whoever planted one gets its name removed at most.
 */
static void scan(struct cache_store *s)
{
	DIR *d = opendir(s->dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (S_ISDIR(st.st_mode) && cache_ns_ok(de->d_name))
			scan_ns(s, dirfd(d), de->d_name);
		else if (S_ISREG(st.st_mode) && flat_name(de->d_name))
			unlinkat(dirfd(d), de->d_name, 0);
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

int cache_known_size(struct cache_store *s, const char *origin, const char *digest,
		     uint64_t *size)
{
	char data[PATH_MAX], map[PATH_MAX], ns[CACHE_NS_LEN + 1];
	struct cache_map_hdr h;
	struct cache_blob *b;
	int fd, err;

	cache_ns_name(origin, ns);
	err = cache_blob_paths(s, ns, digest, data, map, sizeof(data));
	if (err)
		return err;
	/* Only a blob with data counts: a map is created before the first
	 * fetch, which may have been refused. */
	pthread_mutex_lock(&s->lock);
	for (b = s->blobs; b; b = b->next)
		if (!strcmp(b->digest, digest) && !strcmp(b->ns, ns))
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
	fd = open(map, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
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
