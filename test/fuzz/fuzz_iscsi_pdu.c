/*
 * fuzz_iscsi_pdu: whole byte streams through one connection's receive state
 * machine (iscsi_conn_feed, the test seam of iscsi_int.h): BHS/AHS/data
 * parsing, login and text key negotiation, CHAP, SCSI commands with
 * immediate and unsolicited data, Data-Out, R2T, TMF, NOP and logout, on
 * a real target (writable LSMT device in temp files).  The connection's
 * socket is one end of a socketpair whose other end is drained and
 * dropped.  Input byte 0 picks how the stream is chopped (one chunk, or
 * chunks of 1..255 bytes), so partial headers and payloads are covered.
 *
 * Targets: iqn.2026-11.io.overlaybd:fuzz (no auth) and
 * iqn.2026-11.io.overlaybd:fuzzchap (CHAP user "fuzz", secret
 * "fuzz-secret-1", mutual "tgt"/"tgt-secret-2"); discovery is open.
 */
#include "blockdev/bdev.h"
#include "common/common.h"
#include "iscsi/iscsi_int.h"
#include "scsi/scsi.h"

#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct ev_loop *loop;
static struct bdev_pool *pool;
static struct iscsi_server *srv;
static struct scsi_dev *dev, *dev2;
static ev_io pool_io;

static struct bdev *make_dev(const char *dir, const char *name)
{
	char dn[512], xn[512];
	struct bdev_file *df, *xf;
	struct lsmt_layer *l;
	struct bdev *d;

	snprintf(dn, sizeof(dn), "%s/%s.data", dir, name);
	snprintf(xn, sizeof(xn), "%s/%s.index", dir, name);
	if (bdev_file_open_local(dn, O_RDWR | O_CREAT, BDEV_IO_PSYNC, &df) ||
	    bdev_file_open_local(xn, O_RDWR | O_CREAT, BDEV_IO_PSYNC, &xf) ||
	    lsmt_create_rw(df, xf, 8u << 20, NULL) || lsmt_open_rw(df, xf, &l) ||
	    bdev_open(NULL, 0, l, &d))
		abort();
	return d;
}

static void pool_cb(struct ev_loop *l, ev_io *w, int revents)
{
	bdev_pool_service(pool);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/fuzz_iscsi.XXXXXX";
	struct scsi_dev_info info = { "OVERLAYB", "fuzz", "0001", "F1", 0x6001405000000011ull,
				      "iqn.2026-11.io.overlaybd:fuzz", 1, 1 };
	struct iscsi_server_config cfg = { .max_queue_depth = 32 };
	struct iscsi_chap chap = { "fuzz", "fuzz-secret-1", "tgt", "tgt-secret-2" };
	struct iscsi_target *t;

	(void)argc;
	(void)argv;
	log_set_level(LOG_LVL_ERROR);
	loop = ev_default_loop(0);
	if (!mkdtemp(dir) || bdev_pool_create(2, &pool))
		abort();
	ev_io_init(&pool_io, pool_cb, bdev_pool_fd(pool), EV_READ);
	ev_io_start(loop, &pool_io);
	if (scsi_dev_create(make_dev(dir, "a"), pool, &info, &dev))
		abort();
	info.naa++;
	info.serial = "F2";
	info.target_name = "iqn.2026-11.io.overlaybd:fuzzchap";
	if (scsi_dev_create(make_dev(dir, "b"), pool, &info, &dev2))
		abort();
	if (iscsi_server_create(loop, &cfg, &srv) ||
	    iscsi_target_create(srv, "iqn.2026-11.io.overlaybd:fuzz", "fuzz", dev, NULL, NULL, 0,
				&t) ||
	    iscsi_target_create(srv, "iqn.2026-11.io.overlaybd:fuzzchap", NULL, dev2, &chap, NULL,
				0, &t))
		abort();
	return 0;
}

/* The connection may end itself (and be freed) while the loop runs. */
static bool conn_alive(struct iscsi_conn *c)
{
	struct iscsi_conn *o;

	for (o = srv->conns; o; o = o->next)
		if (o == c)
			return true;
	return false;
}

static void drain(int fd)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iscsi_conn *c;
	size_t chunk, off = 0;
	int sv[2], spins;

	if (size < 1)
		return 0;
	chunk = data[0] ? data[0] : size;
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		abort();
	c = iscsi_conn_new(srv, sv[0]);
	if (!c)
		abort();
	snprintf(c->peer, sizeof(c->peer), "fuzz");
	snprintf(c->peer_host, sizeof(c->peer_host), "fuzz");
	snprintf(c->local_portal, sizeof(c->local_portal), "127.0.0.1:3260");
	while (off < size && conn_alive(c) && c->state != CONN_CLOSED) {
		size_t n = size - off < chunk ? size - off : chunk;

		if (iscsi_conn_feed(c, data + off, n) < 0)
			break;
		off += n;
		/* Let completions and sends happen between chunks. */
		ev_run(loop, EVRUN_NOWAIT);
		drain(sv[1]);
	}
	if (conn_alive(c)) {
		iscsi_conn_close(c, "fuzz input done");
		iscsi_conn_maybe_free(c);
	}
	/* Tasks still in SCSI finish on the pool; the connection goes with
	 * the last of them. */
	for (spins = 0; srv->nconns && spins < 100000; spins++)
		ev_run(loop, EVRUN_ONCE);
	if (srv->nconns)
		abort();
	close(sv[1]);
	return 0;
}
