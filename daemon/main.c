/*
 * main: the overlaybd-iscsid command line.
 *
 *   overlaybd-iscsid [--config FILE]            run in the foreground
 *   overlaybd-iscsid status [--config FILE | --socket PATH]
 */
#include "common/common.h"
#include "daemon/daemon.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: overlaybd-iscsid [--config FILE]\n"
		"       overlaybd-iscsid status [--config FILE | --socket PATH]\n"
		"Serves the device specs of the spool directory as iSCSI targets.\n"
		"Default config: %s\n", DAEMON_DEFAULT_CONFIG);
}

int main(int argc, char **argv)
{
	const char *config = DAEMON_DEFAULT_CONFIG, *sock = NULL;
	bool status = false;
	int i = 1;

	if (argc > 1 && !strcmp(argv[1], "status")) {
		status = true;
		i = 2;
	}
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc) {
			config = argv[++i];
		} else if (status && !strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock = argv[++i];
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!status) {
		/* Each command's data buffer (up to 16 MiB) is malloc'd and freed
		 * per command.  With glibc's defaults the heap top was trimmed and
		 * grown again all the time: at 1 MiB reads QD8, page faults, page
		 * zeroing and unmapping were a fifth of the daemon's time (perf).
		 * Keep such buffers in the heap and up to 64 MiB of free top. */
		mallopt(M_MMAP_THRESHOLD, 32 << 20);
		mallopt(M_TRIM_THRESHOLD, 64 << 20);
		return daemon_run(config);
	}
	if (!sock) {
		struct cfg *c;
		char err[1024];
		int rc;

		if (cfg_load(config, &c, err, sizeof(err)) < 0) {
			fprintf(stderr, "overlaybd-iscsid: config %s: %s\n", config, err);
			return 1;
		}
		rc = daemon_status(c->control_socket);
		cfg_free(c);
		return rc;
	}
	return daemon_status(sock);
}
