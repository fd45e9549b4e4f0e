/*
 * scsi_inquiry: INQUIRY standard data (SPC-4 6.6.2) and the vital product
 * data pages (SPC-4 7.8, SBC-3 6.6).  The limits advertised in the block
 * limits page are the ones scsi_rw.c enforces (scsi_int.h SCSI_LIM_*).
 */
#include "scsi_int.h"

#include <stdio.h>
#include <string.h>

/* RFC 7143 4.2.7.1: an iSCSI name is at most 223 bytes. */
#define TARGET_NAME_MAX 223u
/* SPC-4 7.8.6.1: the DESIGNATOR LENGTH field is one byte. */
#define DESIG_HDR 4u
#define DESIG_MAX 255u
#define NAA_LEN 8u
#define T10_VENDOR_LEN 8u
/* The T10 vendor ID designator carries vendor + serial within DESIG_MAX. */
#define T10_SERIAL_MAX 200u
/* SPC-4 7.8.15: the unit serial number page, within one byte of length. */
#define USN_MAX 250u
#define REL_PORT_LEN 4u
#define TPG_LEN 4u
/* ",t,0x" and four hex digits of the portal group tag (RFC 7143 4.2.7.1). */
#define PORT_SUFFIX_LEN 9u
/* SPC-4 7.8.6.11: a SCSI name string is null terminated and padded to a
 * multiple of four. */
#define NAME_PADDED(l) (((l) + 4u) & ~3u)
#define VPD_HDR 4u
#define VPD83_MAX                                                                  \
	(VPD_HDR + DESIG_HDR + NAA_LEN + DESIG_HDR + T10_VENDOR_LEN + T10_SERIAL_MAX + \
	 DESIG_HDR + REL_PORT_LEN + DESIG_HDR + TPG_LEN +                          \
	 DESIG_HDR + NAME_PADDED(TARGET_NAME_MAX + PORT_SUFFIX_LEN) +               \
	 DESIG_HDR + NAME_PADDED(TARGET_NAME_MAX))
#define INQ_STD_LEN 96u
#define VPD_B0_LEN 64u
#define VPD_B1_LEN 64u
/* Every page is built whole before the allocation length clamps it. */
#define INQ_BUF_LEN VPD83_MAX

_Static_assert(NAME_PADDED(TARGET_NAME_MAX + PORT_SUFFIX_LEN) <= DESIG_MAX,
	       "target port name must fit one designator");
_Static_assert(T10_VENDOR_LEN + T10_SERIAL_MAX <= DESIG_MAX,
	       "vendor + serial must fit one designator");
_Static_assert(INQ_BUF_LEN >= INQ_STD_LEN && INQ_BUF_LEN >= VPD_HDR + USN_MAX &&
		       INQ_BUF_LEN >= VPD_B0_LEN && INQ_BUF_LEN >= VPD_B1_LEN,
	       "the INQUIRY buffer must hold every page");

static void put_padded(uint8_t *p, const char *s, size_t n)
{
	size_t l = strlen(s);

	memset(p, ' ', n);
	memcpy(p, s, l < n ? l : n);
}

static uint32_t inquiry_std(struct scsi_dev *d, uint8_t *b, bool no_lun)
{
	static const uint16_t versions[] = {
		0x00a0, /* SAM-5 */
		0x0960, /* iSCSI */
		0x0460, /* SPC-4 */
		0x04c0, /* SBC-3 */
	};

	memset(b, 0, INQ_STD_LEN);
	/* SPC-4 6.6.2: qualifier 011b + type 1Fh for a LUN we lack. */
	b[0] = no_lun ? 0x7f : 0x00;
	b[2] = 0x06;        /* SPC-4 */
	b[3] = 0x10 | 0x02; /* HISUP, response data format 2 */
	b[4] = INQ_STD_LEN - 5;
	b[5] = 0x08;        /* 3PC: EXTENDED COPY */
	b[7] = 0x02;        /* CMDQUE */
	put_padded(b + 8, d->info.vendor, 8);
	put_padded(b + 16, d->info.product, 16);
	put_padded(b + 32, d->info.revision, 4);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		put_be16(b + 58 + 2 * i, versions[i]);
	return INQ_STD_LEN;
}

/* One designation descriptor (SPC-4 7.8.6.1); returns its length. */
static uint32_t desig(uint8_t *p, uint8_t proto_piv, uint8_t codeset, uint8_t assoc_type,
		      const void *val, uint32_t len, uint32_t padded)
{
	p[0] = proto_piv | codeset;
	p[1] = assoc_type;
	p[2] = 0;
	p[3] = (uint8_t)padded;
	memset(p + 4, 0, padded);
	memcpy(p + 4, val, len);
	return 4 + padded;
}

/* SCSI name string designator (type 8, UTF-8, SPC-4 7.8.6.11) for NAME
 * (LEN <= TARGET_NAME_MAX bytes), with ",t,0x<tpg>" when it names the port. */
static uint32_t desig_name(uint8_t *p, uint8_t assoc_type, const char *name, uint32_t len,
			   bool port, uint16_t tpg)
{
	char s[TARGET_NAME_MAX + PORT_SUFFIX_LEN + 1];
	uint32_t l = len;

	memcpy(s, name, len);
	if (port)
		l += (uint32_t)snprintf(s + len, PORT_SUFFIX_LEN + 1, ",t,0x%04x", tpg);
	s[l] = 0;
	return desig(p, 0x50, 0x3, assoc_type, s, l + 1, NAME_PADDED(l));
}

/* SPC-4 7.8.6: every designator at its maximum fits in VPD83_MAX bytes. */
static uint32_t vpd_83(struct scsi_dev *d, uint8_t *b)
{
	uint32_t n = VPD_HDR, l, name_len;
	uint8_t v[NAA_LEN];
	char s[T10_VENDOR_LEN + T10_SERIAL_MAX + 1];

	b[1] = 0x83;
	/* NAA IEEE Registered (type 3), logical unit. */
	put_be64(v, d->info.naa);
	n += desig(b + n, 0, 0x1, 0x03, v, NAA_LEN, NAA_LEN);
	/* T10 vendor ID (type 1): vendor + serial, logical unit. */
	memset(s, ' ', T10_VENDOR_LEN);
	memcpy(s, d->info.vendor, strnlen(d->info.vendor, T10_VENDOR_LEN));
	l = (uint32_t)strnlen(d->info.serial, T10_SERIAL_MAX);
	memcpy(s + T10_VENDOR_LEN, d->info.serial, l);
	n += desig(b + n, 0, 0x2, 0x01, s, T10_VENDOR_LEN + l, T10_VENDOR_LEN + l);
	/* Relative target port (type 4) and target port group (type 5),
	 * associated with the target port (PIV=1, protocol iSCSI). */
	memset(v, 0, REL_PORT_LEN);
	put_be16(v + 2, d->info.rel_port_id);
	n += desig(b + n, 0x50, 0x1, 0x80 | 0x10 | 0x04, v, REL_PORT_LEN, REL_PORT_LEN);
	put_be16(v + 2, d->info.tpg_id);
	n += desig(b + n, 0x50, 0x1, 0x80 | 0x10 | 0x05, v, TPG_LEN, TPG_LEN);
	/* SCSI name strings (type 8, UTF-8): target port and target device. */
	name_len = (uint32_t)strnlen(d->info.target_name, TARGET_NAME_MAX);
	n += desig_name(b + n, 0x80 | 0x10 | 0x08, d->info.target_name, name_len, true,
			d->info.tpg_id);
	n += desig_name(b + n, 0x80 | 0x20 | 0x08, d->info.target_name, name_len, false, 0);
	put_be16(b + 2, (uint16_t)(n - VPD_HDR));
	return n;
}

static uint32_t vpd_b0(uint8_t *b)
{
	/* SBC-3 6.6.3 block limits, SBC-4 for the atomic fields. */
	b[1] = 0xb0;
	put_be16(b + 2, VPD_B0_LEN - VPD_HDR);
	b[5] = SCSI_LIM_CAW_BLOCKS;
	put_be16(b + 6, 8);                       /* optimal granularity: 4 KiB */
	put_be32(b + 8, SCSI_LIM_XFER_BLOCKS);
	put_be32(b + 12, 2048);                   /* optimal transfer: 1 MiB */
	put_be32(b + 16, SCSI_LIM_XFER_BLOCKS);   /* max prefetch */
	put_be32(b + 20, SCSI_LIM_UNMAP_BLOCKS);
	put_be32(b + 24, SCSI_LIM_UNMAP_DESCS);
	put_be32(b + 28, 1);                      /* unmap granularity */
	put_be32(b + 32, 0x80000000u);            /* UGAVALID, alignment 0 */
	put_be64(b + 36, SCSI_LIM_WSAME_BLOCKS);
	put_be32(b + 44, SCSI_LIM_ATOMIC_BLOCKS);
	put_be32(b + 48, 1);                      /* atomic alignment */
	put_be32(b + 52, 1);                      /* atomic granularity */
	return VPD_B0_LEN;
}

void scsi_inquiry(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	uint8_t b[INQ_BUF_LEN];
	uint32_t n, alloc = get_be16(t->cdb + 3);
	bool evpd = t->cdb[1] & 0x01;
	uint8_t page = t->cdb[2];
	uint8_t qual = t->lun ? 0x7f : 0x00;

	memset(b, 0, sizeof(b));
	if (!evpd) {
		/* SPC-4 6.6.1: PAGE CODE must be zero without EVPD. */
		if (page) {
			scsi_sense_field(t, true, 2, 7);
			goto out;
		}
		n = inquiry_std(d, b, t->lun != 0);
		goto reply;
	}
	switch (page) {
	case 0x00: { /* SPC-4 7.8.13 supported pages */
		static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 };

		memcpy(b + 4, pages, sizeof(pages));
		b[3] = sizeof(pages);
		n = 4 + sizeof(pages);
		break;
	}
	case 0x80: { /* SPC-4 7.8.15 unit serial number */
		size_t l = strnlen(d->info.serial, USN_MAX);

		b[1] = 0x80;
		b[3] = (uint8_t)l;
		memcpy(b + 4, d->info.serial, l);
		n = 4 + (uint32_t)l;
		break;
	}
	case 0x83:
		n = vpd_83(d, b);
		break;
	case 0xb0:
		n = vpd_b0(b);
		break;
	case 0xb1: /* SBC-3 6.6.2 block device characteristics: solid state */
		b[1] = 0xb1;
		put_be16(b + 2, VPD_B1_LEN - VPD_HDR);
		put_be16(b + 4, 0x0001);
		n = VPD_B1_LEN;
		break;
	case 0xb2: /* SBC-3 6.6.4 logical block provisioning: LBPU, LBPWS,
		    * LBPWS10 (not on a read-only stack), LBPRZ; thin. */
		b[1] = 0xb2;
		put_be16(b + 2, 4);
		b[5] = (d->ro ? 0 : 0x80 | 0x40 | 0x20) | 0x04;
		b[6] = 0x02;
		n = 8;
		break;
	default:
		scsi_sense_field(t, true, 2, 7);
		goto out;
	}
	b[0] = qual;
reply:
	scsi_cmd_reply(c, b, n < alloc ? n : alloc);
out:
	scsi_cmd_done(c);
}
