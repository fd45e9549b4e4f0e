/*
 * iscsi_testd: a small iSCSI target for the transport's own tests: one or
 * more fresh writable LSMT devices (temp files, removed at exit) served by
 * the real SCSI layer and iSCSI server on 127.0.0.1 (and optionally ::1).
 * Prints "listening PORT" once the portal is up.  SIGTERM shuts down
 * cleanly (exit 0); SIGUSR1 removes the first target (Async logout test).
 *
 *   iscsi_testd [--port N] [--size MIB] [--targets N] [--name IQN]
 *               [--chap U:P] [--mutual U:P] [--disc-chap U:P] [--acl IQN]...
 *               [--login-timeout S] [--per-source N] [--max-conns N]
 *               [--nop-interval S] [--nop-timeout S] [--ipv6] [--threads N]
 */
#include "blockdev/bdev.h"
#include "common/common.h"
#include "iscsi/iscsi.h"
#include "scsi/scsi.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 16
#define MAX_ACL 8

struct dev {
	char data[256], index[256];
	struct bdev *bdev;
	struct scsi_dev *sdev;
	struct iscsi_target *tgt;
};

static struct ev_loop *loop;
static struct iscsi_server *srv;
static struct bdev_pool *pool;
static struct dev devs[MAX_TARGETS];
static int ndevs = 1;
static char tmpdir[] = "/tmp/iscsi_testd.XXXXXX";

static void usage(void)
{
	fprintf(stderr, "usage: iscsi_testd [--port N] [--size MIB] [--targets N] [--name IQN]\n"
			"  [--chap U:P] [--mutual U:P] [--disc-chap U:P] [--acl IQN]...\n"
			"  [--login-timeout S] [--per-source N] [--max-conns N]\n"
			"  [--nop-interval S] [--nop-timeout S] [--ipv6] [--threads N]\n");
	exit(2);
}

/* "user:password" into two strings (the argument is modified). */
static void split_cred(char *arg, const char **user, const char **pass)
{
	char *c = strchr(arg, ':');

	if (!c)
		usage();
	*c = '\0';
	*user = arg;
	*pass = c + 1;
}

static int make_dev(struct dev *d, int i, uint64_t size)
{
	struct bdev_file *df, *xf;
	struct lsmt_layer *upper;
	int rc;

	snprintf(d->data, sizeof(d->data), "%s/data%d", tmpdir, i);
	snprintf(d->index, sizeof(d->index), "%s/index%d", tmpdir, i);
	rc = bdev_file_open_local(d->data, O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC, &df);
	if (rc)
		return rc;
	rc = bdev_file_open_local(d->index, O_RDWR | O_CREAT | O_TRUNC, BDEV_IO_PSYNC, &xf);
	if (rc) {
		bdev_file_close(df);
		return rc;
	}
	rc = lsmt_create_rw(df, xf, size, NULL);
	if (!rc)
		rc = lsmt_open_rw(df, xf, &upper);
	if (rc) {
		bdev_file_close(df);
		bdev_file_close(xf);
		return rc;
	}
	return bdev_open(NULL, 0, upper, &d->bdev);
}

static void pool_cb(struct ev_loop *l, ev_io *w, int revents)
{
	bdev_pool_service(pool);
}

static void shutdown_done(void *arg)
{
	ev_break(loop, EVBREAK_ALL);
}

static void sig_cb(struct ev_loop *l, ev_signal *w, int revents)
{
	iscsi_server_shutdown(srv, shutdown_done, NULL);
}

static void removed(void *arg)
{
	struct dev *d = arg;

	fprintf(stderr, "iscsi_testd: target removed\n");
	d->tgt = NULL;
}

static void usr1_cb(struct ev_loop *l, ev_signal *w, int revents)
{
	if (devs[0].tgt)
		iscsi_target_remove(devs[0].tgt, removed, &devs[0]);
}

int main(int argc, char **argv)
{
	struct iscsi_server_config cfg = { 0 };
	struct iscsi_chap chap = { 0 }, dchap = { 0 };
	const char *acl[MAX_ACL];
	const char *name = "iqn.2026-11.io.overlaybd:test";
	int nacl = 0, port = 0, threads = 2, i, rc;
	uint64_t size = 64ull << 20;
	bool ipv6 = false, have_dchap = false;
	ev_io pool_io;
	ev_signal sterm, sint, susr1;
	char portal[64];

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--ipv6")) {
			ipv6 = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--port"))
			port = atoi(v);
		else if (!strcmp(a, "--size"))
			size = strtoull(v, NULL, 0) << 20;
		else if (!strcmp(a, "--targets"))
			ndevs = atoi(v);
		else if (!strcmp(a, "--name"))
			name = v;
		else if (!strcmp(a, "--chap"))
			split_cred(v, &chap.username, &chap.password);
		else if (!strcmp(a, "--mutual"))
			split_cred(v, &chap.mutual_username, &chap.mutual_password);
		else if (!strcmp(a, "--disc-chap")) {
			split_cred(v, &dchap.username, &dchap.password);
			have_dchap = true;
		} else if (!strcmp(a, "--disc-mutual"))
			split_cred(v, &dchap.mutual_username, &dchap.mutual_password);
		else if (!strcmp(a, "--acl") && nacl < MAX_ACL)
			acl[nacl++] = v;
		else if (!strcmp(a, "--login-timeout"))
			cfg.login_timeout = atoi(v);
		else if (!strcmp(a, "--per-source"))
			cfg.max_conns_per_source = atoi(v);
		else if (!strcmp(a, "--max-conns"))
			cfg.max_conns = atoi(v);
		else if (!strcmp(a, "--nop-interval"))
			cfg.nop_interval = atoi(v);
		else if (!strcmp(a, "--nop-timeout"))
			cfg.nop_timeout = atoi(v);
		else if (!strcmp(a, "--threads"))
			threads = atoi(v);
		else if (!strcmp(a, "--log"))
			log_set_level(atoi(v));
		else
			usage();
	}
	if (ndevs < 1 || ndevs > MAX_TARGETS || !size)
		usage();
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	loop = ev_default_loop(0);
	rc = bdev_pool_create(threads, &pool);
	if (rc) {
		fprintf(stderr, "bdev_pool_create: %s\n", strerror(-rc));
		return 1;
	}
	ev_io_init(&pool_io, pool_cb, bdev_pool_fd(pool), EV_READ);
	ev_io_start(loop, &pool_io);
	rc = iscsi_server_create(loop, &cfg, &srv);
	if (rc) {
		fprintf(stderr, "iscsi_server_create: %s\n", strerror(-rc));
		return 1;
	}
	if (have_dchap && iscsi_server_set_discovery_chap(srv, &dchap)) {
		fprintf(stderr, "bad discovery CHAP\n");
		return 1;
	}
	for (i = 0; i < ndevs; i++) {
		struct dev *d = &devs[i];
		char tname[256], serial[32];
		struct scsi_dev_info info = {
			.vendor = "OVERLAYB",
			.product = "iscsi_testd",
			.revision = "0001",
			.serial = serial,
			.naa = 0x6001405000000000ull + (uint64_t)i,
			.target_name = tname,
			.rel_port_id = 1,
			.tpg_id = 1,
		};

		if (i == 0)
			snprintf(tname, sizeof(tname), "%s", name);
		else
			snprintf(tname, sizeof(tname), "%s-%d", name, i);
		snprintf(serial, sizeof(serial), "testd%d", i);
		rc = make_dev(d, i, size);
		if (rc) {
			fprintf(stderr, "device %d: %s\n", i, strerror(-rc));
			return 1;
		}
		rc = scsi_dev_create(d->bdev, pool, &info, &d->sdev);
		if (!rc)
			rc = iscsi_target_create(srv, tname, "testd", d->sdev,
						 chap.username ? &chap : NULL, nacl ? acl : NULL,
						 nacl, &d->tgt);
		if (rc) {
			fprintf(stderr, "target %d: %s\n", i, strerror(-rc));
			return 1;
		}
	}
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (i = 0; i < 200; i++) {
		int p = port ? port : 20000 + rand() % 20000;

		snprintf(portal, sizeof(portal), "127.0.0.1:%d", p);
		rc = iscsi_server_listen(srv, portal);
		if (!rc && ipv6) {
			snprintf(portal, sizeof(portal), "[::1]:%d", p);
			rc = iscsi_server_listen(srv, portal);
			if (rc) {
				fprintf(stderr, "ipv6 portal: %s\n", strerror(-rc));
				return 1;
			}
		}
		if (!rc) {
			port = p;
			break;
		}
		if (port || rc != -EADDRINUSE) {
			fprintf(stderr, "listen: %s\n", strerror(-rc));
			return 1;
		}
	}
	printf("listening %d\n", port);
	fflush(stdout);
	ev_signal_init(&sterm, sig_cb, SIGTERM);
	ev_signal_init(&sint, sig_cb, SIGINT);
	ev_signal_init(&susr1, usr1_cb, SIGUSR1);
	ev_signal_start(loop, &sterm);
	ev_signal_start(loop, &sint);
	ev_signal_start(loop, &susr1);
	signal(SIGPIPE, SIG_IGN);
	ev_run(loop, 0);

	iscsi_server_destroy(srv);
	for (i = 0; i < ndevs; i++) {
		if (devs[i].sdev) {
			while (scsi_dev_busy(devs[i].sdev))
				ev_run(loop, EVRUN_ONCE);
			scsi_dev_destroy(devs[i].sdev);
		}
		if (devs[i].bdev) {
			bdev_flush(devs[i].bdev);
			bdev_close(devs[i].bdev);
		}
		unlink(devs[i].data);
		unlink(devs[i].index);
	}
	bdev_pool_destroy(pool);
	rmdir(tmpdir);
	ev_loop_destroy(loop);
	return 0;
}
