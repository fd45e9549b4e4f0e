#!/bin/bash
# it_cat: overlaybd-cat writes the merged device of a spec; every
# representation of the reference stack gives the MANIFEST hash, local or
# fetched from a registry.
. "$(dirname "$0")/lib.sh"
. "$ROOT/test/registry.sh"
need docker-registry
CAT=$BUILD/bin/overlaybd-cat
S=$DATA/stack-a

cat_hash() {
	printf '%s' "$1" >"$T/spec.json"
	"$CAT" "$T/spec.json" | sha256sum | cut -d' ' -f1
}

expect_eq "cat L1 (zfile lz4)" "$(manifest_hash L1)" \
	"$(cat_hash "{\"lowers\": $(lowers_of $S/l1.lz4.zfile)}")"
expect_eq "cat L1,L2,L3 (zfile, zstd, tar)" "$(manifest_hash L123)" \
	"$(cat_hash "{\"lowers\": $(lowers_of $S/l1.lz4.zfile $S/l2.zstd-bs64.zfile $S/l3.lz4.tar)}")"
cp $S/l3.data $S/l3.index "$T/"
"$CAT" <(printf '{"lowers": %s, "upper": {"data": "%s", "index": "%s"}}' \
	"$(lowers_of $S/l1.lsmt $S/l2.lsmt)" "$T/l3.data" "$T/l3.index") "$T/out.img" ||
	fail "overlaybd-cat to a file failed"
expect_eq "cat L1,L2 + writable L3 to a file" "$(manifest_hash L123)" \
	"$(sha256sum <"$T/out.img" | cut -d' ' -f1)"
expect_eq "cat ext4" "$(manifest_hash ext4)" \
	"$(cat_hash "{\"lowers\": $(lowers_of $DATA/ext4/ext4.lz4.zfile)}")"
err=$("$CAT" <(echo '{"lowers": [{"file": "/nonexistent"}]}') 2>&1 >/dev/null) &&
	fail "overlaybd-cat of a missing layer: expected failure, got success"
case "$err" in
*"empty repoBlobUrl"*) ;;
*) fail "overlaybd-cat of a missing layer: expected 'empty repoBlobUrl', got '$err'" ;;
esac
# tools/README.md: OUT is written as OUT.tmp and renamed when complete.  A symlink at
# OUT is replaced, not followed; one planted at OUT.tmp is refused and left alone.
printf '{"lowers": %s}' "$(lowers_of $S/l1.lz4.zfile)" >"$T/l1.json"
echo keep >"$T/victim"
ln -s "$T/victim" "$T/link.img"
"$CAT" "$T/l1.json" "$T/link.img" || fail "overlaybd-cat to a symlinked OUT failed"
expect_eq "file behind a symlinked OUT" keep "$(cat "$T/victim")"
[ -f "$T/link.img" ] && [ ! -L "$T/link.img" ] ||
	fail "overlaybd-cat to a symlinked OUT: expected OUT replaced by a regular file"
expect_eq "cat L1 to a symlinked OUT" "$(manifest_hash L1)" \
	"$(sha256sum <"$T/link.img" | cut -d' ' -f1)"
ln -s "$T/victim" "$T/planted.img.tmp"
"$CAT" "$T/l1.json" "$T/planted.img" 2>/dev/null &&
	fail "overlaybd-cat with a symlink at OUT.tmp: expected failure, got success"
expect_eq "file behind a symlink at OUT.tmp" keep "$(cat "$T/victim")"
[ -L "$T/planted.img.tmp" ] && [ ! -e "$T/planted.img" ] ||
	fail "overlaybd-cat with a symlink at OUT.tmp: expected the link kept and no OUT"
# A read that fails past the first MiB (zfile block 45 holds L1's data at 2 MiB,
# zfile.md 3.7 CRC) leaves neither a partial OUT nor OUT.tmp; an old OUT stays.
cp $S/l1.lz4.zfile "$T/bad.zfile"
flip_byte "$T/bad.zfile" "$(python3 -c '
import struct, sys
z = open(sys.argv[1], "rb").read()
io = struct.unpack_from("<Q", z, 40)[0]
print(512 + sum(struct.unpack_from("<45I", z, io)) + 20)' "$T/bad.zfile")"
printf '{"lowers": %s}' "$(lowers_of "$T/bad.zfile")" >"$T/bad.json"
"$CAT" "$T/bad.json" "$T/bad.img" 2>/dev/null && fail "overlaybd-cat of a bad block: expected failure"
[ ! -e "$T/bad.img" ] && [ ! -e "$T/bad.img.tmp" ] ||
	fail "overlaybd-cat of a bad block: expected no OUT and no OUT.tmp, got $(ls "$T" | grep bad.img)"
echo old >"$T/old.img"
"$CAT" "$T/bad.json" "$T/old.img" 2>/dev/null && fail "overlaybd-cat of a bad block: expected failure"
expect_eq "old OUT after a failed cat" old "$(cat "$T/old.img")"
log "remote lowers from an anonymous docker-registry, mixed with a local one"
REG_DIR=$T/reg
reg_start anon || fail "could not start docker-registry: $(tail -n 5 "$REG_DIR/procs.log")"
d1=$(reg_push test/cat "$S/l1.lz4.zfile") || fail "push of l1.lz4.zfile failed"
d2=$(reg_push test/cat "$S/l2.zstd-bs64.zfile") || fail "push of l2.zstd-bs64.zfile failed"
spec=$(printf '{"repoBlobUrl": "%s/v2/test/cat/blobs", "lowers": [{"digest": "%s", "size": %d}, {"digest": "%s", "size": %d}, {"file": "%s"}]}' \
	"$REG_URL" "$d1" "$(stat -c %s "$S/l1.lz4.zfile")" "$d2" "$(stat -c %s "$S/l2.zstd-bs64.zfile")" "$S/l3.lz4.tar")
expect_eq "cat remote L1,L2 + local L3" "$(manifest_hash L123)" "$(cat_hash "$spec")"
reg_stop
log ok
