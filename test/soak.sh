#!/bin/bash
# soak: load and soak (issue 6).  64 sessions (SOAK_SESSIONS) across 8 targets (SOAK_TARGETS)
# run reads, writes (some FUA), UNMAP, ABORT TASK and logout/login for SOAK_SECONDS (600 for
# `make soak`; test/it_soak.sh runs a short one) while a spec is added and removed over and
# over.  obd-iscsi checks every read against its model of each block.  At the end: zero data
# errors, the daemon's fd count back to its idle value and stable under load, RSS within 10%
# of its warm-up value (not under ASan, whose quarantine grows by design), and no error line in
# the daemon's log.
. "$(dirname "$0")/lib.sh"
S=$DATA/stack-a
SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_SESSIONS=${SOAK_SESSIONS:-64}
SOAK_TARGETS=${SOAK_TARGETS:-8}

obd_start '"maxConnectionsPerSource": 1024, "maxConnections": 1024'
urls=()
for i in $(seq 1 "$SOAK_TARGETS"); do
	make_upper "$T/up$i" $((1 << 30)) A2000000-0000-4000-8000-000000000002
	if [ $((i % 2)) = 0 ]; then
		lowers=$(lowers_of "$S/l1.lz4.zfile" "$S/l2.zstd-bs64.zfile")
	else
		lowers=$(lowers_of "$S/l1.lsmt" "$S/l2.lsmt")
	fi
	obd_add_spec "soak$i" "$(obd_spec "soak$i" "$lowers" "$T/up$i")" >/dev/null
	urls+=("$(obd_url "soak$i")")
done

rss() { awk '/^VmRSS/ {print $2}' "/proc/$OBD_PID/status"; }
fds() { ls "/proc/$OBD_PID/fd" | wc -l; }
fd_idle=$(fds)

"$OBD_ISCSI" soak --seconds "$SOAK_SECONDS" --sessions "$SOAK_SESSIONS" "${urls[@]}" \
	>"$T/soak.out" 2>"$T/soak.err" &
spid=$!
track_pid $spid

start=$SECONDS
warm_at=$((SOAK_SECONDS / 3))
[ $warm_at -gt 60 ] && warm_at=60
rss_warm=
fd_warm=
rss_max=0
fd_max=0
churn=0
next_churn=$((SECONDS + 2))
while kill -0 $spid 2>/dev/null; do
	obd_alive || fail "the daemon died during the soak"
	el=$((SECONDS - start))
	if [ -z "$rss_warm" ] && [ $el -ge $warm_at ]; then
		rss_warm=$(rss)
		fd_warm=$(fds)
		log "warm-up at ${el}s: RSS ${rss_warm} kB, $fd_warm fds"
	elif [ -n "$rss_warm" ] && [ $el -lt $((SOAK_SECONDS - 2)) ]; then
		r=$(rss)
		f=$(fds)
		[ "$r" -gt $rss_max ] && rss_max=$r
		[ "$f" -gt $fd_max ] && fd_max=$f
	fi
	if [ $SECONDS -ge $next_churn ] && [ $el -lt $((SOAK_SECONDS - 5)) ]; then
		churn=$((churn + 1))
		obd_add_spec churn "$(obd_spec churn "$(lowers_of "$S/l1.lsmt")")" >/dev/null
		got=$("$OBD_ISCSI" read --length 65536 "$(obd_url churn)") ||
			fail "read of the added spec failed"
		obd_remove_spec churn
		next_churn=$((SECONDS + 3))
	fi
	sleep 1
done
wait $spid
rc=$?
cat "$T/soak.out"
[ $rc = 0 ] || fail "soak: expected zero data and I/O errors, got exit $rc: $(tail -n 20 "$T/soak.err")"
grep -q 'data errors 0, I/O errors 0' "$T/soak.out" ||
	fail "soak: expected 'data errors 0, I/O errors 0', got: $(cat "$T/soak.out")"
log "spec added and removed $churn times during the soak"

# Connections and removed targets must give their fds back.
for i in $(seq 1 50); do
	[ "$(fds)" -le "$fd_idle" ] && break
	sleep 0.1
done
expect_eq "fd count idle before and after the soak" "$fd_idle" "$(fds)"
if [ -n "$rss_warm" ]; then
	log "RSS warm-up ${rss_warm} kB, max after $rss_max kB; fds warm-up $fd_warm, max after $fd_max"
	[ $fd_max -le $((fd_warm + fd_warm / 10 + 2)) ] ||
		fail "fd count under load: expected within 10% of $fd_warm, got $fd_max"
	case "$BUILD" in
	*asan*) log "RSS bound not checked under ASan" ;;
	*)
		[ $rss_max -le $((rss_warm + rss_warm / 10)) ] ||
			fail "RSS: expected within 10% of ${rss_warm} kB after warm-up, got $rss_max kB"
		;;
	esac
fi
errs=$(obd_log_errors)
[ -z "$errs" ] || fail "expected no error lines in the daemon log, got: $(echo "$errs" | head -n 5)"
obd_stop
log "ok"
