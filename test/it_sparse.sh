#!/bin/bash
# it_sparse: a sparse writable layer (overlaybd-create -s, lsmt.md 4.4) as the daemon's
# upper: writes through iSCSI survive a SIGTERM restart (the map is rebuilt from the data
# file's extents; the restart uses libaio), and the layer then commits, and seals in place (lsmt.md 4.3), into
# blobs that give the same device as the live one.
. "$(dirname "$0")/lib.sh"
S=$DATA/stack-a
B=$BUILD/bin

mkdir -p "$T/up"
"$B/overlaybd-create" -s -u A1000000-0000-4000-8000-000000000001 "$T/up/data" "$T/up/index" 1 ||
	fail "overlaybd-create -s failed"
SPEC=$(obd_spec disk "$(lowers_of "$S/l1.lsmt")" "$T/up")
obd_start
obd_add_spec disk "$SPEC" >/dev/null
URL=$(obd_url disk)

lower_before=$("$OBD_ISCSI" read --offset $((0x100000)) --length $((0x20000)) "$URL") ||
	fail "read of the lower range failed"
"$OBD_ISCSI" write "$URL" 100000 2048 11 || fail "write seed 11 failed"
"$OBD_ISCSI" write --fua "$URL" 200000 64 12 || fail "FUA write seed 12 failed"
"$OBD_ISCSI" write "$URL" 4 8 13 || fail "write seed 13 failed"
full_before=$(sha256_of_target "$URL")
obd_stop
log "SIGTERM: exit 0"

# The restart uses libaio (O_DIRECT where it can) on the same sparse file.
obd_start '"ioEngine": 1'
expect_eq "result after restart" success "$(obd_wait_result "$(obd_result_file disk)")"
"$OBD_ISCSI" --quiet verify "$URL" 100000 2048 11 || fail "seed 11 lost across restart"
"$OBD_ISCSI" --quiet verify "$URL" 200000 64 12 || fail "seed 12 lost across restart"
"$OBD_ISCSI" --quiet verify "$URL" 4 8 13 || fail "seed 13 lost across restart"
got=$("$OBD_ISCSI" read --offset $((0x100000)) --length $((0x20000)) "$URL")
expect_eq "lower range after restart" "$lower_before" "$got"
expect_eq "whole device after restart" "$full_before" "$(sha256_of_target "$URL")"
# Partial host blocks, next to the lower's data at 0x100000 (LBA 2048).
"$OBD_ISCSI" write "$URL" 2049 3 14 || fail "libaio write seed 14 failed"
"$OBD_ISCSI" --quiet verify "$URL" 2049 3 14 || fail "seed 14 does not read back"
full_before=$(sha256_of_target "$URL")
obd_stop

cat_of() {
	printf '{"lowers": %s}' "$(lowers_of "$@")" >"$T/cat.json"
	"$B/overlaybd-cat" "$T/cat.json" | sha256sum | cut -d' ' -f1
}
"$B/overlaybd-commit" "$T/up/data" "$T/up/index" "$T/up.lsmt" || fail "commit of the sparse upper failed"
expect_eq "l1 + committed sparse upper" "$full_before" "$(cat_of "$S/l1.lsmt" "$T/up.lsmt")"
"$B/overlaybd-commit" --seal "$T/up/data" "$T/up/index" "$T/overlaybd.sealed" ||
	fail "--seal of the sparse upper failed"
expect_eq "l1 + sealed sparse upper" "$full_before" "$(cat_of "$S/l1.lsmt" "$T/overlaybd.sealed")"
"$B/overlaybd-commit" --commit_sealed "$T/overlaybd.sealed" "$T/sealed.lsmt" ||
	fail "--commit_sealed failed"
cmp -s "$T/up.lsmt" "$T/sealed.lsmt" ||
	fail "--commit_sealed of the sealed upper: expected the bytes of the direct commit"
log "ok"
