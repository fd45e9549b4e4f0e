# test/lib.sh: shared helpers for the integration tests (test/it_*.sh), sourced by bash.
#
# Each test gets its own temp dir ($T), its own free TCP port and its own daemon; everything a
# test starts is killed by the EXIT trap, also when the test fails or run-integration.sh's
# timeout signals it.  Nothing here touches /run, /var or a fixed port: several people run the
# suite at once on one machine.
#
# The daemon's files follow CONVENTIONS.md: config.json (portals, spoolDir, controlSocket,
# logLevel, registryCacheDir), spool NAME.json renamed in from .NAME.json.tmp, resultFile
# "success" or "failed:<reason>", target IQN <iqnPrefix>:<name>, LUN 0.

set -u
set -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DAEMON=$BUILD/bin/overlaybd-iscsid
OBD_ISCSI=$BUILD/test/obd-iscsi
DATA=$ROOT/test/data
IQN_PREFIX=iqn.2026-11.io.overlaybd
INITIATOR=${INITIATOR:-iqn.2026-11.io.overlaybd.test:initiator}
# Seconds to wait for a port, a resultFile or a shutdown; valgrind raises it.
OBD_WAIT=${OBD_WAIT:-30}
# Extra command put in front of the daemon (e.g. "valgrind --leak-check=full").
OBD_WRAP=${OBD_WRAP:-}
OBD_LOGLEVEL=${OBD_LOGLEVEL:-1}

TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/obd-$TEST_NAME.XXXXXX")
OBD_PID=
OBD_PORT=
OBD_CONF=$T/config.json
OBD_SPOOL=$T/spool
OBD_SOCK=$T/control.sock
OBD_LOG=$T/daemon.log
OBD_STARTS=0
_lib_pids=()
_lib_failed=0

log() { echo "[$TEST_NAME $(date +%T)] $*"; }

# fail "expected X, got Y": print the reason and end the test (the EXIT trap cleans up).
fail() {
	echo "FAIL [$TEST_NAME]: $*" >&2
	_lib_failed=1
	exit 1
}

skip() {
	echo "SKIP [$TEST_NAME]: $*"
	exit 0
}

# Remember a background pid so the EXIT trap kills it.
track_pid() { _lib_pids+=("$1"); }

# at_exit CMD: run CMD (e.g. an umount) in the EXIT trap, after the processes are killed.
_lib_hooks=()
at_exit() { _lib_hooks+=("$1"); }

_lib_cleanup() {
	local rc=$? p
	trap - EXIT TERM INT HUP
	for p in "${_lib_pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	for p in "${_lib_pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	for p in "${_lib_hooks[@]}"; do
		eval "$p" 2>/dev/null
	done
	if [ "$rc" != 0 ] || [ "$_lib_failed" != 0 ]; then
		echo "---- $TEST_NAME failed (rc $rc); last lines of $OBD_LOG:" >&2
		# Redirections apply left to right: >&2 first, so the lines reach stderr
		# and only tail's own complaint about a missing log is dropped.
		tail -n 40 "$OBD_LOG" >&2 2>/dev/null
		if [ -n "${KEEP_TMP:-}" ]; then
			echo "---- kept $T" >&2
			exit "$rc"
		fi
	fi
	rm -rf "$T"
	exit "$rc"
}
trap _lib_cleanup EXIT
trap 'echo "[$TEST_NAME] interrupted (timeout?)" >&2; exit 124' TERM INT HUP

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || fail "needs $c (make deps)"
	done
}

# A TCP port nobody listens on, from below the kernel's ephemeral range so an outgoing
# connection of another test cannot be holding it.
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((10000 + (RANDOM * 32768 + RANDOM) % 20000))
		if ! ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	fail "no free TCP port found"
}

port_listens() {
	ss -Hltn "sport = :$1" 2>/dev/null | grep -q LISTEN
}

# obd_iqn NAME / obd_url NAME [USER PASS [TUSER TPASS]]: the target name of spec NAME and an
# iscsi:// URL for LUN 0 (CHAP in the URL; mutual CHAP as libiscsi's URL arguments).
obd_iqn() {
	local n
	n=$(echo "$1" | tr 'A-Z_' 'a-z-')
	echo "$IQN_PREFIX:$n"
}
obd_url() {
	local auth="" args=""
	[ $# -ge 3 ] && auth="$2%$3@"
	[ $# -ge 5 ] && args="?target_user=$4&target_password=$5"
	echo "iscsi://${auth}127.0.0.1:$OBD_PORT/$(obd_iqn "$1")/0$args"
}
obd_portal_url() {
	local auth=""
	[ $# -ge 2 ] && auth="$1%$2@"
	echo "iscsi://${auth}127.0.0.1:$OBD_PORT"
}

# obd_config [EXTRA]: write config.json; EXTRA is more JSON members, e.g.
# '"discoveryAuth": {"username": "u", "password": "secret-12345"}'.
obd_config() {
	local extra=${1:-}
	mkdir -p "$OBD_SPOOL" "$T/cache" "$T/results"
	[ -n "$OBD_PORT" ] || OBD_PORT=$(free_port)
	cat >"$OBD_CONF" <<EOF
{
	"logLevel": $OBD_LOGLEVEL,
	"portals": ["127.0.0.1:$OBD_PORT"],
	"spoolDir": "$OBD_SPOOL",
	"controlSocket": "$OBD_SOCK",
	"registryCacheDir": "$T/cache"${extra:+,
	$extra}
}
EOF
}

# obd_start [EXTRA]: start the daemon (writing config.json first if EXTRA is given or there is
# none yet) and wait until its portal listens.  A restart keeps the port, spool and log.  If
# the port was taken meanwhile by someone else, a fresh one is tried.
obd_start() {
	local i try
	[ -x "$DAEMON" ] || fail "no daemon at $DAEMON (make all)"
	if [ $# -gt 0 ] || [ ! -e "$OBD_CONF" ]; then
		OBD_EXTRA=${1:-}
		obd_config "$OBD_EXTRA"
	fi
	for try in 1 2 3; do
		OBD_STARTS=$((OBD_STARTS + 1))
		echo "==== start $OBD_STARTS $(date +%T.%N)" >>"$OBD_LOG"
		# shellcheck disable=SC2086
		$OBD_WRAP "$DAEMON" --config "$OBD_CONF" >>"$OBD_LOG" 2>&1 &
		OBD_PID=$!
		track_pid "$OBD_PID"
		for i in $(seq 1 $((OBD_WAIT * 10))); do
			if ! kill -0 "$OBD_PID" 2>/dev/null; then
				break
			fi
			if port_listens "$OBD_PORT"; then
				return 0
			fi
			sleep 0.1
		done
		if kill -0 "$OBD_PID" 2>/dev/null; then
			fail "daemon did not listen on 127.0.0.1:$OBD_PORT within ${OBD_WAIT}s"
		fi
		wait "$OBD_PID"
		local rc=$?
		OBD_PID=
		if grep -qi 'address already in use' "$OBD_LOG" && [ "$try" -lt 3 ]; then
			OBD_PORT=
			obd_config "${OBD_EXTRA:-}"
			continue
		fi
		fail "daemon exited with status $rc at start-up"
	done
}

obd_alive() { [ -n "$OBD_PID" ] && kill -0 "$OBD_PID" 2>/dev/null; }

# obd_term: SIGTERM, wait for the exit; its status goes to OBD_RC.
obd_term() {
	local i
	[ -n "$OBD_PID" ] || fail "obd_term: daemon not running"
	kill -TERM "$OBD_PID" 2>/dev/null || fail "obd_stop: daemon $OBD_PID already gone"
	for i in $(seq 1 $((OBD_WAIT * 10))); do
		kill -0 "$OBD_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$OBD_PID" 2>/dev/null; then
		fail "expected the daemon to exit within ${OBD_WAIT}s of SIGTERM, it is still running"
	fi
	wait "$OBD_PID"
	OBD_RC=$?
	OBD_PID=
}

# obd_stop: obd_term, and the status must be 0 (drained and flushed).
obd_stop() {
	obd_term
	[ "$OBD_RC" = 0 ] || fail "expected exit status 0 after SIGTERM, got $OBD_RC"
}

obd_kill9() {
	[ -n "$OBD_PID" ] || fail "obd_kill9: daemon not running"
	kill -KILL "$OBD_PID" 2>/dev/null
	wait "$OBD_PID" 2>/dev/null
	OBD_PID=
}

obd_result_file() { echo "$T/results/$1"; }

# _json_result_file JSON: the resultFile member of a spec, or nothing.
_json_result_file() {
	printf '%s' "$1" | jq -r '.resultFile // empty' 2>/dev/null
}

# obd_wait_result FILE: wait until FILE holds a result and print it.
obd_wait_result() {
	local f=$1 i
	for i in $(seq 1 $((OBD_WAIT * 20))); do
		if [ -s "$f" ]; then
			cat "$f"
			return 0
		fi
		obd_alive || fail "daemon died while waiting for $f"
		sleep 0.05
	done
	fail "expected a result in $f within ${OBD_WAIT}s, got none"
}

# obd_put_spec NAME JSON: rename a spec into the spool, do not wait.
obd_put_spec() {
	local name=$1 json=$2 rf
	rf=$(_json_result_file "$json")
	[ -n "$rf" ] && rm -f "$rf"
	printf '%s\n' "$json" >"$OBD_SPOOL/.$name.json.tmp"
	mv -f "$OBD_SPOOL/.$name.json.tmp" "$OBD_SPOOL/$name.json"
}

# obd_add_spec NAME JSON [EXPECT]: add a spec and wait for its resultFile.  EXPECT is
# "success" (the default) or a prefix such as "failed:"; the result is printed.
obd_add_spec() {
	local name=$1 json=$2 expect=${3:-success} rf res
	rf=$(_json_result_file "$json")
	[ -n "$rf" ] || fail "obd_add_spec $name: the spec has no resultFile"
	obd_put_spec "$name" "$json"
	res=$(obd_wait_result "$rf") || exit 1
	case "$res" in
	"$expect"*) ;;
	*) fail "spec $name: expected result '$expect', got '$res'" ;;
	esac
	echo "$res"
}

obd_remove_spec() { rm -f "$OBD_SPOOL/$1.json"; }

# obd_spec NAME LOWERS_JSON [UPPER_DIR] [EXTRA]: a spec JSON with its resultFile under $T.
# LOWERS_JSON is the lowers array; UPPER_DIR, if given, holds data+index of a writable layer.
obd_spec() {
	local name=$1 lowers=$2 upper=${3:-} extra=${4:-} up=""
	[ -n "$upper" ] && up="\"upper\": {\"data\": \"$upper/data\", \"index\": \"$upper/index\"},"
	printf '{"lowers": %s, %s "resultFile": "%s"%s}' "$lowers" "$up" \
		"$(obd_result_file "$name")" "${extra:+, $extra}"
}

# lowers_of FILE...: a lowers array of local files (bottom first).
lowers_of() {
	local f sep="" out="["
	for f in "$@"; do
		out="$out$sep{\"file\": \"$f\"}"
		sep=", "
	done
	echo "$out]"
}

# make_upper DIR SIZE_BYTES [PARENT_UUID]: a fresh empty writable layer (data+index) made with
# our own overlaybd-create.
make_upper() {
	local dir=$1 size=$2 tool=$BUILD/bin/overlaybd-create gb
	mkdir -p "$dir"
	[ -x "$tool" ] || fail "no $tool (make all)"
	gb=$(((size + (1 << 30) - 1) >> 30))
	if [ $# -ge 3 ]; then
		"$tool" -u "$3" "$dir/data" "$dir/index" "$gb" >/dev/null || fail "overlaybd-create $dir failed"
	else
		"$tool" "$dir/data" "$dir/index" "$gb" >/dev/null || fail "overlaybd-create $dir failed"
	fi
}

# flip_byte FILE OFFSET: damage one byte in place (XOR 0x20), as media or another
# program would, for the tests of checksums.
flip_byte() {
	local b
	b=$(dd if="$1" bs=1 skip="$2" count=1 2>/dev/null | xxd -p)
	printf "$(printf '\\x%02x' $((0x$b ^ 0x20)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# sha256_of_target URL: sha256 of the whole LUN, read with our libiscsi client.
sha256_of_target() {
	[ -x "$OBD_ISCSI" ] || fail "no $OBD_ISCSI (make all)"
	"$OBD_ISCSI" read --initiator "$INITIATOR" "$1"
}

# manifest_hash STACK: the expected whole-device sha256 from test/data/MANIFEST.md.
manifest_hash() {
	case "$1" in
	L1) echo 1fb389018ab69bcfc50b019d47ac89463c1bf19381c2ed99f8b6cdc15d26fbfe ;;
	L12) echo 5f38a71891007a75eba73c8893b24ee67eb54cca7e644b153d962cb96eeb674b ;;
	L123) echo 7c77d72ce9d7cb7460334483bcc15a3d170c5381c7158ced5118931c0a583370 ;;
	ext4) echo 08a2be25e3ea4ff5e715b4282c8b8f36960bdf6ee688580ed8852568f6ea3961 ;;
	*) fail "manifest_hash: unknown stack $1" ;;
	esac
}

# manifest_head_hash STACK / manifest_tail_hash STACK: sha256 of the first 32 MiB and of the
# last 64 KiB of the device (MANIFEST.md); together they cover every non-zero byte of stack A.
manifest_head_hash() {
	case "$1" in
	L1) echo 539c8964977c059e05a7a6fdf5c1680d9c068e46fe575895994c5981d6040140 ;;
	L12) echo 416e04aa8ab6add6c54078b097a6b2e42ea91d946ec6c307fdfee5fc1b6bf545 ;;
	L123) echo 34ec72abd9bc7fd3ae8e627e2c3a9eb7b66f0fe872b9247da0f38e4b087c28ef ;;
	*) fail "manifest_head_hash: unknown stack $1" ;;
	esac
}
manifest_tail_hash() {
	case "$1" in
	L1) echo ee7f70bc65a1a9204f100301862d82ce4eaff23e5b02f77df9309bf744a635c1 ;;
	L12 | L123) echo c914855a0ea408f6258492e2763d832d51a52aab7dda24f80ec421025f96a4f9 ;;
	*) fail "manifest_tail_hash: unknown stack $1" ;;
	esac
}

# expect_eq WHAT EXPECTED GOT
expect_eq() {
	[ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
}

# obd_log_errors: the error-level lines of the daemon log (common/log.c: "<time> error <text>").
obd_log_errors() {
	grep -E '^[0-9TZ:.-]+ error ' "$OBD_LOG" 2>/dev/null || true
}
