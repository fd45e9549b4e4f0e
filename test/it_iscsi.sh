#!/bin/bash
# it_iscsi: the iSCSI transport on its own test target (build/test/iscsi_testd: fresh writable
# LSMT devices, the real SCSI layer and iSCSI server) against libiscsi clients, QEMU and the
# raw-socket hostile peers of test/iscsi_peer.py (issue 3 iSCSI, issue 6 hostile peers).
. "$(dirname "$0")/lib.sh"

need iscsi-ls iscsi-inq iscsi-readcapacity16 iscsi-test-cu qemu-img python3 cmp
TESTD=$BUILD/test/iscsi_testd
PEER=$ROOT/test/iscsi_peer.py
TGT=iqn.2026-11.io.overlaybd:test
[ -x "$TESTD" ] || fail "no $TESTD (make all)"

# start_testd NAME ARGS...: start a test target, wait for its port; sets PORT_<NAME>, PID_<NAME>.
start_testd() {
	local name=$1 i port pid
	shift
	"$TESTD" "$@" >"$T/$name.out" 2>>"$OBD_LOG" &
	pid=$!
	track_pid "$pid"
	for i in $(seq 1 100); do
		port=$(awk '/^listening/ {print $2}' "$T/$name.out" 2>/dev/null)
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || fail "iscsi_testd $name exited at start-up"
		sleep 0.1
	done
	[ -n "$port" ] || fail "iscsi_testd $name did not listen within 10s"
	printf -v "PORT_$name" %s "$port"
	printf -v "PID_$name" %s "$pid"
}

# stop_testd NAME: SIGTERM must end it with status 0 (sessions closed, devices flushed).
stop_testd() {
	local pidvar=PID_$1 rc
	kill -TERM "${!pidvar}"
	wait "${!pidvar}"
	rc=$?
	expect_eq "iscsi_testd $1 exit status after SIGTERM" 0 "$rc"
}

url() { echo "iscsi://${2:+$2@}127.0.0.1:$1/$TGT/0${3:+?$3}"; }

log "plain target: discovery, inquiry, capacity, data through QEMU"
start_testd plain --size 64
P=$PORT_plain
out=$(iscsi-ls "iscsi://127.0.0.1:$P" 2>&1) || fail "iscsi-ls: $out"
expect_eq "discovery" "Target:$TGT Portal:127.0.0.1:$P,1" "$out"
iscsi-inq "$(url "$P")" >"$T/inq" 2>&1 || fail "iscsi-inq: $(cat "$T/inq")"
grep -q "Peripheral Device Type:DIRECT_ACCESS" "$T/inq" || fail "iscsi-inq: expected DIRECT_ACCESS, got $(cat "$T/inq")"
cap=$(iscsi-readcapacity16 "$(url "$P")" 2>&1 | awk -F: '/RETURNED LOGICAL BLOCK ADDRESS/ {print $2}')
expect_eq "last LBA of a 64 MiB device" 131071 "$cap"
head -c $((64 << 20)) /dev/urandom >"$T/rand.img"
qemu-img convert -n -O raw "$T/rand.img" "$(url "$P")" || fail "qemu-img write through iSCSI failed"
qemu-img convert -O raw "$(url "$P")" "$T/back.img" || fail "qemu-img read through iSCSI failed"
cmp -s "$T/rand.img" "$T/back.img" ||
	fail "data read back: expected $(sha256sum <"$T/rand.img"), got $(sha256sum <"$T/back.img")"
# Header digests through QEMU's initiator.
qemu-img convert -O raw "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"iscsi\",\"transport\":\"tcp\",\"portal\":\"127.0.0.1:$P\",\"target\":\"$TGT\",\"lun\":0,\"header-digest\":\"crc32c\"}}" "$T/back2.img" ||
	fail "qemu-img read with header digests failed"
cmp -s "$T/rand.img" "$T/back2.img" || fail "data read back with header digests differs"
rm -f "$T/back.img" "$T/back2.img"

log "raw-socket peers: data with and without digests, queueing, reinstatement"
python3 "$PEER" "$P" "$TGT" write_read digests queueing reinstate || fail "iscsi_peer data cases"

log "libiscsi's iSCSI conformance suite (CmdSN window, DataSN, residuals, TMF)"
timeout 120 iscsi-test-cu --dataloss -t iSCSI "$(url "$P")" >"$T/cu.log" 2>&1
grep -q "Tests completed with return value: 0" "$T/cu.log" ||
	fail "iscsi-test-cu -t iSCSI: expected no failures, got: $(grep -E 'FAIL|tests ' "$T/cu.log" | head -20)"
stop_testd plain

log "one-way CHAP with header digests; wrong secret refused"
start_testd chap --chap user1:secret-one-12 --acl iqn.2026-11.io.overlaybd.test:allowed \
	--acl iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-inq
P=$PORT_chap
iscsi-inq "$(url "$P" "user1%secret-one-12")" >/dev/null 2>&1 || fail "CHAP login with the right secret failed"
iscsi-inq "$(url "$P" "user1%wrong-secret")" >/dev/null 2>&1 && fail "CHAP login with a wrong secret was accepted"
iscsi-inq "$(url "$P")" >/dev/null 2>&1 && fail "login without CHAP to a CHAP target was accepted"
qemu-img info --object secret,id=s0,data=secret-one-12 \
	"json:{\"driver\":\"iscsi\",\"transport\":\"tcp\",\"portal\":\"127.0.0.1:$P\",\"target\":\"$TGT\",\"lun\":0,\"user\":\"user1\",\"password-secret\":\"s0\",\"header-digest\":\"crc32c\",\"initiator-name\":\"iqn.2026-11.io.overlaybd.test:allowed\"}" \
	>/dev/null 2>&1 || fail "qemu-img with CHAP and header digests failed"

log "ACL: an initiator missing from the list is refused and does not see the target"
out=$(iscsi-inq -i iqn.2026-11.io.overlaybd.test:stranger "$(url "$P" "user1%secret-one-12")" 2>&1) &&
	fail "an initiator outside the ACL logged in"
echo "$out" | grep -qi "authoriz" || fail "ACL refusal: expected an authorization failure, got '$out'"
out=$(iscsi-ls -i iqn.2026-11.io.overlaybd.test:stranger "iscsi://127.0.0.1:$P" 2>&1)
expect_eq "discovery for an initiator outside the ACL" "" "$out"
out=$(iscsi-ls -i iqn.2026-11.io.overlaybd.test:allowed "iscsi://127.0.0.1:$P" 2>&1)
expect_eq "discovery for an initiator in the ACL" "Target:$TGT Portal:127.0.0.1:$P,1" "$out"
stop_testd chap

log "mutual CHAP and discovery CHAP"
start_testd mutual --chap user2:secret-two-345 --mutual tgt2:tgt-secret-678 \
	--disc-chap duser:disc-secret-90
P=$PORT_mutual
iscsi-inq "$(url "$P" "user2%secret-two-345" "target_user=tgt2&target_password=tgt-secret-678")" \
	>/dev/null 2>&1 || fail "mutual CHAP login failed"
out=$(iscsi-inq "$(url "$P" "user2%secret-two-345" "target_user=tgt2&target_password=not-the-one")" 2>&1) &&
	fail "the initiator accepted a target that answered mutual CHAP with the wrong secret"
echo "$out" | grep -q "CHAP_R" || fail "mutual CHAP mismatch: expected libiscsi to refuse our CHAP_R, got '$out'"
iscsi-inq "$(url "$P" "user2%secret-two-345")" >/dev/null 2>&1 &&
	fail "a one-way login to a mutual-CHAP target was accepted"
out=$(iscsi-ls "iscsi://duser%disc-secret-90@127.0.0.1:$P" 2>&1) || fail "discovery with CHAP: $out"
expect_eq "discovery with CHAP" "Target:$TGT Portal:127.0.0.1:$P,1" "$out"
iscsi-ls "iscsi://duser%bad@127.0.0.1:$P" >/dev/null 2>&1 && fail "discovery with a wrong secret was accepted"
iscsi-ls "iscsi://127.0.0.1:$P" >/dev/null 2>&1 && fail "discovery without CHAP was accepted"
# Repeated failures from one initiator are answered ever more slowly (1 s, 2 s, ...).
start=$(date +%s%N)
for i in 1 2 3; do
	iscsi-ls "iscsi://duser%guess-$i@127.0.0.1:$P" >/dev/null 2>&1 && fail "guess $i was accepted"
done
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -ge 2000 ] || fail "3 more CHAP failures: expected at least 2000 ms of delay, took ${ms} ms"
grep -q "answer delayed" "$OBD_LOG" || fail "repeated CHAP failures: expected a delayed answer in the log"
# SHA-256 CHAP (RFC 7143 12.1.3) and a reflected challenge, from our raw-socket initiator.
CHAP=user2:secret-two-345:tgt2:tgt-secret-678 python3 "$PEER" "$P" "$TGT" chap_sha256 chap_reflect ||
	fail "iscsi_peer CHAP cases"
stop_testd mutual

log "hostile peers (each closes or is rejected; a healthy session keeps working)"
start_testd hostile --login-timeout 2 --per-source 8 --nop-interval 1 --nop-timeout 2
P=$PORT_hostile
python3 "$PEER" "$P" "$TGT" dsl_too_big huge_ahs_cmd huge_ahs_nop truncated_login truncated_ffp \
	login_never_finishes half_open_flood wrong_opcode_login wrong_opcode_ffp \
	wrong_opcode_discovery data_out_unknown_itt cmdsn_far text_c_no_data data_digest_garbage ||
	fail "hostile peer cases"
kill -0 "$PID_hostile" 2>/dev/null || fail "iscsi_testd died under hostile peers"

log "target removal: the session gets an Async Message and logs out"
python3 "$PEER" "$P" "$TGT" await_async &
apid=$!
track_pid "$apid"
sleep 1
kill -USR1 "$PID_hostile"
wait "$apid" || fail "no Async logout request on target removal"
stop_testd hostile

log "global connection limit"
start_testd global --max-conns 4 --per-source 100 --login-timeout 2
P=$PORT_global
python3 - "$P" <<'EOF' || fail "global connection limit"
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
extra = socket.create_connection(("127.0.0.1", port))
extra.settimeout(3)
try:
    got = extra.recv(1)
except ConnectionResetError:
    got = b""
if got != b"":
    print("FAIL: expected the 5th connection closed at once (maxConnections 4), it stayed open")
    sys.exit(1)
for s in held:
    s.close()
time.sleep(0.3)
EOF
iscsi-inq "$(url "$P")" >/dev/null 2>&1 || fail "login after the flood ended failed"
stop_testd global

if ip -6 addr show lo 2>/dev/null | grep -q '::1'; then
	log "IPv6 portal"
	start_testd v6 --ipv6
	iscsi-inq "iscsi://[::1]:$PORT_v6/$TGT/0" >/dev/null 2>&1 || fail "login over IPv6 failed"
	stop_testd v6
fi
log "ok"
