#!/bin/sh
# Run by the packages feed's CI on the target after install ($1 = package).
[ "$1" = python3-pysctp ] || exit 0

python3 - <<'PY'
import _sctp
import sctp

# The C extension loaded (libsctp linked) and the Python API is there.
for name in ("sctpsocket_tcp", "sctpsocket_udp", "paddrparams", "MSG_UNORDERED"):
    assert hasattr(sctp, name), name
assert hasattr(_sctp, "bindx") and hasattr(_sctp, "connectx")
PY
