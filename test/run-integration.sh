#!/bin/sh
# Run every integration test test/it_*.sh (or the ones named as arguments) with bash, each
# under a timeout of IT_TIMEOUT seconds (default 300).  timeout(1) signals the test's whole
# process group, so a hung client or daemon dies with it; the test's own EXIT trap
# (test/lib.sh) kills what it started.  Prints one line per test with its wall time.
BUILD=${BUILD:-build}
IT_TIMEOUT=${IT_TIMEOUT:-300}
export BUILD
[ $# -gt 0 ] || set -- test/it_*.sh
fail=0
total=0
failed=""
for t in "$@"; do
	[ -e "$t" ] || continue
	total=$((total + 1))
	echo "== $t"
	start=$(date +%s)
	timeout -k 10 "$IT_TIMEOUT" bash "$t"
	rc=$?
	secs=$(($(date +%s) - start))
	if [ "$rc" -eq 0 ]; then
		echo "ok: $t (${secs}s)"
	else
		[ "$rc" -eq 124 ] && echo "TIMEOUT: $t after ${IT_TIMEOUT}s"
		echo "FAILED: $t (status $rc, ${secs}s)"
		fail=$((fail + 1))
		failed="$failed $t"
	fi
done
echo "integration: $((total - fail)) passed, $fail failed${failed:+ (failed:$failed)}"
[ "$fail" -eq 0 ]
