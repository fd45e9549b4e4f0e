/*
 * scsi_sense: sense data (SPC-4 4.5), fixed or descriptor format as the
 * control mode page's D_SENSE bit asks.  Only this file lays out sense
 * bytes; everyone else names a key, an ASC/ASCQ and maybe a field.
 */
#include "scsi_int.h"

#include <errno.h>
#include <string.h>

struct sense_fields {
	uint8_t key;
	uint16_t asc;
	bool info_valid;
	uint64_t info;
	bool sks_valid;
	uint8_t sks[3];
};

static uint8_t sense_put(uint8_t *b, bool desc, const struct sense_fields *f)
{
	if (!desc) {
		/* SPC-4 4.5.3: fixed format, 18 bytes. */
		memset(b, 0, 18);
		b[0] = 0x70 | (f->info_valid ? 0x80 : 0);
		b[2] = f->key & 0x0f;
		put_be32(b + 3, (uint32_t)f->info);
		b[7] = 10;
		b[12] = f->asc >> 8;
		b[13] = f->asc & 0xff;
		if (f->sks_valid)
			memcpy(b + 15, f->sks, 3);
		return 18;
	}
	/* SPC-4 4.5.2: descriptor format with information (4.5.2.2) and
	 * sense-key-specific (4.5.2.4) descriptors. */
	uint8_t n = 8;

	memset(b, 0, SCSI_SENSE_MAX);
	b[0] = 0x72;
	b[1] = f->key & 0x0f;
	b[2] = f->asc >> 8;
	b[3] = f->asc & 0xff;
	if (f->info_valid) {
		b[n] = 0x00;
		b[n + 1] = 0x0a;
		b[n + 2] = 0x80;
		put_be64(b + n + 4, f->info);
		n += 12;
	}
	if (f->sks_valid) {
		b[n] = 0x02;
		b[n + 1] = 0x06;
		memcpy(b + n + 4, f->sks, 3);
		n += 8;
	}
	b[7] = n - 8;
	return n;
}

static bool task_desc(const struct scsi_task *t)
{
	return t->itn && t->itn->d && t->itn->d->d_sense;
}

static void task_sense(struct scsi_task *t, const struct sense_fields *f)
{
	t->status = SCSI_STATUS_CHECK_CONDITION;
	t->sense_len = sense_put(t->sense, task_desc(t), f);
}

void scsi_set_sense(struct scsi_task *t, uint8_t key, uint16_t asc_ascq)
{
	struct sense_fields f = { .key = key, .asc = asc_ascq };

	task_sense(t, &f);
}

void scsi_sense_info(struct scsi_task *t, uint8_t key, uint16_t asc, uint64_t info)
{
	struct sense_fields f = { .key = key, .asc = asc, .info_valid = true, .info = info };

	task_sense(t, &f);
}

void scsi_sense_field(struct scsi_task *t, bool in_cdb, uint16_t byte, int bit)
{
	/* SPC-4 4.5.2.4.2: SKSV, C/D, BPV + bit pointer, field pointer. */
	struct sense_fields f = {
		.key = SCSI_SENSE_ILLEGAL_REQUEST,
		.asc = in_cdb ? ASC_INVALID_FIELD_CDB : ASC_INVALID_FIELD_PARAM,
		.sks_valid = true,
	};

	f.sks[0] = 0x80 | (in_cdb ? 0x40 : 0) | (bit >= 0 ? 0x08 | (bit & 7) : 0);
	f.sks[1] = byte >> 8;
	f.sks[2] = byte & 0xff;
	task_sense(t, &f);
}

uint32_t scsi_sense_build(uint8_t *buf, bool desc, uint8_t key, uint16_t asc)
{
	struct sense_fields f = { .key = key, .asc = asc };

	return sense_put(buf, desc, &f);
}

uint16_t scsi_ua_asc(uint32_t bit)
{
	static const uint16_t asc[UA_COUNT] = {
		0x2900, /* POWER ON, RESET, OR BUS DEVICE RESET OCCURRED */
		0x2903, /* BUS DEVICE RESET FUNCTION OCCURRED */
		0x2907, /* I_T NEXUS LOSS OCCURRED */
		0x2a09, /* CAPACITY DATA HAS CHANGED */
		0x2a03, /* RESERVATIONS PREEMPTED */
		0x2a04, /* RESERVATIONS RELEASED */
		0x2a05, /* REGISTRATIONS PREEMPTED */
		0x2a01, /* MODE PARAMETERS CHANGED */
	};

	for (int i = 0; i < UA_COUNT; i++)
		if (bit & (1u << i))
			return asc[i];
	return 0;
}

void scsi_sense_errno(struct scsi_task *t, int err, bool reading)
{
	switch (err) {
	case -EIO:
		scsi_set_sense(t, SCSI_SENSE_MEDIUM_ERROR,
			       reading ? ASC_UNRECOVERED_READ_ERROR : ASC_WRITE_ERROR);
		break;
	case -EROFS:
	case -EPERM:
		scsi_set_sense(t, SCSI_SENSE_DATA_PROTECT, ASC_WRITE_PROTECTED);
		break;
	case -ENOSPC:
		/* SBC-3 4.7.3.6: thin provisioning ran out of room. */
		scsi_set_sense(t, SCSI_SENSE_DATA_PROTECT, ASC_SPACE_ALLOC_FAILED_WP);
		break;
	default:
		scsi_set_sense(t, SCSI_SENSE_HARDWARE_ERROR, ASC_INTERNAL_TARGET_FAILURE);
		break;
	}
}
