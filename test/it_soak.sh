#!/bin/bash
# it_soak: the bounded soak of `make test` (test/soak.sh for SOAK_SECONDS, default 30 here).
SOAK_SECONDS=${SOAK_SECONDS:-30}
export SOAK_SECONDS
. "$(dirname "$0")/soak.sh"
