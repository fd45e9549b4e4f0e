#!/bin/bash
# it_hostile_login: login, text and connection admission against raw-socket peers of
# test/iscsi_peer.py on the test target (build/test/iscsi_testd), Security round 2: strict
# login values (S1), SendTargets=All in a normal session (S2), half-open connections from one
# address (S3), the CHAP failure slow-down against rotating names and parallel guesses (S4),
# names with control characters and what reaches the log (S5); and on the daemon, a SIGHUP
# that drops discoveryAuth in the middle of a CHAP login (item 9).
. "$(dirname "$0")/lib.sh"

need python3
TESTD=$BUILD/test/iscsi_testd
PEER=$ROOT/test/iscsi_peer.py
TGT=iqn.2026-11.io.overlaybd:test
[ -x "$TESTD" ] || fail "no $TESTD (make all)"

# start_testd NAME ARGS...: start a test target and wait for its port; sets P.
start_testd() {
	local name=$1 i
	shift
	"$TESTD" "$@" >"$T/$name.out" 2>>"$OBD_LOG" &
	TESTD_PID=$!
	track_pid "$TESTD_PID"
	P=
	for i in $(seq 1 100); do
		P=$(awk '/^listening/ {print $2}' "$T/$name.out" 2>/dev/null)
		[ -n "$P" ] && return 0
		kill -0 "$TESTD_PID" 2>/dev/null || fail "iscsi_testd $name exited at start-up"
		sleep 0.1
	done
	fail "iscsi_testd $name did not listen within 10s"
}

log "values, SendTargets, names, half-open connections (default limits)"
start_testd plain --size 16 --log 1
python3 "$PEER" "$P" "$TGT" bad_values sendtargets_all bad_names half_open_lockout ||
	fail "iscsi_peer login cases"
kill -0 "$TESTD_PID" 2>/dev/null || fail "iscsi_testd died under hostile logins"
if grep -q "^FORGED-LOG-LINE\|[[:cntrl:]]FORGED-LOG-LINE" "$OBD_LOG"; then
	fail "expected no line forged by a peer's name in the log, got: $(grep -a FORGED "$OBD_LOG" | head -3)"
fi
grep -q "malformed iSCSI name" "$OBD_LOG" || fail "expected the refused names in the log, got: $(tail -5 "$OBD_LOG")"
kill -TERM "$TESTD_PID"
wait "$TESTD_PID"

log "half-open connections from many addresses at the global limit"
start_testd global --size 16 --max-conns 8
python3 "$PEER" "$P" "$TGT" global_half_open || fail "iscsi_peer global limit case"
kill -TERM "$TESTD_PID"
wait "$TESTD_PID"

log "CHAP: rotating InitiatorNames and parallel guesses from one address"
start_testd chap --size 16 --chap user1:secret-one-12
CHAP=user1:secret-one-12:: python3 "$PEER" "$P" "$TGT" chap_rotate_names chap_parallel ||
	fail "iscsi_peer CHAP throttle cases"
kill -TERM "$TESTD_PID"
wait "$TESTD_PID"

log "daemon: SIGHUP drops discoveryAuth between CHAP_A and CHAP_R"
obd_config
cp "$OBD_CONF" "$T/noauth.json"
obd_start '"discoveryAuth": {"username": "disc", "password": "disc-secret-1234"}'
RELOAD="cp '$T/noauth.json' '$OBD_CONF' && kill -HUP $OBD_PID" NO_HEALTHY=1 CHAP=disc:disc-secret-1234 \
	python3 "$PEER" "$OBD_PORT" "$IQN_PREFIX:none" chap_reload || fail "iscsi_peer reload case"
obd_alive || fail "expected the daemon alive after the reload, it is gone: $(tail -5 "$OBD_LOG")"
obd_stop
log ok
