#!/bin/sh
# Run every unit test binary under BUILD/test/test_* with the project root as
# the working directory (tests find their vectors under test/data/).
BUILD=${1:-build}
fail=0
total=0
for t in "$BUILD"/test/test_*; do
	[ -x "$t" ] || continue
	total=$((total + 1))
	echo "== $t"
	if ! "$t"; then
		echo "FAILED: $t"
		fail=$((fail + 1))
	fi
done
echo "unit: $((total - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
