#!/bin/bash
# bench/tgt.sh: Debian's tgtd (tgt 1.0.85), the anchor of `make bench`.
#
#   bench/tgt.sh start DIR BACKING PORT   start tgtd, serve BACKING as LUN 1 of
#                                         iqn.2026-11.io.overlaybd.bench:tgt on
#                                         127.0.0.1:PORT; prints tgtd's pid
#   bench/tgt.sh stop DIR                 stop that tgtd
#
# bench/run.sh sources this file instead and calls tgt_start/tgt_stop, so that
# tgtd is its own child (it sets TGT_PID) and is reaped by it.
#
# tgtd runs in the foreground (-f) as our child, on its own control port (-C),
# so it never meets a system tgtd or another run's: the management socket is
# /var/run/tgtd/socket.<control port>.  Its log goes to DIR/tgtd.log, its pid
# to DIR/tgtd.pid.  LUN 0 of a tgt target is its controller; the disk is LUN 1.
# The backing store is tgt's default "rdwr" (pread/pwrite on its I/O threads),
# i.e. the raw file through the page cache.
set -u

TGT_IQN=iqn.2026-11.io.overlaybd.bench:tgt

_tgt_die() {
	echo "tgt.sh: $*" >&2
	exit 1
}

# A control port nobody uses: the socket file is the lock.
_tgt_ctl_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((4000 + RANDOM % 20000))
		[ -e "/var/run/tgtd/socket.$p" ] || { echo "$p"; return 0; }
	done
	return 1
}

tgt_start() {
	local dir=$1 backing=$2 port=$3 ctl pid i
	command -v tgtd >/dev/null || _tgt_die "tgtd not installed (make deps)"
	[ -f "$backing" ] || _tgt_die "no backing file $backing"
	mkdir -p "$dir"
	ctl=$(_tgt_ctl_port) || _tgt_die "no free tgtd control port"
	tgtd -f -C "$ctl" --iscsi "portal=127.0.0.1:$port" >"$dir/tgtd.log" 2>&1 &
	pid=$!
	TGT_PID=$pid
	echo "$pid" >"$dir/tgtd.pid"
	echo "$ctl" >"$dir/tgtd.ctl"
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || _tgt_die "tgtd exited at start; see $dir/tgtd.log"
		tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 &&
			ss -Hltn "sport = :$port" | grep -q LISTEN && break
		sleep 0.1
	done
	tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$TGT_IQN" &&
		tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 \
			-b "$backing" &&
		tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL ||
		{ tgt_stop "$dir"; _tgt_die "tgtadm could not set up the target"; }
}

tgt_stop() {
	local dir=$1 pid ctl i
	[ -f "$dir/tgtd.pid" ] || return 0
	pid=$(cat "$dir/tgtd.pid")
	ctl=$(cat "$dir/tgtd.ctl" 2>/dev/null)
	if kill -0 "$pid" 2>/dev/null; then
		[ -n "$ctl" ] && tgtadm -C "$ctl" --op update --mode sys --name State \
			-v offline >/dev/null 2>&1
		kill -TERM "$pid" 2>/dev/null
		for i in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -f "$dir/tgtd.pid" "/var/run/tgtd/socket.$ctl" "/var/run/tgtd/socket.$ctl.lock"
}

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
case "${1:-}" in
start)
	[ $# -eq 4 ] || _tgt_die "usage: tgt.sh start DIR BACKING PORT"
	tgt_start "$2" "$3" "$4"
	echo "$TGT_PID"
	;;
stop)
	[ $# -eq 2 ] || _tgt_die "usage: tgt.sh stop DIR"
	tgt_stop "$2"
	;;
*)
	_tgt_die "usage: tgt.sh start DIR BACKING PORT | stop DIR"
	;;
esac
