#!/bin/bash
# it_zfile_tool: overlaybd-zfile compresses to the reference's bytes,
# extracts and verifies every vector, wraps in tar, and fails with one
# line and no output file on bad input.
. "$(dirname "$0")/lib.sh"
Z=$BUILD/bin/overlaybd-zfile
S=$DATA/stack-a

"$Z" "$S/l1.lsmt" "$T/l1.zfile" || fail "compress l1.lsmt failed"
cmp -s "$T/l1.zfile" "$S/l1.lsmt.lz4-noov.zfile" ||
	fail "compress l1.lsmt: expected the bytes of l1.lsmt.lz4-noov.zfile, got others"
"$Z" -t "$S/l3.lsmt" "$T/l3.tar" || fail "compress -t l3.lsmt failed"
"$Z" -x "$T/l3.tar" "$T/l3.out" || fail "extract l3.tar failed"
cmp -s "$T/l3.out" "$S/l3.lsmt" || fail "l3 through -t and -x: expected l3.lsmt, got other bytes"

for v in l1.lz4.zfile:l1 l2.zstd-bs64.zfile:l2 l3.lz4-bs16.zfile:l3 l3.lz4.tar:l3 \
	l2.lsmt.zstd-bs8-noverify.zfile:l2 merged123.zfile:merged123; do
	f=${v%%:*} plain=${v##*:}.lsmt
	"$Z" -x "$S/$f" "$T/out" || fail "extract $f failed"
	cmp -s "$T/out" "$S/$plain" || fail "extract $f: expected the bytes of $plain, got others"
done
"$Z" --verify "$S/l1.zstd.zfile" >/dev/null || fail "--verify l1.zstd.zfile failed"

for algo in lz4 zstd; do
	for bs in 4 8 16 32 64; do
		"$Z" --algorithm $algo --bs $bs "$S/l2.lsmt" "$T/c" || fail "compress $algo $bs failed"
		"$Z" --verify "$T/c" >/dev/null || fail "--verify $algo $bs failed"
		"$Z" -x "$T/c" "$T/x" && cmp -s "$T/x" "$S/l2.lsmt" ||
			fail "round trip $algo bs $bs: expected l2.lsmt"
	done
done

# Bad input: one line on stderr, status 1, nothing left under OUT or OUT.tmp.
bad() {
	local what=$1
	shift
	rm -f "$T/bad" "$T/bad.tmp"
	"$Z" "$@" 2>"$T/err" && fail "$what: expected failure, got status 0"
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "$what: expected one line on stderr, got: $(cat "$T/err")"
	[ ! -e "$T/bad" ] && [ ! -e "$T/bad.tmp" ] || fail "$what: output file left behind"
}
bad "extract a plain file" -x "$S/l1.lsmt" "$T/bad"
head -c 5000 "$S/l1.lz4.zfile" >"$T/trunc"
bad "extract a truncated zfile" -x "$T/trunc" "$T/bad"
bad "missing input" "$T/nonexistent" "$T/bad"
bad "bad block size" --bs 3 "$S/l1.lsmt" "$T/bad"
bad "bad algorithm" --algorithm lzo "$S/l1.lsmt" "$T/bad"
bad "verify without CRCs" --verify "$S/l1.lsmt.lz4-noverify.zfile"
grep -q "not a valid zfile blob or checksum can't be found" "$T/err" ||
	fail "verify without CRCs: expected the reference's message, got: $(cat "$T/err")"
# tools/README.md: a symlink planted at OUT.tmp is refused and left alone.
echo keep >"$T/victim"
ln -s "$T/victim" "$T/planted.tmp"
"$Z" "$S/l1.lsmt" "$T/planted" 2>/dev/null && fail "symlink at OUT.tmp: expected failure"
[ "$(cat "$T/victim")" = keep ] && [ -L "$T/planted.tmp" ] && [ ! -e "$T/planted" ] ||
	fail "symlink at OUT.tmp: expected the link and its target untouched and no OUT"
"$Z" --help | grep -q "usage: overlaybd-zfile" || fail "--help: expected usage"
log "ok"
