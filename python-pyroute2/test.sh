#!/bin/sh
# Run by the packages feed's CI on the target after install ($1 = package).
[ "$1" = python3-pyroute2 ] || exit 0

python3 - <<'PY'
import pyroute2
from pyroute2 import AsyncIPRoute, IPRoute

# haig's netlink watcher needs the asyncio API of the 0.9 series.
assert callable(AsyncIPRoute) and callable(IPRoute)
major, minor = (int(x) for x in pyroute2.__version__.split(".")[:2])
assert (major, minor) >= (0, 9), pyroute2.__version__
PY
