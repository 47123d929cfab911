"""pyroute2's IPRoute without the rest of pyroute2.

`import pyroute2` runs its __init__, which imports every API it has (conntrack, ipset,
nl80211, wireguard, NDB, plan9...: ~160 modules, +13 MiB resident on a router whose
budget for all of haig is 25 MiB). haig needs only the rtnetlink socket classes, so
the package module is created without running __init__; the submodules import as
usual. Should anything later ask the package itself for a name (`from pyroute2 import
X`), the real __init__ runs then, once, into the same module: nothing breaks, it only
costs the memory again. Checked with pyroute2 0.7.9, 0.7.12 (OpenWrt's feed) and 0.9.7.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any


def _package() -> ModuleType:
    mod = sys.modules.get("pyroute2")
    if mod is not None:
        return mod
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:
        raise ImportError("No module named 'pyroute2'")
    mod = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not run

    def __getattr__(name: str) -> Any:  # PEP 562: the full package, on first demand
        # `from pyroute2 import config` (inside pyroute2) asks for a submodule: let the
        # import system load it rather than running __init__ (hasattr comes first).
        if name.startswith("__") or importlib.util.find_spec(f"pyroute2.{name}") is not None:
            raise AttributeError(name)
        mod.__dict__.pop("__getattr__", None)
        spec.loader.exec_module(mod)
        return getattr(mod, name)

    mod.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules["pyroute2"] = mod
    return mod


def _linux() -> ModuleType:
    _package()
    try:
        from pyroute2.iproute import linux
    except ImportError:
        # /usr/bin/haig blocks ssl to save memory (0.7 never needs it); 0.9 imports it
        # unconditionally: unblock and try once more, so the saving never breaks it.
        blocked = [m for m in ("ssl", "_ssl") if m in sys.modules and sys.modules[m] is None]
        if not blocked:
            raise
        for m in blocked:
            del sys.modules[m]
        from pyroute2.iproute import linux
    return linux


def iproute_class() -> type:
    return _linux().IPRoute


def async_iproute_class() -> type | None:
    """AsyncIPRoute (pyroute2 >= 0.9), or None (0.7: no asyncio API)."""
    return getattr(_linux(), "AsyncIPRoute", None)


def netns_class() -> type:
    """pyroute2 0.7's NetNS (an IPRoute in a namespace, through a helper process)."""
    _package()
    from pyroute2.nslink.nslink import NetNS

    return NetNS


def pushns(netns: str) -> None:
    _package()
    from pyroute2.netns import pushns as _pushns

    _pushns(netns)


def popns() -> None:
    _package()
    from pyroute2.netns import popns as _popns

    _popns()
