#!/bin/bash
# it_valgrind: one full session lifecycle with the daemon under valgrind memcheck (issue 6, CI):
# start, a spec with a writable layer over a compressed lower, discovery, login, reads and
# writes, logout, the spec removed, SIGTERM.  Any invalid access or definite/indirect leak
# fails (--error-exitcode).  Skipped for the ASan build, which cannot run under valgrind.
. "$(dirname "$0")/lib.sh"
case "$BUILD" in
*asan*) skip "valgrind cannot run an ASan build" ;;
esac
need valgrind iscsi-ls
S=$DATA/stack-a

OBD_WAIT=120
OBD_WRAP="valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-origins=no
	--num-callers=30 --log-file=$T/valgrind.log"
make_upper "$T/up" $((1 << 30)) A2000000-0000-4000-8000-000000000002
obd_start
obd_add_spec vg "$(obd_spec vg "$(lowers_of "$S/l1.lz4.zfile" "$S/l2.zstd-bs64.zfile")" "$T/up")" \
	>/dev/null
URL=$(obd_url vg)
iscsi-ls -i "$INITIATOR" "$(obd_portal_url)" | grep -q "$(obd_iqn vg)" ||
	fail "discovery under valgrind: expected $(obd_iqn vg) listed"
got=$("$OBD_ISCSI" read --length $((32 << 20)) "$URL") || fail "read under valgrind failed"
expect_eq "first 32 MiB of L1,L2 under valgrind" \
	416e04aa8ab6add6c54078b097a6b2e42ea91d946ec6c307fdfee5fc1b6bf545 "$got"
"$OBD_ISCSI" write "$URL" 1000 256 5 || fail "write under valgrind failed"
"$OBD_ISCSI" write --fua "$URL" 4000 16 6 || fail "FUA write under valgrind failed"
"$OBD_ISCSI" --quiet verify "$URL" 1000 256 5 || fail "verify under valgrind failed"
obd_remove_spec vg
for i in $(seq 1 100); do
	iscsi-ls -i "$INITIATOR" "$(obd_portal_url)" 2>/dev/null | grep -q "$(obd_iqn vg)" || break
	sleep 0.2
done
# obd_stop checks exit status 0: valgrind turns any error or leak into 99.
obd_term
if [ "$OBD_RC" != 0 ]; then
	grep -A30 -E 'Invalid|uninitialised|definitely lost|indirectly lost' "$T/valgrind.log" | head -n 60
	fail "expected exit status 0 under valgrind (99: valgrind found errors), got $OBD_RC"
fi
grep -E 'ERROR SUMMARY|in use at exit|All heap blocks|definitely lost|indirectly lost' "$T/valgrind.log" | sed 's/^==[0-9]*== */valgrind: /'
grep -q 'ERROR SUMMARY: 0 errors' "$T/valgrind.log" ||
	fail "expected 'ERROR SUMMARY: 0 errors', got: $(grep 'ERROR SUMMARY' "$T/valgrind.log")"
log "ok"
