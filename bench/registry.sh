#!/bin/bash
# bench/registry: the registry fetcher against plain curl on the same
# docker-registry, same run, as ratios (issue 4 "Speed"):
#   cold sequential read (1 MiB requests) vs curl Range GETs, 1 and 4 connections
#   warm (cached) read vs the same reads from a local copy
#   unthrottled background download vs one full GET
#   peak RSS of the fetcher reading the whole blob
# then through the daemon over iSCSI (a remote LSMT layer of SIZE_MiB):
#   time to ready of 1 and of 10 remote lowers vs one ranged GET
#   cold and warm sequential reads vs curl and vs the same layer local
#   the daemon's peak RSS
# MB = 10^6 bytes.  Usage: bench/registry.sh [SIZE_MiB] (default 256).
. "$(dirname "$0")/../test/lib.sh"
set +o pipefail
FETCH=$BUILD/bin/overlaybd-fetch
MKLAYER=$BUILD/bench/mklayer
MIB=${1:-256}
SIZE=$((MIB << 20))
RUNS=${RUNS:-3}
REG_DIR=$T/reg
mkdir -p "$REG_DIR"
. "$ROOT/test/registry.sh"
. "$ROOT/bench/lib.sh"

[ -x "$FETCH" ] || { echo "no $FETCH (make all)" >&2; exit 1; }
reg_start anon >/dev/null || { echo "docker-registry did not start" >&2; exit 1; }
head -c "$SIZE" /dev/urandom >"$REG_DIR/blob"
DIGEST=$(reg_push bench/blob "$REG_DIR/blob") || exit 1
BLOBS=$REG_URL/v2/bench/blob/blobs
URL=$BLOBS/$DIGEST

now() { date +%s%N; }
mbps() { echo "$1 $2" | awk '{ printf "%.0f", $1 / ($2 / 1e9) / 1e6 }'; }
ratio() { echo "$1 $2" | awk '{ printf "%.2f", $1 / $2 }'; }

# curl_ranges CONNS: SIZE in 1 MiB ranges, CONNS curl processes each
# keeping one connection alive over its share (-K with "next").
curl_ranges() {
	local conns=$1 per=$((MIB / $1)) c i t0 pids=()
	for c in $(seq 0 $((conns - 1))); do
		: >"$REG_DIR/curl.$c"
		for i in $(seq $((c * per)) $(((c + 1) * per - 1))); do
			printf 'next\nurl = "%s"\nrange = %d-%d\noutput = /dev/null\n' "$URL" \
				$((i << 20)) $((((i + 1) << 20) - 1)) >>"$REG_DIR/curl.$c"
		done
	done
	t0=$(now)
	for c in $(seq 0 $((conns - 1))); do
		curl -s -K "$REG_DIR/curl.$c" &
		pids+=($!)
	done
	wait "${pids[@]}"
	echo $(($(now) - t0))
}

fetch_time() { # fetch args...: ns for one overlaybd-fetch run
	local t0
	t0=$(now)
	"$FETCH" -o /dev/null "$@" "$BLOBS" "$DIGEST" 2>/dev/null || { echo "fetch failed" >&2; exit 1; }
	echo $(($(now) - t0))
}

row() { # NAME OURS_NS BASE_NS BASE_NAME
	printf '%-44s %6s MB/s  vs %-22s %6s MB/s  ratio %s\n' "$1" "$(mbps "$SIZE" "$2")" \
		"$4" "$(mbps "$SIZE" "$3")" "$(ratio "$3" "$2")"
}

echo "registry bench: $MIB MiB random blob, docker-registry on loopback, median of $RUNS runs"
for conns in 1 4; do
	ours=() base=()
	for r in $(seq 1 "$RUNS"); do
		base+=("$(curl_ranges "$conns")")
		ours+=("$(fetch_time --bs 1048576 --threads "$conns")")
	done
	row "cold, 1 MiB reads, $conns conn, no cache" \
		"$(printf '%s\n' "${ours[@]}" | median)" "$(printf '%s\n' "${base[@]}" | median)" \
		"curl ranges, $conns conn"
	ours=()
	for r in $(seq 1 "$RUNS"); do
		rm -rf "$REG_DIR/cache"
		ours+=("$(fetch_time --bs 131072 --threads "$conns" --cache-dir "$REG_DIR/cache")")
	done
	row "cold, 128 KiB reads, $conns thr, cache+RA" \
		"$(printf '%s\n' "${ours[@]}" | median)" "$(printf '%s\n' "${base[@]}" | median)" \
		"curl ranges, $conns conn"
done

warm=() local_=()
for r in $(seq 1 "$RUNS"); do
	warm+=("$(fetch_time --bs 131072 --threads 4 --cache-dir "$REG_DIR/cache" --size "$SIZE")")
	t0=$(now)
	dd if="$REG_DIR/blob" of=/dev/null bs=128k 2>/dev/null
	local_+=($(($(now) - t0)))
done
row "warm, 128 KiB reads, 4 thr" "$(printf '%s\n' "${warm[@]}" | median)" \
	"$(printf '%s\n' "${local_[@]}" | median)" "local copy, dd 128 KiB"

# The download's own time: from its log line (fetched and hashed, then synced), without the
# fetch tool's start-up and exit; curl's full GET likewise by its own time_total.
dl_time() {
	"$FETCH" -o /dev/null --download "$1" --length 0 "$BLOBS" "$DIGEST" 2>&1 |
		sed -n 's/.*fetched and hashed in \([0-9]*\) ms, synced in \([0-9]*\) ms.*/\1 \2/p' |
		awk 'NR == 1 { printf "%d", ($1 + $2) * 1e6 }'
}
full=() ffile=() dl=()
for r in $(seq 1 "$RUNS"); do
	full+=("$(curl -s -o /dev/null -w '%{time_total}' "$URL" | awk '{ printf "%d", $1 * 1e9 }')")
	t0=$(now)
	curl -s -o "$REG_DIR/full" "$URL" && sha256sum "$REG_DIR/full" >/dev/null && sync "$REG_DIR/full"
	ffile+=($(($(now) - t0)))
	rm -f "$REG_DIR/full"
	rm -rf "$REG_DIR/dl"
	mkdir -p "$REG_DIR/dl"
	dl+=("$(dl_time "$REG_DIR/dl")")
	[ -n "${dl[-1]}" ] || { echo "download failed" >&2; exit 1; }
done
row "background download, unthrottled" "$(printf '%s\n' "${dl[@]}" | median)" \
	"$(printf '%s\n' "${full[@]}" | median)" "curl full GET"
row "background download, unthrottled" "$(printf '%s\n' "${dl[@]}" | median)" \
	"$(printf '%s\n' "${ffile[@]}" | median)" "GET to file+sha256+sync"

/usr/bin/time -o "$REG_DIR/rss" -f %M "$FETCH" -o /dev/null --bs 1048576 --threads 4 "$BLOBS" \
	"$DIGEST" 2>/dev/null
echo "peak RSS reading $MIB MiB remote (4 threads, 1 MiB reads, no cache): $(cat "$REG_DIR/rss") KiB"
rm -rf "$REG_DIR/cache"
/usr/bin/time -o "$REG_DIR/rss" -f %M "$FETCH" -o /dev/null --bs 131072 --threads 4 \
	--cache-dir "$REG_DIR/cache" "$BLOBS" "$DIGEST" 2>/dev/null
echo "peak RSS reading $MIB MiB remote (4 threads, cache + read-ahead): $(cat "$REG_DIR/rss") KiB"

echo
echo "through the daemon over iSCSI: a remote LSMT layer with $MIB MiB of data"
"$MKLAYER" "$T/big.lsmt" "$MIB" || exit 1
LDIGEST=$(reg_push bench/blob "$T/big.lsmt") || exit 1
LSIZE=$(stat -c %s "$T/big.lsmt")
URL=$BLOBS/$LDIGEST
one_get=()
for r in 1 2 3 4 5; do
	one_get+=("$(curl -s -o /dev/null -r 0-4095 -w '%{time_total}' "$URL" |
		awk '{ printf "%d", $1 * 1e9 }')")
done
GET_NS=$(printf '%s\n' "${one_get[@]}" | median)

obd_start
# par_get_ns URL...: ns for one 4 KiB ranged GET of each URL, all at once from one curl
# (the slowest transfer's time, without curl's start-up): the registry's own floor for a
# spec that needs one request per layer.
par_get_ns() {
	local u args=()
	for u in "$@"; do
		args+=(-r 0-4095 -o /dev/null "$u")
	done
	curl -s -Z --no-progress-meter --parallel-max $# -w '%{time_total}\n' "${args[@]}" |
		awk '$1 > m { m = $1 } END { printf "%d", m * 1e9 }'
}
rlower() { printf '{"digest": "%s", "size": %d}' "$1" "$2"; }
# open_ns NAME: from the daemon's "NAME: opening" to "NAME: serving" log lines (the layer
# opens alone, without the spool's pickup and the resultFile polling).
open_ns() {
	grep -E "^[^ ]+ info  $1: (opening|serving)" "$OBD_LOG" | tail -n 2 | cut -d' ' -f1 |
		python3 -c 'import sys, datetime as d
t = [d.datetime.strptime(l.strip(), "%Y-%m-%dT%H:%M:%S.%fZ") for l in sys.stdin]
print(int((t[-1] - t[0]).total_seconds() * 1e9) if len(t) == 2 else 0)'
}
ms() { echo "$1" | awk '{ printf "%.1f", $1 / 1e6 }'; }
read_ns() { # NAME: ns to read the data range of the device through iSCSI
	local t0
	t0=$(now)
	"$OBD_ISCSI" read --initiator "$INITIATOR" --length "$SIZE" "$(obd_url "$1")" >/dev/null ||
		exit 1
	echo $(($(now) - t0))
}
t=$(spec_ready cold "$(obd_spec cold "[$(rlower "$LDIGEST" "$LSIZE")]" "" \
	"\"repoBlobUrl\": \"$BLOBS\"")")
o=$(open_ns cold)
echo "time to ready, 1 remote lower: $(ms "$t") ms from the spool, $(ms "$o") ms opening" \
	"(one 4 KiB ranged GET: $(ms "$GET_NS") ms, ratios $(ratio "$t" "$GET_NS") / $(ratio "$o" "$GET_NS"))"
MIB_SAVE=$MIB
cold=$(read_ns cold)
base=$(curl_ranges 4)
row "iSCSI cold sequential read" "$cold" "$base" "curl ranges, 4 conn"
warm=$(read_ns cold)
obd_add_spec local "$(obd_spec local "$(lowers_of "$T/big.lsmt")")" >/dev/null
local_ns=$(read_ns local)
row "iSCSI warm (cached) read" "$warm" "$local_ns" "same layer, local file"
echo "daemon peak RSS after reading $MIB MiB remote: $(awk '/VmHWM/ { print $2 }' /proc/"$OBD_PID"/status) KiB"

lowers="" urls=()
for i in $(seq 1 10); do
	"$MKLAYER" "$T/l$i.lsmt" 1 $((i * 8)) "$i" || exit 1
	d=$(reg_push bench/blob "$T/l$i.lsmt") || exit 1
	lowers="$lowers${lowers:+, }$(rlower "$d" "$(stat -c %s "$T/l$i.lsmt")")"
	urls+=("$BLOBS/$d")
done
par=()
for r in 1 2 3 4 5; do
	par+=("$(par_get_ns "${urls[@]}")")
done
PAR_NS=$(printf '%s\n' "${par[@]}" | median)
t=$(spec_ready ten "$(obd_spec ten "[$lowers]" "" "\"repoBlobUrl\": \"$BLOBS\"")")
o=$(open_ns ten)
echo "time to ready, 10 remote lowers: $(ms "$t") ms from the spool, $(ms "$o") ms opening" \
	"(one 4 KiB ranged GET: $(ms "$GET_NS") ms, ratios $(ratio "$t" "$GET_NS") / $(ratio "$o" "$GET_NS");" \
	"10 such GETs at once: $(ms "$PAR_NS") ms, ratio $(ratio "$t" "$PAR_NS"))"
obd_stop
