#!/bin/sh
# Install the Debian packages the build and the tests need, only when one is
# missing, so a warm machine pays nothing.  Needs root for apt-get.
# "install-deps.sh coldstart" adds what make bench-coldstart needs.
set -e
PKGS="gcc make pkg-config clang libev-dev libcurl4-openssl-dev libssl-dev libjansson-dev
libaio-dev liblz4-dev libzstd-dev libsystemd-dev libext2fs-dev libcmocka-dev libiscsi-dev libiscsi-bin
qemu-utils qemu-block-extra tgt iperf3 docker-registry apache2-utils e2fsprogs python3 xxd
valgrind jq iproute2 openssl curl time"
[ "${1:-}" = coldstart ] && PKGS="$PKGS mmdebstrap strace"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: need root to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
