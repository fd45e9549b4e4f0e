#!/bin/bash
# e2e (`make e2e`): the Linux kernel initiator against the daemon.  ../shared/tools/
# kernel-initiator boots a QEMU guest (TCG) whose open-iscsi runs discovery and login against
# our portal, hashes the disk and mounts its ext4.  The daemon serves the ext4 vector under a
# writable upper layer, with mutual CHAP on discovery and on the target.  Checked: the first
# 16 MiB hash equal to our own overlaybd-cat of the same spec, /etc/motd read from the
# mounted filesystem; then a wrong secret must be refused.  E2E_FULL=1 also hashes the whole
# 1 GiB disk in the guest against MANIFEST.md (slow: ~9 MiB/s under TCG).
# Needs qemu-system-x86 and the guest packages the tool fetches (see its README); a few minutes.
KI=${KERNEL_INITIATOR:-$(cd "$(dirname "$0")/.." && pwd)/../shared/tools/kernel-initiator}
if [ ! -x "$KI/run-e2e.sh" ]; then
	echo "e2e: NOT RUN: $KI/run-e2e.sh not found. The kernel-initiator tool must be in" \
		"../shared/tools/kernel-initiator next to this checkout (or set KERNEL_INITIATOR=DIR)." >&2
	exit 2
fi
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64
CAT=$BUILD/bin/overlaybd-cat
[ -x "$CAT" ] || fail "no $CAT (make all)"

GUEST=iqn.2026-11.test:kernel-initiator
CHAP_SECRET=Init-Secret+/=_.@12
TGT_USER=tgt-e2e
TGT_SECRET=Target-Secret-0042
make_upper "$T/up" $((1 << 30)) E4000000-0000-4000-8000-0000000000E4
obd_start "\"discoveryAuth\": {\"username\": \"disc-user\", \"password\": \"Disc-Secret-0042\",
	\"mutualUsername\": \"disc-tgt\", \"mutualPassword\": \"DiscTgt-Secret-42\"}"
SPEC=$(obd_spec e2e "$(lowers_of "$DATA/ext4/ext4.lz4.zfile")" "$T/up" \
	"\"chap\": {\"username\": \"$GUEST\", \"password\": \"$CHAP_SECRET\",
	\"mutualUsername\": \"$TGT_USER\", \"mutualPassword\": \"$TGT_SECRET\"}")
obd_add_spec e2e "$SPEC" >/dev/null
printf '%s' "$SPEC" >"$T/cat.json"
"$CAT" "$T/cat.json" "$T/expect.img" || fail "overlaybd-cat of the e2e spec failed"
IQN=$(obd_iqn e2e)
log "daemon on 127.0.0.1:$OBD_PORT serving $IQN (ext4 vector + writable upper, mutual CHAP)"

full=(--no-full)
[ "${E2E_FULL:-0}" = 1 ] && full=(--expect-sha256 "$(manifest_hash ext4)" --timeout 600)
"$KI/run-e2e.sh" "$OBD_PORT" "$IQN" --initiator "$GUEST" --expect-image "$T/expect.img" \
	"${full[@]}" --cat etc/motd --log "$T/console.log" \
	--discovery-chap disc-user:Disc-Secret-0042 --discovery-chap-mutual disc-tgt:DiscTgt-Secret-42 \
	--chap "$GUEST:$CHAP_SECRET" --chap-mutual "$TGT_USER:$TGT_SECRET" 2>&1 | tee "$T/e2e.out"
rc=${PIPESTATUS[0]}
grep -E '^E2E:(DISCOVERY|LOGIN|DISK|SHA256|MOUNT|FILE|CAT|LOGOUT|RESULT)' "$T/console.log" |
	sed 's/^/  guest: /'
[ "$rc" = 0 ] || fail "kernel initiator run: expected PASS, got exit $rc"
grep -q '^E2E:CAT hello overlaybd' "$T/console.log" ||
	fail "expected the guest to read 'hello overlaybd' from etc/motd, got: $(grep '^E2E:CAT' "$T/console.log")"

"$KI/run-e2e.sh" "$OBD_PORT" "$IQN" --initiator "$GUEST" --expect-login-fail \
	--log "$T/console-refused.log" \
	--discovery-chap disc-user:Disc-Secret-0042 --discovery-chap-mutual disc-tgt:DiscTgt-Secret-42 \
	--chap "$GUEST:Wrong-Secret-0000" 2>&1 |
	tee "$T/e2e-refused.out"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || fail "kernel initiator with a wrong CHAP secret: expected a refusal, got exit $rc"
grep -q 'refused=login' "$T/e2e-refused.out" ||
	fail "wrong login secret: expected the refusal at login, got: $(grep -o 'refused=[a-z]*' "$T/e2e-refused.out")"
obd_stop
log "ok"
