#!/bin/bash
# it_hostile_scsi: SCSI commands from initiators that probe the edges of what the daemon
# serves (Security round 2): an iSCSI name of the longest allowed length in INQUIRY VPD 83h,
# and EXTENDED COPY naming another target's LU by its designator (computable from its name).
. "$(dirname "$0")/lib.sh"
need iscsi-inq
[ -x "$OBD_ISCSI" ] || fail "no $OBD_ISCSI (make all)"
OTHER=iqn.2026-11.io.overlaybd.test:owner

S=$DATA/stack-a
obd_start

log "VPD 83h of a target whose IQN is 223 bytes, the most RFC 7143 4.2.7.1 allows (item 3)"
LONG=$(printf 'l%.0s' $(seq 1 198))
LONG_IQN=$(obd_iqn "$LONG")
expect_eq "length of the long IQN" 223 "${#LONG_IQN}"
obd_add_spec "$LONG" "$(obd_spec "$LONG" "$(lowers_of $S/l1.lsmt)")" >/dev/null
out=$(timeout 20 iscsi-inq -i "$INITIATOR" -e 1 -c 131 "$(obd_url "$LONG")" 2>&1) ||
	fail "iscsi-inq VPD 83h of the long name: expected success, got: $out"
grep -qF "$LONG_IQN,t,0x0001" <<<"$out" ||
	fail "VPD 83h: expected the target port name $LONG_IQN,t,0x0001, got: $out"
obd_alive || fail "the daemon died answering VPD 83h of a 223-byte IQN"

log "EXTENDED COPY reaches only the LU of the nexus's own target (item 2)"
make_upper "$T/up-mine" $((1 << 30))
make_upper "$T/up-vict" $((1 << 30))
obd_add_spec mine "$(obd_spec mine "$(lowers_of $S/l1.lsmt)" "$T/up-mine")" >/dev/null
obd_add_spec vict "$(obd_spec vict "$(lowers_of $S/l1.lsmt)" "$T/up-vict" "\"acl\": [\"$OTHER\"]")" >/dev/null
"$OBD_ISCSI" --quiet --initiator "$OTHER" write "$(obd_url vict)" 1000 8 21 || fail "owner's write to vict failed"
"$OBD_ISCSI" --quiet write "$(obd_url mine)" 2000 8 22 || fail "write to mine failed"
timeout 20 iscsi-inq -i "$INITIATOR" "$(obd_url vict)" >/dev/null 2>&1 &&
	fail "login of $INITIATOR to vict: expected the ACL to refuse it, got in"
xc() { timeout 20 "$OBD_ISCSI" xcopy "$(obd_url mine)" "$@" 2>&1; }
NOWHERE=$(xc "$(obd_iqn nosuch)" "$(obd_iqn mine)" 0 0 1)
expect_eq "copy from a designator that exists nowhere" "CHECK CONDITION a/0804" "$NOWHERE"
out=$(xc "$(obd_iqn vict)" "$(obd_iqn mine)" 1000 3000 8)
expect_eq "copy out of the ACL-refused target vict (same answer as nowhere)" "$NOWHERE" "$out"
out=$(xc "$(obd_iqn mine)" "$(obd_iqn vict)" 2000 1000 8)
expect_eq "copy into the ACL-refused target vict (same answer as nowhere)" "$NOWHERE" "$out"
"$OBD_ISCSI" --quiet --initiator "$OTHER" verify "$(obd_url vict)" 1000 8 21 ||
	fail "vict blocks 1000..1007: expected the owner's data, got it overwritten by a copy"
"$OBD_ISCSI" --quiet verify "$(obd_url mine)" 3000 8 0 ||
	fail "mine blocks 3000..3007: expected zeros, got data (copied out of vict?)"
out=$(xc "$(obd_iqn mine)" "$(obd_iqn mine)" 2000 4000 8)
expect_eq "copy within mine" "GOOD" "$out"
blk() { "$OBD_ISCSI" read --offset $(($1 * 512)) --length 4096 "$(obd_url mine)"; }
expect_eq "copy within mine: blocks 4000..4007 against 2000..2007" "$(blk 2000)" "$(blk 4000)"
obd_alive || fail "the daemon died during the copies"

obd_stop
