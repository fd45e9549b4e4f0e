#!/bin/sh
# Build every libFuzzer target test/fuzz/fuzz_NAME.c with clang, ASan and
# UBSan against the project library, then run each for FUZZ_SECONDS (default
# 20) from its seed corpus test/fuzz/corpus/NAME/.  New inputs go to a scratch
# corpus under build-fuzz/, so the checked-in seeds change only by hand; a
# crash leaves its input in build-fuzz/crash-NAME-* and fails the run.
set -e
SECS=${FUZZ_SECONDS:-20}
B=build-fuzz
set -- test/fuzz/fuzz_*.c
if [ ! -e "$1" ]; then
	echo "fuzz: no targets"
	exit 0
fi
command -v clang >/dev/null || { echo "fuzz: clang missing (make deps)" >&2; exit 1; }
make -s BUILD=$B CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
	$B/libobd.a
fail=0
total=0
for src in "$@"; do
	name=$(basename "$src" .c)
	name=${name#fuzz_}
	bin=$B/fuzz/fuzz_$name
	mkdir -p $B/fuzz $B/corpus/$name test/fuzz/corpus/$name
	clang -I. -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o "$bin" "$src" $B/libobd.a \
		-lev -lcurl -lcrypto -ljansson -laio -llz4 -lzstd -lsystemd -lext2fs -lcom_err -lrt -lm -pthread
	total=$((total + 1))
	echo "== fuzz $name (${SECS}s)"
	if ! "$bin" -max_total_time="$SECS" -print_final_stats=1 \
		-artifact_prefix="$B/crash-$name-" $B/corpus/$name test/fuzz/corpus/$name \
		>$B/fuzz-$name.log 2>&1; then
		tail -40 $B/fuzz-$name.log
		echo "FAILED: fuzz $name (log: $B/fuzz-$name.log)"
		fail=$((fail + 1))
	else
		grep -E 'stat::number_of_executed_units' $B/fuzz-$name.log || true
	fi
done
echo "fuzz: $((total - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
