#!/bin/sh
# Placeholder until the daemon lands: integration tests live in test/*.sh.
BUILD=${BUILD:-build}
fail=0
total=0
for t in test/it_*.sh; do
	[ -e "$t" ] || continue
	total=$((total + 1))
	echo "== $t"
	if ! BUILD="$BUILD" sh "$t"; then
		echo "FAILED: $t"
		fail=$((fail + 1))
	fi
done
echo "integration: $((total - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
