#!/bin/bash
# it_lsmt_tools: overlaybd-create, overlaybd-commit and overlaybd-merge give
# the reference's bytes for the stack-a vectors, and on bad input fail with
# one line and leave no output behind.
. "$(dirname "$0")/lib.sh"
B=$BUILD/bin
S=$DATA/stack-a
U1=A1000000-0000-4000-8000-000000000001
U2=A2000000-0000-4000-8000-000000000002
U3=A3000000-0000-4000-8000-000000000003

same() { cmp -s "$1" "$2" || fail "$3: expected the bytes of $2, got others"; }

"$B/overlaybd-commit" -m layer-1 --uuid $U1 "$S/l1.data" "$S/l1.index" "$T/l1" ||
	fail "commit l1 failed"
same "$T/l1" "$S/l1.lsmt" "commit l1"
"$B/overlaybd-commit" -z -m layer-1 --uuid $U1 --verify "$S/l1.data" "$S/l1.index" "$T/l1z" ||
	fail "commit -z l1 failed"
same "$T/l1z" "$S/l1.lz4.zfile" "commit -z l1"
"$B/overlaybd-commit" -z --algorithm zstd -m layer-1 --uuid $U1 "$S/l1.data" "$S/l1.index" \
	"$T/l1zs" || fail "commit -z zstd l1 failed"
same "$T/l1zs" "$S/l1.zstd.zfile" "commit -z --algorithm zstd l1"
"$B/overlaybd-commit" -z --algorithm zstd --bs 64 -m layer-2 --uuid $U2 "$S/l2.data" \
	"$S/l2.index" "$T/l2" || fail "commit l2 failed"
same "$T/l2" "$S/l2.zstd-bs64.zfile" "commit -z --bs 64 l2"
"$B/overlaybd-commit" -z -t -m layer-3 --uuid $U3 --verify "$S/l3.data" "$S/l3.index" "$T/l3" ||
	fail "commit -z -t l3 failed"
same "$T/l3" "$S/l3.lz4.tar" "commit -z -t l3"
"$B/overlaybd-commit" --commit_sealed --verify "$S/l3.lsmt" "$T/l3s" || fail "--commit_sealed failed"

printf '{"lowers": %s}' "$(lowers_of $S/l1.lz4.zfile $S/l2.zstd-bs64.zfile $S/l3.lsmt)" \
	>"$T/image.json"
"$B/overlaybd-merge" --compress=false "$T/image.json" "$T/m" || fail "merge failed"
same "$T/m" "$S/merged123.lsmt" "merge --compress=false"
"$B/overlaybd-merge" "$T/image.json" "$T/mz" || fail "merge to zfile failed"
same "$T/mz" "$S/merged123.zfile" "merge"
"$B/overlaybd-merge" --compress=false -l "$S/l1.lsmt" -l "$S/l2.lz4.zfile" -l "$S/l3.lz4.tar" \
	"$T/ml" || fail "merge -l failed"
same "$T/ml" "$S/merged123.lsmt" "merge -l"

# A layer made by our tools, written with the library's own writer, reads back.
"$B/overlaybd-create" -u $U1 "$T/new.data" "$T/new.index" 2 || fail "create failed"
[ "$(stat -c %s "$T/new.data")" = 4096 ] && [ "$(stat -c %s "$T/new.index")" = 4096 ] ||
	fail "create: expected two 4096-byte files"
"$B/overlaybd-commit" --verify "$T/new.data" "$T/new.index" "$T/new.lsmt" ||
	fail "commit of an empty layer failed"

# lsmt.md 4.4: a sparse layer is the device in place (flags 0x13), the index empty.
"$B/overlaybd-create" -s "$T/sp.data" "$T/sp.index" 2 || fail "create -s failed"
[ "$(stat -c %s "$T/sp.data")" = $((4096 + (2 << 30))) ] && [ "$(stat -c %s "$T/sp.index")" = 0 ] ||
	fail "create -s: expected a 4096+2GiB data file and an empty index"
[ "$(od -An -tx1 -j28 -N1 "$T/sp.data" | tr -d ' ')" = 13 ] ||
	fail "create -s: expected header flags 0x13, got $(od -An -tx1 -j28 -N1 "$T/sp.data")"
printf 'sparse payload' | dd of="$T/sp.data" bs=1 seek=$((4096 + 1048576)) conv=notrunc 2>/dev/null
"$B/overlaybd-commit" --verify "$T/sp.data" "$T/sp.index" "$T/sp.lsmt" ||
	fail "commit of a sparse layer failed"

# lsmt.md 4.3: --seal, then --commit_sealed gives the reference's commit of l1.
cp "$S/l1.data" "$T/s1.data" && cp "$S/l1.index" "$T/s1.index"
"$B/overlaybd-commit" --seal "$T/s1.data" "$T/s1.index" "$T/overlaybd.sealed" ||
	fail "--seal failed"
[ ! -e "$T/s1.data" ] || fail "--seal: expected the data file renamed to overlaybd.sealed"
"$B/overlaybd-commit" --commit_sealed -m layer-1 --uuid $U1 --verify "$T/overlaybd.sealed" \
	"$T/s1.lsmt" || fail "--commit_sealed of our sealed file failed"
same "$T/s1.lsmt" "$S/l1.lsmt" "--seal then --commit_sealed l1"

bad() {
	local tool=$1 what=$2 out=$3
	shift 3
	rm -f "$out" "$out.tmp"
	"$B/$tool" "$@" 2>"$T/err" && fail "$tool $what: expected failure, got status 0"
	[ "$(wc -l <"$T/err")" -eq 1 ] ||
		fail "$tool $what: expected one line on stderr, got: $(cat "$T/err")"
	[ ! -e "$out" ] && [ ! -e "$out.tmp" ] || fail "$tool $what: output file left behind"
}
head -c 5000 "$S/l1.lsmt" >"$T/trunc"
bad overlaybd-create "bad size" "$T/c.data" "$T/c.data" "$T/c.index" 1.5
bad overlaybd-create "bad parent" "$T/c.data" -u nope "$T/c.data" "$T/c.index" 1
bad overlaybd-create "missing dir" "$T/no/c.data" "$T/no/c.data" "$T/c.index" 1
# lsmt.md 3: 2^50 - 1 sectors is the most a layer can address.
bad overlaybd-create "size past 2^50 sectors" "$T/c.data" "$T/c.data" "$T/c.index" 536870912
bad overlaybd-commit "missing data" "$T/bad" "$T/nonexistent" "$S/l1.index" "$T/bad"
bad overlaybd-commit "sealed blob as index" "$T/bad" "$S/l1.data" "$S/l1.lsmt" "$T/bad"
bad overlaybd-commit "truncated sealed" "$T/bad" --commit_sealed "$T/trunc" "$T/bad"
bad overlaybd-commit "bad uuid" "$T/bad" --uuid xyz "$S/l1.data" "$S/l1.index" "$T/bad"
bad overlaybd-commit "bad bs" "$T/bad" -z --bs 3 "$S/l1.data" "$S/l1.index" "$T/bad"
bad overlaybd-commit "--seal with -z" "$T/bad" --seal -z "$S/l1.data" "$S/l1.index" "$T/bad"
cp "$S/l1.data" "$T/s2.data"
bad overlaybd-commit "--seal, missing index" "$T/bad" --seal "$T/s2.data" "$T/nonexistent" "$T/bad"
cmp -s "$T/s2.data" "$S/l1.data" || fail "failed --seal: expected its data file left unchanged"
bad overlaybd-merge "missing layer" "$T/bad" -l "$T/nonexistent" "$T/bad"
bad overlaybd-merge "truncated layer" "$T/bad" -l "$T/trunc" "$T/bad"
echo '{"lowers": [{"digest": "sha256:00"}]}' >"$T/remote.json"
bad overlaybd-merge "remote-only layer" "$T/bad" "$T/remote.json" "$T/bad"
# tools/README.md: a symlink planted at a temporary name is refused and left alone.
echo keep >"$T/victim"
planted() {
	local tool=$1 link=$2 out=$3
	shift 3
	ln -sf "$T/victim" "$link"
	"$B/$tool" "$@" 2>/dev/null && fail "$tool with a symlink at $link: expected failure"
	[ "$(cat "$T/victim")" = keep ] && [ -L "$link" ] && [ ! -e "$out" ] ||
		fail "$tool with a symlink at $link: expected it and its target untouched, no $out"
	rm -f "$link"
}
planted overlaybd-commit "$T/p1.tmp" "$T/p1" "$S/l1.data" "$S/l1.index" "$T/p1"
planted overlaybd-commit "$T/p2.zfile.tmp" "$T/p2" -z -t "$S/l1.data" "$S/l1.index" "$T/p2"
planted overlaybd-merge "$T/p3.lsmt.tmp" "$T/p3" -l "$S/l1.lsmt" "$T/p3"
planted overlaybd-create "$T/p4.index.tmp" "$T/p4.data" "$T/p4.data" "$T/p4.index" 1
[ ! -e "$T/p4.data.tmp" ] || fail "overlaybd-create refused: expected no DATA.tmp left"

# lsmt_rw.c: an upper a daemon serves has that one writer.  Tools that write it or
# publish a snapshot of it are refused with one line naming it; overlaybd-cat reads it.
make_upper "$T/live" $((1 << 30))
obd_start
obd_add_spec live "$(obd_spec live "$(lowers_of "$S/l1.lsmt")" "$T/live")" >/dev/null
busy() {
	local tool=$1 what=$2
	bad "$@"
	grep -q "$T/live/" "$T/err" ||
		fail "$tool $what: expected a message naming the layer, got: $(cat "$T/err")"
}
busy overlaybd-commit "of a served upper" "$T/bad" "$T/live/data" "$T/live/index" "$T/bad"
busy overlaybd-commit "--seal of a served upper" "$T/bad" --seal "$T/live/data" \
	"$T/live/index" "$T/bad"
printf '{"lowers": %s, "upper": {"data": "%s", "index": "%s"}}' "$(lowers_of "$S/l1.lsmt")" \
	"$T/live/data" "$T/live/index" >"$T/live.json"
busy overlaybd-merge "with a served upper" "$T/bad" "$T/live.json" "$T/bad"
ino=$(stat -c %i "$T/live/data")
"$B/overlaybd-create" "$T/live/data" "$T/live/index" 1 2>"$T/err" &&
	fail "overlaybd-create over a served upper: expected failure, got status 0"
grep -q "$T/live/data" "$T/err" ||
	fail "overlaybd-create over a served upper: expected a message naming it, got: $(cat "$T/err")"
[ "$(stat -c %i "$T/live/data")" = "$ino" ] ||
	fail "overlaybd-create over a served upper: expected the data file kept, got a new one"
printf '{"lowers": %s, "upper": {"data": "%s", "index": "%s"}}' "$(lowers_of "$S/l1.lsmt")" \
	"$T/live/data" "$T/live/index" >"$T/cat.json"
expect_eq "overlaybd-cat of a served upper" "$(manifest_hash L1)" \
	"$("$B/overlaybd-cat" "$T/cat.json" | sha256sum | cut -d' ' -f1)"
obd_stop
"$B/overlaybd-commit" "$T/live/data" "$T/live/index" "$T/live.lsmt" ||
	fail "commit of the upper after the daemon stopped failed"

for t in overlaybd-create overlaybd-commit overlaybd-merge; do
	"$B/$t" --help | grep -q "usage: $t" || fail "$t --help: expected usage"
done
log "ok"
