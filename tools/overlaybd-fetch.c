/*
 * overlaybd-fetch: read a registry blob (or a range of it) through the same
 * fetcher, cache and download code the daemon uses, for people debugging a
 * registry and for the tests.
 *
 *   overlaybd-fetch [options] REPO_BLOB_URL DIGEST
 *
 * Writes the bytes to stdout (or -o FILE), or only prints their sha256.
 */
#include "registry/registry.h"
#include "blockdev/bdev.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr,
		"usage: overlaybd-fetch [options] REPO_BLOB_URL DIGEST\n"
		"  --size N          expected blob size (checked; default: probe)\n"
		"  --offset N        first byte to read (default 0)\n"
		"  --length N        bytes to read (default: to the end)\n"
		"  --bs N            read size per request (default 1 MiB)\n"
		"  --threads N       parallel readers (default 1)\n"
		"  -o FILE           write the bytes to FILE (default stdout)\n"
		"  --sha256          print the sha256 of the bytes instead\n"
		"  --cache-dir DIR   disk cache (registryCacheDir)\n"
		"  --cache-size-mb N cache limit (default 4096)\n"
		"  --refill N        cache fill unit in bytes (default 262144)\n"
		"  --cred FILE       credential file ({\"auths\": {...}})\n"
		"  --cacert FILE     extra CA bundle; --cert/--key client certificate\n"
		"  --proxy URL       HTTP(S) proxy\n"
		"  --timeout S       retry deadline per read (default 30)\n"
		"  --download DIR    background-download the blob into DIR and wait\n"
		"  --max-mbps N      download throttle (default unthrottled)\n"
		"  --try-cnt N       download attempts (default 5)\n"
		"  -v                debug log\n");
}

struct job {
	struct bdev_file *f;
	uint64_t off, end, next;
	size_t bs;
	int out_fd;
	pthread_mutex_t lock;
	int err;
};

/* Readers take bs-sized pieces in order; writes land at their offset. */
static void *reader(void *arg)
{
	struct job *j = arg;
	char *buf = malloc(j->bs);

	if (!buf) {
		j->err = -ENOMEM;
		return NULL;
	}
	for (;;) {
		uint64_t off;
		size_t len;
		ssize_t n;

		pthread_mutex_lock(&j->lock);
		off = j->next;
		len = j->end - off < j->bs ? j->end - off : j->bs;
		j->next += len;
		pthread_mutex_unlock(&j->lock);
		if (!len || j->err)
			break;
		n = bdev_file_pread(j->f, buf, len, off);
		if (n != (ssize_t)len) {
			j->err = n < 0 ? (int)n : -EIO;
			break;
		}
		if (j->out_fd >= 0 && pwrite(j->out_fd, buf, len, off - j->off) != (ssize_t)len) {
			j->err = -errno;
			break;
		}
	}
	free(buf);
	return NULL;
}

/*
 * -o OUT (tools/README.md): OUT appears only once complete, written as
 * OUT.tmp and renamed.  The temporary is created afresh (O_EXCL|O_NOFOLLOW):
 * a leftover or a link planted under that name is removed, never written
 * through.  A device or fifo (-o /dev/null) cannot be renamed over, so it
 * is written in place.  fd, with *TMP set when a rename is due; -errno.
 */
static int open_out(const char *out, char **tmp)
{
	struct stat st;
	int fd;

	*tmp = NULL;
	if (!stat(out, &st) && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		fd = open(out, O_WRONLY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	if (asprintf(tmp, "%s.tmp", out) < 0) {
		*tmp = NULL;
		return -ENOMEM;
	}
	for (int tries = 0; tries < 2; tries++) {
		fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0 || errno != EEXIST || unlink(*tmp))
			break;
	}
	if (fd < 0) {
		fd = -errno;
		free(*tmp);
		*tmp = NULL;
	}
	return fd;
}

static int hash_out(int fd, uint64_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[32], buf[1 << 16];
	uint64_t off = 0;

	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while (off < len) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);

		if (n <= 0)
			break;
		EVP_DigestUpdate(md, buf, n);
		off += n;
	}
	EVP_DigestFinal_ex(md, h, NULL);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 32; i++)
		printf("%02x", h[i]);
	printf("\n");
	return off == len ? 0 : -EIO;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "offset", required_argument, NULL, 'O' },
		{ "length", required_argument, NULL, 'l' },
		{ "bs", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "sha256", no_argument, NULL, 'H' },
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "cache-size-mb", required_argument, NULL, 'M' },
		{ "refill", required_argument, NULL, 'R' },
		{ "cred", required_argument, NULL, 'c' },
		{ "cacert", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'E' },
		{ "key", required_argument, NULL, 'K' },
		{ "proxy", required_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "download", required_argument, NULL, 'D' },
		{ "max-mbps", required_argument, NULL, 'm' },
		{ "try-cnt", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct reg_config cfg = { 0 };
	struct reg_download_opts dl = { 0 };
	struct reg_ctx *c = NULL;
	struct bdev_file *f = NULL;
	struct job j = { .bs = 1 << 20, .out_fd = -1 };
	const char *out = NULL, *dl_dir = NULL;
	uint64_t size = 0, off = 0, len = UINT64_MAX;
	int threads = 1, opt, err, ret = 1;
	bool sha = false;
	char errbuf[1024];
	pthread_t th[64];
	char tmpl[] = "/tmp/overlaybd-fetch.XXXXXX";
	char *out_tmp = NULL;

	while ((opt = getopt_long(argc, argv, "o:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 's': size = strtoull(optarg, NULL, 0); break;
		case 'O': off = strtoull(optarg, NULL, 0); break;
		case 'l': len = strtoull(optarg, NULL, 0); break;
		case 'b': j.bs = strtoull(optarg, NULL, 0); break;
		case 't': threads = atoi(optarg); break;
		case 'H': sha = true; break;
		case 'C': cfg.cache_dir = optarg; break;
		case 'M': cfg.cache_size = strtoull(optarg, NULL, 0) << 20; break;
		case 'R': cfg.refill_size = strtoul(optarg, NULL, 0); break;
		case 'c': cfg.cred_file = optarg; break;
		case 'A': cfg.ca_file = optarg; break;
		case 'E': cfg.client_cert = optarg; break;
		case 'K': cfg.client_key = optarg; break;
		case 'P': cfg.proxy = optarg; break;
		case 'T': cfg.timeout_sec = atoi(optarg); break;
		case 'D': dl_dir = optarg; break;
		case 'm': dl.max_mbps = atoi(optarg); break;
		case 'n': dl.try_cnt = atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'v': log_set_level(LOG_LVL_DEBUG); break;
		default: usage(); return opt == 'h' ? 0 : 2;
		}
	}
	if (argc - optind != 2 || threads < 1 || threads > 64 || !j.bs) {
		usage();
		return 2;
	}
	err = reg_ctx_create(NULL, &cfg, &c);
	if (err) {
		fprintf(stderr, "overlaybd-fetch: %s\n", strerror(-err));
		return 1;
	}
	err = reg_blob_open(c, argv[optind], argv[optind + 1], size, &f, errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "overlaybd-fetch: %s\n", errbuf);
		goto done;
	}
	if (dl_dir) {
		dl.enable = true;
		err = reg_download_start(c, f, dl_dir, &dl);
		if (!err)
			err = reg_download_wait(f, 0);
		if (err) {
			fprintf(stderr, "overlaybd-fetch: download: %s\n", strerror(-err));
			goto done;
		}
	}
	if (off > f->size)
		off = f->size;
	if (len > f->size - off)
		len = f->size - off;
	j.f = f;
	j.off = j.next = off;
	j.end = off + len;
	pthread_mutex_init(&j.lock, NULL);
	if (sha)
		j.out_fd = mkstemp(tmpl), unlink(tmpl);
	else if (out)
		j.out_fd = open_out(out, &out_tmp);
	else if (lseek(STDOUT_FILENO, 0, SEEK_CUR) == 0 && threads == 1)
		j.out_fd = STDOUT_FILENO;
	else
		j.out_fd = mkstemp(tmpl), unlink(tmpl);
	if (j.out_fd < 0) {
		fprintf(stderr, "overlaybd-fetch: output: %s\n",
			strerror(out && !sha ? -j.out_fd : errno));
		goto done;
	}
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, reader, &j);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	if (j.err) {
		fprintf(stderr, "overlaybd-fetch: read failed: %s\n", strerror(-j.err));
		goto done;
	}
	if (sha) {
		if (hash_out(j.out_fd, len))
			goto done;
	} else if (!out && j.out_fd != STDOUT_FILENO) {
		/* stdout is a pipe: copy the assembled bytes in order. */
		char buf[1 << 16];
		uint64_t o = 0;

		while (o < len) {
			ssize_t n = pread(j.out_fd, buf, sizeof(buf), o);

			if (n <= 0 || write(STDOUT_FILENO, buf, n) != n)
				goto done;
			o += n;
		}
	}
	if (out_tmp && (fsync(j.out_fd) || rename(out_tmp, out))) {
		fprintf(stderr, "overlaybd-fetch: %s: %s\n", out, strerror(errno));
		goto done;
	}
	free(out_tmp);
	out_tmp = NULL;
	fprintf(stderr, "overlaybd-fetch: %" PRIu64 " bytes at %" PRIu64 " of %" PRIu64 "\n",
		len, off, f->size);
	ret = 0;
done:
	if (out_tmp) {
		unlink(out_tmp);
		free(out_tmp);
	}
	if (f) {
		char desc[512];

		reg_blob_describe(f, desc, sizeof(desc));
		fprintf(stderr, "overlaybd-fetch: %s\n", desc);
		bdev_file_close(f);
	}
	reg_ctx_destroy(c);
	return ret;
}
