#!/bin/bash
# Test fixture: Debian's docker-registry on a free loopback port, in one of
# the modes the fetcher must handle (see /work/shared/tools/registry notes):
#   anon       anonymous pulls
#   basic      htpasswd Basic (bcrypt cost 5: the registry checks it per request)
#   token      Bearer tokens from test/registry/token_server.py
#   redirect   anonymous, blobs answered with 307 to test/registry/files_server.py
# plus TLS with a CA generated here ("tls" as second argument).
#
# Source it from a bash test:
#   REG_DIR=$(mktemp -d); . test/registry.sh; reg_start token tls
#   digest=$(reg_push test/blob FILE)  ...  reg_stop
# or run it: test/registry.sh start MODE [tls] DIR  (prints the URL; stop DIR).
# Every process started is recorded in $REG_DIR/pids and killed by reg_stop.

REG_TOOLS=${REG_TOOLS:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/registry}
REG_USER=testuser
REG_PASS=testpass

reg_free_port() {
	if declare -F free_port >/dev/null; then
		free_port # test/lib.sh: below the ephemeral range
	else
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
	fi
}

reg_log() { echo "registry.sh: $*" >&2; }

# A CA and a server certificate for 127.0.0.1, made fresh for each run.
reg_tls_init() {
	local d=$REG_DIR/tls
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=overlaybd-test-ca \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null || return 1
	openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
		-keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null || return 1
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' \
		>"$d/ext.cnf"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
}

# Start a background process; its pid goes to REG_LAST_PID, $REG_DIR/pids
# and, under test/lib.sh, to the EXIT trap's list.
reg_bg() {
	"$@" >>"$REG_DIR/procs.log" 2>&1 &
	REG_LAST_PID=$!
	echo "$REG_LAST_PID" >>"$REG_DIR/pids"
	if declare -F track_pid >/dev/null; then
		track_pid "$REG_LAST_PID"
	fi
}

reg_wait_http() { # URL: wait until something answers
	local i
	for i in $(seq 1 100); do
		local code
		code=$(curl -s -o /dev/null -w '%{http_code}' ${REG_CA:+--cacert "$REG_CA"} "$1")
		[ "$code" != 000 ] && return 0
		sleep 0.1
	done
	reg_log "nothing answers at $1"
	return 1
}

reg_write_config() {
	local c=$REG_DIR/config.yml
	cat >"$c" <<EOC
version: 0.1
log: {level: warn, formatter: text, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $REG_DIR/data}
  cache: {blobdescriptor: inmemory}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
http:
  addr: 127.0.0.1:$REG_PORT
  secret: $(openssl rand -hex 16)
  headers: {X-Content-Type-Options: [nosniff]}
EOC
	[ -n "$REG_TLS" ] && cat >>"$c" <<EOC
  tls: {certificate: $REG_DIR/tls/server.pem, key: $REG_DIR/tls/server.key}
EOC
	case $REG_MODE in
	basic) cat >>"$c" <<EOC
auth:
  htpasswd: {realm: basic-realm, path: $REG_DIR/auth/htpasswd}
EOC
		;;
	token) cat >>"$c" <<EOC
auth:
  token:
    realm: $REG_SCHEME://127.0.0.1:$REG_TOKEN_PORT/token
    service: registry.test
    issuer: token-issuer.test
    rootcertbundle: $REG_DIR/token/signer.pem
EOC
		;;
	redirect) cat >>"$c" <<EOC
middleware:
  storage:
    - name: redirect
      options: {baseurl: http://127.0.0.1:$REG_FILES_PORT}
EOC
		;;
	esac
}

# The registry process alone (also used to restart it on the same port).
reg_start_registry() {
	reg_bg env -u AWS_CA_BUNDLE docker-registry serve "$REG_DIR/config.yml"
	REG_PID=$REG_LAST_PID
	echo "$REG_PID" >"$REG_DIR/registry.pid"
	reg_wait_http "$REG_URL/v2/"
}

reg_stop_registry() { # [KILL]: SIGKILL at once
	local pid
	pid=$(cat "$REG_DIR/registry.pid" 2>/dev/null) || return 0
	kill ${1:+-KILL} "$pid" 2>/dev/null
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$REG_DIR/registry.pid"
}

reg_start() { # MODE [tls]
	REG_MODE=$1
	REG_TLS=${2:+1}
	[ -n "$REG_DIR" ] || { reg_log "REG_DIR not set"; return 1; }
	mkdir -p "$REG_DIR/data" "$REG_DIR/auth" "$REG_DIR/token" "$REG_DIR/state"
	REG_SCHEME=http
	REG_CA=
	if [ -n "$REG_TLS" ]; then
		reg_tls_init || return 1
		REG_SCHEME=https
		REG_CA=$REG_DIR/tls/ca.pem
	fi
	REG_PORT=$(reg_free_port)
	REG_URL=$REG_SCHEME://127.0.0.1:$REG_PORT
	case $REG_MODE in
	anon) ;;
	basic)
		htpasswd -B -C 5 -b -c "$REG_DIR/auth/htpasswd" "$REG_USER" "$REG_PASS" 2>/dev/null ||
			return 1 ;;
	token)
		REG_TOKEN_PORT=$(reg_free_port)
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=token-signer \
			-keyout "$REG_DIR/token/signer.key" -out "$REG_DIR/token/signer.pem" \
			2>/dev/null || return 1
		echo "$REG_USER:$REG_PASS" >"$REG_DIR/token/users"
		reg_bg python3 "$REG_TOOLS/token_server.py" --port "$REG_TOKEN_PORT" \
			--key "$REG_DIR/token/signer.key" --users "$REG_DIR/token/users" \
			--state "$REG_DIR/state" --expires "${REG_TOKEN_EXPIRES:-300}" \
			${REG_TLS:+--tls-cert "$REG_DIR/tls/server.pem" --tls-key "$REG_DIR/tls/server.key"}
		reg_wait_http "$REG_SCHEME://127.0.0.1:$REG_TOKEN_PORT/token" || return 1 ;;
	redirect)
		REG_FILES_PORT=$(reg_free_port)
		reg_bg python3 "$REG_TOOLS/files_server.py" --port "$REG_FILES_PORT" \
			--root "$REG_DIR/data" --state "$REG_DIR/state"
		reg_wait_http "http://127.0.0.1:$REG_FILES_PORT/" || return 1 ;;
	*) reg_log "unknown mode $REG_MODE"; return 1 ;;
	esac
	reg_write_config
	reg_start_registry
}

# curl against the registry with whatever push credentials the mode needs.
reg_curl() { # REPO curl-args...
	local repo=$1 tok
	shift
	case $REG_MODE in
	basic) curl -sS -u "$REG_USER:$REG_PASS" ${REG_CA:+--cacert "$REG_CA"} "$@" ;;
	token)
		tok=$(curl -sS -u "$REG_USER:$REG_PASS" ${REG_CA:+--cacert "$REG_CA"} \
			"$REG_SCHEME://127.0.0.1:$REG_TOKEN_PORT/token?service=registry.test&scope=repository:$repo:pull,push" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || return 1
		curl -sS -H "Authorization: Bearer $tok" ${REG_CA:+--cacert "$REG_CA"} "$@" ;;
	*) curl -sS ${REG_CA:+--cacert "$REG_CA"} "$@" ;;
	esac
}

# Monolithic upload (distribution API: POST opens a session, one PUT with
# the whole body and ?digest= closes it); prints the digest.
reg_push() { # REPO FILE
	local repo=$1 file=$2 digest loc code sep
	digest=sha256:$(sha256sum "$file" | cut -d' ' -f1)
	loc=$(reg_curl "$repo" -o /dev/null -D - -X POST "$REG_URL/v2/$repo/blobs/uploads/" |
		tr -d '\r' | sed -n 's/^[Ll]ocation: *//p') || return 1
	[ -n "$loc" ] || { reg_log "push to $repo: no upload location"; return 1; }
	case $loc in /*) loc=$REG_URL$loc ;; esac
	case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
	code=$(reg_curl "$repo" -o /dev/null -w '%{http_code}' -X PUT \
		-H 'Content-Type: application/octet-stream' --data-binary @"$file" \
		"$loc${sep}digest=$digest") || return 1
	if [ "$code" != 201 ]; then
		reg_log "push of $file to $repo: HTTP $code"
		return 1
	fi
	echo "$digest"
}

# test/registry/fault_proxy.py in front of the registry: REG_FAULT_URL,
# control file REG_FAULT_CTL ("ok", "500 N", "429 N", "slow MS", "reset N", "short N").
reg_fault_start() {
	REG_FAULT_PORT=$(reg_free_port)
	REG_FAULT_CTL=$REG_DIR/fault.ctl
	mkdir -p "$REG_DIR/fault"
	echo ok >"$REG_FAULT_CTL"
	reg_bg python3 "$REG_TOOLS/fault_proxy.py" --port "$REG_FAULT_PORT" \
		--upstream "127.0.0.1:$REG_PORT" --control "$REG_FAULT_CTL" --state "$REG_DIR/fault"
	REG_FAULT_URL=http://127.0.0.1:$REG_FAULT_PORT
	reg_wait_http "$REG_FAULT_URL/v2/"
}

reg_stop() {
	local pid
	[ -f "$REG_DIR/pids" ] || return 0
	while read -r pid; do
		kill "$pid" 2>/dev/null
	done <"$REG_DIR/pids"
	sleep 0.2
	while read -r pid; do
		kill -9 "$pid" 2>/dev/null
	done <"$REG_DIR/pids"
	rm -f "$REG_DIR/pids" "$REG_DIR/registry.pid"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case $1 in
	start)
		REG_DIR=$4
		[ -n "$REG_DIR" ] || REG_DIR=$3
		[ "$3" = tls ] || set -- "$1" "$2" "" "$3"
		mkdir -p "$REG_DIR" && reg_start "$2" "$3" || exit 1
		echo "$REG_URL" ;;
	stop) REG_DIR=$2; reg_stop ;;
	*) echo "usage: $0 start anon|basic|token|redirect [tls] DIR | stop DIR" >&2; exit 2 ;;
	esac
fi
