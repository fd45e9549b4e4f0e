/*
 * spec: device specs of the spool directory, NAME.json in the reference's
 * config.v1.json form (config.md section 1) plus our `chap` and `acl`.
 *
 * Everything a spec can get wrong is found here, before any file is
 * opened, and reported as the reason written after "failed:" to its
 * resultFile: invalid JSON, wrong types, bad names, too many layers, bad
 * digests, relative paths.  Missing files are found when the image opens
 * (image.c), as in the reference.  A symlink leading out of the spool is
 * refused before anything behind it is read, so it has no resultFile: its
 * reason is only logged.
 */
#include "daemon_int.h"
#include "blockdev/bdev.h"
#include "iscsi/iscsi.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPEC_MAX_BYTES (1u << 20)
/* Attempts at a fresh temporary name for a resultFile. */
#define RESULT_TMP_TRIES 8

char *spec_iqn(const char *prefix, const char *name)
{
	size_t pl = strlen(prefix), nl = strlen(name);
	char *s = malloc(pl + nl + 2);

	if (!s)
		return NULL;
	memcpy(s, prefix, pl);
	s[pl] = ':';
	/* RFC 3722: iSCSI names are lower case; '_' is not allowed. */
	for (size_t i = 0; i < nl; i++) {
		char c = name[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		else if (c == '_')
			c = '-';
		s[pl + 1 + i] = c;
	}
	s[pl + 1 + nl] = 0;
	return s;
}

int spec_name_check(const char *prefix, const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name);

	if (n == 0) {
		snprintf(err, errlen, "invalid device name \"\": empty");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_')) {
			snprintf(err, errlen,
				 "invalid device name \"%.64s\": only letters, digits, '.', '-' and '_' are allowed",
				 name);
			return -EINVAL;
		}
	}
	if (name[0] == '.' || strstr(name, "..")) {
		snprintf(err, errlen, "invalid device name \"%.64s\": leading '.' or \"..\"", name);
		return -EINVAL;
	}
	if (strlen(prefix) + 1 + n > ISCSI_NAME_MAX) {
		snprintf(err, errlen, "invalid device name \"%.64s...\": the IQN would exceed %d bytes",
			 name, ISCSI_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

void spec_free(struct spec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->iqn);
	free(s->repo_blob_url);
	for (int i = 0; i < s->nlowers; i++) {
		free(s->lowers[i].file);
		free(s->lowers[i].digest);
		free(s->lowers[i].dir);
	}
	free(s->lowers);
	free(s->upper_data);
	free(s->upper_index);
	free(s->result_file);
	free(s->trace_path);
	cfg_chap_free(&s->chap);
	dj_strarray_free(s->acl, s->nacl);
	free(s);
}

/* config.md 1.1: sha256:<64 lowercase hex>. */
static bool digest_ok(const char *d)
{
	if (strncmp(d, "sha256:", 7) || strlen(d) != 7 + 64)
		return false;
	for (int i = 7; i < 7 + 64; i++)
		if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f')))
			return false;
	return true;
}

/* A path field: absolute (the daemon's working directory is "/"), or unset
 * when empty. */
static int path_field(json_t *v, const char *path, char **out, char *err, size_t errlen)
{
	int rc = dj_string(v, path, out, err, errlen);

	if (rc < 0)
		return rc;
	if (!**out) {
		free(*out);
		*out = NULL;
		return 0;
	}
	if (**out != '/') {
		snprintf(err, errlen, "%s: \"%.200s\" is not an absolute path", path, *out);
		return -EINVAL;
	}
	if (strlen(*out) >= PATH_MAX - 32) {
		snprintf(err, errlen, "%s: path too long", path);
		return -EINVAL;
	}
	return 0;
}

static int parse_lower(json_t *v, int idx, struct spec_lower *l, char *err, size_t errlen)
{
	const char *key;
	json_t *val;
	char p[128];
	int rc = 0;

	if (!json_is_object(v)) {
		snprintf(err, errlen, "lowers[%d]: expected an object", idx);
		return -EINVAL;
	}
	json_object_foreach(v, key, val) {
		snprintf(p, sizeof(p), "lowers[%d].%.40s", idx, key);
		if (!strcmp(key, "file")) {
			rc = path_field(val, p, &l->file, err, errlen);
		} else if (!strcmp(key, "dir")) {
			rc = path_field(val, p, &l->dir, err, errlen);
		} else if (!strcmp(key, "size")) {
			rc = dj_uint(val, p, 0, INT64_MAX, &l->size, err, errlen);
		} else if (!strcmp(key, "digest")) {
			rc = dj_string(val, p, &l->digest, err, errlen);
			if (!rc && *l->digest && !digest_ok(l->digest)) {
				snprintf(err, errlen, "%s: \"%.80s\" is not sha256:<64 lowercase hex>",
					 p, l->digest);
				rc = -EINVAL;
			}
			if (!rc && !*l->digest) {
				free(l->digest);
				l->digest = NULL;
			}
		} else if (!strcmp(key, "targetFile") || !strcmp(key, "targetDigest") ||
			   !strcmp(key, "gzipIndex")) {
			snprintf(err, errlen, "%s: turboOCI layers are not supported", p);
			rc = -EINVAL;
		} else {
			log_warn("%s: unknown key, ignored", p);
		}
		if (rc < 0)
			return rc;
	}
	if (!l->file && !l->dir && !l->digest) {
		snprintf(err, errlen, "lowers[%d]: needs a file, a dir or a digest", idx);
		return -EINVAL;
	}
	return 0;
}

static int parse_lowers(json_t *v, struct spec *s, char *err, size_t errlen)
{
	size_t n;
	int rc;

	if (!json_is_array(v)) {
		snprintf(err, errlen, "lowers: expected an array");
		return -EINVAL;
	}
	n = json_array_size(v);
	/* lsmt.md 6 / config.md 1: the stack holds at most 255 layers. */
	if (n > BDEV_MAX_LAYERS) {
		snprintf(err, errlen, "too many layers: %zu (at most %d)", n, BDEV_MAX_LAYERS);
		return -EINVAL;
	}
	s->lowers = calloc(n ? n : 1, sizeof(*s->lowers));
	if (!s->lowers)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		s->nlowers = i + 1;
		rc = parse_lower(json_array_get(v, i), i, &s->lowers[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	s->nlowers = n;
	return 0;
}

static int parse_upper(json_t *v, struct spec *s, char *err, size_t errlen)
{
	const char *key;
	json_t *val;
	char p[128];
	int rc = 0;

	if (!json_is_object(v)) {
		snprintf(err, errlen, "upper: expected an object");
		return -EINVAL;
	}
	json_object_foreach(v, key, val) {
		snprintf(p, sizeof(p), "upper.%.40s", key);
		if (!strcmp(key, "data"))
			rc = path_field(val, p, &s->upper_data, err, errlen);
		else if (!strcmp(key, "index"))
			rc = path_field(val, p, &s->upper_index, err, errlen);
		else if (!strcmp(key, "target") || !strcmp(key, "gzipIndex")) {
			snprintf(err, errlen, "%s: turboOCI writable layers are not supported", p);
			rc = -EINVAL;
		} else
			log_warn("%s: unknown key, ignored", p);
		if (rc < 0)
			return rc;
	}
	/* config.md 1: absent or empty index or data means read-only. */
	if (!s->upper_data != !s->upper_index) {
		log_warn("upper: only one of data and index given; the device is read-only");
		free(s->upper_data);
		free(s->upper_index);
		s->upper_data = s->upper_index = NULL;
	}
	return 0;
}

static int acl_check(char **acl, int n, char *err, size_t errlen)
{
	for (int i = 0; i < n; i++) {
		size_t l = strlen(acl[i]);

		if (l == 0 || l > ISCSI_NAME_MAX || strchr(acl[i], ' ')) {
			snprintf(err, errlen, "acl[%d]: \"%.64s\" is not an iSCSI name", i, acl[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * docs/trace.md: the last lower is the acceleration layer.  It leaves the
 * stack, and the trace in its dir is replayed.  Recording a new trace over
 * an image that already has one is refused, as the reference refuses it.
 */
static int take_acceleration_layer(struct spec *s, char *err, size_t errlen)
{
	struct spec_lower *l;

	if (s->trace_path) {
		snprintf(err, errlen, "recordTracePath: cannot record a trace while "
				      "accelerationLayer is set");
		return -EINVAL;
	}
	if (s->nlowers == 0)
		return 0;
	l = &s->lowers[--s->nlowers];
	log_info("%s: accelerationLayer: top lower left out of the stack", s->name);
	if (l->dir && asprintf(&s->trace_path, "%s/trace", l->dir) < 0) {
		s->trace_path = NULL;
		return -ENOMEM;
	}
	s->trace_replay_only = true;
	free(l->file);
	free(l->digest);
	free(l->dir);
	memset(l, 0, sizeof(*l));
	return 0;
}

static int spec_fields(json_t *root, const struct cfg *cfg, struct spec *s, char *err,
		       size_t errlen)
{
	bool accel = false, have_acl = false;
	const char *key;
	json_t *val;
	int rc = 0;

	json_object_foreach(root, key, val) {
		if (!strcmp(key, "repoBlobUrl")) {
			rc = dj_string(val, key, &s->repo_blob_url, err, errlen);
		} else if (!strcmp(key, "lowers")) {
			rc = parse_lowers(val, s, err, errlen);
		} else if (!strcmp(key, "upper")) {
			rc = parse_upper(val, s, err, errlen);
		} else if (!strcmp(key, "resultFile")) {
			rc = path_field(val, key, &s->result_file, err, errlen);
		} else if (!strcmp(key, "download")) {
			rc = cfg_download_parse(val, key, &s->download, err, errlen);
		} else if (!strcmp(key, "accelerationLayer")) {
			rc = dj_bool(val, key, &accel, err, errlen);
		} else if (!strcmp(key, "recordTracePath")) {
			rc = path_field(val, key, &s->trace_path, err, errlen);
		} else if (!strcmp(key, "chap")) {
			rc = cfg_chap_parse(val, key, &s->chap, err, errlen);
		} else if (!strcmp(key, "acl")) {
			dj_strarray_free(s->acl, s->nacl);
			s->acl = NULL;
			s->nacl = 0;
			rc = dj_strarray(val, key, &s->acl, &s->nacl, err, errlen);
			if (!rc)
				rc = acl_check(s->acl, s->nacl, err, errlen);
			have_acl = true;
		} else {
			log_warn("%s: unknown key \"%s\", ignored", s->name, key);
		}
		if (rc < 0)
			return rc;
	}
	if (accel)
		rc = take_acceleration_layer(s, err, errlen);
	if (rc < 0)
		return rc;
	if (!have_acl && cfg->nacl &&
	    dj_strarray_copy(&s->acl, &s->nacl, cfg->acl, cfg->nacl) < 0)
		return -ENOMEM;
	if (s->nlowers == 0 && !s->upper_data) {
		snprintf(err, errlen, "no layers: neither lowers nor upper given");
		return -EINVAL;
	}
	return 0;
}

int spec_parse(const char *text, size_t len, const struct cfg *cfg, const char *name,
	       struct spec **out, char *err, size_t errlen)
{
	json_error_t je;
	struct spec *s;
	json_t *root;
	int rc;

	rc = spec_name_check(cfg->iqn_prefix, name, err, errlen);
	if (rc < 0)
		return rc;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		dj_parse_error(&je, err, errlen);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "the spec must be a JSON object");
		json_decref(root);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		json_decref(root);
		return -ENOMEM;
	}
	s->download = cfg->download;
	s->name = strdup(name);
	s->iqn = spec_iqn(cfg->iqn_prefix, name);
	rc = s->name && s->iqn ? spec_fields(root, cfg, s, err, errlen) : -ENOMEM;
	json_decref(root);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (rc < 0) {
		spec_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/*
 * An unparsable spec still deserves its failed:<reason>: find a plain
 * "resultFile": "/path" member by scanning (no escapes in the path).
 */
static char *scan_result_file(const char *text, size_t len)
{
	static const char key[] = "\"resultFile\"";
	const char *end = text + len, *p = memmem(text, len, key, sizeof(key) - 1), *q;

	if (!p)
		return NULL;
	p += sizeof(key) - 1;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p >= end || *p++ != ':')
		return NULL;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p >= end || *p++ != '"' || p >= end || *p != '/')
		return NULL;
	for (q = p; q < end && *q != '"'; q++)
		if (*q == '\\' || (unsigned char)*q < 0x20)
			return NULL;
	if (q >= end || q - p >= PATH_MAX)
		return NULL;
	return strndup(p, q - p);
}

char *spec_peek_result_file(const char *text, size_t len)
{
	json_t *root = json_loadb(text, len, 0, NULL);
	const char *r = NULL;
	char *out = NULL;

	if (!root)
		return scan_result_file(text, len);
	if (json_is_object(root))
		r = json_string_value(json_object_get(root, "resultFile"));
	if (r && r[0] == '/')
		out = strdup(r);
	json_decref(root);
	return out;
}

/*
 * README "Writing specs": a symlink in the spool is followed only if it
 * points to a file directly in the spool.  The link is read, never followed
 * by the kernel: its directory part must be the spool itself (same inode)
 * and its last part a plain name, which the caller opens relative to the
 * spool with O_NOFOLLOW.  So nothing outside the spool is ever opened, and
 * a link swapped after this check cannot lead elsewhere either.
 */
static int link_in_spool(int dfd, const char *fname, char *base, size_t baselen, char *err,
			 size_t errlen)
{
	char target[PATH_MAX];
	struct stat sd, st;
	const char *name;
	char *slash;
	ssize_t n;

	n = readlinkat(dfd, fname, target, sizeof(target) - 1);
	if (n < 0) {
		snprintf(err, errlen, "cannot read symlink %s: %s", fname, strerror(errno));
		return -errno;
	}
	target[n] = 0;
	slash = strrchr(target, '/');
	name = slash ? slash + 1 : target;
	if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || strlen(name) >= baselen)
		goto outside;
	strcpy(base, name);
	if (!slash)
		return 0;
	/* The directory part: "/" itself, or everything before the last '/'. */
	slash[slash == target] = 0;
	if (fstatat(dfd, target, &st, 0) < 0) {
		if (errno != ENOENT)
			goto outside;
		snprintf(err, errlen, "spec %s is a dangling symlink", fname);
		return -ENOENT;
	}
	if (fstat(dfd, &sd) < 0 || st.st_dev != sd.st_dev || st.st_ino != sd.st_ino)
		goto outside;
	return 0;
outside:
	snprintf(err, errlen, "spec %s is a symlink leading outside the spool directory", fname);
	return -EPERM;
}

/* Open SPOOL/FNAME for reading without following a symlink out of it.
 * The fd, or -errno with ERR set. */
static int spec_open(const char *spool, const char *fname, char *err, size_t errlen)
{
	const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW;
	char base[NAME_MAX + 1];
	int dfd, fd, rc = 0;

	dfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open spool %s: %s", spool, strerror(-rc));
		return rc;
	}
	fd = openat(dfd, fname, flags);
	if (fd < 0 && errno == ELOOP) {
		rc = link_in_spool(dfd, fname, base, sizeof(base), err, errlen);
		if (rc == 0) {
			fd = openat(dfd, base, flags);
			rc = fd < 0 ? -errno : 0;
		}
		if (rc == -ELOOP) {
			snprintf(err, errlen, "spec %s is a symlink to another symlink (%s)", fname,
				 base);
			rc = -EPERM;
		} else if (rc == -ENOENT && !*err) {
			snprintf(err, errlen, "spec %s is a dangling symlink", fname);
		}
	} else if (fd < 0) {
		rc = -errno;
	}
	if (rc < 0 && !*err)
		snprintf(err, errlen, "cannot read spec %s/%s: %s", spool, fname, strerror(-rc));
	close(dfd);
	return rc < 0 ? rc : fd;
}

int spec_read(const char *spool, const char *fname, char **text, size_t *len, char *err,
	      size_t errlen)
{
	struct stat st;
	ssize_t n;
	char *buf;
	int fd;

	*err = 0;
	fd = spec_open(spool, fname, err, errlen);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > SPEC_MAX_BYTES) {
		snprintf(err, errlen, "spec %s is not a regular file of at most %u bytes", fname,
			 SPEC_MAX_BYTES);
		close(fd);
		return -EINVAL;
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = pread(fd, buf, st.st_size, 0);
	if (n < 0) {
		snprintf(err, errlen, "cannot read spec %s/%s: %s", spool, fname, strerror(errno));
		close(fd);
		free(buf);
		return -EIO;
	}
	close(fd);
	buf[n] = 0;
	*text = buf;
	*len = n;
	return 0;
}

/* A name no one can have planted in advance: the pid and 64 random bits. */
static int result_tmp_name(const char *base, char *tmp, size_t len)
{
	uint64_t r;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		return -EIO;
	if ((size_t)snprintf(tmp, len, ".%s.%d.%016llx.tmp", base, (int)getpid(),
			     (unsigned long long)r) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Create a fresh temporary file in DFD: O_EXCL with O_NOFOLLOW, so whatever
 * someone planted there (a symlink, a hard link to a file of theirs or of
 * root's) is never opened, let alone truncated.
 */
static int result_tmp_create(int dfd, const char *base, char *tmp, size_t len)
{
	for (int i = 0; i < RESULT_TMP_TRIES; i++) {
		int rc = result_tmp_name(base, tmp, len), fd;

		if (rc < 0)
			return rc;
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0 || errno != EEXIST)
			return fd < 0 ? -errno : fd;
	}
	return -EEXIST;
}

int spec_write_result(const char *path, const char *reason)
{
	char dir[PATH_MAX], tmp[NAME_MAX + 1];
	const char *msg = reason ? "failed:" : "success", *base = strrchr(path, '/');
	size_t ml = strlen(msg), rl = reason ? strlen(reason) : 0;
	int dfd, fd, rc = 0;

	/* config.md 1.4: created/truncated, no trailing newline.  The directory
	 * may belong to someone else, so the file is written to a fresh
	 * temporary name and renamed over PATH, both relative to one directory
	 * fd: a reader never sees a partial line, and a symlink planted at
	 * either name is replaced, never followed. */
	if (!base || !base[1] || (size_t)(base - path) >= sizeof(dir))
		return -EINVAL;
	if (base == path) {
		strcpy(dir, "/");
	} else {
		memcpy(dir, path, base - path);
		dir[base - path] = 0;
	}
	base++;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fd = result_tmp_create(dfd, base, tmp, sizeof(tmp));
	if (fd < 0) {
		close(dfd);
		return fd;
	}
	if (write(fd, msg, ml) != (ssize_t)ml || (rl && write(fd, reason, rl) != (ssize_t)rl))
		rc = -EIO;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && renameat(dfd, tmp, dfd, base) < 0)
		rc = -errno;
	if (rc)
		unlinkat(dfd, tmp, 0);
	close(dfd);
	return rc;
}
