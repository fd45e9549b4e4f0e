#!/bin/bash
# it_vectors: every representation of reference stack A (plain LSMT, each ZFile variant, the
# tar-wrapped layer, the merged layers, a writable top) and the ext4 vector, served as targets
# by one daemon, read back over iSCSI with our libiscsi client and with `qemu-img convert`,
# must give the sha256 in test/data/MANIFEST.md.  A read-only target refuses writes; a
# damaged ZFile block reads as MEDIUM ERROR.
# (Debian's libiscsi-bin 1.19 ships no iscsi-dd, hence qemu-img.)
. "$(dirname "$0")/lib.sh"
need qemu-img sha256sum
S=$DATA/stack-a

obd_start

# name | layers (bottom first) | MANIFEST row | full: hash all 1 GiB, else the first 32 MiB
# and the last 64 KiB, which hold every non-zero byte of stack A (keeps the ASan run short).
TARGETS="
a_plain    l1.lsmt l2.lsmt l3.lsmt                                     L123 full
a_l1       l1.lsmt                                                     L1   part
a_l1_zstd  l1.zstd.zfile                                               L1   part
a_l1_noov  l1.lsmt.lz4-noov.zfile                                      L1   part
a_l1_nover l1.lsmt.lz4-noverify.zfile                                  L1   part
a_l12      l1.lz4.zfile l2.lz4.zfile                                   L12  part
a_l12_bs8  l1.lz4.zfile l2.lsmt.zstd-bs8-noverify.zfile                L12  part
a_lz4      l1.lz4.zfile l2.lz4.zfile l3.lz4.zfile                      L123 part
a_mixed    l1.zstd.zfile l2.zstd-bs64.zfile l3.lz4-bs16.zfile          L123 part
a_tar      l1.lz4.zfile l2.zstd-bs64.zfile l3.lz4.tar                  L123 full
merged_lsmt merged123.lsmt                                             L123 part
merged_zfile merged123.zfile                                           L123 part
"

declare -A want row how
while read -r name rest; do
	[ -n "$name" ] || continue
	set -- $rest
	files=()
	while [ $# -gt 2 ]; do
		files+=("$S/$1")
		shift
	done
	obd_add_spec "$name" "$(obd_spec "$name" "$(lowers_of "${files[@]}")")" >/dev/null
	row[$name]=$1
	how[$name]=$2
	want[$name]=$(manifest_hash "$1")
done <<<"$TARGETS"

# L3 as a writable top over plain L1, L2 (a copy: the daemon opens it read-write).
mkdir -p "$T/up"
cp "$S/l3.data" "$T/up/data"
cp "$S/l3.index" "$T/up/index"
obd_add_spec a_upper "$(obd_spec a_upper "$(lowers_of "$S/l1.lsmt" "$S/l2.lsmt")" "$T/up")" >/dev/null
want[a_upper]=$(manifest_hash L123)
how[a_upper]=full
obd_add_spec ext4 "$(obd_spec ext4 "$(lowers_of "$DATA/ext4/ext4.lz4.zfile")")" >/dev/null
want[ext4]=$(manifest_hash ext4)
how[ext4]=full

n=0
for name in "${!want[@]}"; do
	url=$(obd_url "$name")
	if [ "${how[$name]}" = full ]; then
		got=$(sha256_of_target "$url") || fail "$name: obd-iscsi read failed"
		expect_eq "$name: sha256 of the whole LUN read with obd-iscsi" "${want[$name]}" "$got"
	else
		got=$("$OBD_ISCSI" read --length $((32 << 20)) "$url") || fail "$name: read failed"
		expect_eq "$name: sha256 of the first 32 MiB" "$(manifest_head_hash "${row[$name]}")" "$got"
		got=$("$OBD_ISCSI" read --offset $(((1 << 30) - 65536)) "$url") || fail "$name: read failed"
		expect_eq "$name: sha256 of the last 64 KiB" "$(manifest_tail_hash "${row[$name]}")" "$got"
	fi
	n=$((n + 1))
done
log "$n targets read with obd-iscsi, every hash as in MANIFEST.md"

# qemu-img's own libiscsi block driver (its initiator name, its request sizes).
for name in a_tar ext4; do
	rm -f "$T/q.img"
	qemu-img convert -f raw -O raw "$(obd_url "$name")" "$T/q.img" 2>"$T/qemu.err" ||
		fail "$name: qemu-img convert failed: $(cat "$T/qemu.err")"
	got=$(sha256sum <"$T/q.img" | cut -d' ' -f1)
	expect_eq "$name: sha256 of qemu-img convert -f raw iscsi://" "${want[$name]}" "$got"
done
rm -f "$T/q.img"
log "qemu-img convert gives the MANIFEST hashes"

# No writable layer: SBC-3 4.11 write protection, DATA PROTECT on WRITE.
if out=$("$OBD_ISCSI" write "$(obd_url a_plain)" 0 1 7 2>&1); then
	fail "write to read-only a_plain: expected DATA PROTECT, got success"
fi
case "$out" in
*"DATA PROTECT"*) ;;
*) fail "write to read-only a_plain: expected DATA PROTECT, got: $out" ;;
esac
got=$(sha256_of_target "$(obd_url a_plain)")
expect_eq "a_plain after the refused write" "${want[a_plain]}" "$got"

# A damaged compressed block (zfile.md: per-block CRC on): the reads that touch
# it fail with MEDIUM ERROR, never with its bytes; every other read is right.
cp "$S/l1.lz4.zfile" "$T/bad.zfile"
flip_byte "$T/bad.zfile" $(($(stat -c %s "$T/bad.zfile") / 2))
obd_add_spec badblock "$(obd_spec badblock "$(lowers_of "$T/bad.zfile")")" >/dev/null
bad=0
for off in $(seq 0 $((1 << 20)) $((31 << 20))) $(((1 << 30) - (1 << 20))); do
	good=$("$OBD_ISCSI" read --offset "$off" --length $((1 << 20)) "$(obd_url a_l1)") ||
		fail "a_l1: read at $off failed"
	if out=$("$OBD_ISCSI" read --offset "$off" --length $((1 << 20)) "$(obd_url badblock)" 2>&1); then
		expect_eq "damaged block: sha256 of the 1 MiB at $off" "$good" "$out"
	else
		case $out in
		*"(0x3)"*) bad=$((bad + 1)) ;;
		*) fail "damaged block: read at $off: expected data or sense key 0x3 (MEDIUM ERROR), got: $out" ;;
		esac
	fi
done
[ "$bad" -ge 1 ] || fail "damaged block: expected at least one MEDIUM ERROR, every read succeeded"
log "a damaged ZFile block: $bad MiB read as MEDIUM ERROR, the rest right"

obd_stop
log "ok"
