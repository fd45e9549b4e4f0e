#!/bin/sh
# make run: a demo device served on 127.0.0.1 from a repo-local config and
# spool under ./run/.  The image is the ext4 reference layer
# (test/data/ext4/ext4.lz4.zfile: a ZFile-compressed LSMT layer holding an
# ext4 filesystem) under a writable upper layer made with our own
# overlaybd-create, so writes from the initiator persist across runs.
# PORT=N picks another port (default 3260).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PORT=${PORT:-3260}
RUN=$(pwd)/run
NAME=demo
IQN=iqn.2026-11.io.overlaybd:$NAME

if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q LISTEN; then
	echo "demo: port $PORT is taken; run PORT=<free port> make run" >&2
	exit 1
fi
mkdir -p "$RUN/spool" "$RUN/image" "$RUN/cache"
cp test/data/ext4/ext4.lz4.zfile "$RUN/image/ext4.lz4.zfile"
if [ ! -e "$RUN/image/upper.data" ]; then
	# Parent uuid = the ext4 layer's (MANIFEST.md), size 1 GiB like it.
	"$BUILD/bin/overlaybd-create" -u E4000000-0000-4000-8000-0000000000E4 \
		"$RUN/image/upper.data" "$RUN/image/upper.index" 1 >/dev/null
fi
cat >"$RUN/config.json" <<JSON
{
	"logLevel": 1,
	"portals": ["127.0.0.1:$PORT"],
	"spoolDir": "$RUN/spool",
	"controlSocket": "$RUN/control.sock",
	"registryCacheDir": "$RUN/cache"
}
JSON
cat >"$RUN/spool/.$NAME.json.tmp" <<JSON
{
	"lowers": [ { "file": "$RUN/image/ext4.lz4.zfile" } ],
	"upper": { "data": "$RUN/image/upper.data", "index": "$RUN/image/upper.index" },
	"resultFile": "$RUN/$NAME.result"
}
JSON
mv -f "$RUN/spool/.$NAME.json.tmp" "$RUN/spool/$NAME.json"

cat <<TXT
Starting overlaybd-iscsid in the foreground (Ctrl-C stops it).
  config  $RUN/config.json
  spool   $RUN/spool/$NAME.json  (result in $RUN/$NAME.result)
Attach from another terminal:
  iscsi-ls -s iscsi://127.0.0.1:$PORT
  iscsi-inq iscsi://127.0.0.1:$PORT/$IQN/0
  iscsiadm -m discovery -t st -p 127.0.0.1:$PORT
  iscsiadm -m node -T $IQN -p 127.0.0.1:$PORT --login
  $BUILD/bin/overlaybd-iscsid status --socket $RUN/control.sock
TXT
exec "$BUILD/bin/overlaybd-iscsid" --config "$RUN/config.json"
