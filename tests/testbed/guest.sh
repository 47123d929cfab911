#!/bin/sh
# Runs inside the test-bed VM (as root, host files read-only): load the kernel modules
# the bed needs, then run the given command with the project on PYTHONPATH.
set -u
for m in sctp sch_netem sch_tbf veth nf_tables nft_chain_nat nf_nat tun 8021q; do
    modprobe -q "$m" 2>/dev/null || echo "guest: module $m not loaded" >&2
done
export HAIG_IN_VM=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$HAIG_REPO${PYTHONPATH:+:$PYTHONPATH}"
cd "$HAIG_REPO" || exit 90
exec "$@"
