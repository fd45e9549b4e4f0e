#!/bin/bash
# bench/wan: a wide-area link between us and a registry on this machine, made
# by bench/wan-relay (this kernel has no netem; docs/wan-testbed.md).
#
# Source it and call:
#   wan_start PROFILE HOST:PORT   relay to HOST:PORT; sets WAN_PORT, WAN_RTT_MS
#   wan_stop                      stop the relay started last
# Profiles (one-way delay ms, Mbit/s):
#   dc      1 / 10000    same datacenter, 2 ms round trip
#   region  10 / 1000    the default: 20 ms round trip, 1 Gbit/s
#   far     25 / 100     another region: 50 ms round trip, 100 Mbit/s
#
# Run it to check the link against curl on a real docker-registry:
#   bench/wan.sh [PROFILE...]    (default: all three)
# For each profile, a 4 KiB ranged GET on a new connection should take two
# round trips (the handshake and the request) plus the registry's own time,
# one on a kept-alive connection, and a large GET should reach the link's rate
# within 10 %.

WAN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ${BUILD:-build} in
/*) WAN_RELAY=${WAN_RELAY:-$BUILD/bench/wan-relay} ;;
*) WAN_RELAY=${WAN_RELAY:-$WAN_ROOT/${BUILD:-build}/bench/wan-relay} ;;
esac

wan_profile() { # PROFILE: prints "DELAY_MS MBIT"
	case $1 in
	dc) echo "1 10000" ;;
	region) echo "10 1000" ;;
	far) echo "25 100" ;;
	*) return 1 ;;
	esac
}

wan_start() { # PROFILE HOST:PORT
	local p out i
	p=$(wan_profile "$1") || { echo "wan: unknown profile $1" >&2; return 1; }
	set -- $p "$2"
	out=$(mktemp)
	"$WAN_RELAY" -l 127.0.0.1:0 -c "$3" -d "$1" -r "$2" >"$out" 2>>"${WAN_LOG:-/dev/null}" &
	WAN_PID=$!
	declare -F track_pid >/dev/null && track_pid "$WAN_PID"
	for i in $(seq 1 50); do
		WAN_PORT=$(sed -n 's/.*listen=[0-9.]*:\([0-9]*\).*/\1/p' "$out")
		[ -n "$WAN_PORT" ] && break
		sleep 0.05
	done
	rm -f "$out"
	[ -n "$WAN_PORT" ] || { echo "wan: relay did not start" >&2; return 1; }
	WAN_RTT_MS=$((2 * $1))
	WAN_MBIT=$2
}

wan_stop() {
	[ -n "$WAN_PID" ] || return 0
	kill "$WAN_PID" 2>/dev/null
	wait "$WAN_PID" 2>/dev/null
	WAN_PID=
}

# The checks below run only when the file is executed, not sourced.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

set -e
. "$WAN_ROOT/test/lib.sh"
set +o pipefail
REG_DIR=$T/reg
mkdir -p "$REG_DIR"
. "$WAN_ROOT/test/registry.sh"
[ -x "$WAN_RELAY" ] || { echo "no $WAN_RELAY (make all)" >&2; exit 1; }
reg_start anon >/dev/null || { echo "docker-registry did not start" >&2; exit 1; }
BIG_MIB=${WAN_BIG_MIB:-64}
head -c $((BIG_MIB << 20)) /dev/urandom >"$REG_DIR/big"
DIGEST=$(reg_push bench/wan "$REG_DIR/big") || exit 1
REG_HOSTPORT=${REG_URL#*://}
PATH_BLOB=/v2/bench/wan/blobs/$DIGEST

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# first_bytes BASE: "NEW KEPT" seconds to the first byte of a 4 KiB ranged
# GET, the first on a new connection and the second on the same one.
first_bytes() {
	curl -s -r 0-4095 -o /dev/null -o /dev/null -w '%{time_starttransfer} ' \
		"$1$PATH_BLOB" "$1$PATH_BLOB"
}

# added_ms RELAY_BASE: "NEW KEPT" ms the link adds to a 4 KiB GET: the median
# over 7 pairs of (through the relay - straight to the registry), taken
# alternately so that the registry's own time, which load on this machine
# moves by milliseconds, cancels out.
added_ms() {
	local i d r new=() kept=()
	for i in 1 2 3 4 5 6 7; do
		read -r -a d <<<"$(first_bytes "http://$REG_HOSTPORT")"
		read -r -a r <<<"$(first_bytes "$1")"
		new+=("$(echo "${r[0]} ${d[0]}" | awk '{ print ($1 - $2) * 1000 }')")
		kept+=("$(echo "${r[1]} ${d[1]}" | awk '{ print ($1 - $2) * 1000 }')")
	done
	printf '%.1f %.1f\n' "$(printf '%s\n' "${new[@]}" | median)" \
		"$(printf '%s\n' "${kept[@]}" | median)"
}

# mbit_big BASE: Mbit/s of a whole-blob GET from its first byte to its last.
mbit_big() {
	curl -s -o /dev/null -w '%{size_download} %{time_starttransfer} %{time_total}\n' \
		"$1$PATH_BLOB" | awk '{ printf "%.0f", $1 * 8 / ($3 - $2) / 1e6 }'
}

echo "wan link check: docker-registry on loopback behind bench/wan-relay, curl, $BIG_MIB MiB blob"
echo "added = first byte of a 4 KiB ranged GET through the link - straight to the registry (median of 7 pairs)"
printf '%-7s %7s %16s %9s %16s %9s %9s %7s\n' profile RTT_ms added_new_conn expect \
	added_kept expect Mbit/s of_cap
fail=0
for prof in ${@:-dc region far}; do
	wan_start "$prof" "$REG_HOSTPORT"
	read -r new kept <<<"$(added_ms "http://127.0.0.1:$WAN_PORT")"
	mbit=$(mbit_big "http://127.0.0.1:$WAN_PORT")
	wan_stop
	of_cap=$(echo "$mbit $WAN_MBIT" | awk '{ printf "%.2f", $1 / $2 }')
	printf '%-7s %7s %16s %9s %16s %9s %9s %7s\n' "$prof" "$WAN_RTT_MS" "$new" \
		$((2 * WAN_RTT_MS)) "$kept" "$WAN_RTT_MS" "$mbit" "$of_cap"
	# A new connection pays the handshake and the request (two round trips), a
	# kept one the request; each within 10 % (and 1 ms of timer slack).  The
	# dc cap (10 Gbit/s) is above what two shared cores relay, so its rate is
	# reported, not judged.
	awk -v n="$new" -v k="$kept" -v rtt="$WAN_RTT_MS" 'BEGIN {
		ok = n > 1.8 * rtt - 1 && n < 2.2 * rtt + 1 && k > 0.9 * rtt - 1 && k < 1.1 * rtt + 1
		exit !ok }' ||
		{ echo "  $prof: latency off: expected +$((2 * WAN_RTT_MS)) / +$WAN_RTT_MS ms"; fail=1; }
	if [ "$prof" != dc ] && awk -v r="$of_cap" 'BEGIN { exit !(r < 0.9 || r > 1.1) }'; then
		echo "  $prof: rate off: expected $WAN_MBIT Mbit/s within 10 %, got $mbit"
		fail=1
	fi
done
exit $fail
