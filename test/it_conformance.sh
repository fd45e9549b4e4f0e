#!/bin/bash
# it_conformance: libiscsi's conformance suite (iscsi-test-cu --dataloss, Debian libiscsi-bin
# 1.19) against a writable device, one process per suite: a skipped CompareAndWrite test leaves
# a PDU mutator installed in 1.19 that would break every later suite of the same process.
# ReadOnly also runs against a read-only device.  Prints a table per suite; fails on any failed
# test or on fewer than CONFORMANCE_MIN_PASS passed tests; skipped tests are listed by name.
# CONFORMANCE_SUITES limits the run to some suites (e.g. "Read10 Write10").
. "$(dirname "$0")/lib.sh"
need iscsi-test-cu
SUITE_TIMEOUT=${SUITE_TIMEOUT:-120}
MIN_PASS=${CONFORMANCE_MIN_PASS:-200}

make_upper "$T/up" $((1 << 30))
obd_start
obd_add_spec cu "$(obd_spec cu "[]" "$T/up")" >/dev/null
obd_add_spec cu_ro "$(obd_spec cu_ro "$(lowers_of "$DATA/stack-a/l1.lsmt")")" >/dev/null

if [ -n "${CONFORMANCE_SUITES:-}" ]; then
	suites=$CONFORMANCE_SUITES
else
	suites=$(iscsi-test-cu --list | sed -n 's/^ALL\.\([^.]*\)$/\1/p' | tr '\n' ' ')
fi

# run_suite LABEL SUITE URL: one iscsi-test-cu process; appends "suite test result" lines.
run_suite() {
	local label=$1 suite=$2 url=$3 out=$T/cu-$1.out rc
	timeout -k 5 "$SUITE_TIMEOUT" iscsi-test-cu --dataloss --verbose -t "ALL.$suite" "$url" \
		>"$out" 2>&1
	rc=$?
	obd_alive || fail "the daemon died during suite $label: $(tail -n 5 "$out")"
	# One record per test: passed, FAILED, or skipped (a passed test that said [SKIPPED]).
	awk -v s="$label" '
	function flush() {
		if (name == "") return
		r = res == "" ? "FAILED" : res
		if (r == "passed" && skip) r = "skipped"
		print s, name, r
		name = ""
	}
	/^  Test: / {
		flush()
		name = $2; res = ""; skip = 0
		line = $0
	}
	/^Run Summary/ { flush() }
	name != "" {
		if (res == "" && ($0 ~ /\.\.\.passed/ || $0 ~ /^passed/)) res = "passed"
		if (res == "" && ($0 ~ /\.\.\.FAILED/ || $0 ~ /^FAILED/)) res = "FAILED"
		if ($0 ~ /\[SKIPPED\]/ && res == "") skip = 1
	}
	END { flush() }' "$out" >>"$T/results.txt"
	if [ $rc = 124 ] || [ $rc = 137 ]; then
		echo "$label (timeout) TIMEOUT" >>"$T/results.txt"
	elif ! grep -q '^Run Summary' "$out"; then
		echo "$label (no-summary) FAILED" >>"$T/results.txt"
	fi
}

: >"$T/results.txt"
URL=$(obd_url cu)
for s in $suites; do
	run_suite "$s" "$s" "$URL"
done
case " $suites " in
*" ReadOnly "*) run_suite ReadOnly-ro ReadOnly "$(obd_url cu_ro)" ;;
esac

printf '%-28s %5s %6s %6s %7s\n' suite tests passed failed skipped
awk '{ n[$1]++; c[$1 " " $3]++; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
END {
	for (i = 1; i <= k; i++) {
		s = order[i]
		printf "%-28s %5d %6d %6d %7d\n", s, n[s], c[s " passed"], \
			c[s " FAILED"] + c[s " TIMEOUT"], c[s " skipped"]
	}
}' "$T/results.txt"
total=$(wc -l <"$T/results.txt")
passed=$(grep -c ' passed$' "$T/results.txt")
failed=$(grep -cE ' (FAILED|TIMEOUT)$' "$T/results.txt")
skipped=$(grep -c ' skipped$' "$T/results.txt")
echo "conformance: $total tests, $passed passed, $failed failed, $skipped skipped"
# Issue 3 allows these skips: Sanitize (not enabled), MultipathIO (one URL), the
# removable-medium tests, ReadOnly on the writable device.
if [ "$skipped" -gt 0 ]; then
	echo "skipped:"
	grep ' skipped$' "$T/results.txt" | awk '{
		t = $1 "." $2
		ok = t ~ /^(Sanitize|MultipathIO|PreventAllow)\./ || t == "StartStopUnit.Simple" ||
			t == "ReadOnly.ReadOnlySBC"
		print "  " t (ok ? "" : "   (not a skip the issue allows)")
	}'
fi
if [ "$failed" -gt 0 ]; then
	echo "failed:"
	grep -E ' (FAILED|TIMEOUT)$' "$T/results.txt" | awk '{print "  " $1 "." $2}'
	for s in $(grep -E ' (FAILED|TIMEOUT)$' "$T/results.txt" | awk '{print $1}' | sort -u); do
		echo "---- $s"
		grep -B2 -A12 -E 'FAILED' "$T/cu-$s.out" | head -n 40
	done
	fail "expected 0 failed conformance tests, got $failed"
fi
if [ -z "${CONFORMANCE_SUITES:-}" ] && [ "$passed" -lt "$MIN_PASS" ]; then
	fail "expected at least $MIN_PASS passed conformance tests, got $passed"
fi
obd_stop
log "ok"
