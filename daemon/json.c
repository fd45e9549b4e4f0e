/*
 * json: typed readers for config and spec fields.  The reference parses
 * with RapidJSON and treats a field of the wrong type as undefined
 * behaviour (config.md, preamble); we check every type and name the field
 * in the message instead.
 */
#include "daemon_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "a value";
}

int dj_string(json_t *v, const char *path, char **out, char *err, size_t errlen)
{
	char *s;

	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s: expected a string, got %s", path, type_name(v));
		return -EINVAL;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(err, errlen, "%s: string contains a NUL byte", path);
		return -EINVAL;
	}
	s = strdup(json_string_value(v));
	if (!s) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	free(*out);
	*out = s;
	return 0;
}

int dj_uint(json_t *v, const char *path, uint64_t min, uint64_t max, uint64_t *out,
	    char *err, size_t errlen)
{
	json_int_t i;

	if (!json_is_integer(v)) {
		snprintf(err, errlen, "%s: expected an unsigned integer, got %s", path,
			 type_name(v));
		return -EINVAL;
	}
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
		snprintf(err, errlen, "%s: %lld is out of range %llu..%llu", path, (long long)i,
			 (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*out = i;
	return 0;
}

int dj_bool(json_t *v, const char *path, bool *out, char *err, size_t errlen)
{
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, "%s: expected a boolean, got %s", path, type_name(v));
		return -EINVAL;
	}
	*out = json_is_true(v);
	return 0;
}

void dj_strarray_free(char **a, int n)
{
	for (int i = 0; i < n; i++)
		free(a[i]);
	free(a);
}

int dj_strarray(json_t *v, const char *path, char ***out, int *n, char *err, size_t errlen)
{
	char **a;
	size_t i, cnt;
	char p[256];
	int rc;

	if (!json_is_array(v)) {
		snprintf(err, errlen, "%s: expected an array of strings, got %s", path,
			 type_name(v));
		return -EINVAL;
	}
	cnt = json_array_size(v);
	if (cnt > 4096) {
		snprintf(err, errlen, "%s: too many entries (%zu, at most 4096)", path, cnt);
		return -EINVAL;
	}
	a = calloc(cnt + 1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		rc = dj_string(json_array_get(v, i), p, &a[i], err, errlen);
		if (rc < 0) {
			dj_strarray_free(a, i);
			return rc;
		}
	}
	dj_strarray_free(*out, *n);
	*out = a;
	*n = cnt;
	return 0;
}

int dj_strarray_copy(char ***dst, int *ndst, char *const *src, int n)
{
	char **a = calloc(n + 1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		a[i] = strdup(src[i]);
		if (!a[i]) {
			dj_strarray_free(a, i);
			return -ENOMEM;
		}
	}
	*dst = a;
	*ndst = n;
	return 0;
}

void dj_parse_error(const json_error_t *je, char *err, size_t errlen)
{
	snprintf(err, errlen, "invalid JSON at line %d column %d: %s", je->line, je->column,
		 je->text);
}
