#!/bin/bash
# it_registry_ssrf: a hostile registry's redirects must not make the fetcher
# talk to other services (security round 2, item 6).  A 307 to gopher://,
# dict:// or file:// is refused (http and https only), and a registry that
# is not on this host may not redirect into it (loopback or link-local); a
# local registry still may.  A plain TCP listener stands for the local
# service (Redis) and records every connection it gets.
. "$(dirname "$0")/lib.sh"
need python3 ss

FETCH=$BUILD/bin/overlaybd-fetch
[ -x "$FETCH" ] || fail "no $FETCH (make all)"
SRV=$ROOT/test/registry/ssrf_server.py
DIGEST=sha256:0000000000000000000000000000000000000000000000000000000000000001
REC=$T/listener.log
LPORT=$(free_port)
: >"$REC"
python3 "$SRV" listen --port "$LPORT" --record "$REC" >>"$T/servers.log" 2>&1 &
track_pid $!
for _ in $(seq 1 50); do port_listens "$LPORT" && break; sleep 0.1; done
port_listens "$LPORT" || fail "the listener did not start: $(cat "$T/servers.log")"

# hostile BIND TARGET [--realm]: a registry on BIND answering 307 to TARGET
# (or 401 with TARGET as the token realm); sets HOSTILE_URL.
hostile() {
	local port
	port=$(free_port)
	python3 "$SRV" redirect --bind "$1" --port "$port" --to "$2" ${3:-} >>"$T/servers.log" 2>&1 &
	track_pid $!
	for _ in $(seq 1 50); do port_listens "$port" && break; sleep 0.1; done
	port_listens "$port" || fail "the redirecting server on $1 did not start"
	HOSTILE_URL=http://$1:$port/v2/test/blob/blobs
	case $1 in *:*) HOSTILE_URL=http://[$1]:$port/v2/test/blob/blobs ;; esac
}

# refused WHAT TEXT: the fetch fails, says TEXT, and the listener heard nothing.
refused() {
	local out
	if out=$("$FETCH" --sha256 --size 4096 --timeout 2 "$HOSTILE_URL" "$DIGEST" 2>&1); then
		fail "$1: expected the read to fail, it succeeded"
	fi
	sleep 0.3
	[ ! -s "$REC" ] || fail "$1: expected no connection to the local listener, got: $(cat "$REC")"
	case $out in
	*"$2"*) ;;
	*) fail "$1: expected a log saying '$2', got: $(echo "$out" | tail -n 3)" ;;
	esac
}

log "local registry, redirect to other schemes: refused, nothing sent"
for target in "gopher://127.0.0.1:$LPORT/_FLUSHALL" "dict://127.0.0.1:$LPORT/flushall" \
	"file:///etc/passwd"; do
	hostile 127.0.0.1 "$target"
	refused "307 to $target" "only http and https are followed"
done

# Some address of this host that is not loopback or link-local: the stand-in
# for a registry elsewhere.
PUBLIC=$(ip -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | grep -v : | head -n 1)
if [ -n "$PUBLIC" ]; then
	log "registry at $PUBLIC, redirect to loopback: refused before anything is sent"
	hostile "$PUBLIC" "http://127.0.0.1:$LPORT/redis"
	refused "307 from $PUBLIC to 127.0.0.1" "pointed to local address 127.0.0.1"
	hostile "$PUBLIC" "http://localhost:$LPORT/redis"
	refused "307 from $PUBLIC to localhost" "pointed to local address"
	# The token realm of a challenge is the same kind of pointer.
	hostile "$PUBLIC" "http://127.0.0.1:$LPORT/token" --realm
	refused "401 from $PUBLIC with a realm on 127.0.0.1" "pointed to local address 127.0.0.1"
else
	log "no global address on this host: the registry-elsewhere case is not run"
fi

log "local registry, redirect to a local http service: followed (a test setup may do this)"
hostile 127.0.0.1 "http://127.0.0.1:$LPORT/storage"
"$FETCH" --sha256 --size 4096 --timeout 1 "$HOSTILE_URL" "$DIGEST" >/dev/null 2>&1
sleep 0.3
[ -s "$REC" ] || fail "local registry to local storage: expected the listener to be reached, it heard nothing"
log "ok"
