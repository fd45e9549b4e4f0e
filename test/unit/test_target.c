/*
 * test_target: the identity a target gets from its name (daemon/target.c)
 * is stable and distinct: NAA 5 with our locally administered OUI, and a
 * 16-hex-digit serial.  Removing a target frees its unit only once no
 * command holds it.
 */
#include "lsmt_helpers.h"

#include <poll.h>

#include "daemon/daemon_int.h"
#include "iscsi/iscsi.h"
#include "scsi/scsi.h"

static void test_naa(void **state)
{
	uint64_t a = target_naa("iqn.2026-11.io.overlaybd:disk1");
	uint64_t b = target_naa("iqn.2026-11.io.overlaybd:disk2");

	/* SPC-4 7.8.6.6.4: NAA 5, then the 24-bit OUI. */
	assert_int_equal(a >> 60, 5);
	assert_int_equal((a >> 36) & 0xffffff, 0x0200b5);
	assert_int_equal(b >> 60, 5);
	assert_true(a != b);
	assert_true(a == target_naa("iqn.2026-11.io.overlaybd:disk1"));
}

static void test_serial(void **state)
{
	char a[17], b[17], small[5];

	target_serial("iqn.2026-11.io.overlaybd:disk1", a, sizeof(a));
	target_serial("iqn.2026-11.io.overlaybd:disk2", b, sizeof(b));
	assert_int_equal(strlen(a), 16);
	assert_int_equal(strspn(a, "0123456789abcdef"), 16);
	assert_string_not_equal(a, b);
	target_serial("iqn.2026-11.io.overlaybd:disk1", b, sizeof(b));
	assert_string_equal(a, b);
	/* A short buffer gets whole hex pairs and a terminator. */
	target_serial("iqn.2026-11.io.overlaybd:disk1", small, sizeof(small));
	assert_int_equal(strlen(small), 4);
	assert_memory_equal(small, a, 4);
}

struct hold {
	struct scsi_task t;
	bool done;
	bool stopped;
	bool stopped_while_held;
};

static struct hold hold;

static void hold_task_done(struct scsi_task *t)
{
	scsi_task_release(t);
	hold.done = true;
}

static void hold_stopped(struct ddev *dev)
{
	hold.stopped = true;
	hold.stopped_while_held = !hold.done;
}

/*
 * Security round 2, item 7: a command that holds the unit without being a
 * task of the target's sessions (an EXTENDED COPY from another target did)
 * must keep the unit and the image alive after the transport let go.  The
 * pool's completions are delivered only when the test services it, so the
 * command is surely in flight while the removal runs.
 */
static void test_remove_waits_for_holder(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct iscsi_server_config cfg = { 0 };
	struct daemon d = { .loop = loop };
	struct ddev dev = { .d = &d, .name = "held", .iqn = "iqn.2026-11.io.overlaybd:held" };
	struct scsi_dev_info info = { .naa = target_naa(dev.iqn), .target_name = dev.iqn };
	struct lsmt_layer *l = open_ro(VEC "l1.lsmt");
	struct bdev_pool *pool;
	struct bdev *bd;
	struct scsi_itn *itn;
	struct iovec none = { 0 };

	assert_int_equal(bdev_pool_create(1, &pool), 0);
	assert_int_equal(bdev_open(&l, 1, NULL, &bd), 0);
	assert_int_equal(iscsi_server_create(loop, &cfg, &d.srv), 0);
	assert_int_equal(scsi_dev_create(bd, pool, &info, &dev.sdev), 0);
	assert_int_equal(iscsi_target_create(d.srv, dev.iqn, dev.name, dev.sdev, NULL, NULL, 0,
					     &dev.tgt), 0);
	itn = scsi_itn_attach(dev.sdev, "iqn.test:holder,i,0x1");
	/* A READ(10) of 8 blocks; the nexus's POWER ON unit attention answers
	 * the first one without I/O. */
	for (int i = 0; i < 2; i++) {
		memset(&hold, 0, sizeof(hold));
		hold.t.cdb[0] = 0x28;
		hold.t.cdb[8] = 8;
		hold.t.cdb_len = 10;
		hold.t.dir = SCSI_DIR_READ;
		hold.t.expected_len = 8 * 512;
		hold.t.out_iov = &none;
		scsi_task_execute(itn, &hold.t, hold_task_done);
	}
	assert_true(scsi_dev_busy(dev.sdev));
	/* Nexus loss: the command still holds the unit (SPC-4 6.16). */
	scsi_itn_detach(itn);
	target_stop(&dev, hold_stopped);
	for (int i = 0; i < 20 && !hold.stopped; i++)
		ev_run(loop, EVRUN_NOWAIT);
	if (hold.stopped)
		fail_msg("target removal: expected to wait for the command in flight, got the unit "
			 "freed under it");
	while (!hold.done) {
		struct pollfd p = { .fd = bdev_pool_fd(pool), .events = POLLIN };

		if (poll(&p, 1, 10000) <= 0)
			fail_msg("READ did not complete within 10 s");
		bdev_pool_service(pool);
	}
	if (hold.t.status != SCSI_STATUS_GOOD)
		fail_msg("READ: expected GOOD, got status %#x", hold.t.status);
	for (int i = 0; i < 500 && !hold.stopped; i++)
		ev_run(loop, EVRUN_ONCE);
	if (!hold.stopped || hold.stopped_while_held)
		fail_msg("target removal: expected done after the command, got stopped=%d held=%d",
			 hold.stopped, hold.stopped_while_held);
	assert_null(dev.sdev);
	iscsi_server_destroy(d.srv);
	bdev_close(bd);
	bdev_pool_destroy(pool);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_naa),
		cmocka_unit_test(test_serial),
		cmocka_unit_test(test_remove_waits_for_holder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
