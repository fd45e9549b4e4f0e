#!/bin/bash
# it_crash: crash consistency of the writable layer (issue 6, Faults).
#  1. obd-iscsi crash-write keeps up to 8 non-overlapping writes in flight (FUA, or WRITE then
#     SYNCHRONIZE CACHE) and journals each before issue and after acknowledgement; the daemon
#     is SIGKILLed at a random moment, restarted, and crash-check reads the region: every
#     acknowledged write must read back and no block may hold bytes that were never written.
#     Repeated for CRASH_SECONDS (default 25) of wall time.
#  2. The upper layer on a 4 MiB tmpfs: writes until the filesystem is full must end in a SCSI
#     error, never in an acknowledged write that is lost; the same after a SIGKILL restart.
. "$(dirname "$0")/lib.sh"
S=$DATA/stack-a
CRASH_SECONDS=${CRASH_SECONDS:-25}
LBA=100000	# a range that is zero in L1
COUNT=16384

make_upper "$T/up" $((1 << 30)) A1000000-0000-4000-8000-000000000001
obd_start
obd_add_spec crash "$(obd_spec crash "$(lowers_of "$S/l1.lsmt")" "$T/up")" >/dev/null
URL=$(obd_url crash)
J=$T/journal

end=$((SECONDS + CRASH_SECONDS))
cycles=0
while [ $SECONDS -lt $end ] && [ $cycles -lt 60 ]; do
	"$OBD_ISCSI" crash-write "$URL" "$J" $LBA $COUNT --qd 8 --seconds 30 \
		>>"$T/writer.log" 2>&1 &
	wpid=$!
	track_pid $wpid
	sleep "$(printf '0.%03d' $((RANDOM % 1000)))"
	obd_kill9
	wait $wpid
	rc=$?
	[ $rc = 3 ] || [ $rc = 0 ] ||
		fail "crash-write: expected exit 0 or 3 (connection lost), got $rc: $(tail -n 3 "$T/writer.log")"
	obd_start
	obd_wait_result "$(obd_result_file crash)" >/dev/null
	out=$("$OBD_ISCSI" crash-check "$URL" "$J" $LBA $COUNT 2>&1) ||
		fail "after SIGKILL $((cycles + 1)): $out"
	cycles=$((cycles + 1))
done
acked=$(grep -c '^A ' "$J")
issued=$(grep -c '^I ' "$J")
[ "$acked" -gt 100 ] || fail "expected more than 100 acknowledged writes over $cycles cycles, got $acked"
log "$cycles SIGKILLs, $acked writes acknowledged of $issued issued; last check: $out"

# A clean stop flushes and the region still reads back.
obd_stop
obd_start
out=$("$OBD_ISCSI" crash-check "$URL" "$J" $LBA $COUNT 2>&1) || fail "after SIGTERM restart: $out"
obd_stop

# ENOSPC: the upper layer on a 4 MiB filesystem.
mkdir -p "$T/small"
if ! mount -t tmpfs -o size=4m obd-it-crash "$T/small" 2>"$T/mount.err"; then
	log "SKIP the ENOSPC part: cannot mount a tmpfs ($(cat "$T/mount.err"))"
	log "ok"
	exit 0
fi
at_exit "umount '$T/small'"
make_upper "$T/small/up" $((1 << 30))
obd_start
obd_add_spec full "$(obd_spec full "[]" "$T/small/up")" >/dev/null
FURL=$(obd_url full)
FJ=$T/fill.journal
out=$("$OBD_ISCSI" fill "$FURL" "$FJ" 0 65536 2>&1)
rc=$?
[ $rc = 0 ] || fail "fill of a 4 MiB filesystem with 32 MiB: expected a SCSI error, got exit $rc: $out"
log "$(echo "$out" | tr '\n' ' ')"
facked=$(grep -c '^A ' "$FJ")
[ "$facked" -gt 10 ] || fail "expected some writes acknowledged before ENOSPC, got $facked"
out=$("$OBD_ISCSI" crash-check "$FURL" "$FJ" 0 65536 2>&1) || fail "after ENOSPC: $out"
log "after ENOSPC: $out"
obd_kill9
obd_start
obd_wait_result "$(obd_result_file full)" >/dev/null
out=$("$OBD_ISCSI" crash-check "$FURL" "$FJ" 0 65536 2>&1) || fail "after ENOSPC and SIGKILL: $out"
log "after ENOSPC and SIGKILL: $out"
obd_kill9
log "ok"
