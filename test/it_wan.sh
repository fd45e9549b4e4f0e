#!/bin/bash
# it_wan: a remote layer behind a slow link (bench/wan-relay, profile far: 25 ms each way,
# 100 Mbit/s, so an 8 MiB read-ahead run takes most of a second).  Removing
# the device while its read-ahead is in flight must not stall the daemon:
# another device keeps answering, status answers, and the removal and a
# SIGTERM then finish.  (Closing used to run on the loop thread, which also
# drives the transfers the close waits for.)
. "$(dirname "$0")/lib.sh"
. "$ROOT/test/registry.sh"
. "$ROOT/bench/wan.sh"
need docker-registry python3 curl
[ -x "$WAN_RELAY" ] || fail "no $WAN_RELAY (make all)"

REG_DIR=$T/reg
mkdir -p "$REG_DIR"
reg_start anon >/dev/null || fail "docker-registry did not start: $(tail -n 5 "$REG_DIR/procs.log")"
"$BUILD/bench/mklayer" "$T/layer.lsmt" 48 >/dev/null || fail "mklayer failed"
"$BUILD/bin/overlaybd-zfile" "$T/layer.lsmt" "$T/layer.zfile" >/dev/null || fail "overlaybd-zfile failed"
DIGEST=$(reg_push test/wan "$T/layer.zfile") || fail "push failed"
wan_start far "127.0.0.1:$REG_PORT" || fail "wan-relay did not start"
REMOTE="[{\"digest\": \"$DIGEST\", \"size\": $(stat -c %s "$T/layer.zfile")}]"
URL=http://127.0.0.1:$WAN_PORT/v2/test/wan/blobs

L1=$(manifest_head_hash L1)

# Each round on a fresh daemon and an empty cache (the cache is what reads
# ahead; deleting it under a running daemon would only turn it off).
for round in 1 2 3; do
	log "round $round: remove the remote device while its read-ahead runs"
	rm -rf "$T/cache"
	obd_start
	obd_add_spec local "$(obd_spec local "$(lowers_of "$DATA/stack-a/l1.lsmt")")" >/dev/null
	obd_add_spec slow "$(obd_spec slow "$REMOTE" "" "\"repoBlobUrl\": \"$URL\"")" >/dev/null
	# a short sequential read starts 8 MiB read-ahead runs, which take most of
	# a second each on this link; the spec goes as soon as the read is done
	"$OBD_ISCSI" read --initiator "$INITIATOR" --length $((4 << 20)) "$(obd_url slow)" \
		>/dev/null || fail "round $round: the read of the remote device failed"
	obd_remove_spec slow
	t0=$(date +%s%N)
	got=$(timeout 10 "$OBD_ISCSI" read --initiator "$INITIATOR" --length $((32 << 20)) \
		"$(obd_url local)") ||
		fail "round $round: the local device stopped answering while the remote one closed"
	expect_eq "round $round: local device" "$L1" "$got"
	timeout 5 "$DAEMON" status --socket "$OBD_SOCK" >/dev/null ||
		fail "round $round: expected status to answer within 5 s of the removal, it did not"
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$ms" -lt 5000 ] || fail "round $round: expected the daemon to answer at once, it took $ms ms"
	obd_add_spec slow "$(obd_spec slow "$REMOTE" "" "\"repoBlobUrl\": \"$URL\"")" >/dev/null
	"$OBD_ISCSI" read --initiator "$INITIATOR" --offset $((16 << 20)) --length $((4 << 20)) \
		"$(obd_url slow)" >/dev/null || fail "round $round: the second read failed"
	log "round $round: SIGTERM while a read-ahead runs"
	OBD_WAIT=10 obd_stop
done
wan_stop
log "ok"
