/*
 * scsi_inquiry: INQUIRY standard data (SPC-4 6.6.2) and the vital product
 * data pages (SPC-4 7.8, SBC-3 6.6).  The limits advertised in the block
 * limits page are the ones scsi_rw.c enforces (scsi_int.h SCSI_LIM_*).
 */
#include "scsi_int.h"

#include <stdio.h>
#include <string.h>

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

	memset(b, 0, 96);
	/* SPC-4 6.6.2: qualifier 011b + type 1Fh for a LUN we lack. */
	b[0] = no_lun ? 0x7f : 0x00;
	b[2] = 0x06;        /* SPC-4 */
	b[3] = 0x10 | 0x02; /* HISUP, response data format 2 */
	b[4] = 96 - 5;
	b[5] = 0x08;        /* 3PC: EXTENDED COPY */
	b[7] = 0x02;        /* CMDQUE */
	put_padded(b + 8, d->info.vendor, 8);
	put_padded(b + 16, d->info.product, 16);
	put_padded(b + 32, d->info.revision, 4);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		put_be16(b + 58 + 2 * i, versions[i]);
	return 96;
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

static uint32_t vpd_83(struct scsi_dev *d, uint8_t *b)
{
	uint32_t n = 4, l;
	uint8_t v[8];
	char s[256];

	b[1] = 0x83;
	/* NAA IEEE Registered (type 3), logical unit. */
	put_be64(v, d->info.naa);
	n += desig(b + n, 0, 0x1, 0x03, v, 8, 8);
	/* T10 vendor ID (type 1): vendor + serial, logical unit. */
	memset(s, ' ', 8);
	memcpy(s, d->info.vendor, strnlen(d->info.vendor, 8));
	l = (uint32_t)strnlen(d->info.serial, 200);
	memcpy(s + 8, d->info.serial, l);
	n += desig(b + n, 0, 0x2, 0x01, s, 8 + l, 8 + l);
	/* Relative target port (type 4) and target port group (type 5),
	 * associated with the target port (PIV=1, protocol iSCSI). */
	memset(v, 0, 4);
	put_be16(v + 2, d->info.rel_port_id);
	n += desig(b + n, 0x50, 0x1, 0x80 | 0x10 | 0x04, v, 4, 4);
	put_be16(v + 2, d->info.tpg_id);
	n += desig(b + n, 0x50, 0x1, 0x80 | 0x10 | 0x05, v, 4, 4);
	/* SCSI name strings (type 8, UTF-8): target port and target device. */
	l = (uint32_t)snprintf(s, sizeof(s), "%s,t,0x%04x", d->info.target_name,
			       d->info.tpg_id);
	if (l >= sizeof(s))
		l = sizeof(s) - 1;
	n += desig(b + n, 0x50, 0x3, 0x80 | 0x10 | 0x08, s, l + 1, (l + 4) & ~3u);
	l = (uint32_t)strnlen(d->info.target_name, 223);
	n += desig(b + n, 0x50, 0x3, 0x80 | 0x20 | 0x08, d->info.target_name, l,
		   (l + 4) & ~3u);
	put_be16(b + 2, (uint16_t)(n - 4));
	return n;
}

static uint32_t vpd_b0(uint8_t *b)
{
	/* SBC-3 6.6.3 block limits, SBC-4 for the atomic fields. */
	b[1] = 0xb0;
	put_be16(b + 2, 0x3c);
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
	return 64;
}

void scsi_inquiry(struct scsi_cmd *c)
{
	struct scsi_task *t = c->t;
	struct scsi_dev *d = c->d;
	uint8_t b[512];
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
		size_t l = strnlen(d->info.serial, 250);

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
		put_be16(b + 2, 0x3c);
		put_be16(b + 4, 0x0001);
		n = 64;
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
