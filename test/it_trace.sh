#!/bin/bash
# it_trace: access traces through the daemon (docs/trace.md).  A device whose
# lower comes from Debian's docker-registry records the reads an initiator
# makes (recordTracePath, the lock and ok files, the file the reference's
# format), and records again until SIGTERM; then, on a fresh cache, the trace
# replays when the device opens: every block the reads need is fetched before
# they are made, and the reads then fetch nothing.  The same trace works as
# an acceleration layer's.  A file list in place of a trace is resolved in
# the image's ext4 filesystem (libext2fs, through the device) and its files'
# blocks are fetched ahead the same way.  Bad traces are logged once and the
# device serves without them; recordTracePath with accelerationLayer is
# refused.
. "$(dirname "$0")/lib.sh"
. "$ROOT/test/registry.sh"
need docker-registry python3 curl mke2fs debugfs

# A 24 MiB layer of random data made with our own tools, ZFile-compressed:
# bigger than the 2 MiB a blob is fetched whole at open, so its blocks come
# on demand.
"$BUILD/bench/mklayer" "$T/layer.lsmt" 24 >/dev/null || fail "mklayer failed"
"$BUILD/bin/overlaybd-zfile" "$T/layer.lsmt" "$T/layer.zfile" >/dev/null 2>&1 ||
	fail "overlaybd-zfile failed"
VEC=$T/layer.zfile
REPO=test/trace
REG_DIR=$T/reg
mkdir -p "$REG_DIR"
reg_start anon >/dev/null || fail "docker-registry did not start: $(tail -n 5 "$REG_DIR/procs.log")"
DIGEST=$(reg_push "$REPO" "$VEC") || fail "push of $VEC failed"
SIZE=$(stat -c %s "$VEC")
BLOBS=$REG_URL/v2/$REPO/blobs
REMOTE="{\"digest\": \"$DIGEST\", \"size\": $SIZE}"

# The device's bytes, for the expected hashes of the ranges read.
printf '{"lowers": [{"file": "%s"}]}' "$VEC" >"$T/cat.json"
"$BUILD/bin/overlaybd-cat" "$T/cat.json" "$T/raw" 2>"$T/cat.log" ||
	fail "overlaybd-cat of $VEC failed: $(cat "$T/cat.log")"
RANGES="0:1048576 8388608:262144 20971520:65536"
range_sha() { # OFF LEN
	dd if="$T/raw" bs=65536 iflag=skip_bytes,count_bytes skip="$1" count="$2" 2>/dev/null |
		sha256sum | cut -d' ' -f1
}

read_ranges() { # NAME: read every range and check its bytes
	local r off len
	for r in $RANGES; do
		off=${r%:*}
		len=${r#*:}
		expect_eq "$1: bytes at $off+$len" "$(range_sha "$off" "$len")" \
			"$("$OBD_ISCSI" read --initiator "$INITIATOR" --offset "$off" --length "$len" \
				"$(obd_url "$1")")"
	done
}

status() { "$DAEMON" status --socket "$OBD_SOCK" 2>&1; }

# status_field NAME PATTERN: the first status line of target NAME that matches.
status_line() {
	status | awk -v t="$(obd_iqn "$1")" -v p="$2" '
		/^target / { on = ($2 == t) } on && $0 ~ p { print; exit }'
}

# fetched NAME: "BYTES REQUESTS" the registry served for layer 0 of NAME.
fetched() {
	status_line "$1" "layer 0 remote" | sed -n 's/.*fetched \([0-9]*\) bytes in \([0-9]*\) requests.*/\1 \2/p'
}

wait_prefetch() { # NAME STATE: wait until the prefetch line shows STATE
	local i line
	for i in $(seq 1 200); do
		line=$(status_line "$1" "^  prefetch ")
		case $line in *" $2 "*) echo "$line"; return 0 ;; esac
		sleep 0.05
	done
	fail "$1: expected prefetch state $2, got '${line:-no prefetch line}'"
}

trace_records() { # FILE: records in a trace file, after checking magic and size
	python3 - "$1" <<'EOF'
import struct, sys
b = open(sys.argv[1], 'rb').read()
magic, size, crc = struct.unpack_from('<I4xQI4x', b, 0)
assert magic == 3270449184, 'magic %d' % magic
assert size == len(b) - 24 and size % 24 == 0, 'size %d of %d' % (size, len(b))
print(size // 24)
EOF
}

obd_start
log "record: the reads of an initiator, per layer, until the lock file goes"
mkdir -p "$T/rec"
: >"$T/rec/trace"
obd_add_spec rec "$(obd_spec rec "[$REMOTE]" "" \
	"\"repoBlobUrl\": \"$BLOBS\", \"recordTracePath\": \"$T/rec/trace\"")" >/dev/null
[ -e "$T/rec/trace.lock" ] || fail "expected $T/rec/trace.lock while recording, there is none"
wait_prefetch rec recording >/dev/null
read_ranges rec
rm -f "$T/rec/trace.lock"
for i in $(seq 1 100); do
	[ -e "$T/rec/trace.ok" ] && break
	sleep 0.05
done
[ -e "$T/rec/trace.ok" ] || fail "expected $T/rec/trace.ok within 5 s of removing the lock, got none"
nrec=$(trace_records "$T/rec/trace") || fail "the recorded trace is not in the reference's format"
[ "$nrec" -gt 0 ] || fail "expected records in the trace, got $nrec"
log "recorded $nrec reads"
wait_prefetch rec recorded >/dev/null
obd_remove_spec rec

log "record: SIGTERM ends a recording and writes the trace"
mkdir -p "$T/rec2"
: >"$T/rec2/trace"
obd_add_spec rec2 "$(obd_spec rec2 "[$REMOTE]" "" \
	"\"repoBlobUrl\": \"$BLOBS\", \"recordTracePath\": \"$T/rec2/trace\"")" >/dev/null
read_ranges rec2
obd_stop
[ -e "$T/rec2/trace.ok" ] || fail "expected $T/rec2/trace.ok after SIGTERM, got none"
trace_records "$T/rec2/trace" >/dev/null || fail "the trace written at SIGTERM is not valid"
obd_remove_spec rec2

log "replay on a fresh cache: the trace's reads are fetched before they are made"
rm -rf "$T/cache"
obd_start
obd_add_spec rep "$(obd_spec rep "[$REMOTE]" "" \
	"\"repoBlobUrl\": \"$BLOBS\", \"recordTracePath\": \"$T/rec/trace\"")" >/dev/null
line=$(wait_prefetch rep done)
case $line in *"records $nrec/$nrec "*) ;; *) fail "expected $nrec/$nrec records replayed, got '$line'" ;; esac
before=$(fetched rep)
[ "${before%% *}" -gt 0 ] || fail "expected the replay to fetch bytes, got '$before'"
read_ranges rep
after=$(fetched rep)
expect_eq "registry traffic of the reads after the replay (bytes requests)" "$before" "$after"
log "replay fetched ${before% *} bytes in ${before#* } requests; the reads fetched nothing more"
obd_remove_spec rep

log "acceleration layer: the last lower's dir/trace is replayed, the lower left out"
mkdir -p "$T/accel"
cp "$T/rec/trace" "$T/accel/trace"
obd_add_spec acc "$(obd_spec acc "[$REMOTE, {\"dir\": \"$T/accel\"}]" "" \
	"\"repoBlobUrl\": \"$BLOBS\", \"accelerationLayer\": true")" >/dev/null
wait_prefetch acc done >/dev/null
status_line acc "device " | grep -q ", 1 layer," ||
	fail "expected 1 layer with the acceleration layer left out, got '$(status_line acc "device ")'"
read_ranges acc
obd_remove_spec acc

log "recordTracePath with accelerationLayer is refused"
res=$(obd_add_spec both "$(obd_spec both "[$REMOTE, {\"dir\": \"$T/accel\"}]" "" \
	"\"repoBlobUrl\": \"$BLOBS\", \"accelerationLayer\": true, \"recordTracePath\": \"$T/rec/trace\"")" \
	failed:) || exit 1
case $res in *accelerationLayer*) ;; *) fail "expected a reason naming accelerationLayer, got '$res'" ;; esac

log "file list: the files' blocks in the image's ext4, fetched ahead"
mkdir -p "$T/fsroot/usr/lib" "$T/fsroot/usr/share/data" "$T/fsroot/etc"
head -c $((3 << 20)) /dev/urandom >"$T/fsroot/usr/lib/big.so"
head -c $((1 << 20)) /dev/urandom >"$T/fsroot/usr/share/data/a"
head -c $((1 << 20)) /dev/urandom >"$T/fsroot/usr/share/data/b"
head -c $((8 << 20)) /dev/urandom >"$T/fsroot/unlisted"
echo hello >"$T/fsroot/etc/motd"
mke2fs -q -F -t ext4 -b 4096 -d "$T/fsroot" "$T/fs.img" 64M >/dev/null 2>&1 || fail "mke2fs -d failed"
"$BUILD/bench/mklayer" "$T/fs.lsmt" --image "$T/fs.img" >/dev/null || fail "mklayer --image failed"
FS_DIGEST=$(reg_push "$REPO" "$T/fs.lsmt") || fail "push of the ext4 layer failed"
FS_REMOTE="{\"digest\": \"$FS_DIGEST\", \"size\": $(stat -c %s "$T/fs.lsmt")}"
printf '/usr/lib/big.so\n usr/share/data/ \n/no/such/file\n/etc/../etc/motd\n' >"$T/list"
rm -rf "$T/cache"
obd_stop
obd_start
obd_add_spec fl "$(obd_spec fl "[$FS_REMOTE]" "" \
	"\"repoBlobUrl\": \"$BLOBS\", \"recordTracePath\": \"$T/list\"")" >/dev/null
wait_prefetch fl done >/dev/null
grep -q "fl: file list: 2 of 3 paths found" "$OBD_LOG" ||
	fail "expected '2 of 3 paths found' in the log, got: $(grep 'file list' "$OBD_LOG")"
[ "$(grep -c " warn .*trace $T/list: 1 lines of the file list ignored" "$OBD_LOG")" = 1 ] ||
	fail "expected one warning about the '..' line, got: $(grep "trace $T/list" "$OBD_LOG")"
before=$(fetched fl)
[ "${before%% *}" -ge $((5 << 20)) ] || fail "expected at least 5 MiB fetched ahead, got '$before'"
# big.so's blocks through iSCSI: its bytes, and nothing more from the registry
read -r first count <<<"$(debugfs -R "blocks /usr/lib/big.so" "$T/fs.img" 2>/dev/null |
	awk '{ print $1, NF }')"
got=$("$OBD_ISCSI" read --initiator "$INITIATOR" --offset $((first * 4096)) \
	--length $((3 << 20)) "$(obd_url fl)")
expect_eq "big.so through the device" "$(sha256sum <"$T/fsroot/usr/lib/big.so" | cut -d' ' -f1)" "$got"
[ "$count" = 768 ] || fail "expected big.so in 768 contiguous blocks for this check, got $count"
expect_eq "registry traffic of the file's reads after the file list (bytes requests)" "$before" \
	"$(fetched fl)"
obd_remove_spec fl

log "bad traces: logged once, the device serves without prefetch"
python3 - "$T/rec/trace" "$T" <<'EOF'
import struct, sys
src, d = sys.argv[1], sys.argv[2]
b = bytearray(open(src, 'rb').read())
def crc32c_raw(data, crc=0):
    for x in data:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc
def write(name, data, fix_crc=False):
    data = bytearray(data)
    if fix_crc:
        struct.pack_into('<I', data, 16, crc32c_raw(data[24:]))
    open('%s/bad-%s' % (d, name), 'wb').write(data)
m = bytearray(b); m[0] ^= 1; write('magic', m)
c = bytearray(b); c[16] ^= 1; write('crc', c)
write('size', b[:-1])
l = bytearray(b); struct.pack_into('<I', l, 24 + 4, 7); write('layer', l, True)
o = bytearray(b); struct.pack_into('<Q', o, 24 + 16, 1 << 40); write('range', o, True)
EOF
for bad in magic crc size layer range; do
	obd_add_spec "bad-$bad" "$(obd_spec "bad-$bad" "[$REMOTE]" "" \
		"\"repoBlobUrl\": \"$BLOBS\", \"recordTracePath\": \"$T/bad-$bad\"")" >/dev/null
	n=$(grep -c " warn .*trace $T/bad-$bad" "$OBD_LOG")
	[ "$n" = 1 ] || fail "bad-$bad: expected one warning about the trace, got $n: $(grep "trace $T/bad-$bad" "$OBD_LOG")"
	line=$(status_line "bad-$bad" "^  prefetch ")
	case $bad in
	layer | range) case $line in *" ignored "*) ;; *) fail "bad-$bad: expected prefetch ignored, got '$line'" ;; esac ;;
	*) [ -z "$line" ] || fail "bad-$bad: expected no prefetch, got '$line'" ;;
	esac
	read_ranges "bad-$bad"
	obd_remove_spec "bad-$bad"
done
errs=$(obd_log_errors | grep -v ' both: failed:')
[ -z "$errs" ] || fail "expected no error lines in the log but the refused spec's, got: $errs"
obd_stop
log "ok"
