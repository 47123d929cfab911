"""LinkTracker: link/route/address facts → each uplink's link state (pure, no I/O).

An uplink is *up* when its device exists, is administratively up, has carrier, its
operstate is UP or UNKNOWN (tun/ppp devices report UNKNOWN), it has a local IPv4
address (the configured one, or any address of the device when the config leaves it
empty), and — when the uplink has a `gateway` configured or a default route via the
device was ever seen — a default route via the device exists.

The kernel flushes a device's IPv4 routes without RTM_DELROUTE when the device goes
administratively down, so the tracker forgets them itself on that RTM_NEWLINK.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .facts import AddrFact, Fact, LinkFact, RouteFact

OPER_OK = ("UP", "UNKNOWN")


class Change(NamedTuple):
    uplink: str
    up: bool
    reason: str


@dataclass(frozen=True)
class UplinkState:
    up: bool
    reason: str
    local_address: str  # "" when unknown
    device: str
    ifindex: int | None = None


def uplink_device(uplink: Any) -> str:
    """The Linux device an uplink is watched on: `device`, else the interface name as is.

    On OpenWrt the NetifdWatcher resolves logical interfaces (wan → pppoe-wan) and tells
    the LinkWatcher the device at run time (LinkWatcher.set_device)."""
    return uplink.device or uplink.interface or uplink.name


def pick_address(addrs: Iterable[AddrFact]) -> str:
    """A device's own IPv4 address: primary addresses first, then the lowest, for stability."""
    ranked = sorted(addrs, key=lambda a: (a.secondary, tuple(int(x) for x in a.address.split("."))))
    return ranked[0].address if ranked else ""


class LinkTracker:
    def __init__(self, uplinks: Sequence[Any]) -> None:
        self._uplinks = [
            (u.name, uplink_device(u), u.local_address, bool(u.gateway)) for u in uplinks
        ]
        self._links: dict[int, LinkFact] = {}
        self._routes: dict[tuple, RouteFact] = {}  # default routes only, by RouteFact.ident
        self._addrs: dict[tuple[int, str], AddrFact] = {}
        # Devices a default route was seen through: losing it then means losing the uplink.
        # Kept across resyncs and device removal (a memory, not a fact of the kernel).
        self._had_default: set[str] = set()
        self._seen_devices: set[str] = set()
        self._emitted: dict[str, UplinkState] = {}

    # -- feeding facts --------------------------------------------------------------

    def load(self, facts: Iterable[Fact]) -> list[Change]:
        """Replace everything known with a full dump (start-up, resync after overrun)."""
        self._links.clear()
        self._routes.clear()
        self._addrs.clear()
        for fact in facts:
            self._absorb(fact)
        return self._diff()

    def apply(self, fact: Fact) -> list[Change]:
        """One event; returns the uplinks whose state changed because of it."""
        self._absorb(fact)
        return self._diff()

    def apply_all(self, facts: Iterable[Fact]) -> list[Change]:
        for fact in facts:
            self._absorb(fact)
        return self._diff()

    def states(self) -> dict[str, UplinkState]:
        return {
            name: self._evaluate(name, dev, local, gw) for name, dev, local, gw in self._uplinks
        }

    def set_device(self, uplink: str, device: str) -> list[Change]:
        """The uplink's device learnt at run time (netifd's l3_device); re-evaluates it."""
        self._uplinks = [
            (name, device if name == uplink else dev, local, gw) for name, dev, local, gw in self._uplinks
        ]
        return self._diff()

    def addresses_of(self, device: str) -> list[AddrFact]:
        index = self._index_of(device)
        return [a for (i, _), a in self._addrs.items() if i == index]

    # -- internals -----------------------------------------------------------------

    def _absorb(self, fact: Fact) -> None:
        if isinstance(fact, LinkFact):
            self._absorb_link(fact)
        elif isinstance(fact, RouteFact):
            if not fact.is_default:
                return  # only default routes matter; a router's other routes are not kept
            if fact.gone:
                if self._routes.pop(fact.ident, None) is None and not fact.oifs:
                    # a delete naming no nexthop: drop every route of that key
                    self._routes = {k: r for k, r in self._routes.items() if r.key != fact.key}
            else:
                self._routes[fact.ident] = fact
                self._had_default.update(
                    self._links[i].ifname for i in fact.oifs if i in self._links
                )
        elif isinstance(fact, AddrFact):
            if fact.gone:
                self._addrs.pop((fact.index, fact.address), None)
            else:
                self._addrs[(fact.index, fact.address)] = fact

    def _absorb_link(self, fact: LinkFact) -> None:
        if fact.gone:
            self._links.pop(fact.index, None)
            self._forget_routes(fact.index)
            self._addrs = {k: a for k, a in self._addrs.items() if a.index != fact.index}
            return
        old = self._links.get(fact.index)
        self._links[fact.index] = fact
        self._seen_devices.add(fact.ifname)
        if not fact.admin_up and (old is None or old.admin_up):
            self._forget_routes(fact.index)
        if old is None:
            # Routes dumped before their link (or a default route seen early) name this device now.
            for route in self._routes.values():
                if fact.index in route.oifs:
                    self._had_default.add(fact.ifname)

    def _forget_routes(self, index: int) -> None:
        self._routes = {k: r for k, r in self._routes.items() if index not in r.oifs}

    def _index_of(self, device: str) -> int | None:
        for index, link in self._links.items():
            if link.ifname == device:
                return index
        return None

    def _evaluate(self, name: str, dev: str, configured: str, has_gateway: bool) -> UplinkState:
        index = self._index_of(dev)

        def down(reason: str, local: str = configured) -> UplinkState:
            return UplinkState(False, reason, local, dev, index)

        if index is None:
            return down(
                f"device {dev} gone" if dev in self._seen_devices else f"device {dev} missing"
            )
        link = self._links[index]
        addrs = [a for (i, _), a in self._addrs.items() if i == index]
        local = configured or pick_address(addrs)
        if not link.admin_up:
            return down(f"{dev} administratively down", local)
        if not link.carrier:
            return down(f"carrier lost on {dev}", local)
        if link.operstate not in OPER_OK:
            return down(f"{dev} operstate {link.operstate.lower()}", local)
        if not local:
            return down(f"no IPv4 address on {dev}", local)
        if configured and configured not in {a.address for a in addrs}:
            return down(f"address {configured} not on {dev}", local)
        if has_gateway or dev in self._had_default:
            if not any(index in r.oifs for r in self._routes.values()):
                if dev in self._had_default:
                    return down(f"default route via {dev} removed", local)
                return down(f"no default route via {dev}", local)
        return UplinkState(True, f"{dev} up, local address {local}", local, dev, index)

    def _diff(self) -> list[Change]:
        changes = []
        for name, state in self.states().items():
            old = self._emitted.get(name)
            if old is None or (old.up, old.reason) != (state.up, state.reason):
                changes.append(Change(name, state.up, state.reason))
            self._emitted[name] = state
        return changes
