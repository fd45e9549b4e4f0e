#!/bin/bash
# it_daemon: the daemon as a process with real libiscsi clients: a spec dropped
# in appears and serves the right bytes, every kind of bad spec gets its
# failed:<reason> (resultFile and log) while the good device keeps serving, a
# removed spec disappears, `status` lists targets and sessions, SIGHUP
# re-scans, SIGTERM exits 0 and a restart re-creates the targets, and a
# shutdown that times out on a busy device leaves it open and exits 1.
. "$(dirname "$0")/lib.sh"
. "$ROOT/test/registry.sh"
need iscsi-ls iscsi-inq iscsi-perf jq docker-registry

S=$DATA/stack-a
obd_start

# expect_result NAME JSON REASON: the spec fails with a reason starting REASON,
# and the log carries the same line.
expect_result() {
	local name=$1 json=$2 want=$3 got
	got=$(obd_add_spec "$name" "$json" "failed:") || exit 1
	case "$got" in
	"failed:$want"*) ;;
	*) fail "spec $name: expected 'failed:$want...', got '$got'" ;;
	esac
	grep -qF "$name: failed:$want" "$OBD_LOG" ||
		fail "spec $name: expected the log line '$name: failed:$want...', found none"
	log "$name -> $got"
}

targets() { iscsi-ls -i "$INITIATOR" "$(obd_portal_url)" 2>&1; }

# A remote lower nobody serves: the registry client retries for a while; the
# other specs must not wait for it.  Its result is checked at the end.
obd_put_spec remote "$(obd_spec remote "[{\"digest\": \"sha256:$(printf %064d 0)\", \"size\": 5}]" \
	"" "\"repoBlobUrl\": \"http://127.0.0.1:$(free_port)/v2/x/y/blobs\"")"

log "good device: stack L1,L2,L3 from plain LSMT layers"
obd_add_spec good "$(obd_spec good "$(lowers_of $S/l1.lsmt $S/l2.lz4.zfile $S/l3.lz4.tar)")" >/dev/null
grep -qF "$(obd_iqn good)" <<<"$(targets)" || fail "expected $(obd_iqn good) in iscsi-ls, got: $(targets)"
inq=$(iscsi-inq -i "$INITIATOR" "$(obd_url good)" 2>&1) || fail "iscsi-inq good: $inq"
grep -q "overlaybd-iscsid" <<<"$inq" || fail "expected product overlaybd-iscsid in INQUIRY, got: $inq"
expect_eq "sha256 of good" "$(manifest_hash L123)" "$(sha256_of_target "$(obd_url good)")"

log "writable device: L1 under an upper made by overlaybd-create"
make_upper "$T/rw" 1073741824
obd_add_spec rw "$(obd_spec rw "$(lowers_of $S/l1.lsmt)" "$T/rw")" >/dev/null
"$OBD_ISCSI" write --initiator "$INITIATOR" "$(obd_url rw)" 4096 256 7 ||
	fail "writing 256 blocks to rw failed"
"$OBD_ISCSI" verify --initiator "$INITIATOR" "$(obd_url rw)" 4096 256 7 ||
	fail "expected rw to read back the 256 blocks written, it did not"

log "bad specs"
# Unparsable JSON: the daemon still finds the resultFile member by a plain scan.
printf '{"resultFile": "%s", "lowers": [ {"file": }' "$(obd_result_file badjson2)" >"$T/bj"
obd_put_spec badjson2 "$(cat "$T/bj")"
expect_eq "badjson2 result" "failed:invalid JSON" "$(obd_wait_result "$(obd_result_file badjson2)" | cut -c1-19)"
expect_result badtype "$(obd_spec badtype '[{"file": 5}]')" "lowers[0].file: expected a string"
expect_result badsize "$(obd_spec badsize '[{"file": "/x", "size": "1"}]')" "lowers[0].size"
expect_result missing "$(obd_spec missing "$(lowers_of $T/no-such-layer)")" "empty repoBlobUrl"
expect_result baddigest "$(obd_spec baddigest '[{"digest": "sha256:1234", "size": 5}]')" \
	"lowers[0].digest"
many=$(printf '{"file": "%s"},' $(yes "$S/l1.lsmt" | head -n 256))
many=${many%,}
expect_result toomany "$(obd_spec toomany "[$many]")" "too many layers: 256"
expect_result "bad name" "$(obd_spec "bad name" "$(lowers_of $S/l1.lsmt)")" "invalid device name"
expect_result "a..b" "$(obd_spec "a..b" "$(lowers_of $S/l1.lsmt)")" "invalid device name"
expect_result notlsmt "$(obd_spec notlsmt "$(lowers_of $S/l1.script)")" "failed to open layer 0"
expect_result badupper "$(obd_spec badupper "$(lowers_of $S/l1.lsmt)" "$T/no-upper")" \
	"failed to open upper layer"
expect_result rw2 "$(obd_spec rw2 "$(lowers_of $S/l1.lsmt)" "$T/rw")" \
	"upper layer $T/rw/data is already in use by rw.json"
expect_result relpath "$(obd_spec relpath '[{"file": "rel/l1.lsmt"}]')" "lowers[0].file"
expect_result GOOD "$(obd_spec GOOD "$(lowers_of $S/l1.lsmt)")" "duplicated target name"
mkdir -p "$T/outside"
obd_spec escape "$(lowers_of $S/l1.lsmt)" >"$T/outside/escape.json"
rm -f "$(obd_result_file escape)"
ln -s "$T/outside/escape.json" "$OBD_SPOOL/escape.json"
# Refused before anything behind it is read: only the log learns why, and
# the resultFile named by the file outside is not written.
want="escape: failed:spec escape.json is a symlink leading outside the spool directory"
for i in $(seq 1 100); do
	grep -qF "$want" "$OBD_LOG" && break
	sleep 0.05
done
grep -qF "$want" "$OBD_LOG" || fail "escape: expected the log line '$want', found none"
[ -e "$(obd_result_file escape)" ] &&
	fail "escape: expected no resultFile for a symlink out of the spool, got '$(cat "$(obd_result_file escape)")'"

log "remote lowers: a wrong digest fails, a right one serves (status says remote)"
REG_DIR=$T/reg
reg_start anon || fail "could not start docker-registry: $(tail -n 5 "$REG_DIR/procs.log")"
d1=$(reg_push test/d "$S/l1.lz4.zfile") || fail "push of l1.lz4.zfile failed"
wrong=sha256:$(printf '%064d' 1)
expect_result wrongdigest "$(obd_spec wrongdigest "[{\"digest\": \"$wrong\", \"size\": 1000}]" "" \
	"\"repoBlobUrl\": \"$REG_URL/v2/test/d/blobs\"")" \
	"failed to open remote file /$REG_URL/v2/test/d/blobs/$wrong: No such file or directory"
obd_add_spec remoteok "$(obd_spec remoteok "[{\"digest\": \"$d1\", \"size\": $(stat -c %s "$S/l1.lz4.zfile")}]" "" \
	"\"repoBlobUrl\": \"$REG_URL/v2/test/d/blobs\"")" >/dev/null
grep -qF "layer 0 remote $REG_URL/v2/test/d/blobs/$d1" <<<"$("$DAEMON" status --socket "$OBD_SOCK")" ||
	fail "status: expected layer 0 remote $REG_URL/v2/test/d/blobs/$d1, got: $("$DAEMON" status --socket "$OBD_SOCK")"
obd_remove_spec remoteok

log "a spec rewritten in place half-way, then completed"
json=$(printf '{"resultFile": "%s", "lowers": %s}' "$(obd_result_file inplace)" "$(lowers_of $S/l1.lsmt)")
rm -f "$(obd_result_file inplace)"
printf '%s' "${json:0:${#json}-10}" >"$OBD_SPOOL/inplace.json"
res=$(obd_wait_result "$(obd_result_file inplace)")
case "$res" in failed:*) ;; *) fail "half-written spec: expected failed:..., got '$res'" ;; esac
printf '%s' "$json" >"$OBD_SPOOL/inplace.json"
for i in $(seq 1 100); do
	[ "$(cat "$(obd_result_file inplace)")" = success ] && break
	sleep 0.1
done
expect_eq "completed in-place spec" success "$(cat "$(obd_result_file inplace)")"
log "a torn rewrite of a serving spec keeps the device serving"
rm -f "$(obd_result_file inplace)"
printf '%s' "${json:0:${#json}-10}" >"$OBD_SPOOL/inplace.json"
res=$(obd_wait_result "$(obd_result_file inplace)")
case "$res" in failed:invalid\ JSON*) ;; *) fail "torn rewrite: expected failed:invalid JSON..., got '$res'" ;; esac
grep -qF "$(obd_iqn inplace)" <<<"$(targets)" || fail "expected $(obd_iqn inplace) still served after a torn rewrite, got: $(targets)"
grep -q "still serving the previous spec" <<<"$("$DAEMON" status --socket "$OBD_SOCK")" ||
	fail "status: expected the pending spec error, got: $("$DAEMON" status --socket "$OBD_SOCK")"
printf '%s' "$json" >"$OBD_SPOOL/inplace.json"
for i in $(seq 1 100); do
	[ "$(cat "$(obd_result_file inplace)")" = success ] && break
	sleep 0.1
done
expect_eq "in-place spec completed again" success "$(cat "$(obd_result_file inplace)")"

log "the good device still serves the right bytes"
expect_eq "sha256 of good after bad specs" "$(manifest_hash L123)" "$(sha256_of_target "$(obd_url good)")"
obd_alive || fail "daemon died"

log "status lists the target, its layers and a live session"
iscsi-perf -i "$INITIATOR" "$(obd_url good)" >/dev/null 2>&1 &
perf=$!
track_pid $perf
st=""
for i in $(seq 1 50); do
	st=$("$DAEMON" status --socket "$OBD_SOCK")
	grep -q "session $INITIATOR" <<<"$st" && break
	sleep 0.1
done
kill $perf 2>/dev/null
grep -qF "target $(obd_iqn good)" <<<"$st" || fail "status: expected target $(obd_iqn good), got: $st"
grep -qF "layer 0 local $S/l1.lsmt" <<<"$st" || fail "status: expected layer 0 local $S/l1.lsmt, got: $st"
grep -q "session $INITIATOR" <<<"$st" || fail "status: expected a session of $INITIATOR, got: $st"
grep -q "io reads [1-9]" <<<"$st" || fail "status: expected read counters, got: $st"
grep -q "result failed:too many layers" <<<"$st" || fail "status: expected the failed spec, got: $st"
st2=$("$DAEMON" status --config "$OBD_CONF") || fail "status --config failed"
grep -qF "target $(obd_iqn good)" <<<"$st2" || fail "status --config: expected the target, got: $st2"

log "a changed spec re-opens the device"
obd_add_spec good "$(obd_spec good "$(lowers_of $S/l1.lz4.zfile)")" >/dev/null
expect_eq "sha256 of good changed to L1" "$(manifest_hash L1)" "$(sha256_of_target "$(obd_url good)")"

log "removing a spec removes its target"
obd_remove_spec inplace
for i in $(seq 1 50); do
	grep -qF "$(obd_iqn inplace)" <<<"$(targets)" || break
	sleep 0.1
done
grep -qF "$(obd_iqn inplace)" <<<"$(targets)" && fail "expected $(obd_iqn inplace) gone from iscsi-ls, still listed"
grep -qF "$(obd_iqn good)" <<<"$(targets)" || fail "expected $(obd_iqn good) still listed, got: $(targets)"

log "SIGHUP re-scans: a failed spec whose layer now exists is retried"
cp $S/l1.lsmt "$T/late.lsmt.part"
expect_result late "$(obd_spec late "$(lowers_of $T/late.lsmt)")" "empty repoBlobUrl"
mv "$T/late.lsmt.part" "$T/late.lsmt"
rm -f "$(obd_result_file late)"
kill -HUP "$OBD_PID"
expect_eq "late after SIGHUP" success "$(obd_wait_result "$(obd_result_file late)")"

res=$(obd_wait_result "$(obd_result_file remote)")
case "$res" in
"failed:failed to open remote file /http://127.0.0.1:"*) ;;
*) fail "remote: expected 'failed:failed to open remote file /http://127.0.0.1:...', got '$res'" ;;
esac
obd_remove_spec remote

log "SIGTERM exits 0; a restart (now with ioEngine 1, libaio) re-creates the targets from the spool"
obd_stop
rm -f "$(obd_result_file good)" "$(obd_result_file late)" "$(obd_result_file rw)"
obd_start '"ioEngine": 1'
expect_eq "good after restart" success "$(cat "$(obd_result_file good)" 2>/dev/null)"
expect_eq "late after restart" success "$(cat "$(obd_result_file late)" 2>/dev/null)"
expect_eq "rw after restart" success "$(cat "$(obd_result_file rw)" 2>/dev/null)"
grep -qF "$(obd_iqn good)" <<<"$(targets)" || fail "expected $(obd_iqn good) after restart, got: $(targets)"
expect_eq "sha256 of good after restart" "$(manifest_hash L1)" "$(sha256_of_target "$(obd_url good)")"
"$OBD_ISCSI" verify --initiator "$INITIATOR" "$(obd_url rw)" 4096 256 7 ||
	fail "expected rw to hold the 256 blocks written before the restart, it did not"
obd_stop

log "SIGTERM with a read stuck on the registry: after the stop timeout the busy device stays open, exit 1"
reg_fault_start || fail "fault proxy did not start"
d2=$(reg_push test/e "$S/l1.lsmt") || fail "push of l1.lsmt failed"
obd_config
# No disk cache: every read of the stuck device goes to the registry.
sed -i 's|"registryCacheDir": "[^"]*"|"registryCacheDir": ""|' "$OBD_CONF"
export OBD_STOP_TIMEOUT_SEC=2
obd_start
unset OBD_STOP_TIMEOUT_SEC
obd_add_spec stuck "$(obd_spec stuck "[{\"digest\": \"$d2\", \"size\": $(stat -c %s "$S/l1.lsmt")}]" "" \
	"\"repoBlobUrl\": \"$REG_FAULT_URL/v2/test/e/blobs\"")" >/dev/null
echo "slow 30000" >"$REG_FAULT_CTL"
"$OBD_ISCSI" read --initiator "$INITIATOR" "$(obd_url stuck)" >/dev/null 2>&1 &
track_pid $!
st=""
for i in $(seq 1 100); do
	st=$("$DAEMON" status --socket "$OBD_SOCK")
	grep -A8 "target $(obd_iqn stuck)" <<<"$st" | grep -q "inflight [1-9]" && break
	sleep 0.1
done
grep -A8 "target $(obd_iqn stuck)" <<<"$st" | grep -q "inflight [1-9]" ||
	fail "expected a read of stuck in flight, status: $st"
start=$(date +%s)
obd_term
echo ok >"$REG_FAULT_CTL"
expect_eq "exit status after the stop timeout" 1 "$OBD_RC"
[ $(($(date +%s) - start)) -le 10 ] ||
	fail "expected the exit within 10 s of SIGTERM (stop timeout 2 s), took $(($(date +%s) - start)) s"
grep -q "shutdown: stuck still has commands in flight; left open" "$OBD_LOG" ||
	fail "expected the busy device stuck left open, log: $(tail -n 5 "$OBD_LOG")"
grep -q "ERROR: AddressSanitizer\|runtime error" "$OBD_LOG" &&
	fail "expected a clean exit, the sanitizer reported: $(grep -m1 -A5 "ERROR: AddressSanitizer\|runtime error" "$OBD_LOG")"
log "ok"
