#!/bin/bash
# it_persist: data written through iSCSI into a writable upper layer survives a SIGTERM
# restart (drain + flush, exit 0) and, for FUA writes, a SIGKILL; the layer files left behind
# read the same through our own overlaybd-cat; the lower layer's data under it is untouched.
. "$(dirname "$0")/lib.sh"
S=$DATA/stack-a
CAT=$BUILD/bin/overlaybd-cat
[ -x "$CAT" ] || fail "no $CAT (make all)"

make_upper "$T/up" $((1 << 30)) A1000000-0000-4000-8000-000000000001
SPEC=$(obd_spec disk "$(lowers_of "$S/l1.lsmt")" "$T/up")
obd_start
obd_add_spec disk "$SPEC" >/dev/null
URL=$(obd_url disk)

# L1's RAND write at 0x100000 (MANIFEST), read before anything is written above it.
lower_before=$("$OBD_ISCSI" read --offset $((0x100000)) --length $((0x20000)) "$URL") ||
	fail "read of the lower range failed"

"$OBD_ISCSI" write "$URL" 100000 2048 11 || fail "write seed 11 failed"
"$OBD_ISCSI" write --fua "$URL" 200000 64 12 || fail "FUA write seed 12 failed"
# Over L1's TEXT L1W1 at LBA 0..127: the upper must hide the lower here.
"$OBD_ISCSI" write "$URL" 4 8 13 || fail "write seed 13 failed"
full_before=$(sha256_of_target "$URL")

obd_stop
log "SIGTERM: exit 0"
printf '%s' "$SPEC" >"$T/cat.json"
got=$("$CAT" "$T/cat.json" | sha256sum | cut -d' ' -f1)
expect_eq "overlaybd-cat of the layer files after shutdown" "$full_before" "$got"

obd_start
expect_eq "result after restart" success "$(obd_wait_result "$(obd_result_file disk)")"
"$OBD_ISCSI" --quiet verify "$URL" 100000 2048 11 || fail "seed 11 lost across SIGTERM restart"
"$OBD_ISCSI" --quiet verify "$URL" 200000 64 12 || fail "seed 12 lost across SIGTERM restart"
"$OBD_ISCSI" --quiet verify "$URL" 4 8 13 || fail "seed 13 lost across SIGTERM restart"
got=$("$OBD_ISCSI" read --offset $((0x100000)) --length $((0x20000)) "$URL")
expect_eq "lower range after restart" "$lower_before" "$got"
expect_eq "whole device after SIGTERM restart" "$full_before" "$(sha256_of_target "$URL")"

# SIGKILL right after FUA writes are acknowledged: nothing acknowledged may be lost.
for i in 1 2 3; do
	"$OBD_ISCSI" write --fua "$URL" $((300000 + i * 1000)) $((64 * i)) $((20 + i)) ||
		fail "FUA write seed $((20 + i)) failed"
done
obd_kill9
log "SIGKILL after FUA writes"
obd_start
expect_eq "result after SIGKILL restart" success "$(obd_wait_result "$(obd_result_file disk)")"
for i in 1 2 3; do
	"$OBD_ISCSI" --quiet verify "$URL" $((300000 + i * 1000)) $((64 * i)) $((20 + i)) ||
		fail "FUA write seed $((20 + i)) lost after SIGKILL"
done
"$OBD_ISCSI" --quiet verify "$URL" 100000 2048 11 || fail "seed 11 lost after SIGKILL"
"$OBD_ISCSI" --quiet verify "$URL" 4 8 13 || fail "seed 13 lost after SIGKILL"
obd_stop
log "ok"
