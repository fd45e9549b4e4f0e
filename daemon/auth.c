/*
 * auth: CHAP blocks of the config (`discoveryAuth`) and of specs (`chap`).
 *
 * Shape: {username, password, mutualUsername, mutualPassword}; a secret may
 * come from a file instead (passwordFile, mutualPasswordFile), which must
 * be owned by root (or the daemon's user), not readable by others and not
 * writable by group or others.  A symlink is followed and the file it leads
 * to is checked.  Mutual CHAP needs one-way CHAP (RFC 7143 12.1.3: the
 * target authenticates only after the initiator did).
 */
#include "daemon_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MAX 1024

void cfg_chap_free(struct cfg_chap *c)
{
	free(c->username);
	free(c->mutual_username);
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	if (c->mutual_password)
		explicit_bzero(c->mutual_password, strlen(c->mutual_password));
	free(c->password);
	free(c->mutual_password);
	memset(c, 0, sizeof(*c));
}

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return -ENOMEM;
	return 0;
}

int cfg_chap_copy(struct cfg_chap *dst, const struct cfg_chap *src)
{
	memset(dst, 0, sizeof(*dst));
	if (dup_opt(&dst->username, src->username) < 0 ||
	    dup_opt(&dst->password, src->password) < 0 ||
	    dup_opt(&dst->mutual_username, src->mutual_username) < 0 ||
	    dup_opt(&dst->mutual_password, src->mutual_password) < 0) {
		cfg_chap_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/*
 * A secret others can read is leaked; one others can write, or that belongs
 * to someone else, can be replaced by a secret they know.  Either way it is
 * refused rather than silently used.  ST is of the file actually opened, so
 * a symlink is judged by the file it leads to.
 */
static bool secret_unsafe(const struct stat *st, const char *path, const char *file,
			  char *err, size_t errlen)
{
	unsigned mode = st->st_mode & 07777;

	if (st->st_uid != 0 && st->st_uid != geteuid())
		snprintf(err, errlen,
			 "%s: secret file %s is owned by uid %u, not root; refusing it, chown root it",
			 path, file, (unsigned)st->st_uid);
	else if (st->st_mode & S_IROTH)
		snprintf(err, errlen,
			 "%s: secret file %s is world-readable (mode %04o); refusing it, "
			 "chmod o-r it", path, file, mode);
	else if (st->st_mode & (S_IWGRP | S_IWOTH))
		snprintf(err, errlen,
			 "%s: secret file %s is writable by group or others (mode %04o); "
			 "refusing it, chmod go-w it", path, file, mode);
	else
		return false;
	return true;
}

int cfg_secret_file(const char *file, const char *path, char **out, char *err,
		    size_t errlen)
{
	char buf[SECRET_MAX + 2];
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open secret file %s: %s", path, file,
			 strerror(errno));
		return -EINVAL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: secret file %s is not a regular file", path, file);
		close(fd);
		return -EINVAL;
	}
	if (secret_unsafe(&st, path, file, err, errlen)) {
		close(fd);
		return -EINVAL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "%s: reading %s: %s", path, file, strerror(errno));
		return -EINVAL;
	}
	if (n > SECRET_MAX) {
		snprintf(err, errlen, "%s: secret file %s is longer than %d bytes", path, file,
			 SECRET_MAX);
		return -EINVAL;
	}
	buf[n] = 0;
	/* One trailing newline is what `echo secret > file` leaves. */
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = 0;
	if (n == 0 || strlen(buf) != (size_t)n) {
		snprintf(err, errlen, "%s: secret file %s is empty or binary", path, file);
		explicit_bzero(buf, sizeof(buf));
		return -EINVAL;
	}
	free(*out);
	*out = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *out ? 0 : -ENOMEM;
}

struct chap_key {
	const char *name;
	size_t off;
	bool file; /* value names a secret file for the field at OFF */
};

static const struct chap_key chap_keys[] = {
	{ "username", offsetof(struct cfg_chap, username), false },
	{ "password", offsetof(struct cfg_chap, password), false },
	{ "passwordFile", offsetof(struct cfg_chap, password), true },
	{ "mutualUsername", offsetof(struct cfg_chap, mutual_username), false },
	{ "mutualPassword", offsetof(struct cfg_chap, mutual_password), false },
	{ "mutualPasswordFile", offsetof(struct cfg_chap, mutual_password), true },
};

static int chap_check(const struct cfg_chap *c, const char *path, char *err, size_t errlen)
{
	bool u = c->username && *c->username, p = c->password && *c->password;
	bool mu = c->mutual_username && *c->mutual_username;
	bool mp = c->mutual_password && *c->mutual_password;

	if (u != p) {
		snprintf(err, errlen, "%s: username and password go together", path);
		return -EINVAL;
	}
	if (mu != mp) {
		snprintf(err, errlen, "%s: mutualUsername and mutualPassword go together", path);
		return -EINVAL;
	}
	if (mu && !u) {
		snprintf(err, errlen, "%s: mutual CHAP needs username and password too", path);
		return -EINVAL;
	}
	if (u && mp && !strcmp(c->password, c->mutual_password)) {
		/* RFC 7143 12.1.3: the two directions must use different secrets. */
		snprintf(err, errlen, "%s: mutualPassword must differ from password", path);
		return -EINVAL;
	}
	return 0;
}

int cfg_chap_parse(json_t *v, const char *path, struct cfg_chap *out, char *err,
		   size_t errlen)
{
	struct cfg_chap c = { 0 };
	const char *key;
	json_t *val;
	char p[256];
	size_t i;
	int rc = 0;

	if (!json_is_object(v)) {
		snprintf(err, errlen, "%s: expected an object", path);
		return -EINVAL;
	}
	json_object_foreach(v, key, val) {
		snprintf(p, sizeof(p), "%s.%s", path, key);
		for (i = 0; i < sizeof(chap_keys) / sizeof(chap_keys[0]); i++)
			if (!strcmp(key, chap_keys[i].name))
				break;
		if (i == sizeof(chap_keys) / sizeof(chap_keys[0])) {
			log_warn("%s: unknown key, ignored", p);
			continue;
		}
		char **field = (char **)((char *)&c + chap_keys[i].off);

		if (chap_keys[i].file) {
			char *file = NULL;

			rc = dj_string(val, p, &file, err, errlen);
			if (!rc)
				rc = cfg_secret_file(file, p, field, err, errlen);
			free(file);
		} else {
			rc = dj_string(val, p, field, err, errlen);
		}
		if (rc < 0)
			break;
	}
	if (!rc)
		rc = chap_check(&c, path, err, errlen);
	if (rc < 0) {
		cfg_chap_free(&c);
		return rc;
	}
	cfg_chap_free(out);
	*out = c;
	return 0;
}
