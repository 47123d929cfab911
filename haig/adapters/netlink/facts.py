"""Netlink messages → plain facts (pure: no sockets, no pyroute2 import).

Works on pyroute2 messages and on plain dicts of the same shape
(`{"event": "RTM_NEWLINK", "index": 2, "flags": 4099, "attrs": [["IFLA_IFNAME", "eth1"], ...]}`),
so unit tests can feed recorded messages. The message layout is the same in pyroute2 0.7
and 0.9, which keeps this module independent of the pyroute2 version OpenWrt ships.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

AF_INET = 2
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
IFA_F_SECONDARY = 0x01
RTN_UNICAST = 1
RTM_F_CLONED = 0x200
RT_TABLE_LOCAL = 255
# RFC 2863 operstates, for parsers that hand IFLA_OPERSTATE over as a number
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")


@dataclass(frozen=True)
class LinkFact:
    index: int
    ifname: str
    admin_up: bool  # IFF_UP: an admin "link set down" flushes the device's IPv4 routes silently
    carrier: bool
    operstate: str  # "UP", "DOWN", "UNKNOWN", "DORMANT", "LOWERLAYERDOWN", ...
    gone: bool = False  # RTM_DELLINK


@dataclass(frozen=True)
class RouteFact:
    table: int
    dst: str  # "0.0.0.0" for the default route
    dst_len: int
    oifs: tuple[int, ...]  # RTA_OIF, or every nexthop's oif of a multipath route
    gateway: str | None = None
    prefsrc: str | None = None
    priority: int = 0  # metric; part of the route's identity with table/dst/tos
    tos: int = 0
    type: int = RTN_UNICAST
    gone: bool = False  # RTM_DELROUTE

    @property
    def key(self) -> tuple:
        """What the kernel tells IPv4 routes apart by (a "replace" hits the same key)."""
        return (self.table, self.dst, self.dst_len, self.tos, self.priority)

    @property
    def ident(self) -> tuple:
        """`key` plus the nexthop: appended routes (same key, other device) are distinct."""
        return (*self.key, self.oifs, self.gateway)

    @property
    def is_default(self) -> bool:
        return self.dst_len == 0 and self.type == RTN_UNICAST and self.table != RT_TABLE_LOCAL


@dataclass(frozen=True)
class AddrFact:
    index: int
    address: str
    prefixlen: int
    secondary: bool = False
    gone: bool = False  # RTM_DELADDR


@dataclass(frozen=True)
class RuleFact:
    priority: int
    table: int
    dst: str | None
    dst_len: int
    src: str | None = None
    src_len: int = 0
    action: int = 1  # FR_ACT_TO_TBL

    @property
    def is_plain_to_rule(self) -> bool:
        """Only a bare `to X/len lookup T` rule, the one haig installs."""
        return self.src is None and self.src_len == 0 and self.action == 1


Fact = LinkFact | RouteFact | AddrFact


def attr(msg: Any, name: str, default: Any = None) -> Any:
    for item in msg.get("attrs") or ():
        if item[0] == name:
            return item[1]
    return default


def _operstate(value: Any) -> str:
    if isinstance(value, int):
        return OPERSTATES[value] if 0 <= value < len(OPERSTATES) else "UNKNOWN"
    return str(value).upper()


def link_fact(msg: Any) -> LinkFact:
    flags = msg.get("flags", 0) or 0
    carrier = attr(msg, "IFLA_CARRIER")
    # IFLA_CARRIER is missing on very old kernels; IFF_LOWER_UP says the same.
    has_carrier = bool(carrier) if carrier is not None else bool(flags & IFF_LOWER_UP)
    return LinkFact(
        index=msg["index"],
        ifname=attr(msg, "IFLA_IFNAME", ""),
        admin_up=bool(flags & IFF_UP),
        carrier=has_carrier,
        operstate=_operstate(attr(msg, "IFLA_OPERSTATE", "UNKNOWN")),
        gone=msg.get("event") == "RTM_DELLINK",
    )


def _oifs(msg: Any) -> tuple[int, ...]:
    oif = attr(msg, "RTA_OIF")
    if oif is not None:
        return (oif,)
    return tuple(
        dict.fromkeys(nh["oif"] for nh in attr(msg, "RTA_MULTIPATH") or () if nh.get("oif"))
    )


def route_fact(msg: Any) -> RouteFact | None:
    if msg.get("family") != AF_INET or (msg.get("flags", 0) or 0) & RTM_F_CLONED:
        return None
    return RouteFact(
        table=attr(msg, "RTA_TABLE", msg.get("table", 0)),
        dst=attr(msg, "RTA_DST", "0.0.0.0"),
        dst_len=msg.get("dst_len", 0),
        oifs=_oifs(msg),
        gateway=attr(msg, "RTA_GATEWAY"),
        prefsrc=attr(msg, "RTA_PREFSRC"),
        priority=attr(msg, "RTA_PRIORITY", 0),
        tos=msg.get("tos", 0),
        type=msg.get("type", RTN_UNICAST),
        gone=msg.get("event") == "RTM_DELROUTE",
    )


def addr_fact(msg: Any) -> AddrFact | None:
    if msg.get("family") != AF_INET:
        return None
    # IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point links (PPP, LTE).
    address = attr(msg, "IFA_LOCAL") or attr(msg, "IFA_ADDRESS")
    if address is None:
        return None
    flags = attr(msg, "IFA_FLAGS", msg.get("flags", 0)) or 0
    return AddrFact(
        index=msg["index"],
        address=address,
        prefixlen=msg.get("prefixlen", 32),
        secondary=bool(flags & IFA_F_SECONDARY),
        gone=msg.get("event") == "RTM_DELADDR",
    )


def rule_fact(msg: Any) -> RuleFact | None:
    if msg.get("family") != AF_INET:
        return None
    return RuleFact(
        priority=attr(msg, "FRA_PRIORITY", 0),
        table=attr(msg, "FRA_TABLE", msg.get("table", 0)),
        dst=attr(msg, "FRA_DST"),
        dst_len=msg.get("dst_len", 0),
        src=attr(msg, "FRA_SRC"),
        src_len=msg.get("src_len", 0),
        action=msg.get("action", 1),
    )


_PARSERS = {
    "RTM_NEWLINK": link_fact,
    "RTM_DELLINK": link_fact,
    "RTM_NEWROUTE": route_fact,
    "RTM_DELROUTE": route_fact,
    "RTM_NEWADDR": addr_fact,
    "RTM_DELADDR": addr_fact,
}


def fact_from_msg(msg: Any) -> Fact | None:
    """The fact a link/route/address message carries; None for anything else (IPv6, rules...)."""
    parse = _PARSERS.get(msg.get("event"))
    return parse(msg) if parse else None


def facts_from_msgs(msgs: Iterable[Any]) -> list[Fact]:
    return [f for f in map(fact_from_msg, msgs) if f is not None]


def to_plain(msg: Any) -> dict:
    """A pyroute2 message as JSON-able dict of the fields the parsers read (for recordings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: plain(v) for k, v in value.items() if k not in ("header", "attrs")}
            if "attrs" in value:  # pyroute2's attributes are nla objects, not tuples
                out["attrs"] = [[a[0], plain(a[1])] for a in value["attrs"]]
            return out
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value if isinstance(value, str | int | float | bool | type(None)) else str(value)

    return plain(dict(msg))
