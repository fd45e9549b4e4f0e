/*
 * overlaybd-cat: write the merged device of a spec to a file or stdout.
 *
 *   overlaybd-cat [--config FILE] SPEC.json [OUT]
 *
 * SPEC.json is a device spec (config.md section 1) as the daemon reads it
 * from its spool.  Remote lowers are read through the registry client with
 * the credentials and cache of the daemon config FILE (default: none, no
 * disk cache).  The device is read front to back in 1 MiB pieces; with
 * stderr on a terminal a progress bar shows how far it got.  OUT is written
 * as OUT.tmp and renamed only once complete, so a failed run leaves no
 * partial OUT, and a symlink at OUT is replaced, never written through.
 */
#include "blockdev/bdev.h"
#include "common/common.h"
#include "daemon/daemon.h"
#include "daemon/daemon_int.h"
#include "registry/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void progress(uint64_t done, uint64_t total, double t0, bool final)
{
	int width = 40, fill = total ? (int)(done * width / total) : width;
	double el = now() - t0;

	fprintf(stderr, "\r[%.*s%*s] %3d%% %llu/%llu MiB %.1f MiB/s%s", fill,
		"########################################", width - fill, "",
		total ? (int)(done * 100 / total) : 100, (unsigned long long)(done >> 20),
		(unsigned long long)(total >> 20), el > 0 ? done / el / 1048576 : 0.0,
		final ? "\n" : "");
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/* The device D, front to back, into OUT; 0 or -errno, reported here. */
static int copy_device(struct bdev *d, int out, bool bar)
{
	uint64_t size = bdev_size(d), off;
	char *buf = malloc(CHUNK);
	double t0 = now();
	int rc = 0;

	if (!buf) {
		fprintf(stderr, "overlaybd-cat: out of memory\n");
		return -ENOMEM;
	}
	for (off = 0; off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? size - off : CHUNK;

		rc = bdev_pread(d, buf, n, off);
		if (rc == 0)
			rc = write_all(out, buf, n);
		if (rc < 0) {
			if (bar)
				fputc('\n', stderr);
			fprintf(stderr, "overlaybd-cat: at byte %llu: %s\n", (unsigned long long)off,
				strerror(-rc));
			break;
		}
		if (bar && (off / CHUNK) % 16 == 0)
			progress(off + n, size, t0, false);
	}
	if (rc == 0 && bar)
		progress(size, size, t0, true);
	free(buf);
	return rc;
}

/* Write the device to PATH by way of PATH.tmp (tools/README.md). */
static int write_output(struct bdev *d, const char *path, bool bar)
{
	char *tmp = NULL;
	int fd = -1, rc;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	rc = bdev_file_reserve(tmp);
	if (rc < 0) {
		fprintf(stderr, "overlaybd-cat: cannot create %s: %s\n", tmp, strerror(-rc));
		free(tmp);
		return rc;
	}
	fd = open(tmp, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	rc = fd < 0 ? -errno : copy_device(d, fd, bar);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		fprintf(stderr, "overlaybd-cat: %s: %s\n", path, strerror(-rc));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: overlaybd-cat [--config FILE] SPEC.json [OUT]\n"
		   "Writes the merged device of the spec to OUT (default stdout).\n");
}

static int open_registry(const struct cfg *cfg, bool from_file, struct reg_ctx **out)
{
	struct reg_config rc = {
		.cache_dir = from_file ? cfg->registry_cache_dir : NULL,
		.cache_size = cfg->registry_cache_size_gb << 30,
		.cred_file = cfg->credential_file_path,
	};

	return reg_ctx_create(NULL, &rc, out);
}

int main(int argc, char **argv)
{
	/* Read-only: a live upper a daemon writes stays readable (lsmt_rw.c). */
	struct image_env env = { .io_engine = BDEV_IO_PSYNC, .read_only = true };
	struct spec *s = NULL;
	struct image *img = NULL;
	struct cfg *cfg = NULL;
	bool bar = isatty(STDERR_FILENO);
	const char *config = NULL, *spec_path, *out_path = NULL;
	char err[1024], *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc, a = 1;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc > 2 && !strcmp(argv[1], "--config")) {
		config = argv[2];
		a = 3;
	}
	if (argc - a < 1 || argc - a > 2) {
		usage(stderr);
		return 2;
	}
	spec_path = argv[a];
	if (argc - a == 2)
		out_path = argv[a + 1];
	log_set_level(LOG_LVL_WARN);
	rc = config ? cfg_load(config, &cfg, err, sizeof(err)) : cfg_default(&cfg);
	if (rc < 0) {
		fprintf(stderr, "overlaybd-cat: config %s: %s\n", config, err);
		return 1;
	}
	env.io_engine = cfg->io_engine;
	f = fopen(spec_path, "re");
	if (!f) {
		fprintf(stderr, "overlaybd-cat: %s: %s\n", spec_path, strerror(errno));
		return 1;
	}
	text = malloc(1 << 20);
	len = text ? fread(text, 1, 1 << 20, f) : 0;
	fclose(f);
	if (!text) {
		fprintf(stderr, "overlaybd-cat: out of memory\n");
		return 1;
	}
	if (spec_parse(text, len, cfg, "cat", &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "overlaybd-cat: %s: %s\n", spec_path, err);
		return 1;
	}
	free(text);
	for (int i = 0; i < s->nlowers; i++)
		if (s->repo_blob_url && s->lowers[i].digest && !env.reg &&
		    (rc = open_registry(cfg, config != NULL, &env.reg)) < 0) {
			fprintf(stderr, "overlaybd-cat: registry client: %s\n", strerror(-rc));
			return 1;
		}
	if (image_open(s, &env, &img, err, sizeof(err)) < 0) {
		fprintf(stderr, "overlaybd-cat: %s: %s\n", spec_path, err);
		return 1;
	}
	rc = out_path ? write_output(img->bdev, out_path, bar)
		      : copy_device(img->bdev, STDOUT_FILENO, bar);
	image_close(img);
	if (env.reg)
		reg_ctx_destroy(env.reg);
	spec_free(s);
	cfg_free(cfg);
	return rc < 0 ? 1 : 0;
}
