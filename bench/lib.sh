# bench/lib.sh: helpers the benchmark scripts share; source it after
# test/lib.sh (it uses OBD_SPOOL and _json_result_file).

# spec_ready NAME JSON: ns from the spec's rename into the spool to its
# resultFile saying success, polled every 0.2 ms (the shell's own polling
# would be most of the figure).
spec_ready() {
	local rf
	rf=$(_json_result_file "$2")
	rm -f "$rf"
	printf '%s\n' "$2" >"$OBD_SPOOL/.$1.json.tmp"
	python3 - "$OBD_SPOOL/.$1.json.tmp" "$OBD_SPOOL/$1.json" "$rf" <<'EOF' || exit 1
import os, sys, time
tmp, dst, rf = sys.argv[1:]
t0 = time.monotonic_ns()
os.rename(tmp, dst)
r = ""
while not r:
    try:
        with open(rf) as f:
            r = f.read()
    except FileNotFoundError:
        pass
    if not r and time.monotonic_ns() - t0 > 120e9:
        sys.exit("no result in %s within 120 s" % rf)
    time.sleep(0.0002)
if not r.startswith("success"):
    sys.exit("%s: expected success, got %s" % (rf, r))
print(time.monotonic_ns() - t0)
EOF
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
