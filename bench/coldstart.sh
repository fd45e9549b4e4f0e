#!/bin/bash
# bench/coldstart (`make bench-coldstart`): a container start over a WAN
# (docs/coldstart.md).  A Debian bookworm root filesystem with python3
# (mmdebstrap, about 220 MB) becomes an ext4 image, then an lz4 ZFile layer
# made with our own tools, pushed to Debian's docker-registry behind
# bench/wan-relay.  The start is python3 importing json, ssl, email,
# http.client, sqlite3 and asyncio: the files it opens (strace of the real
# start in a chroot) are read over iSCSI by obd-appstart, through the ext4
# filesystem, one read at a time.  For each WAN profile, median of RUNS:
#   warm           the layer as a local file, in the page cache
#   cold           remote, fresh cache, on demand
#   cold + trace   remote, fresh cache, replaying the trace recorded by a
#                  first cold start (recordTracePath)
#   pull, start    the whole blob fetched through the link first (curl),
#                  then the warm start from it
# Each start counts from the spec's rename into the spool to the last read.
# Usage: bench/coldstart.sh [PROFILE...] (default: region far dc).
# COLDSTART_DIR keeps the root filesystem and the image between runs.
. "$(dirname "$0")/../test/lib.sh"
. "$ROOT/test/registry.sh"
. "$ROOT/bench/wan.sh"
. "$ROOT/bench/lib.sh"
set +o pipefail
need docker-registry mmdebstrap strace mke2fs curl python3

DIR=${COLDSTART_DIR:-/var/tmp/obd-coldstart}
RUNS=${RUNS:-3}
APP='import json, ssl, email, http.client, sqlite3, asyncio; print("ready")'
APPSTART=$BUILD/bench/obd-appstart
MKLAYER=$BUILD/bench/mklayer
ZFILE=$BUILD/bin/overlaybd-zfile
for b in "$APPSTART" "$MKLAYER" "$ZFILE" "$WAN_RELAY"; do
	[ -x "$b" ] || fail "no $b (make all)"
done
mkdir -p "$DIR"

# The root filesystem, the start's file list and the layer, made once.
prepare() {
	if [ ! -s "$DIR/rootfs.tar" ]; then
		log "mmdebstrap bookworm minbase + python3 (a few minutes, once)"
		mmdebstrap --variant=minbase --include=python3 --mode=root bookworm \
			"$DIR/rootfs.tar.tmp" >"$DIR/mmdebstrap.log" 2>&1 ||
			fail "mmdebstrap failed: $(tail -n 3 "$DIR/mmdebstrap.log")"
		mv "$DIR/rootfs.tar.tmp" "$DIR/rootfs.tar"
	fi
	if [ ! -d "$DIR/rootfs/usr" ]; then
		rm -rf "$DIR/rootfs"
		mkdir -p "$DIR/rootfs"
		tar -C "$DIR/rootfs" -xf "$DIR/rootfs.tar" || fail "cannot unpack rootfs.tar"
	fi
	[ -s "$DIR/start.list" ] || start_list
	if [ ! -s "$DIR/fs.zfile" ]; then
		local mib
		mib=$(($(du -sm "$DIR/rootfs" | cut -f1) * 13 / 10 + 64))
		mke2fs -q -F -t ext4 -b 4096 -d "$DIR/rootfs" "$DIR/fs.img" "${mib}M" ||
			fail "mke2fs -d failed"
		"$MKLAYER" "$DIR/fs.lsmt" --image "$DIR/fs.img" || fail "mklayer --image failed"
		"$ZFILE" "$DIR/fs.lsmt" "$DIR/fs.zfile.tmp" >/dev/null || fail "overlaybd-zfile failed"
		mv "$DIR/fs.zfile.tmp" "$DIR/fs.zfile"
		rm -f "$DIR/fs.lsmt"
	fi
}

# The files the real start opens, in first-open order, from strace of it
# in a chroot: the interpreter, the loader, then every file it opened.
start_list() {
	strace -f -e trace=openat,execve -o "$DIR/strace.log" \
		chroot "$DIR/rootfs" /usr/bin/python3 -c "$APP" >/dev/null ||
		fail "the start failed in the chroot"
	python3 - "$DIR/strace.log" "$DIR/rootfs" >"$DIR/start.list" <<'EOF'
import os, re, sys
log, root = sys.argv[1], os.path.realpath(sys.argv[2])
seen, started = [], False
def add(p):
    full = os.path.realpath(os.path.join(root, p.lstrip('/')))
    if full.startswith(root + '/') and os.path.isfile(full):
        rel = '/' + os.path.relpath(full, root)
        if rel not in seen:
            seen.append(rel)
for line in open(log):
    m = re.search(r'(?:execve\("|openat\(AT_FDCWD, ")([^"]+)"', line)
    if not m or '= -1' in line or 'O_DIRECTORY' in line:
        continue
    if 'execve(' in line:
        started = m.group(1).endswith('python3')
        if started:
            add(m.group(1))
            add('/lib64/ld-linux-x86-64.so.2')
        continue
    if started and not m.group(1).startswith(('/proc', '/dev', '/sys')):
        add(m.group(1))
print('\n'.join(seen))
EOF
}

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

# start NAME SPEC_JSON: one start; prints "TOTAL_MS READY_MS APP_MS DATA META".
start() {
	local ready out
	ready=$(spec_ready "$1" "$2") || exit 1
	out=$("$APPSTART" --initiator "$INITIATOR" "$(obd_url "$1")" "$DIR/start.list") ||
		fail "obd-appstart on $1 failed"
	echo "$1 ready_ns=$ready $out" >>"$T/appstart.log"
	echo "$ready $out" | awk '{ r = $1 / 1e6 } { for (i = 2; i <= NF; i++) {
		split($i, kv, "="); v[kv[1]] = kv[2] } }
		END { printf "%.1f %.1f %.1f %d %d\n", r + v["ms"], r, v["ms"], v["data_bytes"], v["meta_bytes"] }'
}

# fetched NAME: bytes the registry served for layer 0 of NAME.
fetched() {
	"$DAEMON" status --socket "$OBD_SOCK" | awk -v t="$(obd_iqn "$1")" '
		/^target / { on = ($2 == t) } on && /layer 0 remote/ {
		for (i = 1; i < NF; i++) if ($i == "fetched") print $(i + 1); exit }'
}

# A new daemon with an empty cache and an empty spool, so nothing of the
# run before (a cached block, a device reopened at start-up) helps this one.
fresh_daemon() {
	[ -n "$OBD_PID" ] && obd_stop
	rm -rf "$T/cache"
	rm -f "$OBD_SPOOL"/*.json
	obd_start
}

remote_spec() { # NAME [EXTRA]
	obd_spec "$1" "[{\"digest\": \"$DIGEST\", \"size\": $SIZE}]" "" \
		"\"repoBlobUrl\": \"http://127.0.0.1:$WAN_PORT/v2/bench/rootfs/blobs\"${2:+, $2}"
}

# one_profile PROFILE: every case on one WAN link; appends a row to $T/rows.
one_profile() {
	local p=$1 r n=0 warm=() cold=() trace=() pull=() tbytes=() data=0 meta=0 line
	wan_start "$p" "127.0.0.1:$REG_PORT" || exit 1
	log "$p: $WAN_RTT_MS ms round trip, $WAN_MBIT Mbit/s"
	fresh_daemon
	: >"$T/trace"
	line=$(start rec "$(remote_spec rec "\"recordTracePath\": \"$T/trace\"")")
	rm -f "$T/trace.lock"
	for r in $(seq 1 100); do [ -e "$T/trace.ok" ] && break; sleep 0.05; done
	[ -e "$T/trace.ok" ] || fail "$p: the recording did not finish"
	log "$p: recorded a trace of the first cold start ($line)"
	for r in $(seq 1 "$RUNS"); do
		n=$((n + 1))
		fresh_daemon
		line=$(start "c$n" "$(remote_spec "c$n")")
		cold+=("${line%% *}")
		read -r _ _ _ data meta <<<"$line"
		fresh_daemon
		rm -f "$T/trace.ok"
		line=$(start "t$n" "$(remote_spec "t$n" "\"recordTracePath\": \"$T/trace\"")")
		trace+=("${line%% *}")
		tbytes+=("$(fetched "t$n")")
		cat "$DIR/fs.zfile" >/dev/null
		line=$(start "w$n" "$(obd_spec "w$n" "$(lowers_of "$DIR/fs.zfile")")")
		warm+=("${line%% *}")
		local t0 t1
		t0=$(date +%s%N)
		curl -s -o "$T/pulled.zfile" "http://127.0.0.1:$WAN_PORT/v2/bench/rootfs/blobs/$DIGEST" ||
			fail "$p: curl of the whole blob failed"
		t1=$(date +%s%N)
		line=$(start "p$n" "$(obd_spec "p$n" "$(lowers_of "$T/pulled.zfile")")")
		pull+=("$(echo "$t0 $t1 ${line%% *}" | awk '{ printf "%.1f", ($2 - $1) / 1e6 + $3 }')")
	done
	local ten=()
	for r in $(seq 1 "$RUNS"); do
		fresh_daemon
		ten+=("$(spec_ready "ten$r" "$(obd_spec "ten$r" "[$TEN]" "" \
			"\"repoBlobUrl\": \"http://127.0.0.1:$WAN_PORT/v2/bench/ten/blobs\"")" |
			awk '{ printf "%.1f", $1 / 1e6 }')")
	done
	obd_stop
	wan_stop
	local mw mc mt mp mb m10
	m10=$(printf '%s\n' "${ten[@]}" | median)
	mw=$(printf '%s\n' "${warm[@]}" | median)
	mc=$(printf '%s\n' "${cold[@]}" | median)
	mt=$(printf '%s\n' "${trace[@]}" | median)
	mp=$(printf '%s\n' "${pull[@]}" | median)
	mb=$(printf '%s\n' "${tbytes[@]}" | median)
	echo "$p $WAN_RTT_MS $WAN_MBIT $mw $mc $mt $mp $mb $data $meta $m10" >>"$T/rows"
	log "$p: warm $mw ms, cold $mc ms, cold+trace $mt ms, pull+start $mp ms," \
		"fetched with the trace $mb bytes, read $data data + $meta metadata bytes," \
		"10 remote lowers ready in $m10 ms"
}

prepare
REG_DIR=$T/reg
mkdir -p "$REG_DIR"
reg_start anon >/dev/null || fail "docker-registry did not start"
DIGEST=$(reg_push bench/rootfs "$DIR/fs.zfile") || fail "push failed"
# Ten small layers (4 MiB each, a device region apiece) for the time from a
# spec to serving when every lower is remote.
TEN=""
for i in $(seq 1 10); do
	"$MKLAYER" "$T/ten$i.lsmt" 4 $((i * 8)) "$i" || fail "mklayer failed"
	d=$(reg_push bench/ten "$T/ten$i.lsmt") || fail "push failed"
	TEN="$TEN${TEN:+, }{\"digest\": \"$d\", \"size\": $(stat -c %s "$T/ten$i.lsmt")}"
done
SIZE=$(stat -c %s "$DIR/fs.zfile")
log "image: $(du -sm "$DIR/rootfs" | cut -f1) MiB of files, ext4 $(($(stat -c %s "$DIR/fs.img") >> 20)) MiB," \
	"lz4 ZFile layer $((SIZE >> 20)) MiB; the start opens $(wc -l <"$DIR/start.list") files"
: >"$T/rows"
for p in ${@:-region far dc}; do
	one_profile "$p"
done
{
	echo "make bench-coldstart $(date -u +%FT%TZ): python3 start (${RUNS} runs, median), lz4 ZFile layer of $((SIZE >> 20)) MiB"
	echo
	echo "| link | warm | cold, on demand | cold / warm | cold + trace | (cold + trace) / warm | pull, then start | pull / (cold + trace) | fetched with the trace / read | 10 remote lowers ready |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk '{ printf "| %s: %d ms RTT, %d Mbit/s | %.0f ms | %.0f ms | %.2fx | %.0f ms | %.2fx | %.0f ms | %.1fx | %.2f (%.1f / %.1f MB) | %.0f ms = %.1f RTT |\n",
		$1, $2, $3, $4, $5, $5 / $4, $6, $6 / $4, $7, $7 / $6, $8 / ($9 + $10), $8 / 1e6, ($9 + $10) / 1e6, $11, $11 / $2 }' "$T/rows"
} | tee "$BUILD/bench/coldstart.md"
cp "$T/appstart.log" "$BUILD/bench/coldstart-appstart.log"
cp "$OBD_LOG" "$BUILD/bench/coldstart-daemon.log"
