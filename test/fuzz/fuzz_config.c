/*
 * fuzz_config: the global config parser (daemon/config.c, daemon/auth.c)
 * on arbitrary bytes.
 */
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "daemon/daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg *c = NULL;
	char err[512];

	log_set_level(LOG_LVL_ERROR);
	if (cfg_parse((const char *)data, size, &c, err, sizeof(err)) == 0)
		cfg_free(c);
	return 0;
}
