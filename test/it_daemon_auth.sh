#!/bin/bash
# it_daemon_auth: CHAP and ACLs as the daemon wires them from the config and
# from specs: discoveryAuth from a secret file, per-spec chap (one-way and
# mutual) and acl, a world-readable secret refused (at start-up and in a
# spec), so are group/world-writable ones and ones root does not own (a
# symlink judged by its file), a chap-only spec change applied in place, the
# warning for a portal that is not loopback, a non-socket at controlSocket
# left alone, and what SIGHUP does with changed keys.
. "$(dirname "$0")/lib.sh"
need iscsi-ls iscsi-inq jq

S=$DATA/stack-a
OTHER=iqn.2026-11.io.overlaybd.test:intruder

log "a file that is not a socket at controlSocket is left alone and start-up stops"
obd_config
printf 'not a socket' >"$OBD_SOCK"
timeout "$OBD_WAIT" "$DAEMON" --config "$OBD_CONF" >"$T/start.log" 2>&1
rc=$?
expect_eq "exit status with a file at controlSocket" 1 "$rc"
expect_eq "the file at controlSocket" "not a socket" "$(cat "$OBD_SOCK" 2>&1)"
grep -q "controlSocket $OBD_SOCK: File exists" "$T/start.log" ||
	fail "expected the refusal naming controlSocket, got: $(cat "$T/start.log")"
rm -f "$OBD_SOCK"

log "a world-readable discovery secret stops start-up with exit 78, naming the key"
printf 'disc-secret-1234\n' >"$T/disc.secret"
chmod 0644 "$T/disc.secret"
obd_config "\"discoveryAuth\": {\"username\": \"disc\", \"passwordFile\": \"$T/disc.secret\"}"
"$DAEMON" --config "$OBD_CONF" >"$T/start.log" 2>&1
rc=$?
expect_eq "exit status with a world-readable secret" 78 "$rc"
grep -q "discoveryAuth.passwordFile: secret file $T/disc.secret is world-readable" "$T/start.log" ||
	fail "expected the refusal naming discoveryAuth.passwordFile, got: $(cat "$T/start.log")"

log "discovery CHAP from a 0600 secret file; a portal on 0.0.0.0 is logged"
chmod 0600 "$T/disc.secret"
OBD_PORT=$(free_port)
obd_config "\"discoveryAuth\": {\"username\": \"disc\", \"passwordFile\": \"$T/disc.secret\"}"
sed -i "s/127.0.0.1:$OBD_PORT/0.0.0.0:$OBD_PORT/" "$OBD_CONF"
obd_start
expect_eq "controlSocket mode" 660 "$(stat -c %a "$OBD_SOCK")"
grep -q "listening on 0.0.0.0:$OBD_PORT, which is not a loopback address" "$OBD_LOG" ||
	fail "expected a warning about the non-loopback portal, log: $(tail -5 "$OBD_LOG")"
obd_add_spec open "$(obd_spec open "$(lowers_of $S/l1.lsmt)")" >/dev/null
iscsi-ls -i "$INITIATOR" "$(obd_portal_url)" >/dev/null 2>&1 &&
	fail "discovery without CHAP: expected refusal, got a target list"
iscsi-ls -i "$INITIATOR" "$(obd_portal_url disc wrong-secret-99)" >/dev/null 2>&1 &&
	fail "discovery with a wrong secret: expected refusal, got a target list"
out=$(iscsi-ls -i "$INITIATOR" "$(obd_portal_url disc disc-secret-1234)" 2>&1) ||
	fail "discovery with the right secret failed: $out"
grep -qF "$(obd_iqn open)" <<<"$out" || fail "expected $(obd_iqn open) in discovery, got: $out"

log "per-spec CHAP, one-way then mutual, and an ACL"
printf 'target-secret-42' >"$T/t.secret"
chmod 0640 "$T/t.secret"
obd_add_spec chap "$(obd_spec chap "$(lowers_of $S/l1.lsmt)" "" \
	"\"chap\": {\"username\": \"u1\", \"passwordFile\": \"$T/t.secret\"}")" >/dev/null
iscsi-inq -i "$INITIATOR" "$(obd_url chap)" >/dev/null 2>&1 &&
	fail "login to chap without CHAP: expected refusal, got in"
iscsi-inq -i "$INITIATOR" "$(obd_url chap u1 target-secret-41)" >/dev/null 2>&1 &&
	fail "login to chap with a wrong secret: expected refusal, got in"
out=$(iscsi-inq -i "$INITIATOR" "$(obd_url chap u1 target-secret-42)" 2>&1) ||
	fail "login to chap with the right secret failed: $out"

log "a chap-only change is applied in place"
obd_add_spec chap "$(obd_spec chap "$(lowers_of $S/l1.lsmt)" "" \
	"\"chap\": {\"username\": \"u1\", \"password\": \"target-secret-43\", \"mutualUsername\": \"tgt\", \"mutualPassword\": \"mutual-secret-7\"}")" >/dev/null
grep -q "chap: CHAP/ACL updated in place" "$OBD_LOG" || fail "expected the CHAP update in place, log: $(tail -5 "$OBD_LOG")"
iscsi-inq -i "$INITIATOR" "$(obd_url chap u1 target-secret-42)" >/dev/null 2>&1 &&
	fail "login with the old secret after the change: expected refusal, got in"
out=$(iscsi-inq -i "$INITIATOR" "$(obd_url chap u1 target-secret-43 tgt mutual-secret-7)" 2>&1) ||
	fail "mutual CHAP login with the new secrets failed: $out"
iscsi-inq -i "$INITIATOR" "$(obd_url chap u1 target-secret-43 tgt mutual-secret-8)" >/dev/null 2>&1 &&
	fail "mutual CHAP with the wrong target secret: expected the initiator to refuse, got in"

log "a world-readable secret in a spec fails that spec only"
printf 'readable-secret-1' >"$T/r.secret"
chmod 0644 "$T/r.secret"
res=$(obd_add_spec leaky "$(obd_spec leaky "$(lowers_of $S/l1.lsmt)" "" \
	"\"chap\": {\"username\": \"u\", \"passwordFile\": \"$T/r.secret\"}")" "failed:")
case "$res" in
"failed:chap.passwordFile: secret file $T/r.secret is world-readable"*) ;;
*) fail "leaky: expected failed:chap.passwordFile: secret file ... is world-readable, got '$res'" ;;
esac

log "a secret file others could replace is refused too; a symlink is judged by its file"
# expect_secret_refused NAME FILE WHY: a spec whose passwordFile is FILE fails with WHY.
expect_secret_refused() {
	local name=$1 file=$2 why=$3 res
	res=$(obd_add_spec "$name" "$(obd_spec "$name" "$(lowers_of $S/l1.lsmt)" "" \
		"\"chap\": {\"username\": \"u\", \"passwordFile\": \"$file\"}")" "failed:")
	case "$res" in
	"failed:chap.passwordFile: secret file $file is $why"*) ;;
	*) fail "$name: expected failed:chap.passwordFile: secret file $file is $why..., got '$res'" ;;
	esac
}
printf 'group-writable-1' >"$T/gw.secret"
chmod 0620 "$T/gw.secret"
expect_secret_refused gwsecret "$T/gw.secret" "writable by group or others (mode 0620)"
printf 'world-writable-1' >"$T/ww.secret"
chmod 0602 "$T/ww.secret"
expect_secret_refused wwsecret "$T/ww.secret" "writable by group or others (mode 0602)"
printf 'not-roots-secret' >"$T/nobody.secret"
chmod 0600 "$T/nobody.secret"
chown 65534 "$T/nobody.secret"
expect_secret_refused nbsecret "$T/nobody.secret" "owned by uid 65534, not root"
ln -s "$T/nobody.secret" "$T/link-nobody.secret"
expect_secret_refused lnsecret "$T/link-nobody.secret" "owned by uid 65534, not root"
ln -s "$T/t.secret" "$T/link-root.secret"
obd_add_spec lrsecret "$(obd_spec lrsecret "$(lowers_of $S/l1.lsmt)" "" \
	"\"chap\": {\"username\": \"u2\", \"passwordFile\": \"$T/link-root.secret\"}")" >/dev/null
out=$(iscsi-inq -i "$INITIATOR" "$(obd_url lrsecret u2 target-secret-42)" 2>&1) ||
	fail "login with the secret behind a symlink to a root-owned 0640 file failed: $out"

log "ACL: only the listed initiator gets in"
obd_add_spec acl "$(obd_spec acl "$(lowers_of $S/l1.lsmt)" "" "\"acl\": [\"$INITIATOR\"]")" >/dev/null
out=$(iscsi-inq -i "$INITIATOR" "$(obd_url acl)" 2>&1) || fail "login of the listed initiator failed: $out"
iscsi-inq -i "$OTHER" "$(obd_url acl)" >/dev/null 2>&1 &&
	fail "login of $OTHER to acl: expected refusal, got in"
out=$(iscsi-ls -i "$OTHER" "$(obd_portal_url disc disc-secret-1234)" 2>&1)
grep -qF "$(obd_iqn acl)" <<<"$out" && fail "discovery by $OTHER: expected acl hidden, got: $out"
grep -qF "$(obd_iqn open)" <<<"$out" || fail "discovery by $OTHER: expected open listed, got: $out"

log "SIGHUP: a changed live key is applied, a changed restart-only key is logged as such"
jq '. + {maxBurstLength: 1048576, registryProxy: "http://127.0.0.1:9", busyPollMicros: 0}' \
	"$OBD_CONF" >"$T/conf.new" && mv "$T/conf.new" "$OBD_CONF"
kill -HUP "$OBD_PID"
for want in "reload: maxBurstLength changed; takes effect on restart" \
	"reload: registryProxy changed; takes effect on restart" \
	"reload: busyPollMicros changed, applied"; do
	for i in $(seq 1 50); do grep -qF "$want" "$OBD_LOG" && break; sleep 0.1; done
	grep -qF "$want" "$OBD_LOG" || fail "expected the log line '$want', log: $(grep -A3 SIGHUP "$OBD_LOG")"
done
grep -q "reload: discoveryAuth changed" "$OBD_LOG" &&
	fail "expected no change of discoveryAuth reported (the secret file is the same), got one"
obd_stop

log "systemd notification: READY=1 once listening, RELOADING=1 on SIGHUP, STOPPING=1 on SIGTERM"
python3 - "$T/notify.sock" >"$T/notify.log" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.5)
end = time.time() + 20
while time.time() < end:
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        continue
    print(msg.replace("\n", " "), flush=True)
    if "STOPPING=1" in msg:
        break
PY
track_pid $!
for i in $(seq 1 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$T/notify.sock obd_start
kill -HUP "$OBD_PID"
for i in $(seq 1 50); do [ "$(grep -c READY=1 "$T/notify.log")" -ge 2 ] && break; sleep 0.1; done
obd_stop
for i in $(seq 1 50); do grep -q STOPPING=1 "$T/notify.log" && break; sleep 0.1; done
expect_eq "notifications" "READY=1 RELOADING=1 READY=1 STOPPING=1" "$(tr '\n' ' ' <"$T/notify.log" | sed 's/ MONOTONIC_USEC=[0-9]*//; s/ $//')"
log ok
