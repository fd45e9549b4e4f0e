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
