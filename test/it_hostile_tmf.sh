#!/bin/bash
# it_hostile_tmf: task management and command sequencing against raw-PDU hostile peers
# (test/iscsi_peer.py) on the iSCSI test target (Security round 2): a reset from one session
# while another is halfway through a data segment, ABORT TASK across a CmdSN gap, a flood of
# immediate writes.  Run it with BUILD=build-asan to see memory errors.
. "$(dirname "$0")/lib.sh"

need python3
TESTD=$BUILD/test/iscsi_testd
PEER=$ROOT/test/iscsi_peer.py
TGT=iqn.2026-11.io.overlaybd:test
[ -x "$TESTD" ] || fail "no $TESTD (make all)"

"$TESTD" --size 16 >"$T/testd.out" 2>>"$OBD_LOG" &
PID=$!
track_pid "$PID"
for i in $(seq 1 100); do
	P=$(awk '/^listening/ {print $2}' "$T/testd.out" 2>/dev/null)
	[ -n "$P" ] && break
	kill -0 "$PID" 2>/dev/null || fail "iscsi_testd exited at start-up"
	sleep 0.1
done
[ -n "$P" ] || fail "iscsi_testd did not listen within 10s"

log "reset from another session mid data segment; ABORT TASK across a CmdSN gap; immediate flood"
python3 "$PEER" "$P" "$TGT" ${CASES:-reset_mid_data abort_pending imm_flood imm_total} ||
	fail "iscsi_peer task management cases"
kill -0 "$PID" 2>/dev/null || fail "iscsi_testd died under the task management cases"
grep -q "ERROR: AddressSanitizer\|runtime error:" "$OBD_LOG" &&
	fail "expected no sanitizer report, got: $(grep -m1 -A3 'Sanitizer\|runtime error' "$OBD_LOG")"
# Shutdown waits for every connection's tasks: one never freed hangs it.
kill -TERM "$PID"
for i in $(seq 1 100); do
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$PID" 2>/dev/null && fail "iscsi_testd still running 10s after SIGTERM (a task never freed?)"
wait "$PID"
expect_eq "iscsi_testd exit status after SIGTERM" 0 "$?"
log "ok"
