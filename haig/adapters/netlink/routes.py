"""Policy routes pinning each endpoint address to its uplink.

A path is a peer address and Linux picks the source by routing, so each uplink gets:

* rule   `to <endpoint>/32 lookup <table>` at haig's rule priority;
* route  `<endpoint>/32 via <gateway> dev <device> src <local>` in that table;
* guard  `unreachable <endpoint>/32 metric GUARD_METRIC` in the same table.

The guard matters: when the device goes down the kernel flushes the pinned route
silently, and without the guard the lookup would fall through to the main table and
carry that path over *another* uplink — SCTP would then see a dead uplink as healthy.

`plan()` is pure (facts in, actions out); `RouteReconciler` dumps, plans and applies
with pyroute2's synchronous `IPRoute` (checked with pyroute2 0.9.7 and 0.7.9, the version
OpenWrt's feed ships), so the async daemon runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .facts import AF_INET, AddrFact, RouteFact, RuleFact, addr_fact, attr, route_fact, rule_fact
from .pyroute2_slim import iproute_class, netns_class
from .tracker import pick_address, uplink_device

log = logging.getLogger(__name__)

TABLE_BASE = 9900  # haig's routing tables: TABLE_BASE .. TABLE_BASE + TABLE_SPAN - 1
TABLE_SPAN = 64
RULE_PRIORITY = 990  # before mwan3 (1001+) and the main table (32766)
GUARD_METRIC = 65535
RTN_UNREACHABLE = 7
RT_SCOPE_NOWHERE = 255


@dataclass(frozen=True)
class PinRoute:
    uplink: str
    table: int
    dst: str
    oif: int | None  # None for the guard
    gateway: str | None = None
    prefsrc: str | None = None
    guard: bool = False

    @property
    def key(self) -> tuple:
        return (self.table, self.dst, 32, 0, GUARD_METRIC if self.guard else 0)

    def matches(self, r: RouteFact) -> bool:
        if r.key != self.key:
            return False
        if self.guard:
            return r.type == RTN_UNREACHABLE
        return (r.type, r.oifs, r.gateway, r.prefsrc) == (
            1,
            (self.oif,),
            self.gateway,
            self.prefsrc,
        )

    def describe(self) -> str:
        if self.guard:
            return f"unreachable {self.dst}/32 metric {GUARD_METRIC} table {self.table}"
        via = f" via {self.gateway}" if self.gateway else ""
        src = f" src {self.prefsrc}" if self.prefsrc else ""
        return f"{self.dst}/32{via} dev#{self.oif}{src} table {self.table}"


@dataclass
class Plan:
    put_routes: list[PinRoute] = field(default_factory=list)
    del_routes: list[RouteFact] = field(default_factory=list)
    add_rules: list[RuleFact] = field(default_factory=list)
    del_rules: list[RuleFact] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # uplink -> why its route is missing

    @property
    def empty(self) -> bool:
        return not (self.put_routes or self.del_routes or self.add_rules or self.del_rules)


@dataclass
class ReconcileResult:
    changes: list[str] = field(default_factory=list)  # what was done, human-readable
    skipped: dict[str, str] = field(default_factory=dict)  # uplink -> why it is not pinned


def describe_rule(r: RuleFact) -> str:
    return f"{r.priority}: to {r.dst}/{r.dst_len} lookup {r.table}"


def plan(
    uplinks: Sequence[Any],
    links: dict[str, int],
    addrs: Sequence[AddrFact],
    rules: Sequence[RuleFact],
    routes: Sequence[RouteFact],
    table_base: int = TABLE_BASE,
    rule_priority: int = RULE_PRIORITY,
) -> Plan:
    """What to change so the kernel holds exactly haig's pins for `uplinks`.

    links: ifname -> ifindex; addrs: IPv4 addresses; rules/routes: current IPv4 dumps
    (anything outside haig's priority and table range is left alone)."""
    tables = range(table_base, table_base + TABLE_SPAN)
    out = Plan()
    want_routes: list[PinRoute] = []
    want_rules: list[RuleFact] = []
    pinned: dict[str, str] = {}
    for i, u in enumerate(uplinks):
        # the primary endpoint's address, and the standby's (haig.core.endpoint_choice)
        dests = [a for a in (u.endpoint_address, getattr(u, "standby_address", "")) if a]
        if not dests:
            continue
        if i >= TABLE_SPAN:
            out.skipped[u.name] = f"more than {TABLE_SPAN} uplinks"
            continue
        table = table_base + i
        dev = uplink_device(u)
        for dest in dests:
            if dest in pinned:
                out.skipped[u.name] = f"endpoint {dest} already pinned to {pinned[dest]}"
                continue
            pinned[dest] = u.name
            want_rules.append(RuleFact(rule_priority, table, dest, 32))
            want_routes.append(PinRoute(u.name, table, dest, None, guard=True))
            if dev not in links:
                out.skipped[u.name] = f"device {dev} missing"
                continue
            oif = links[dev]
            local = u.local_address or pick_address(a for a in addrs if a.index == oif) or None
            want_routes.append(PinRoute(u.name, table, dest, oif, u.gateway or None, local))

    ours = [r for r in routes if r.table in tables]
    for w in want_routes:
        if not any(w.matches(r) for r in ours):
            out.put_routes.append(w)
    want_keys = {w.key for w in want_routes}
    out.del_routes = [r for r in ours if r.key not in want_keys]

    kept: set[RuleFact] = set()
    for r in rules:
        if r.priority != rule_priority and r.table not in tables:
            continue
        if r.is_plain_to_rule and r in want_rules and r not in kept:
            kept.add(r)
        else:
            out.del_rules.append(r)  # stale, foreign selectors at our priority, or a duplicate
    out.add_rules = [r for r in want_rules if r not in kept]
    return out


def _dump(ipr: Any) -> tuple[dict[str, int], list[AddrFact], list[RuleFact], list[RouteFact]]:
    links = {attr(m, "IFLA_IFNAME"): m["index"] for m in ipr.link("dump")}
    addrs = [f for f in map(addr_fact, ipr.addr("dump", family=AF_INET)) if f]
    rules = [f for f in map(rule_fact, ipr.rule("dump", family=AF_INET)) if f]
    routes = [f for f in map(route_fact, ipr.route("dump", family=AF_INET)) if f]
    return links, addrs, rules, routes


class RouteReconciler:
    """Installs and reconciles the pinning rules/routes. Idempotent: a second run changes nothing."""

    def __init__(
        self,
        uplinks: Sequence[Any],
        table_base: int = TABLE_BASE,
        rule_priority: int = RULE_PRIORITY,
        netns: str | None = None,
    ) -> None:
        self.uplinks = list(uplinks)
        self.table_base = table_base
        self.rule_priority = rule_priority
        self.netns = netns

    def set_device(self, uplink: str, device: str) -> None:
        """The uplink's device learnt at run time (netifd); the next reconcile uses it."""
        self.uplinks = [dataclasses.replace(u, device=device) if u.name == uplink else u for u in self.uplinks]

    def _ipr(self) -> Any:
        IPRoute = iproute_class()  # noqa: N806 (a class)
        if not self.netns:
            return IPRoute()
        try:
            return IPRoute(netns=self.netns)  # pyroute2 >= 0.9
        except TypeError:
            return netns_class()(self.netns)  # pyroute2 0.7 (OpenWrt's python3-pyroute2)

    def plan(self) -> Plan:
        with self._ipr() as ipr:
            return plan(self.uplinks, *_dump(ipr), self.table_base, self.rule_priority)

    def reconcile_sync(self) -> ReconcileResult:
        with self._ipr() as ipr:
            p = plan(self.uplinks, *_dump(ipr), self.table_base, self.rule_priority)
            return self._apply(ipr, p)

    async def reconcile(self) -> ReconcileResult:
        # pyroute2's sync IPRoute runs its own event loop: keep it off the daemon's loop.
        return await asyncio.to_thread(self.reconcile_sync)

    def remove_all_sync(self) -> ReconcileResult:
        with self._ipr() as ipr:
            p = plan((), *_dump(ipr), self.table_base, self.rule_priority)
            return self._apply(ipr, p)

    async def remove_all(self) -> ReconcileResult:
        return await asyncio.to_thread(self.remove_all_sync)

    def _apply(self, ipr: Any, p: Plan) -> ReconcileResult:
        res = ReconcileResult(skipped=dict(p.skipped))

        def attempt(what: str, uplink: str | None, call, *args, **kw) -> None:
            try:
                call(*args, **kw)
                res.changes.append(what)
            except Exception as e:  # NetlinkError / OSError: report, keep going
                code = getattr(e, "code", None) or getattr(e, "errno", None)
                if what.startswith("del") and code in (errno.ENOENT, errno.ESRCH):
                    return  # already gone: the goal is met
                log.warning("%s failed: %s", what, e)
                if uplink:
                    res.skipped[uplink] = f"{what}: {e}"

        # Rules last on add and first on delete, so no rule ever points at a half-built table.
        for r in p.del_rules:
            kw = dict(family=AF_INET, priority=r.priority, table=r.table)
            if r.dst:
                kw.update(dst=r.dst, dst_len=r.dst_len)
            if r.src:
                kw.update(src=r.src, src_len=r.src_len)
            attempt(f"del rule {describe_rule(r)}", None, ipr.rule, "del", **kw)
        for r in p.del_routes:
            kw = dict(
                family=AF_INET,
                table=r.table,
                dst=r.dst,
                dst_len=r.dst_len,
                tos=r.tos,
                priority=r.priority,
                type=r.type,
                scope=RT_SCOPE_NOWHERE,  # "any scope": pyroute2 would send 0 (universe) otherwise
            )
            attempt(
                f"del route {r.dst}/{r.dst_len} metric {r.priority} table {r.table}",
                None,
                ipr.route,
                "del",
                **kw,
            )
        for w in p.put_routes:
            kw = dict(family=AF_INET, table=w.table, dst=w.dst, dst_len=32)
            if w.guard:
                kw.update(type="unreachable", priority=GUARD_METRIC)
            else:
                kw.update(oif=w.oif)
                if w.gateway:
                    kw["gateway"] = w.gateway
                if w.prefsrc:
                    kw["prefsrc"] = w.prefsrc
            attempt(f"put route {w.describe()}", w.uplink, ipr.route, "replace", **kw)
        for r in p.add_rules:
            kw = dict(
                family=AF_INET, priority=r.priority, table=r.table, dst=r.dst, dst_len=r.dst_len
            )
            attempt(f"add rule {describe_rule(r)}", None, ipr.rule, "add", **kw)
        return res
