/*
 * target: one SCSI logical unit and one iSCSI target per serving device.
 *
 * Identity is derived from the target name alone, so a device keeps its
 * NAA designator and serial across restarts and re-opens (initiators and
 * multipath tools key on them).  Removal goes through
 * iscsi_target_remove(), which tells sessions with an Async Message and
 * waits for them and their tasks; the unit and the image go away only once
 * no command holds the unit (scsi_dev_busy()).
 */
#include "daemon_int.h"
#include "blockdev/bdev.h"
#include "iscsi/iscsi.h"
#include "scsi/scsi.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/*
 * A locally administered OUI (the U/L bit of the first octet set): the
 * designator is ours, not an IEEE assignment.
 */
#define TARGET_OUI 0x0200b5ull

static void name_hash(const char *iqn, unsigned char out[32])
{
	unsigned int n = 32;

	EVP_Digest(iqn, strlen(iqn), out, &n, EVP_sha256(), NULL);
}

/* SPC-4 7.8.6.6.4: NAA 5 = IEEE Registered: 4 bits NAA, 24 bits OUI, 36 bits ours. */
uint64_t target_naa(const char *iqn)
{
	unsigned char h[32];
	uint64_t v = 0;

	name_hash(iqn, h);
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return 5ull << 60 | TARGET_OUI << 36 | (v & ((1ull << 36) - 1));
}

void target_serial(const char *iqn, char *buf, size_t len)
{
	unsigned char h[32];
	size_t i;

	name_hash(iqn, h);
	for (i = 0; i < 8 && 2 * i + 2 < len; i++)
		snprintf(buf + 2 * i, 3, "%02x", h[8 + i]);
	buf[2 * i] = 0;
}

static void chap_view(const struct cfg_chap *c, struct iscsi_chap *out)
{
	out->username = c->username;
	out->password = c->password;
	out->mutual_username = c->mutual_username;
	out->mutual_password = c->mutual_password;
}

int target_start(struct ddev *dev, char *err, size_t errlen)
{
	struct daemon *d = dev->d;
	const struct spec *s = dev->spec;
	struct iscsi_chap chap;
	char serial[17];
	struct scsi_dev_info info = {
		.vendor = "OVERLAYB",
		.product = "overlaybd-iscsid",
		.revision = "0001",
		.serial = serial,
		.naa = target_naa(s->iqn),
		.target_name = s->iqn,
		.rel_port_id = 1,
		.tpg_id = 1,
	};
	int rc;

	target_serial(s->iqn, serial, sizeof(serial));
	rc = scsi_dev_create(dev->img->bdev, d->pool, &info, &dev->sdev);
	if (rc < 0) {
		snprintf(err, errlen, "failed to create SCSI device: %s", strerror(-rc));
		return rc;
	}
	chap_view(&s->chap, &chap);
	rc = iscsi_target_create(d->srv, s->iqn, s->name, dev->sdev,
				 s->chap.username ? &chap : NULL,
				 (const char *const *)s->acl, s->nacl, &dev->tgt);
	if (rc < 0) {
		snprintf(err, errlen, "failed to create target %s: %s", s->iqn, strerror(-rc));
		scsi_dev_destroy(dev->sdev);
		dev->sdev = NULL;
		return rc;
	}
	return 0;
}

int target_set_auth(struct ddev *dev, const struct spec *s)
{
	struct iscsi_chap chap;

	chap_view(&s->chap, &chap);
	return iscsi_target_set_auth(dev->tgt, s->chap.username ? &chap : NULL,
				     (const char *const *)s->acl, s->nacl);
}

/* How often a removed target checks that no command holds its unit. */
#define TARGET_IDLE_POLL_S 0.01

struct stop_ctx {
	struct ddev *dev;
	void (*done)(struct ddev *dev);
	ev_timer idle;
};

static void image_closed(void *arg, int rc)
{
	struct stop_ctx *c = arg;
	struct ddev *dev = c->dev;

	if (rc < 0)
		log_error("%s: flushing the writable layer failed: %s", dev->name, strerror(-rc));
	else
		log_info("%s: target %s removed", dev->name, dev->iqn);
	c->done(dev);
	free(c);
}

/* The unit and then the image go only once no command holds the unit.  The
 * image closes on a job thread (image_close_async): closing waits for
 * fetches that this loop drives. */
static void target_release(struct stop_ctx *c)
{
	struct ddev *dev = c->dev;
	struct image *img = dev->img;

	scsi_dev_destroy(dev->sdev);
	dev->sdev = NULL;
	dev->img = NULL;
	image_close_async(dev->d->runner, img, image_closed, c);
}

static void target_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct stop_ctx *c = w->data;

	if (scsi_dev_busy(c->dev->sdev))
		return;
	ev_timer_stop(loop, w);
	target_release(c);
}

/*
 * The transport is done with the target: its sessions and their tasks are
 * gone.  A command may still hold the unit without a session of this
 * target (scsi_dev_busy() counts every holder), and freeing the unit or
 * closing the image under it would be a use after free, so wait for it.
 */
static void target_removed(void *arg)
{
	struct stop_ctx *c = arg;
	struct ddev *dev = c->dev;

	dev->tgt = NULL;
	if (!scsi_dev_busy(dev->sdev)) {
		target_release(c);
		return;
	}
	log_info("%s: waiting for commands in flight before closing", dev->name);
	ev_timer_init(&c->idle, target_idle_cb, TARGET_IDLE_POLL_S, TARGET_IDLE_POLL_S);
	c->idle.data = c;
	ev_timer_start(dev->d->loop, &c->idle);
}

void target_stop(struct ddev *dev, void (*done)(struct ddev *dev))
{
	struct stop_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	c->dev = dev;
	c->done = done;
	iscsi_target_remove(dev->tgt, target_removed, c);
}
