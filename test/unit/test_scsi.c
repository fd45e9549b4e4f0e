/*
 * test_scsi: the SCSI device server (scsi/) against real block devices: a
 * fresh writable layer in a temp dir and the read-only stack-a vectors.
 * The worker pool is driven by a tiny loop (poll on its eventfd), as the
 * daemon's libev loop would.  Sense bytes are checked exactly.
 */
#include "lsmt_helpers.h"
#include "scsi/scsi.h"

#include <poll.h>

#define DEV_BYTES (64 * MiB)
#define DEV_BLOCKS (DEV_BYTES / 512)
#define NAA_A 0x6001405aaaaaaaa1ull
#define NAA_B 0x6001405bbbbbbbb2ull

struct fx {
	char *tmp;
	struct bdev_pool *pool;
	struct bdev *bd, *bd2, *ro;
	struct scsi_dev *dev, *dev2, *rodev;
	struct scsi_itn *a, *b, *a2, *r;
};

struct res {
	struct scsi_task t;
	bool done;
	uint8_t in[65536];
	uint32_t in_n;
};

static struct bdev *new_rw(const char *dir, const char *name)
{
	char dn[600], xn[600];
	struct bdev_file *df, *xf;
	struct bdev *d = NULL;

	snprintf(dn, sizeof(dn), "%s/%s.data", dir, name);
	snprintf(xn, sizeof(xn), "%s/%s.index", dir, name);
	df = open_file(dn, O_RDWR | O_CREAT);
	xf = open_file(xn, O_RDWR | O_CREAT);
	assert_int_equal(lsmt_create_rw(df, xf, DEV_BYTES, NULL), 0);
	bdev_file_close(df);
	bdev_file_close(xf);
	assert_int_equal(bdev_open(NULL, 0, open_rw(dn, xn), &d), 0);
	return d;
}

static int setup(void **state)
{
	static const char *const files[] = { VEC "l1.lsmt", VEC "l2.lsmt", VEC "l3.lsmt" };
	struct fx *f = calloc(1, sizeof(*f));
	struct lsmt_layer *l[3];
	struct scsi_dev_info ia = { "OVERLAYB", "test-a", "0001", "SERIAL-A", NAA_A,
				    "iqn.2026-11.io.overlaybd:a", 1, 1 };
	struct scsi_dev_info ib = ia, ir = ia;

	ib.naa = NAA_B;
	ib.serial = "SERIAL-B";
	ir.naa = 0x6001405cccccccc3ull;
	f->tmp = make_tmpdir();
	assert_int_equal(bdev_pool_create(2, &f->pool), 0);
	f->bd = new_rw(f->tmp, "a");
	f->bd2 = new_rw(f->tmp, "b");
	for (int i = 0; i < 3; i++)
		l[i] = open_ro(files[i]);
	assert_int_equal(bdev_open(l, 3, NULL, &f->ro), 0);
	assert_int_equal(scsi_dev_create(f->bd, f->pool, &ia, &f->dev), 0);
	assert_int_equal(scsi_dev_create(f->bd2, f->pool, &ib, &f->dev2), 0);
	assert_int_equal(scsi_dev_create(f->ro, f->pool, &ir, &f->rodev), 0);
	f->a = scsi_itn_attach(f->dev, "iqn.test:one,i,0x400001370000");
	f->b = scsi_itn_attach(f->dev, "iqn.test:two,i,0x400001370001");
	f->a2 = scsi_itn_attach(f->dev2, "iqn.test:one,i,0x400001370000");
	f->r = scsi_itn_attach(f->rodev, "iqn.test:one,i,0x400001370000");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	scsi_itn_detach(f->a);
	scsi_itn_detach(f->b);
	scsi_itn_detach(f->a2);
	scsi_itn_detach(f->r);
	assert_false(scsi_dev_busy(f->dev));
	scsi_dev_destroy(f->dev);
	scsi_dev_destroy(f->dev2);
	scsi_dev_destroy(f->rodev);
	bdev_pool_destroy(f->pool);
	bdev_close(f->bd);
	bdev_close(f->bd2);
	bdev_close(f->ro);
	rm_tmpdir(f->tmp);
	free(f);
	return 0;
}

static void on_done(struct scsi_task *t)
{
	struct res *r = (struct res *)t;
	uint32_t n = t->in_len < t->expected_len ? t->in_len : t->expected_len;
	uint32_t got = 0;

	if (t->dir != SCSI_DIR_READ)
		n = 0;
	for (int i = 0; i < t->in_iovcnt && got < n; i++) {
		uint32_t l = t->in_iov[i].iov_len;

		if (l > n - got)
			l = n - got;
		memcpy(r->in + got, t->in_iov[i].iov_base, l);
		got += l;
	}
	r->in_n = got;
	scsi_task_release(t);
	r->done = true;
}

static void wait_for(struct fx *f, struct res *r)
{
	while (!r->done) {
		struct pollfd p = { .fd = bdev_pool_fd(f->pool), .events = POLLIN };

		if (poll(&p, 1, 10000) <= 0)
			fail_msg("task did not complete within 10 s");
		bdev_pool_service(f->pool);
	}
}

/* Run CDB on ITN; DIR READ takes up to EXP bytes, WRITE sends OUT. */
static struct res *run(struct fx *f, struct scsi_itn *itn, const uint8_t *cdb, int len,
		       enum scsi_dir dir, const void *out, uint32_t outlen, uint32_t exp)
{
	static struct res r;
	struct iovec v = { (void *)out, outlen };

	memset(&r, 0, sizeof(r));
	memcpy(r.t.cdb, cdb, len);
	r.t.cdb_len = (uint8_t)len;
	r.t.dir = dir;
	r.t.expected_len = dir == SCSI_DIR_WRITE ? outlen : exp;
	r.t.out_iov = &v;
	r.t.out_iovcnt = out ? 1 : 0;
	r.t.out_len = out ? outlen : 0;
	scsi_task_execute(itn, &r.t, on_done);
	wait_for(f, &r);
	return &r;
}

static struct res *in(struct fx *f, struct scsi_itn *itn, const uint8_t *cdb, int len, uint32_t exp)
{
	return run(f, itn, cdb, len, SCSI_DIR_READ, NULL, 0, exp);
}

static struct res *none(struct fx *f, struct scsi_itn *itn, const uint8_t *cdb, int len)
{
	return run(f, itn, cdb, len, SCSI_DIR_NONE, NULL, 0, 0);
}

static void expect_status(const struct res *r, int want, const char *what)
{
	if ((int)r->t.status != want)
		fail_msg("%s: status expected %#x, got %#x (sense key %#x asc %02x/%02x)", what,
			 want, r->t.status, r->t.sense_len ? r->t.sense[2] & 0xf : 0,
			 r->t.sense[12], r->t.sense[13]);
}

/* Fixed-format sense: key, ASC/ASCQ and (SKS != 0) the field pointer. */
static void expect_sense(const struct res *r, uint8_t key, uint16_t asc, uint32_t sks,
			 const char *what)
{
	uint32_t got_sks;

	expect_status(r, SCSI_STATUS_CHECK_CONDITION, what);
	if (r->t.sense_len != 18 || (r->t.sense[0] & 0x7f) != 0x70)
		fail_msg("%s: fixed sense of 18 bytes expected, got %u bytes, byte 0 %#x", what,
			 r->t.sense_len, r->t.sense[0]);
	got_sks = (uint32_t)r->t.sense[15] << 16 | r->t.sense[16] << 8 | r->t.sense[17];
	if ((r->t.sense[2] & 0xf) != key || (r->t.sense[12] << 8 | r->t.sense[13]) != asc ||
	    got_sks != sks)
		fail_msg("%s: sense expected %x/%04x sks %06x, got %x/%02x%02x sks %06x", what, key,
			 asc, sks, r->t.sense[2] & 0xf, r->t.sense[12], r->t.sense[13], got_sks);
}

static void clear_ua(struct fx *f, struct scsi_itn *itn)
{
	static const uint8_t tur[6] = { 0 };

	for (int i = 0; i < 8; i++)
		if (none(f, itn, tur, 6)->t.status == SCSI_STATUS_GOOD)
			return;
	fail_msg("unit attentions do not clear");
}

static void cdb10(uint8_t *c, uint8_t op, uint32_t lba, uint16_t n)
{
	memset(c, 0, 10);
	c[0] = op;
	c[2] = lba >> 24;
	c[3] = lba >> 16;
	c[4] = lba >> 8;
	c[5] = lba;
	c[7] = n >> 8;
	c[8] = n;
}

static void cdb16(uint8_t *c, uint8_t op, uint64_t lba, uint32_t n)
{
	memset(c, 0, 16);
	c[0] = op;
	for (int i = 0; i < 8; i++)
		c[2 + i] = lba >> (56 - 8 * i);
	for (int i = 0; i < 4; i++)
		c[10 + i] = n >> (24 - 8 * i);
}

static void test_unit_attention_and_tur(void **state)
{
	struct fx *f = *state;
	uint8_t tur[6] = { 0 }, rs[6] = { 0x03, 0, 0, 0, 18, 0 };
	struct res *r;

	r = none(f, f->a, tur, 6);
	expect_sense(r, SCSI_SENSE_UNIT_ATTENTION, 0x2900, 0, "first TUR");
	expect_status(none(f, f->a, tur, 6), SCSI_STATUS_GOOD, "second TUR");
	clear_ua(f, f->b);
	/* REQUEST SENSE reports and clears a pending UA as data. */
	scsi_tmf(f->a, SCSI_TMF_LUN_RESET);
	r = in(f, f->b, rs, 6, 18);
	expect_status(r, SCSI_STATUS_GOOD, "REQUEST SENSE");
	if (r->in_n != 18 || r->in[0] != 0x70 || r->in[2] != 6 || r->in[12] != 0x29 ||
	    r->in[13] != 0x03)
		fail_msg("REQUEST SENSE data: expected 70/6/29h/03h, got %u bytes %02x/%x/%02x/%02x",
			 r->in_n, r->in[0], r->in[2], r->in[12], r->in[13]);
	r = in(f, f->b, rs, 6, 18);
	if (r->in[2] != 0 || r->in[12] != 0)
		fail_msg("REQUEST SENSE after UA: expected NO SENSE, got key %x asc %02x", r->in[2],
			 r->in[12]);
	clear_ua(f, f->b);
	/* Capacity change reaches every nexus. */
	scsi_dev_capacity_changed(f->dev);
	expect_sense(none(f, f->a, tur, 6), SCSI_SENSE_UNIT_ATTENTION, 0x2a09, 0, "capacity UA");
	clear_ua(f, f->b);
}

static void test_bad_opcode_and_fields(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	clear_ua(f, f->a);
	memset(c, 0, sizeof(c));
	c[0] = 0xff;
	expect_sense(none(f, f->a, c, 6), SCSI_SENSE_ILLEGAL_REQUEST, 0x2000, 0, "opcode FFh");
	/* RDPROTECT (byte 1 bits 7-5) is unsupported: pointer at bit 7. */
	cdb10(c, 0x28, 0, 1);
	c[1] = 0xe0;
	expect_sense(in(f, f->a, c, 10, 512), SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcf0001,
		     "READ(10) RDPROTECT");
	/* NACA in the control byte. */
	cdb10(c, 0x28, 0, 1);
	c[9] = 0x04;
	expect_sense(in(f, f->a, c, 10, 512), SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xca0009,
		     "READ(10) NACA");
	/* Unknown service action of SERVICE ACTION IN(16). */
	memset(c, 0, 16);
	c[0] = 0x9e;
	c[1] = 0x1f;
	expect_sense(in(f, f->a, c, 16, 32), SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcc0001,
		     "SAI(16) SA 1Fh");
	/* INQUIRY page code without EVPD. */
	memset(c, 0, 6);
	c[0] = 0x12;
	c[2] = 0x80;
	c[4] = 96;
	expect_sense(in(f, f->a, c, 6, 96), SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcf0002,
		     "INQUIRY page without EVPD");
	/* A LUN we do not have. */
	cdb10(c, 0x28, 0, 1);
	{
		static struct res r;
		struct iovec v = { 0 };

		memset(&r, 0, sizeof(r));
		memcpy(r.t.cdb, c, 10);
		r.t.lun = 3;
		r.t.dir = SCSI_DIR_READ;
		r.t.expected_len = 512;
		r.t.out_iov = &v;
		scsi_task_execute(f->a, &r.t, on_done);
		wait_for(f, &r);
		expect_sense(&r, SCSI_SENSE_ILLEGAL_REQUEST, 0x2500, 0, "READ on LUN 3");
	}
}

/* Every row REPORT SUPPORTED OPERATION CODES lists must run to an answer
 * with an all-zero CDB, and its one-command form must match. */
static void test_every_opcode(void **state)
{
	struct fx *f = *state;
	uint8_t c[16] = { 0xa3, 0x0c }, *list;
	struct res *r;
	uint32_t len;
	int rows = 0;

	clear_ua(f, f->a);
	c[6] = 0;
	c[7] = 0;
	c[8] = 0x10;
	r = in(f, f->a, c, 12, 4096);
	expect_status(r, SCSI_STATUS_GOOD, "RSOC all");
	len = (uint32_t)r->in[0] << 24 | r->in[1] << 16 | r->in[2] << 8 | r->in[3];
	if (len + 4 > r->in_n || len % 8)
		fail_msg("RSOC length: got %u of %u bytes", len, r->in_n);
	list = malloc(len);
	memcpy(list, r->in + 4, len);
	for (uint32_t o = 0; o < len; o += 8, rows++) {
		uint8_t op = list[o], cl = list[o + 7], x[16] = { 0 }, one[16] = { 0xa3, 0x0c };
		uint16_t sa = list[o + 2] << 8 | list[o + 3];
		bool servactv = list[o + 5] & 1;

		one[2] = servactv ? 2 : 1;
		one[3] = op;
		one[4] = sa >> 8;
		one[5] = sa;
		one[9] = 64;
		r = in(f, f->a, one, 12, 64);
		expect_status(r, SCSI_STATUS_GOOD, "RSOC one command");
		if ((r->in[1] & 7) != 3 || r->in[3] != cl || r->in[4] != op)
			fail_msg("RSOC one %02x/%x: expected supported, cdb %u, got %x, %u, %02x", op,
				 sa, cl, r->in[1] & 7, r->in[3], r->in[4]);
		x[0] = op;
		if (servactv)
			x[1] = (uint8_t)sa;
		/* Never PR OUT CLEAR etc. with garbage: all-zero fields are
		 * harmless by construction (lengths 0). */
		r = run(f, f->a, x, cl, SCSI_DIR_READ, NULL, 0, 512);
		if (r->t.status != SCSI_STATUS_GOOD && r->t.status != SCSI_STATUS_CHECK_CONDITION &&
		    r->t.status != SCSI_STATUS_RESERVATION_CONFLICT)
			fail_msg("opcode %02x/%x: unexpected status %#x", op, sa, r->t.status);
		if (r->t.status == SCSI_STATUS_CHECK_CONDITION && (r->t.sense[2] & 0xf) == 0x6)
			clear_ua(f, f->a);
	}
	free(list);
	if (rows < 60)
		fail_msg("RSOC rows: expected at least 60, got %d", rows);
	/* One-command form for an opcode without service actions, asked
	 * with service action reporting: invalid field. */
	c[2] = 2;
	c[3] = 0x28;
	expect_sense(in(f, f->a, c, 12, 64), SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xca0002,
		     "RSOC opts 2 for READ(10)");
	/* Unsupported opcode: SUPPORT 001b. */
	c[2] = 1;
	c[3] = 0xfe;
	r = in(f, f->a, c, 12, 64);
	if (r->t.status || (r->in[1] & 7) != 1)
		fail_msg("RSOC FEh: expected not supported, got status %#x support %x", r->t.status,
			 r->in[1] & 7);
	/* RCTD adds a 12-byte timeouts descriptor. */
	c[2] = 0x81;
	c[3] = 0x28;
	r = in(f, f->a, c, 12, 64);
	if (r->in_n != 4 + 10 + 12 || !(r->in[1] & 0x80))
		fail_msg("RSOC RCTD READ(10): expected 26 bytes with CTDP, got %u, %02x", r->in_n,
			 r->in[1]);
}

static void test_inquiry(void **state)
{
	struct fx *f = *state;
	uint8_t c[6] = { 0x12, 0, 0, 0, 255, 0 };
	struct res *r;

	clear_ua(f, f->a);
	r = in(f, f->a, c, 6, 255);
	expect_status(r, SCSI_STATUS_GOOD, "INQUIRY");
	if (r->in_n != 96 || r->in[0] != 0 || r->in[2] != 6 || r->in[3] != 0x12 ||
	    r->in[4] != 91 || memcmp(r->in + 8, "OVERLAYB", 8) || memcmp(r->in + 16, "test-a  ", 8))
		fail_msg("standard INQUIRY: got %u bytes, %02x %02x %02x %02x", r->in_n, r->in[0],
			 r->in[2], r->in[3], r->in[4]);
	/* Allocation length truncates; in_len says so. */
	c[4] = 5;
	r = in(f, f->a, c, 6, 5);
	if (r->t.in_len != 5 || r->in_n != 5)
		fail_msg("INQUIRY alloc 5: expected 5, got in_len %u", r->t.in_len);
	c[1] = 1;
	c[4] = 255;
	c[2] = 0x00;
	r = in(f, f->a, c, 6, 255);
	if (r->in[1] != 0 || r->in[3] != 6 || memcmp(r->in + 4, "\x00\x80\x83\xb0\xb1\xb2", 6))
		fail_msg("VPD 00: unexpected list");
	c[2] = 0x80;
	r = in(f, f->a, c, 6, 255);
	if (r->in[3] != 8 || memcmp(r->in + 4, "SERIAL-A", 8))
		fail_msg("VPD 80: expected SERIAL-A, got %.*s", r->in[3], r->in + 4);
	c[2] = 0x83;
	r = in(f, f->a, c, 6, 255);
	if (r->in[4] != 0x01 || r->in[5] != 0x03 || r->in[7] != 8 ||
	    memcmp(r->in + 8, "\x60\x01\x40\x5a\xaa\xaa\xaa\xa1", 8))
		fail_msg("VPD 83: first designator is not the NAA: %02x %02x %02x", r->in[4],
			 r->in[5], r->in[7]);
	c[2] = 0xb0;
	r = in(f, f->a, c, 6, 255);
	if (r->in_n != 64 || r->in[3] != 0x3c || r->in[4] != 0 || r->in[5] != 128)
		fail_msg("VPD B0: got %u bytes, len %02x WSNZ %x CAW %u", r->in_n, r->in[3],
			 r->in[4], r->in[5]);
	c[2] = 0xb2;
	r = in(f, f->a, c, 6, 255);
	if (r->in[5] != 0xe4 || r->in[6] != 2)
		fail_msg("VPD B2: expected e4/2, got %02x/%x", r->in[5], r->in[6]);
	c[2] = 0x86;
	expect_sense(in(f, f->a, c, 6, 255), SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcf0002,
		     "VPD 86");
}

/* Walk the designation descriptors of VPD page 83h in R; the one with
 * ASSOC_TYPE (byte 1) or NULL. */
static const uint8_t *vpd83_find(const struct res *r, uint8_t assoc_type)
{
	uint32_t end = 4 + (uint32_t)(r->in[2] << 8 | r->in[3]);

	if (end > r->in_n)
		fail_msg("VPD 83: page length %u, got only %u bytes", end - 4, r->in_n);
	for (uint32_t off = 4; off + 4 <= end; off += 4 + r->in[off + 3])
		if (r->in[off + 1] == assoc_type)
			return r->in + off;
	return NULL;
}

/* Security round 2, item 3: an IQN of the longest length RFC 7143 allows
 * (223 bytes) made VPD 83h outgrow its stack buffer (ASan reports it). */
static void test_inquiry_longest_name(void **state)
{
	struct fx *f = *state;
	char name[224], port[240];
	struct scsi_dev_info info = { "OVERLAYB", "test-long", "0001", "SERIAL-L", NAA_A, name,
				      1, 1 };
	uint8_t c[6] = { 0x12, 0x01, 0x83, 0x04, 0x00, 0 };
	const uint8_t *p;
	struct scsi_dev *d;
	struct scsi_itn *itn;
	struct res *r;

	memset(name, 'x', sizeof(name) - 1);
	memcpy(name, "iqn.2026-11.io.overlaybd:", 25);
	name[sizeof(name) - 1] = 0;
	snprintf(port, sizeof(port), "%s,t,0x0001", name);
	assert_int_equal(scsi_dev_create(f->bd, f->pool, &info, &d), 0);
	itn = scsi_itn_attach(d, "iqn.test:one,i,0x400001370000");
	clear_ua(f, itn);
	r = in(f, itn, c, 6, 1024);
	expect_status(r, SCSI_STATUS_GOOD, "VPD 83 with a 223-byte name");
	/* SPC-4 7.8.6.11: null terminated, padded to a multiple of 4. */
	p = vpd83_find(r, 0x80 | 0x10 | 0x08);
	if (!p || p[3] != 236 || memcmp(p + 4, port, strlen(port) + 1))
		fail_msg("VPD 83: target port name of 236 bytes expected, got %d", p ? p[3] : -1);
	p = vpd83_find(r, 0x80 | 0x20 | 0x08);
	if (!p || p[3] != 224 || memcmp(p + 4, name, sizeof(name)))
		fail_msg("VPD 83: target device name of 224 bytes expected, got %d", p ? p[3] : -1);
	if (r->in_n != 520)
		fail_msg("VPD 83: 520 bytes expected, got %u", r->in_n);
	scsi_itn_detach(itn);
	scsi_dev_destroy(d);
}

static void test_capacity_and_luns(void **state)
{
	struct fx *f = *state;
	uint8_t rc10[10] = { 0x25 }, rc16[16] = { 0x9e, 0x10 }, rl[12] = { 0xa0 };
	struct res *r;

	clear_ua(f, f->a);
	r = in(f, f->a, rc10, 10, 8);
	if (memcmp(r->in, "\x00\x01\xff\xff\x00\x00\x02\x00", 8))
		fail_msg("READ CAPACITY(10): wrong data");
	rc16[13] = 32;
	r = in(f, f->a, rc16, 16, 32);
	if (r->in_n != 32 || r->in[7] != 0xff || r->in[5] != 0x01 || r->in[13] != 3 ||
	    r->in[14] != 0xc0)
		fail_msg("READ CAPACITY(16): wrong data");
	rl[9] = 16;
	r = in(f, f->a, rl, 12, 16);
	if (r->in_n != 16 || r->in[3] != 8)
		fail_msg("REPORT LUNS: expected one LUN, got %u bytes", r->in_n);
	rl[9] = 15;
	expect_sense(in(f, f->a, rl, 12, 15), SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcf0006,
		     "REPORT LUNS alloc 15");
}

static void test_read_write(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], *buf = malloc(65536), *back = malloc(65536);
	struct res *r;

	clear_ua(f, f->a);
	for (int i = 0; i < 65536; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	cdb10(c, 0x2a, 100, 128);
	c[1] = 0x08; /* FUA */
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, buf, 65536, 0), 0, "WRITE(10) FUA");
	cdb16(c, 0x88, 100, 128);
	r = in(f, f->a, c, 16, 65536);
	expect_status(r, 0, "READ(16)");
	if (r->in_n != 65536 || memcmp(r->in, buf, 65536))
		fail_msg("READ(16) after WRITE(10): data differs");
	assert_int_equal(bdev_pread(f->bd, back, 65536, 100 * 512), 0);
	assert_memory_equal(back, buf, 65536);
	/* Short expected length: only that much comes back, in_len is full. */
	cdb10(c, 0x28, 100, 8);
	r = in(f, f->a, c, 10, 1000);
	if (r->t.in_len != 4096 || r->in_n != 1000 || memcmp(r->in, buf, 1000))
		fail_msg("READ(10) EDTL 1000: expected in_len 4096 and 1000 bytes, got %u/%u",
			 r->t.in_len, r->in_n);
	/* READ(6) of 0 blocks means 256. */
	memset(c, 0, 6);
	c[0] = 0x08;
	c[3] = 100;
	r = in(f, f->a, c, 6, 65536);
	if (r->t.in_len != 256 * 512)
		fail_msg("READ(6) 0 blocks: expected 131072 bytes, got %u", r->t.in_len);
	cdb10(c, 0x28, DEV_BLOCKS - 1, 2);
	expect_sense(in(f, f->a, c, 10, 1024), SCSI_SENSE_ILLEGAL_REQUEST, 0x2100, 0,
		     "READ(10) beyond end");
	cdb16(c, 0x8a, DEV_BLOCKS, 0);
	expect_sense(run(f, f->a, c, 16, SCSI_DIR_NONE, NULL, 0, 0), SCSI_SENSE_ILLEGAL_REQUEST,
		     0x2100, 0, "WRITE(16) 0 blocks past end");
	cdb16(c, 0x8a, DEV_BLOCKS - 1, 0);
	expect_status(run(f, f->a, c, 16, SCSI_DIR_NONE, NULL, 0, 0), 0, "WRITE(16) 0 blocks");
	/* Data-out shorter than the transfer length: the block that came
	 * is written, out_want tells the transport of the overflow. */
	assert_int_equal(bdev_pwrite(f->bd, back, 1024, 0), 0);
	cdb10(c, 0x2a, 0, 2);
	r = run(f, f->a, c, 10, SCSI_DIR_WRITE, buf, 700, 0);
	expect_status(r, 0, "WRITE(10) short data-out");
	if (r->t.out_want != 1024)
		fail_msg("WRITE(10) 2 blocks: out_want expected 1024, got %u", r->t.out_want);
	assert_int_equal(bdev_pread(f->bd, back + 2048, 1024, 0), 0);
	assert_memory_equal(back + 2048, buf, 512);
	assert_memory_equal(back + 2048 + 512, back + 512, 512);
	/* Over the maximum transfer length. */
	cdb16(c, 0x88, 0, 16385);
	expect_sense(in(f, f->a, c, 16, 512), SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcf000a,
		     "READ(16) too long");
	/* WRITE AND VERIFY and VERIFY with BYTCHK. */
	cdb10(c, 0x2e, 300, 4);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, buf, 2048, 0), 0, "WRITE AND VERIFY");
	cdb10(c, 0x2f, 300, 4);
	c[1] = 0x02;
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, buf, 2048, 0), 0, "VERIFY match");
	buf[1000] ^= 1;
	r = run(f, f->a, c, 10, SCSI_DIR_WRITE, buf, 2048, 0);
	expect_sense(r, SCSI_SENSE_MISCOMPARE, 0x1d00, 0, "VERIFY mismatch");
	if (!(r->t.sense[0] & 0x80) || r->t.sense[5] != 0x03 || r->t.sense[6] != 0xe8)
		fail_msg("VERIFY mismatch: expected INFORMATION 1000, got %02x%02x", r->t.sense[5],
			 r->t.sense[6]);
	buf[1000] ^= 1;
	cdb10(c, 0x2f, 300, 4);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_NONE, NULL, 0, 0), 0, "VERIFY BYTCHK 0");
	/* SYNCHRONIZE CACHE and PRE-FETCH. */
	cdb10(c, 0x35, 0, 0);
	expect_status(none(f, f->a, c, 10), 0, "SYNCHRONIZE CACHE(10)");
	cdb16(c, 0x90, DEV_BLOCKS - 1, 2);
	expect_sense(none(f, f->a, c, 16), SCSI_SENSE_ILLEGAL_REQUEST, 0x2100, 0,
		     "PRE-FETCH(16) beyond end");
	free(buf);
	free(back);
}

static void test_read_only_stack(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], ms[6] = { 0x1a, 0, 0x3f, 0, 255, 0 }, *want = malloc(65536);
	struct res *r;

	clear_ua(f, f->r);
	assert_int_equal(bdev_pread(f->ro, want, 65536, 0x100000), 0);
	cdb10(c, 0x28, 0x100000 / 512, 128);
	r = in(f, f->r, c, 10, 65536);
	if (r->t.status || memcmp(r->in, want, 65536))
		fail_msg("READ(10) of stack-a: status %#x or data differs", r->t.status);
	cdb10(c, 0x2a, 0, 1);
	expect_sense(run(f, f->r, c, 10, SCSI_DIR_WRITE, want, 512, 0), SCSI_SENSE_DATA_PROTECT,
		     0x2700, 0, "WRITE(10) on read-only");
	cdb16(c, 0x93, 0, 8);
	c[1] = 0x08;
	expect_sense(run(f, f->r, c, 16, SCSI_DIR_WRITE, want, 512, 0), SCSI_SENSE_DATA_PROTECT,
		     0x2700, 0, "WRITE SAME(16) on read-only");
	r = in(f, f->r, ms, 6, 255);
	if (!(r->in[2] & 0x80))
		fail_msg("MODE SENSE(6) on read-only: WP expected, got %02x", r->in[2]);
	/* GET LBA STATUS: stack-a's first 4 KiB is a discarded range. */
	cdb16(c, 0x9e, 0, 0);
	c[1] = 0x12;
	c[13] = 64;
	r = in(f, f->r, c, 16, 64);
	if (r->t.status || r->in[8 + 12] != 1 || r->in[8 + 11] != 8 || r->in[24 + 12] != 0)
		fail_msg("GET LBA STATUS stack-a: expected 8 deallocated then mapped, got %x %u %x",
			 r->in[20], r->in[19], r->in[36]);
	free(want);
}

static void test_write_same_unmap_lba_status(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], pat[512], unmap[24] = { 0, 22, 0, 16 }, *back = malloc(8192);
	struct res *r;

	clear_ua(f, f->a);
	memset(pat, 0x5a, sizeof(pat));
	cdb10(c, 0x41, 1000, 16);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, pat, 512, 0), 0, "WRITE SAME(10)");
	assert_int_equal(bdev_pread(f->bd, back, 8192, 1000 * 512), 0);
	for (int i = 0; i < 8192; i++)
		if (back[i] != 0x5a)
			fail_msg("WRITE SAME byte %d: expected 5a, got %02x", i, back[i]);
	/* Zero blocks: to the end, which is more than 65535 blocks here. */
	cdb10(c, 0x41, 1000, 0);
	expect_sense(run(f, f->a, c, 10, SCSI_DIR_WRITE, pat, 512, 0), SCSI_SENSE_ILLEGAL_REQUEST,
		     0x2400, 0xcf0007, "WRITE SAME(10) 0 blocks from 1000");
	cdb10(c, 0x41, DEV_BLOCKS - 8, 0);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, pat, 512, 0), 0,
		      "WRITE SAME(10) 0 blocks from the last 8");
	assert_int_equal(bdev_pread(f->bd, back, 4096, DEV_BYTES - 4096), 0);
	if (back[0] != 0x5a || back[4095] != 0x5a)
		fail_msg("WRITE SAME to the end: expected 5a, got %02x..%02x", back[0], back[4095]);
	cdb10(c, 0x41, DEV_BLOCKS, 0);
	expect_sense(run(f, f->a, c, 10, SCSI_DIR_WRITE, pat, 512, 0), SCSI_SENSE_ILLEGAL_REQUEST,
		     0x2100, 0, "WRITE SAME(10) 0 blocks past the end");
	cdb10(c, 0x41, 1000, 2);
	expect_sense(run(f, f->a, c, 10, SCSI_DIR_WRITE, back, 1024, 0),
		     SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcf0007, "WRITE SAME(10) 2 blocks out");
	/* WRITE SAME with UNMAP deallocates whatever the pattern (LBPRZ);
	 * GET LBA STATUS sees it. */
	memset(pat, 0xee, sizeof(pat));
	cdb16(c, 0x93, 1000, 8);
	c[1] = 0x08;
	expect_status(run(f, f->a, c, 16, SCSI_DIR_WRITE, pat, 512, 0), 0, "WRITE SAME(16) UNMAP");
	cdb16(c, 0x9e, 1000, 0);
	c[1] = 0x12;
	c[13] = 40;
	r = in(f, f->a, c, 16, 40);
	if (r->t.status || r->in[3] != 36 || r->in[8 + 12] != 1 || r->in[8 + 11] != 8 ||
	    r->in[24 + 12] != 0 || r->in[24 + 11] != 8)
		fail_msg("GET LBA STATUS: expected 8 deallocated + 8 mapped, got len %u %u/%x %u/%x",
			 r->in[3], r->in[19], r->in[20], r->in[35], r->in[36]);
	/* A start inside a 4 KiB physical block answers from the next one. */
	cdb16(c, 0x9e, 1001, 0);
	c[1] = 0x12;
	c[13] = 24;
	r = in(f, f->a, c, 16, 24);
	if (r->t.status || r->in[8 + 6] != 0x03 || r->in[8 + 7] != 0xf0 || r->in[8 + 12] != 0)
		fail_msg("GET LBA STATUS at 1001: expected mapped from 1008, got %02x%02x/%x",
			 r->in[14], r->in[15], r->in[20]);
	/* UNMAP the other 8. */
	unmap[8 + 7] = (1008 & 0xff);
	unmap[8 + 6] = 1008 >> 8;
	unmap[8 + 11] = 8;
	cdb10(c, 0x42, 0, 24);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, unmap, 24, 0), 0, "UNMAP");
	assert_int_equal(bdev_pread(f->bd, back, 8192, 1000 * 512), 0);
	for (int i = 0; i < 8192; i++)
		if (back[i])
			fail_msg("after UNMAP byte %d: expected 0, got %02x", i, back[i]);
	unmap[8 + 11] = 0;
	unmap[8 + 6] = 0xff;
	unmap[8 + 5] = 0xff;
	unmap[8 + 11] = 1;
	expect_sense(run(f, f->a, c, 10, SCSI_DIR_WRITE, unmap, 24, 0), SCSI_SENSE_ILLEGAL_REQUEST,
		     0x2100, 0, "UNMAP beyond end");
	cdb10(c, 0x42, 0, 4);
	expect_sense(run(f, f->a, c, 10, SCSI_DIR_WRITE, unmap, 4, 0), SCSI_SENSE_ILLEGAL_REQUEST,
		     0x1a00, 0, "UNMAP short list");
	free(back);
}

static void test_compare_and_write(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], data[2048], back[1024];
	struct res *r;

	clear_ua(f, f->a);
	memset(data, 0x11, 1024);
	cdb10(c, 0x2a, 2000, 2);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, data, 1024, 0), 0, "seed");
	memset(data + 1024, 0x22, 1024);
	cdb16(c, 0x89, 2000, 0);
	c[13] = 2;
	expect_status(run(f, f->a, c, 16, SCSI_DIR_WRITE, data, 2048, 0), 0, "CAW match");
	assert_int_equal(bdev_pread(f->bd, back, 1024, 2000 * 512), 0);
	assert_memory_equal(back, data + 1024, 1024);
	r = run(f, f->a, c, 16, SCSI_DIR_WRITE, data, 2048, 0);
	expect_sense(r, SCSI_SENSE_MISCOMPARE, 0x1d00, 0, "CAW miscompare");
	if (!(r->t.sense[0] & 0x80) || r->t.sense[6] != 0)
		fail_msg("CAW miscompare: INFORMATION 0 expected");
	expect_sense(run(f, f->a, c, 16, SCSI_DIR_WRITE, data, 1024, 0),
		     SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcf000d, "CAW short data-out");
	/* ORWRITE ORs into what is there. */
	memset(data, 0x44, 1024);
	cdb16(c, 0x8b, 2000, 2);
	expect_status(run(f, f->a, c, 16, SCSI_DIR_WRITE, data, 1024, 0), 0, "ORWRITE");
	assert_int_equal(bdev_pread(f->bd, back, 1024, 2000 * 512), 0);
	for (int i = 0; i < 1024; i++)
		if (back[i] != 0x66)
			fail_msg("ORWRITE byte %d: expected 66, got %02x", i, back[i]);
	cdb16(c, 0x9c, 2000, 0);
	c[13] = 2;
	expect_status(run(f, f->a, c, 16, SCSI_DIR_WRITE, data, 1024, 0), 0, "WRITE ATOMIC(16)");
	c[12] = 0x40;
	c[13] = 0x01;
	expect_sense(run(f, f->a, c, 16, SCSI_DIR_WRITE, data, 1024, 0), SCSI_SENSE_ILLEGAL_REQUEST,
		     0x2400, 0xcf000c, "WRITE ATOMIC(16) too long");
	/* Zero blocks with data-out (a wrapped length): invalid. */
	cdb16(c, 0x89, 2000, 0);
	expect_sense(run(f, f->a, c, 16, SCSI_DIR_WRITE, data, 1024, 0),
		     SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcf000d, "CAW 0 blocks with data");
}

static void pr_out(uint8_t *c, uint8_t *p, uint8_t sa, uint8_t type, uint64_t key,
		   uint64_t sakey)
{
	memset(c, 0, 10);
	memset(p, 0, 24);
	c[0] = 0x5f;
	c[1] = sa;
	c[2] = type;
	c[8] = 24;
	for (int i = 0; i < 8; i++) {
		p[i] = key >> (56 - 8 * i);
		p[8 + i] = sakey >> (56 - 8 * i);
	}
}

static void test_persistent_reservations(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], p[24], rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	uint8_t wr[10] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0 }, blk[512] = { 0 };
	uint8_t pin[10] = { 0x5e, 0, 0, 0, 0, 0, 0, 0, 32, 0 };
	struct res *r;

	clear_ua(f, f->a);
	clear_ua(f, f->b);
	pr_out(c, p, 0, 0, 0, 0xabc);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "REGISTER a");
	pr_out(c, p, 1, 1, 0xabc, 0);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "RESERVE WE");
	/* Write Exclusive: b may read, not write. */
	expect_status(in(f, f->b, rd, 10, 512), 0, "b reads under WE");
	expect_status(run(f, f->b, wr, 10, SCSI_DIR_WRITE, blk, 512, 0),
		      SCSI_STATUS_RESERVATION_CONFLICT, "b writes under WE");
	expect_status(run(f, f->a, wr, 10, SCSI_DIR_WRITE, blk, 512, 0), 0, "a writes");
	/* Wrong key. */
	pr_out(c, p, 2, 1, 0xabd, 0);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, p, 24, 0),
		      SCSI_STATUS_RESERVATION_CONFLICT, "RELEASE wrong key");
	/* Bad parameter list length. */
	pr_out(c, p, 0, 0, 0, 1);
	c[8] = 23;
	expect_sense(run(f, f->b, c, 10, SCSI_DIR_WRITE, p, 23, 0), SCSI_SENSE_ILLEGAL_REQUEST,
		     0x1a00, 0, "PR OUT length 23");
	pr_out(c, p, 0, 0, 0, 0xdef);
	expect_status(run(f, f->b, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "REGISTER b");
	pin[1] = 0;
	r = in(f, f->b, pin, 10, 32);
	if (r->in[7] != 16 || r->in[15] != 0xbc || r->in[22] != 0x0d || r->in[23] != 0xef)
		fail_msg("READ KEYS: expected 2 keys, got length %u", r->in[7]);
	pin[1] = 1;
	r = in(f, f->b, pin, 10, 32);
	if (r->in[7] != 16 || r->in[15] != 0xbc || r->in[21] != 1)
		fail_msg("READ RESERVATION: expected key abc type 1, got len %u type %u", r->in[7],
			 r->in[21]);
	pin[1] = 3;
	pin[7] = 1;
	pin[8] = 0;
	r = in(f, f->b, pin, 10, 256);
	if (r->t.status || r->in[8 + 12] != 0x03 || r->in[8 + 13] != 1 || r->in[8 + 24] != 0x45 ||
	    memcmp(r->in + 8 + 28, "iqn.test:one,i,0x400001370000", 29))
		fail_msg("READ FULL STATUS: unexpected first descriptor");
	pin[7] = 0;
	pin[8] = 32;
	/* PREEMPT by b takes the reservation and drops a. */
	pr_out(c, p, 4, 3, 0xdef, 0xabc);
	expect_status(run(f, f->b, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "PREEMPT");
	expect_sense(in(f, f->a, rd, 10, 512), SCSI_SENSE_UNIT_ATTENTION, 0x2a05, 0,
		     "a preempted UA");
	expect_status(in(f, f->a, rd, 10, 512), SCSI_STATUS_RESERVATION_CONFLICT,
		      "a reads under EA");
	/* RESERVE(6) conflicts with a persistent reservation. */
	memset(c, 0, 6);
	c[0] = 0x16;
	expect_status(none(f, f->a, c, 6), SCSI_STATUS_RESERVATION_CONFLICT, "RESERVE(6) vs PR");
	pr_out(c, p, 3, 0, 0xdef, 0);
	expect_status(run(f, f->b, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "CLEAR");
	pin[1] = 0;
	r = in(f, f->b, pin, 10, 32);
	if (r->in[7] != 0)
		fail_msg("READ KEYS after CLEAR: expected none, got %u bytes", r->in[7]);
	pin[1] = 2;
	r = in(f, f->b, pin, 10, 32);
	if (r->in[1] != 8 || r->in[4] != 0xea || r->in[5] != 1)
		fail_msg("REPORT CAPABILITIES: unexpected type mask %02x%02x", r->in[4], r->in[5]);
}

/* Security round 2, item 11: a TransportID length of 0xFFFFFFF0 wrapped
 * 24 + tidlen past the check and the name was read beyond the parameter
 * list (ASan reports the over-read). */
static void test_pr_register_move_length_wrap(void **state)
{
	struct fx *f = *state;
	uint8_t c[10], p[24 + 4 + 512];

	clear_ua(f, f->a);
	pr_out(c, p, 0, 0, 0, 0x77);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "REGISTER a");
	pr_out(c, p, 1, 1, 0x77, 0);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "RESERVE WE");
	pr_out(c, p, 7, 0, 0x77, 0x78);
	memset(p + 24, 'x', sizeof(p) - 24);
	p[20] = 0xff; /* TRANSPORTID PARAMETER DATA LENGTH 0xFFFFFFF0 */
	p[21] = 0xff;
	p[22] = 0xff;
	p[23] = 0xf0;
	p[24] = 0x05; /* iSCSI TransportID, format 00b */
	c[7] = sizeof(p) >> 8;
	c[8] = sizeof(p) & 0xff;
	expect_sense(run(f, f->a, c, 10, SCSI_DIR_WRITE, p, sizeof(p), 0),
		     SCSI_SENSE_ILLEGAL_REQUEST, 0x2600, 0x8f0018, "REGISTER AND MOVE tidlen 2^32-16");
	pr_out(c, p, 3, 0, 0x77, 0);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "CLEAR");
}

/* Security round 2, item S: registrations persist across nexus loss (SPC-4
 * 5.13.7), so their number per LU is bounded: the 257th port gets
 * INSUFFICIENT REGISTRATION RESOURCES, registrants still change keys. */
#define REG_LIMIT 256
static void test_pr_registration_limit(void **state)
{
	struct fx *f = *state;
	uint8_t c[10], p[24];
	char port[64];
	struct scsi_itn *itn;
	struct res *r;

	for (int i = 0; i <= REG_LIMIT; i++) {
		snprintf(port, sizeof(port), "iqn.test:many,i,0x%012x", i);
		itn = scsi_itn_attach(f->dev, port);
		clear_ua(f, itn);
		pr_out(c, p, 0, 0, 0, 0x1000 + (uint64_t)i);
		r = run(f, itn, c, 10, SCSI_DIR_WRITE, p, 24, 0);
		if (i < REG_LIMIT)
			expect_status(r, 0, "REGISTER below the limit");
		else
			expect_sense(r, SCSI_SENSE_ILLEGAL_REQUEST, 0x5504, 0,
				     "REGISTER past the limit");
		/* Nexus loss: the registration stays with the port name. */
		scsi_itn_detach(itn);
	}
	itn = scsi_itn_attach(f->dev, "iqn.test:many,i,0x000000000000");
	clear_ua(f, itn);
	pr_out(c, p, 0, 0, 0x1000, 0x2000);
	expect_status(run(f, itn, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0,
		      "a registrant changes its key at the limit");
	pr_out(c, p, 3, 0, 0x2000, 0);
	expect_status(run(f, itn, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "CLEAR");
	scsi_itn_detach(itn);
}

static void test_reserve6(void **state)
{
	struct fx *f = *state;
	uint8_t rsv[6] = { 0x16 }, rel[6] = { 0x17 }, tur[6] = { 0 };
	struct scsi_itn *c3;

	clear_ua(f, f->a);
	clear_ua(f, f->b);
	expect_status(none(f, f->a, rsv, 6), 0, "RESERVE(6) a");
	expect_status(none(f, f->a, rsv, 6), 0, "RESERVE(6) a again");
	expect_status(none(f, f->b, rsv, 6), SCSI_STATUS_RESERVATION_CONFLICT, "RESERVE(6) b");
	expect_status(none(f, f->b, tur, 6), SCSI_STATUS_RESERVATION_CONFLICT, "TUR b");
	expect_status(none(f, f->b, rel, 6), 0, "RELEASE(6) b is a no-op");
	expect_status(none(f, f->b, tur, 6), SCSI_STATUS_RESERVATION_CONFLICT, "TUR b again");
	expect_status(none(f, f->a, rel, 6), 0, "RELEASE(6) a");
	expect_status(none(f, f->b, tur, 6), 0, "TUR b after release");
	/* Nexus loss releases it. */
	c3 = scsi_itn_attach(f->dev, "iqn.test:three,i,0x1");
	clear_ua(f, c3);
	expect_status(none(f, c3, rsv, 6), 0, "RESERVE(6) c");
	scsi_itn_detach(c3);
	expect_status(none(f, f->b, tur, 6), 0, "TUR b after c's nexus loss");
	/* LUN reset releases it and tells the others. */
	expect_status(none(f, f->a, rsv, 6), 0, "RESERVE(6) a");
	scsi_tmf(f->b, SCSI_TMF_LUN_RESET);
	expect_sense(none(f, f->a, tur, 6), SCSI_SENSE_UNIT_ATTENTION, 0x2903, 0,
		     "a after LUN RESET");
	expect_status(none(f, f->b, rsv, 6), 0, "RESERVE(6) b after reset");
	expect_status(none(f, f->b, rel, 6), 0, "RELEASE(6) b");
}

static void test_mode_pages(void **state)
{
	struct fx *f = *state;
	uint8_t ms[10] = { 0x5a, 0, 0x0a, 0, 0, 0, 0, 0, 255, 0 }, sel[6] = { 0x15, 0x10 };
	uint8_t page[4 + 8 + 12], c[10], blk[512] = { 0 };
	struct res *r;

	clear_ua(f, f->a);
	r = in(f, f->a, ms, 10, 255);
	if (r->t.status || r->in_n != 8 + 8 + 12 || r->in[3] != 0x10 || r->in[8 + 8] != 0x0a)
		fail_msg("MODE SENSE(10) control: got %u bytes", r->in_n);
	/* Saved values are not supported. */
	ms[2] = 0xc8;
	expect_sense(in(f, f->a, ms, 10, 255), SCSI_SENSE_ILLEGAL_REQUEST, 0x3900, 0,
		     "MODE SENSE saved");
	ms[2] = 0x37;
	expect_sense(in(f, f->a, ms, 10, 255), SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xcd0002,
		     "MODE SENSE page 37h");
	/* MODE SELECT(6): D_SENSE and SWP on. */
	memset(page, 0, sizeof(page));
	page[3] = 8;
	page[4 + 6] = 0x02; /* block length 512 */
	page[12] = 0x0a;
	page[13] = 0x0a;
	page[14] = 0x02 | 0x04;
	page[15] = 0x10;
	page[16] = 0x08;
	page[20] = 0xff;
	page[21] = 0xff;
	sel[4] = sizeof(page);
	expect_status(run(f, f->a, sel, 6, SCSI_DIR_WRITE, page, sizeof(page), 0), 0,
		      "MODE SELECT(6)");
	cdb10(c, 0x2a, 0, 1);
	r = run(f, f->a, c, 10, SCSI_DIR_WRITE, blk, 512, 0);
	expect_status(r, SCSI_STATUS_CHECK_CONDITION, "WRITE with SWP");
	if (r->t.sense[0] != 0x72 || r->t.sense[1] != 7 || r->t.sense[2] != 0x27)
		fail_msg("descriptor sense expected 72/7/27h, got %02x/%x/%02x", r->t.sense[0],
			 r->t.sense[1], r->t.sense[2]);
	/* The other nexus hears of it, in descriptor format now. */
	r = none(f, f->b, c, 10);
	if (r->t.status != SCSI_STATUS_CHECK_CONDITION || r->t.sense[0] != 0x72 ||
	    r->t.sense[1] != 6 || r->t.sense[2] != 0x2a || r->t.sense[3] != 0x01)
		fail_msg("b: expected MODE PARAMETERS CHANGED, got %02x/%x/%02x%02x",
			 r->t.sense[0], r->t.sense[1], r->t.sense[2], r->t.sense[3]);
	/* A LUN reset restores the defaults. */
	scsi_tmf(f->a, SCSI_TMF_LUN_RESET);
	clear_ua(f, f->b);
	expect_status(run(f, f->a, c, 10, SCSI_DIR_WRITE, blk, 512, 0), 0, "WRITE after reset");
}

static void test_mode_select_errors(void **state)
{
	struct fx *f = *state;
	uint8_t sel[6] = { 0x15, 0x10 }, page[4 + 12] = { 0 }, tur[6] = { 0 };

	clear_ua(f, f->a);
	/* Changing a bit that is not changeable (TST). */
	page[4] = 0x0a;
	page[5] = 0x0a;
	page[6] = 0x02 | 0x20;
	page[7] = 0x10;
	page[12] = 0xff;
	page[13] = 0xff;
	sel[4] = sizeof(page);
	expect_sense(run(f, f->a, sel, 6, SCSI_DIR_WRITE, page, sizeof(page), 0),
		     SCSI_SENSE_ILLEGAL_REQUEST, 0x2600, 0x8d0006, "MODE SELECT TST");
	sel[1] = 0x11;
	expect_sense(run(f, f->a, sel, 6, SCSI_DIR_WRITE, page, sizeof(page), 0),
		     SCSI_SENSE_ILLEGAL_REQUEST, 0x2400, 0xc80001, "MODE SELECT SP");
	expect_status(none(f, f->a, tur, 6), 0, "TUR");
}

/* One LID1 parameter list: CSCD 0 names SRC, CSCD 1 DST, one segment of N
 * blocks from SLBA to DLBA. */
static void xcopy_list(uint8_t *p, uint64_t src, uint64_t dst, uint64_t slba, uint64_t dlba,
		       uint16_t n)
{
	memset(p, 0, 16 + 64 + 28);
	p[0] = 7;         /* list id */
	p[3] = 64;        /* two CSCDs */
	p[11] = 28;       /* one segment */
	for (int k = 0; k < 2; k++) {
		uint8_t *d = p + 16 + 32 * k;
		uint64_t naa = k ? dst : src;

		d[0] = 0xe4;
		d[4] = 0x01;
		d[5] = 0x03;
		d[7] = 8;
		for (int i = 0; i < 8; i++)
			d[8 + i] = naa >> (56 - 8 * i);
		d[30] = 0x02; /* block length 512 */
	}
	p[80] = 0x02;
	p[83] = 0x18;
	p[87] = 1;        /* to CSCD 1 */
	p[90] = n >> 8;
	p[91] = n & 0xff;
	for (int i = 0; i < 8; i++) {
		p[92 + i] = slba >> (56 - 8 * i);
		p[100 + i] = dlba >> (56 - 8 * i);
	}
}

static void test_xcopy(void **state)
{
	struct fx *f = *state;
	uint8_t c[16] = { 0x83 }, p[16 + 64 + 28], *buf = malloc(8192), *back = malloc(8192);
	uint8_t rcr[16] = { 0x84, 0x00, 0x07 };
	struct res *r;

	clear_ua(f, f->a);
	for (int i = 0; i < 8192; i++)
		buf[i] = (uint8_t)(i ^ 0x5c);
	assert_int_equal(bdev_pwrite(f->bd, buf, 8192, 4096 * 512), 0);
	xcopy_list(p, NAA_A, NAA_A, 4096, 32, 16);
	c[13] = sizeof(p);
	expect_status(run(f, f->a, c, 16, SCSI_DIR_WRITE, p, sizeof(p), 0), 0, "EXTENDED COPY");
	assert_int_equal(bdev_pread(f->bd, back, 8192, 32 * 512), 0);
	assert_memory_equal(back, buf, 8192);
	rcr[2] = 7;
	rcr[13] = 12;
	r = in(f, f->a, rcr, 16, 12);
	if (r->t.status || r->in[4] != 1 || r->in[6] != 1 || r->in[10] != 0x20)
		fail_msg("COPY STATUS: expected done, 1 segment, 8192 bytes; got %x %u %02x",
			 r->in[4], r->in[6], r->in[10]);
	rcr[1] = 3;
	rcr[2] = 0;
	rcr[13] = 64;
	r = in(f, f->a, rcr, 16, 64);
	if (r->t.status || r->in[9] != 8 || r->in[11] != 64 || r->in[43] != 2)
		fail_msg("OPERATING PARAMETERS: unexpected");
	/* Unknown NAA: unreachable copy target. */
	p[16 + 15] ^= 0xff;
	expect_sense(run(f, f->a, c, 16, SCSI_DIR_WRITE, p, sizeof(p), 0), 0x0a, 0x0804, 0,
		     "EXTENDED COPY unknown LU");
	p[16 + 15] ^= 0xff;
	p[80] = 0x0a;
	expect_sense(run(f, f->a, c, 16, SCSI_DIR_WRITE, p, sizeof(p), 0),
		     SCSI_SENSE_ILLEGAL_REQUEST, 0x2609, 0, "EXTENDED COPY segment type");
	free(buf);
	free(back);
}

/* Security round 2, item 2: a copy may touch only the LU the nexus
 * addressed.  Another LU of the process (another target, whose ACL and
 * reservations never saw this nexus) answers exactly as a designator that
 * exists nowhere, and its blocks neither leave nor change. */
static void test_xcopy_other_lu(void **state)
{
	struct fx *f = *state;
	uint8_t c[16] = { 0x83 }, p[16 + 64 + 28], *mark = malloc(8192), *back = malloc(8192);
	uint8_t wr[10];

	clear_ua(f, f->a);
	for (int i = 0; i < 8192; i++)
		mark[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(bdev_pwrite(f->bd2, mark, 8192, 64 * 512), 0);
	c[13] = sizeof(p);
	xcopy_list(p, NAA_B, NAA_A, 64, 128, 16);
	expect_sense(run(f, f->a, c, 16, SCSI_DIR_WRITE, p, sizeof(p), 0), 0x0a, 0x0804, 0,
		     "EXTENDED COPY out of another LU");
	assert_int_equal(bdev_pread(f->bd, back, 8192, 128 * 512), 0);
	if (!memcmp(back, mark, 8192))
		fail_msg("EXTENDED COPY out of another LU: expected no blocks copied, got them");
	xcopy_list(p, NAA_A, NAA_B, 0, 64, 16);
	expect_sense(run(f, f->a, c, 16, SCSI_DIR_WRITE, p, sizeof(p), 0), 0x0a, 0x0804, 0,
		     "EXTENDED COPY into another LU");
	assert_int_equal(bdev_pread(f->bd2, back, 8192, 64 * 512), 0);
	if (memcmp(back, mark, 8192))
		fail_msg("EXTENDED COPY into another LU: expected its blocks unchanged, got changed");
	/* The LU's own reservations: a copy conflicts as a WRITE would. */
	clear_ua(f, f->b);
	pr_out(c, p, 0, 0, 0, 0x55);
	expect_status(run(f, f->b, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "REGISTER b");
	pr_out(c, p, 1, 3, 0x55, 0);
	expect_status(run(f, f->b, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "RESERVE EA by b");
	cdb10(wr, 0x2a, 0, 1);
	expect_status(run(f, f->a, wr, 10, SCSI_DIR_WRITE, mark, 512, 0),
		      SCSI_STATUS_RESERVATION_CONFLICT, "a writes under b's EA");
	memset(c, 0, sizeof(c));
	c[0] = 0x83;
	c[13] = sizeof(p);
	xcopy_list(p, NAA_A, NAA_A, 0, 64, 1);
	expect_status(run(f, f->a, c, 16, SCSI_DIR_WRITE, p, sizeof(p), 0),
		      SCSI_STATUS_RESERVATION_CONFLICT, "a copies under b's EA");
	pr_out(c, p, 3, 0, 0x55, 0);
	expect_status(run(f, f->b, c, 10, SCSI_DIR_WRITE, p, 24, 0), 0, "CLEAR");
	free(mark);
	free(back);
}

static void test_stats_and_detach_in_flight(void **state)
{
	struct fx *f = *state;
	struct scsi_dev_stats st;
	struct scsi_itn *x = scsi_itn_attach(f->dev, "iqn.test:four,i,0x9");
	static struct res r;
	uint8_t c[10];
	struct iovec v = { 0 };

	scsi_dev_stats(f->dev, &st);
	if (st.read_ops == 0 || st.write_ops == 0 || st.inflight != 0)
		fail_msg("stats: reads %llu writes %llu inflight %u", (unsigned long long)st.read_ops,
			 (unsigned long long)st.write_ops, st.inflight);
	clear_ua(f, x);
	/* Nexus loss while a read is in flight: it still completes. */
	memset(&r, 0, sizeof(r));
	cdb10(c, 0x28, 0, 8);
	memcpy(r.t.cdb, c, 10);
	r.t.dir = SCSI_DIR_READ;
	r.t.expected_len = 4096;
	r.t.out_iov = &v;
	scsi_task_execute(x, &r.t, on_done);
	assert_true(scsi_dev_busy(f->dev));
	scsi_itn_detach(x);
	wait_for(f, &r);
	expect_status(&r, 0, "READ across detach");
	assert_false(scsi_dev_busy(f->dev));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unit_attention_and_tur),
		cmocka_unit_test(test_bad_opcode_and_fields),
		cmocka_unit_test(test_every_opcode),
		cmocka_unit_test(test_inquiry),
		cmocka_unit_test(test_inquiry_longest_name),
		cmocka_unit_test(test_capacity_and_luns),
		cmocka_unit_test(test_read_write),
		cmocka_unit_test(test_read_only_stack),
		cmocka_unit_test(test_write_same_unmap_lba_status),
		cmocka_unit_test(test_compare_and_write),
		cmocka_unit_test(test_persistent_reservations),
		cmocka_unit_test(test_pr_register_move_length_wrap),
		cmocka_unit_test(test_pr_registration_limit),
		cmocka_unit_test(test_reserve6),
		cmocka_unit_test(test_mode_pages),
		cmocka_unit_test(test_mode_select_errors),
		cmocka_unit_test(test_xcopy),
		cmocka_unit_test(test_xcopy_other_lu),
		cmocka_unit_test(test_stats_and_detach_in_flight),
	};

	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
