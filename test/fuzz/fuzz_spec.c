/*
 * fuzz_spec: the device spec parser (daemon/spec.c) on arbitrary bytes.
 * The first byte picks the device name from a small set, so name checks
 * are exercised together with the JSON.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/common.h"
#include "daemon/daemon.h"

static const char *const names[] = { "disk", "My_Disk.2", "a b", "..", "x/y", "" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cfg *cfg;
	struct spec *s = NULL;
	char err[512];
	char *r;

	if (!cfg) {
		log_set_level(LOG_LVL_ERROR);
		if (cfg_default(&cfg) < 0)
			abort();
	}
	if (size < 1)
		return 0;
	if (spec_parse((const char *)data + 1, size - 1, cfg,
		       names[data[0] % (sizeof(names) / sizeof(names[0]))], &s, err,
		       sizeof(err)) == 0)
		spec_free(s);
	r = spec_peek_result_file((const char *)data + 1, size - 1);
	free(r);
	return 0;
}
