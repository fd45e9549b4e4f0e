#!/bin/bash
# it_cache_poison: the disk cache is per origin (docs/cache.md; security
# round 2, item 4).  A hostile registry serves other bytes under a genuine
# layer's digest into a shared cache; a later read of that digest from the
# genuine registry must get the genuine bytes, fetched from it, never the
# hostile ones from the cache.  Driven through overlaybd-fetch, which opens
# blobs with the daemon's registry and cache code.
. "$(dirname "$0")/lib.sh"
. "$ROOT/test/registry.sh"
need docker-registry python3 curl

FETCH=$BUILD/bin/overlaybd-fetch
[ -x "$FETCH" ] || fail "no $FETCH (make all)"
REPO=test/blob
C=$T/cache

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

log "genuine registry with a layer; a hostile one with other bytes under its digest"
REG_DIR=$T/reg
mkdir -p "$REG_DIR"
reg_start anon || fail "could not start docker-registry: $(tail -n 5 "$REG_DIR/procs.log")"
head -c $((3 << 20)) /dev/urandom >"$T/genuine"
head -c $((3 << 20)) /dev/urandom >"$T/hostile"
DIGEST=$(reg_push "$REPO" "$T/genuine") || fail "push failed"
SIZE=$(stat -c %s "$T/genuine")
GENUINE=$REG_URL/v2/$REPO/blobs
mkdir -p "$T/evil/v2/$REPO/blobs" "$T/evil-state"
cp "$T/hostile" "$T/evil/v2/$REPO/blobs/$DIGEST"
EPORT=$(free_port)
python3 "$ROOT/test/registry/files_server.py" --port "$EPORT" --root "$T/evil" \
	--state "$T/evil-state" >>"$T/evil.log" 2>&1 &
track_pid $!
reg_wait_http "http://127.0.0.1:$EPORT/" || fail "the hostile server did not start"
HOSTILE=http://127.0.0.1:$EPORT/v2/$REPO/blobs

# read_blob WHAT URL WANT_FILE: the blob through the shared cache must have
# WANT_FILE's sha256; OUT gets the fetch's report.
read_blob() {
	OUT=$("$FETCH" --sha256 --cache-dir "$C" --size "$SIZE" --timeout 5 "$2" "$DIGEST" \
		2>&1 >"$T/sum") || fail "$1: expected a read, overlaybd-fetch failed: $(echo "$OUT" | tail -n 2)"
	expect_eq "$1" "$(sha_of "$3")" "$(cat "$T/sum")"
}

log "spec 1 reads the digest through the hostile registry"
# On-demand ranges cannot be checked against the digest: this read gets the
# hostile bytes, which is why they must stay with their origin.
read_blob "read via the hostile registry" "$HOSTILE" "$T/hostile"
log "spec 2 reads it through the genuine registry: genuine bytes, fetched from it"
read_blob "read via the genuine registry after the hostile one" "$GENUINE" "$T/genuine"
case $OUT in *"fetched $SIZE bytes"*) ;; *) fail "genuine read: expected all $SIZE bytes fetched from the genuine registry, got: $(echo "$OUT" | tail -n 1)" ;; esac
log "both again, warm: each origin keeps its own entry"
read_blob "warm read via the genuine registry" "$GENUINE" "$T/genuine"
case $OUT in *"fetched 0 bytes"*) ;; *) fail "warm genuine read: expected no remote bytes, got: $(echo "$OUT" | tail -n 1)" ;; esac
read_blob "warm read via the hostile registry" "$HOSTILE" "$T/hostile"
log "genuine registry stopped: its cached copy still serves, and still the genuine bytes"
reg_stop_registry
read_blob "genuine origin, registry stopped" "$GENUINE" "$T/genuine"
n=$(find "$C" -mindepth 2 -name "$DIGEST" | wc -l)
expect_eq "cache entries for the digest (one per origin)" 2 "$n"
reg_stop
log "ok"
