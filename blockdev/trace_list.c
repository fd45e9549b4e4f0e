/*
 * trace_list: a file list in place of a trace (docs/trace.md, "File
 * lists"): one path inside the image's filesystem per line, a trailing '/'
 * or '*' for every file below a directory.  Only the parsing is here; the
 * paths become ranges through the caller's resolver (trace_replay.c).
 */
#include "trace_int.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The reference reads at most 64 KiB of list. */
#define TRACE_LIST_MAX (64 * 1024)

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* A path may not climb out of the root or hide control characters. */
static bool path_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return false;
		if (p[i] == '.' && i + 1 < n && p[i + 1] == '.' && (i == 0 || p[i - 1] == '/') &&
		    (i + 2 == n || p[i + 2] == '/'))
			return false;
	}
	return true;
}

static int add_path(struct bdev_trace *t, const char *p, size_t n, bool recursive)
{
	char **paths = realloc(t->paths, (t->npaths + 1) * sizeof(*paths));
	bool *rec;

	if (!paths)
		return -ENOMEM;
	t->paths = paths;
	rec = realloc(t->recursive, (t->npaths + 1) * sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	t->recursive = rec;
	paths[t->npaths] = malloc(n + 2);
	if (!paths[t->npaths])
		return -ENOMEM;
	paths[t->npaths][0] = '/';
	memcpy(paths[t->npaths] + 1, p, n);
	paths[t->npaths][n + 1] = '\0';
	rec[t->npaths++] = recursive;
	return 0;
}

/* One line, trimmed: its leading slashes go (the path is taken from the
 * root), a trailing '*' or '/' asks for the whole directory. */
static int parse_line(struct bdev_trace *t, const char *p, size_t n, unsigned *bad)
{
	bool recursive = false;

	while (n && is_space(*p))
		p++, n--;
	while (n && is_space(p[n - 1]))
		n--;
	while (n && *p == '/')
		p++, n--;
	if (n && p[n - 1] == '*')
		n--, recursive = true;
	while (n && p[n - 1] == '/')
		n--, recursive = true;
	if (n == 0 && !recursive)
		return 0;
	if (!path_ok(p, n)) {
		(*bad)++;
		return 0;
	}
	return add_path(t, p, n, recursive);
}

int trace_list_parse(struct bdev_trace *t, const char *buf, size_t size)
{
	unsigned bad = 0;
	size_t i = 0;
	int rc = 0;

	if (size > TRACE_LIST_MAX) {
		log_warn("trace %s: neither a trace nor a file list of at most 64 KiB; not used",
			 t->path);
		return -EINVAL;
	}
	while (i < size && rc == 0) {
		const char *nl = memchr(buf + i, '\n', size - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) : size - i;

		rc = parse_line(t, buf + i, n, &bad);
		i += n + 1;
	}
	if (rc == 0 && t->npaths == 0) {
		log_warn("trace %s: neither a trace nor a list of paths; not used", t->path);
		rc = -EINVAL;
	} else if (rc == 0 && bad) {
		log_warn("trace %s: %u lines of the file list ignored (a '..' or a control "
			 "character)", t->path, bad);
	}
	return rc;
}

void trace_list_free(struct bdev_trace *t)
{
	for (size_t i = 0; i < t->npaths; i++)
		free(t->paths[i]);
	free(t->paths);
	free(t->recursive);
	t->paths = NULL;
	t->recursive = NULL;
	t->npaths = 0;
}

size_t bdev_trace_npaths(const struct bdev_trace *t)
{
	return t->npaths;
}

const char *bdev_trace_path(const struct bdev_trace *t, size_t i, bool *recursive)
{
	if (i >= t->npaths)
		return NULL;
	if (recursive)
		*recursive = t->recursive[i];
	return t->paths[i];
}
