#!/bin/bash
# bench/run.sh (`make bench`): overlaybd-iscsid against Debian's tgtd on the same
# bytes, in the same run, as ratios (issue 5).
#
#  1. 1 GiB of data (each 4 KiB block: 1.5 KiB random, 2.5 KiB text, so lz4 has
#     something to do), the raw file tgt serves.
#  2. Our images, made with our own tools and daemon: overlaybd-create makes a
#     writable layer, obd-bench --fill writes the raw bytes into it through
#     the daemon, overlaybd-commit seals it.  That gives
#       single  one sealed LSMT layer holding everything
#       stack3  single + two layers that rewrite every 3rd 64 KiB chunk (phases
#               1 and 2) with the same bytes: same merged bytes, 3 layers
#       lz4     the three layers of stack3, each through overlaybd-zfile (lz4)
#       rw      single under a fresh writable upper (the write test)
#     Every image is checked against the raw file (obd-bench --verify).
#  3. Each workload on each target in turn, REPS times (round-robin, so
#     drift on this shared machine hits both alike), with the target's CPU
#     time per I/O from /proc/PID/stat (utime + stime of all its threads).
#  4. iperf3, one loopback stream: the ceiling for one TCP connection.
#  5. RSS with many idle sessions, and with many idle devices.
#  6. bench/report.py prints one table (median, spread, ours/tgt, CPU/IO,
#     the issue's targets met or missed), also saved in build/bench/report.md.
#
# Environment: BENCH_QUICK=1 (256 MiB, 2 s runs, once), BENCH_DIR=DIR (keep
# the work directory and reuse its images on the next run), BENCH_ONLY="wl ..."
# (only these workloads), BENCH_PERF=wl (perf record -g the daemon during that
# workload's first run; the profile goes to build/bench/perf-wl.data),
# BENCH_OBD_CONFIG='"key": value, ...' (more settings for our daemon, for A/B runs).
set -u
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/bin
OBDB=$BUILD/bench/obd-bench
OUT=$BUILD/bench
. "$ROOT/bench/tgt.sh"

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	SIZE_MIB=256 DUR=2 WARM=0.5 REPS=1 IDLE_SESS=200 IDLE_DEVS=20 IPERF_SEC=2
else
	SIZE_MIB=1024 DUR=7 WARM=1 REPS=3 IDLE_SESS=1000 IDLE_DEVS=100 IPERF_SEC=5
fi
IQNP=iqn.2026-11.io.overlaybd
INIT=iqn.2026-11.io.overlaybd.bench:client
U1=B1000000-0000-4000-8000-000000000001
U2=B2000000-0000-4000-8000-000000000002
U3=B3000000-0000-4000-8000-000000000003

if [ -n "${BENCH_DIR:-}" ]; then
	W=$BENCH_DIR
	mkdir -p "$W"
else
	W=$(mktemp -d /tmp/obd-bench.XXXXXX)
fi
IMG=$W/img
RES=$OUT/results.txt
OBD_PID= IPERF_PID= IDLE_PID= MEM_PID=
SPOOL=$W/spool CTL=$W/control.sock
TGT_PID=

say() { echo "[bench $(date +%T)] $*"; }
die() {
	echo "bench: $*" >&2
	exit 1
}

cleanup() {
	local p
	trap - EXIT INT TERM
	for p in $IDLE_PID $IPERF_PID $MEM_PID; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	tgt_stop "$W/tgt"
	if [ -n "$OBD_PID" ]; then
		kill -TERM "$OBD_PID" 2>/dev/null
		for p in $(seq 1 100); do
			kill -0 "$OBD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$OBD_PID" 2>/dev/null
		wait "$OBD_PID" 2>/dev/null
	fi
	[ -n "${BENCH_DIR:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((10000 + (RANDOM * 32768 + RANDOM) % 20000))
		ss -Htan "( sport = :$p or dport = :$p )" | grep -q . || { echo "$p"; return; }
	done
	die "no free TCP port"
}

wait_listen() {
	local i
	for i in $(seq 1 300); do
		ss -Hltn "sport = :$1" | grep -q LISTEN && return 0
		sleep 0.1
	done
	return 1
}

# put_spec NAME JSON: rename a device spec into the spool and wait for its result.
put_spec() {
	local name=$1 json=$2 i r
	rm -f "$W/res/$name"
	printf '%s\n' "$json" >"$SPOOL/.$name.json.tmp"
	mv -f "$SPOOL/.$name.json.tmp" "$SPOOL/$name.json"
	for i in $(seq 1 600); do
		if [ -s "$W/res/$name" ]; then
			r=$(cat "$W/res/$name")
			[ "$r" = success ] && return 0
			die "device $name: $r"
		fi
		sleep 0.05
	done
	die "device $name: no result after 30 s"
}

# spec LOWER_FILES UPPER_DIR NAME: the JSON of a device spec.
spec() {
	local lowers="" f sep="" up=""
	for f in $1; do
		lowers="$lowers$sep{\"file\": \"$f\"}"
		sep=", "
	done
	[ -n "$2" ] && up="\"upper\": {\"data\": \"$2/data\", \"index\": \"$2/index\"},"
	printf '{"lowers": [%s], %s "resultFile": "%s"}' "$lowers" "$up" "$W/res/$3"
}

url() { echo "iscsi://127.0.0.1:$OBD_PORT/$IQNP:$1/0"; }
TGT_URL=

gen_data() {
	python3 - "$1" "$SIZE_MIB" <<'PY'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
with open(path + ".tmp", "wb") as f:
    for mb in range(mib):
        out = bytearray()
        rnd = os.urandom(256 * 1536)
        for b in range(256):
            n = mb * 256 + b
            text = (b"overlaybd bench block %012d\n" % n) * 92
            out += rnd[b * 1536:(b + 1) * 1536] + text[:2560]
        f.write(out)
os.rename(path + ".tmp", path)
PY
}

# fill NAME [stride phase]: write the raw bytes into device NAME through the daemon.
fill() {
	local name=$1 extra=""
	[ $# -ge 3 ] && extra="--stride $2 --phase $3 --chunk 64k -q 16"
	# shellcheck disable=SC2086
	"$OBDB" -Q -i "$INIT" --fill "$IMG/raw" $extra "$(url "$name")" >>"$W/build.log" ||
		die "filling $name failed (see $W/build.log)"
}

build_images() {
	local bs
	mkdir -p "$IMG"
	if [ -f "$IMG/done" ] && [ "$(cat "$IMG/done")" = "$SIZE_MIB" ]; then
		say "reusing the images in $IMG"
		return
	fi
	rm -rf "${IMG:?}"/*
	say "making ${SIZE_MIB} MiB of data"
	gen_data "$IMG/raw"
	bs=$(((SIZE_MIB + 1023) / 1024))
	say "single layer: overlaybd-create, fill through the daemon, overlaybd-commit"
	"$BIN/overlaybd-create" "$IMG/u1.data" "$IMG/u1.index" "$bs" >/dev/null || die "overlaybd-create"
	mkdir -p "$IMG/u1" && mv "$IMG/u1.data" "$IMG/u1/data" && mv "$IMG/u1.index" "$IMG/u1/index"
	put_spec fill1 "$(spec "" "$IMG/u1" fill1)"
	fill fill1
	rm -f "$W/spool/fill1.json"
	"$BIN/overlaybd-commit" --uuid "$U1" -m single "$IMG/u1/data" "$IMG/u1/index" "$IMG/single.lsmt" ||
		die "overlaybd-commit single"
	say "3-layer stack: two more layers rewriting every 3rd 64 KiB chunk"
	mkdir -p "$IMG/u2" "$IMG/u3"
	"$BIN/overlaybd-create" -u "$U1" "$IMG/u2/data" "$IMG/u2/index" "$bs" >/dev/null || die "overlaybd-create"
	put_spec fill2 "$(spec "$IMG/single.lsmt" "$IMG/u2" fill2)"
	fill fill2 3 1
	rm -f "$W/spool/fill2.json"
	"$BIN/overlaybd-commit" --uuid "$U2" -m layer-2 "$IMG/u2/data" "$IMG/u2/index" "$IMG/l2.lsmt" ||
		die "overlaybd-commit l2"
	"$BIN/overlaybd-create" -u "$U2" "$IMG/u3/data" "$IMG/u3/index" "$bs" >/dev/null || die "overlaybd-create"
	put_spec fill3 "$(spec "$IMG/single.lsmt $IMG/l2.lsmt" "$IMG/u3" fill3)"
	fill fill3 3 2
	rm -f "$W/spool/fill3.json"
	"$BIN/overlaybd-commit" --uuid "$U3" -m layer-3 "$IMG/u3/data" "$IMG/u3/index" "$IMG/l3.lsmt" ||
		die "overlaybd-commit l3"
	rm -rf "$IMG/u1" "$IMG/u2" "$IMG/u3"
	say "lz4 stack: overlaybd-zfile on each layer"
	for f in single l2 l3; do
		"$BIN/overlaybd-zfile" "$IMG/$f.lsmt" "$IMG/$f.lz4" || die "overlaybd-zfile $f"
	done
	echo "$SIZE_MIB" >"$IMG/done"
}

# cpu_ticks PID: utime + stime of every thread of PID (proc(5) fields 14, 15).
cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	echo $((${12} + ${13}))
}

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

HZ=$(getconf CLK_TCK)

# run_one REP WL TARGET URL PID ARGS...: one obd-bench run, one result line.
run_one() {
	local rep=$1 wl=$2 tg=$3 u=$4 pid=$5 c0 c1 line ios cpu perf_pid=""
	shift 5
	if [ "${BENCH_PERF:-}" = "$wl" ] && [ "$tg" = ours ] && [ "$rep" = 1 ]; then
		perf record -g -o "$OUT/perf-$wl.data" -p "$pid" -- sleep "$DUR" \
			>/dev/null 2>&1 &
		perf_pid=$!
	fi
	c0=$(cpu_ticks "$pid")
	line=$("$OBDB" -Q -i "$INIT" -t "$DUR" -W "$WARM" --span "${SIZE_MIB}m" "$@" "$u" 2>>"$W/bench.err" | grep '^OBD-BENCH')
	c1=$(cpu_ticks "$pid")
	[ -n "$perf_pid" ] && wait "$perf_pid"
	if [ -z "$line" ]; then
		echo "rep=$rep wl=$wl target=$tg failed=1" >>"$RES"
		say "$wl on $tg: FAILED (see $W/bench.err)"
		return
	fi
	ios=$(echo "$line" | sed 's/.* ios=\([0-9]*\).*/\1/')
	# CPU of the whole warm-up + measured window, over the I/Os of the window
	# scaled to it, so the figure is per I/O.
	cpu=$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v n="$ios" -v d="$DUR" -v w="$WARM" \
		'BEGIN { if (n > 0) printf "%.2f", c / hz * 1e6 / (n * (d + w) / d); else print 0 }')
	echo "rep=$rep wl=$wl target=$tg cpu_us_io=$cpu ${line#OBD-BENCH }" >>"$RES"
	say "$wl on $tg: $(echo "$line" | grep -o 'iops=[^ ]*\|mibs=[^ ]*\|p50_us=[^ ]*' |
		tr '\n' ' ')cpu/io ${cpu}us"
}

# Workloads: name, targets (ours device or "-"; tgt "tgt" or "-"), obd-bench args.
WORKLOADS="
r4k-qd1     single tgt -b 4k -q 1 -p rand
r4k-qd32    single tgt -b 4k -q 32 -p rand
w4k-qd32    rw     tgt -b 4k -q 32 -p rand -w write
s128k-qd8   single tgt -b 128k -q 8 -p seq
s1m-qd1     single tgt -b 1m -q 1 -p seq
s1m-qd8     single tgt -b 1m -q 8 -p seq
r4k-qd32-3l stack3 -   -b 4k -q 32 -p rand
s1m-qd8-3l  stack3 -   -b 1m -q 8 -p seq
r4k-qd32-lz4 lz4   -   -b 4k -q 32 -p rand
s1m-qd8-lz4 lz4    -   -b 1m -q 8 -p seq
r4k-qd8-s64 single tgt -b 4k -q 8 -s 64 -p rand
"

run_workloads() {
	local rep wl dev tg args
	for rep in $(seq 1 "$REPS"); do
		while read -r wl dev tg args; do
			[ -n "$wl" ] || continue
			if [ -n "${BENCH_ONLY:-}" ] && ! echo " $BENCH_ONLY " | grep -q " $wl "; then
				continue
			fi
			# shellcheck disable=SC2086
			[ "$dev" != - ] && run_one "$rep" "$wl" ours "$(url "$dev")" "$OBD_PID" $args
			# shellcheck disable=SC2086
			[ "$tg" != - ] && run_one "$rep" "$wl" tgt "$TGT_URL" "$TGT_PID" $args
		done <<<"$WORKLOADS"
	done
}

run_iperf() {
	local port i j
	command -v iperf3 >/dev/null || { say "no iperf3 (make deps)"; return; }
	for i in $(seq 1 "$REPS"); do
		port=$(free_port)
		iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
		IPERF_PID=$!
		wait_listen "$port" || die "iperf3 server did not start"
		j=$(iperf3 -c 127.0.0.1 -p "$port" -t "$IPERF_SEC" -J 2>/dev/null |
			python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8 / 1048576))')
		wait "$IPERF_PID" 2>/dev/null
		IPERF_PID=
		echo "rep=$i wl=iperf3 target=loopback mibs=$j" >>"$RES"
		say "iperf3 single stream: $j MiB/s"
	done
}

# idle_sessions TARGET URL PID: RSS before, with IDLE_SESS sessions logged in, after.
idle_sessions() {
	local tg=$1 u=$2 pid=$3 r0 r1 i try
	r0=$(rss_kib "$pid")
	# one retry: a login can fail while the machine is busy
	for try in 1 2; do
		"$OBDB" -i "$INIT" --idle "$IDLE_SESS" -t 600 "$u" >"$W/idle.out" 2>&1 &
		IDLE_PID=$!
		for i in $(seq 1 1200); do
			grep -q IDLE-READY "$W/idle.out" && break
			kill -0 "$IDLE_PID" 2>/dev/null || break
			sleep 0.1
		done
		grep -q IDLE-READY "$W/idle.out" && break
		wait "$IDLE_PID" 2>/dev/null
		IDLE_PID=
		sleep 2
	done
	if ! grep -q IDLE-READY "$W/idle.out"; then
		say "idle sessions on $tg: the client failed: $(grep . "$W/idle.out" | tail -n 1)"
		echo "wl=idle-sessions target=$tg failed=1" >>"$RES"
	else
		sleep 2
		r1=$(rss_kib "$pid")
		echo "wl=idle-sessions target=$tg n=$IDLE_SESS rss0_kib=$r0 rss1_kib=$r1" >>"$RES"
		say "$IDLE_SESS idle sessions on $tg: RSS $r0 -> $r1 KiB"
	fi
	kill -TERM "$IDLE_PID" 2>/dev/null
	wait "$IDLE_PID" 2>/dev/null
	IDLE_PID=
	sleep 1
}

idle_devices() {
	local r0 r1 i idx
	r0=$(rss_kib "$OBD_PID")
	rm -f "$W"/res/idle*
	for i in $(seq 1 "$IDLE_DEVS"); do
		printf '%s\n' "$(spec "$IMG/single.lsmt" "" "idle$i")" >"$SPOOL/.idle$i.json.tmp"
		mv "$SPOOL/.idle$i.json.tmp" "$SPOOL/idle$i.json"
	done
	for i in $(seq 1 600); do
		[ "$(find "$W/res" -name 'idle*' -size +0 | wc -l)" -ge "$IDLE_DEVS" ] && break
		sleep 0.1
	done
	sleep 1
	r1=$(rss_kib "$OBD_PID")
	idx=$("$BIN/overlaybd-iscsid" status --socket "$CTL" 2>/dev/null |
		awk '/^target .*:idle1$/ { t = 1 } t && /index [0-9]+ bytes/ { for (i = 1; i <= NF; i++) if ($i == "index") { print $(i + 1); exit } }')
	echo "wl=idle-devices target=ours n=$IDLE_DEVS rss0_kib=$r0 rss1_kib=$r1 index_bytes=${idx:-0}" >>"$RES"
	say "$IDLE_DEVS idle devices: RSS $r0 -> $r1 KiB (merged index ${idx:-?} bytes each)"
	rm -f "$SPOOL"/idle*.json
}

# memory: RSS with idle sessions and idle devices, on a fresh daemon (a heap that
# served the workloads has free room that would hide the growth) and on tgtd.
memory() {
	local main_pid=$OBD_PID main_port=$OBD_PORT
	mkdir -p "$W/mem/spool"
	rm -f "$W"/mem/spool/*.json
	MEM_PORT=$(free_port)
	sed -e "s|127.0.0.1:$OBD_PORT|127.0.0.1:$MEM_PORT|" -e "s|$W/spool|$W/mem/spool|" \
		-e "s|$W/control.sock|$W/mem/control.sock|" "$W/config.json" >"$W/mem/config.json"
	"$BIN/overlaybd-iscsid" --config "$W/mem/config.json" >>"$W/daemon-mem.log" 2>&1 &
	MEM_PID=$!
	wait_listen "$MEM_PORT" || die "the second daemon did not listen (see $W/daemon-mem.log)"
	OBD_PID=$MEM_PID OBD_PORT=$MEM_PORT
	SPOOL=$W/mem/spool CTL=$W/mem/control.sock
	put_spec single "$(spec "$IMG/single.lsmt" "" single)"
	sleep 1
	idle_sessions ours "$(url single)" "$OBD_PID"
	idle_devices
	kill -TERM "$MEM_PID" 2>/dev/null
	wait "$MEM_PID" 2>/dev/null
	MEM_PID=
	OBD_PID=$main_pid OBD_PORT=$main_port
	SPOOL=$W/spool CTL=$W/control.sock
	idle_sessions tgt "$TGT_URL" "$TGT_PID"
}

main() {
	local dev
	for b in "$OBDB" "$BIN/overlaybd-iscsid" "$BIN/overlaybd-create" "$BIN/overlaybd-commit" \
		"$BIN/overlaybd-zfile"; do
		[ -x "$b" ] || die "no $b (make all)"
	done
	command -v tgtd >/dev/null || die "no tgtd (make deps)"
	ulimit -n 65536 2>/dev/null || ulimit -n 4096
	mkdir -p "$OUT" "$W/spool" "$W/res"
	: >"$RES"
	echo "cmd=$(basename "$0") quick=${BENCH_QUICK:-0} size_mib=$SIZE_MIB dur=$DUR reps=$REPS date=$(date -u +%FT%TZ) nproc=$(nproc)" >"$RES"

	OBD_PORT=$(free_port)
	cat >"$W/config.json" <<EOF
{
	"logLevel": 2,
	"portals": ["127.0.0.1:$OBD_PORT"],
	"spoolDir": "$W/spool",
	"controlSocket": "$W/control.sock",
	"registryCacheDir": "",
	"maxConnectionsPerSource": 4096,
	"maxConnections": 8192${BENCH_OBD_CONFIG:+,
	$BENCH_OBD_CONFIG}
}
EOF
	rm -f "$W"/spool/*.json "$W"/res/*
	"$BIN/overlaybd-iscsid" --config "$W/config.json" >>"$W/daemon.log" 2>&1 &
	OBD_PID=$!
	wait_listen "$OBD_PORT" || die "the daemon did not listen (see $W/daemon.log)"

	build_images
	put_spec single "$(spec "$IMG/single.lsmt" "" single)"
	put_spec stack3 "$(spec "$IMG/single.lsmt $IMG/l2.lsmt $IMG/l3.lsmt" "" stack3)"
	put_spec lz4 "$(spec "$IMG/single.lz4 $IMG/l2.lz4 $IMG/l3.lz4" "" lz4)"
	rm -rf "$W/rw"
	mkdir -p "$W/rw"
	"$BIN/overlaybd-create" -u "$U1" "$W/rw/data" "$W/rw/index" $(((SIZE_MIB + 1023) / 1024)) >/dev/null ||
		die "overlaybd-create rw"
	put_spec rw "$(spec "$IMG/single.lsmt" "$W/rw" rw)"

	cp "$IMG/raw" "$W/tgt.raw"
	TGT_PORT=$(free_port)
	tgt_start "$W/tgt" "$W/tgt.raw" "$TGT_PORT"
	TGT_URL="iscsi://127.0.0.1:$TGT_PORT/$TGT_IQN/1"

	say "checking every target against the raw bytes"
	for dev in single stack3 lz4 rw; do
		"$OBDB" -Q -i "$INIT" -t 1 -W 0 -b 1m -q 4 -p seq --span "${SIZE_MIB}m" --verify "$IMG/raw" "$(url "$dev")" \
			>/dev/null && "$OBDB" -Q -i "$INIT" -t 1 -W 0 -b 4k -q 16 --span "${SIZE_MIB}m" --verify "$IMG/raw" \
			"$(url "$dev")" >/dev/null || die "device $dev does not read back the raw bytes"
	done
	"$OBDB" -Q -i "$INIT" -t 1 -W 0 -b 4k -q 16 --span "${SIZE_MIB}m" --verify "$IMG/raw" "$TGT_URL" >/dev/null ||
		die "tgt does not read back the raw bytes"

	say "workloads: ${DUR}s each (+${WARM}s warm-up), $REPS rounds"
	run_workloads
	run_iperf
	memory
	python3 "$ROOT/bench/report.py" "$RES" | tee "$OUT/report.md"
}

main "$@"
