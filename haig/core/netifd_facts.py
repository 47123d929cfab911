"""netifd interface status → one uplink's facts (pure: no ubus, no I/O).

On OpenWrt an uplink is a *logical* interface (`wan`, `wwan`); netifd knows its Linux
device, addresses and next hop and reports them as `ubus call network.interface.<name>
status`:

    {"up": true, "l3_device": "pppoe-wan", "device": "dsl0", "proto": "pppoe",
     "ipv4-address": [{"address": "100.64.7.2", "mask": 32, "ptpaddress": "10.64.64.64"}],
     "ipv6-address": [{"address": "2001:db8:1::2", "mask": 64}],
     "route": [{"target": "0.0.0.0", "mask": 0, "nexthop": "10.64.64.64", "source": "..."}]}

The same object is the payload of netifd's `interface.update` notification. The
`network.interface` ubus *event* only says `{"action": "ifup"|"ifdown", "interface":
"wan"}`, so on an event the status is queried again.

An uplink is up for haig when netifd says `up` AND the interface has a device and an
address of the endpoint's family (a PPPoE session still negotiating is `up: false`;
an LTE bearer with only IPv6 cannot carry an IPv4 path).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

UNSPECIFIED = {4: "0.0.0.0", 6: "::"}


@dataclass(frozen=True)
class UplinkFacts:
    interface: str
    up: bool
    device: str | None  # l3_device (pppoe-wan, wwan0, eth1); None while netifd has none
    local_address: str | None  # first address of the endpoint's family
    nexthop: str | None  # the default route's next hop of that family (None: on-link/ptp)
    reason: str

    @property
    def key(self) -> tuple:
        """What a consumer must hear about when it changes (the reason text alone is not)."""
        return (self.up, self.device, self.local_address, self.nexthop)


def endpoint_family(address: str) -> int:
    """4 or 6 for an endpoint address; a host name (resolved later) counts as IPv4."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return 4


def _addresses(status: dict[str, Any], family: int) -> list[str]:
    out: list[str] = []
    for entry in status.get(f"ipv{family}-address") or []:
        addr = entry.get("address") if isinstance(entry, dict) else None
        if isinstance(addr, str) and addr:
            out.append(addr)
    if family == 6:
        # A delegated prefix's own address counts when netifd lists no plain address.
        for assignment in status.get("ipv6-prefix-assignment") or []:
            local = assignment.get("local-address") if isinstance(assignment, dict) else None
            if isinstance(local, dict) and local.get("address"):
                out.append(local["address"])
    return [a for a in out if not ipaddress.ip_address(a).is_link_local]


def _default_nexthop(status: dict[str, Any], family: int) -> str | None:
    for route in status.get("route") or []:
        if not isinstance(route, dict) or route.get("mask") != 0:
            continue
        target = route.get("target")
        if target != UNSPECIFIED[family]:
            continue
        hop = route.get("nexthop")
        return hop if hop and hop != UNSPECIFIED[family] else None
    return None


def facts_from_status(interface: str, status: dict[str, Any] | None, family: int = 4) -> UplinkFacts:
    """Facts of one interface from its netifd status (None: netifd does not know it)."""
    if status is None:
        return UplinkFacts(interface, False, None, None, None, f"netifd has no interface {interface}")
    device = status.get("l3_device") or None
    addrs = _addresses(status, family)
    local = addrs[0] if addrs else None
    hop = _default_nexthop(status, family)
    where = f"{interface} ({device})" if device else interface
    if not status.get("up"):
        pending = " (coming up)" if status.get("pending") else ""
        errors = [e.get("code") for e in status.get("errors") or [] if isinstance(e, dict)]
        why = f", error {', '.join(str(e) for e in errors)}" if errors else ""
        return UplinkFacts(interface, False, device, None, None, f"netifd: {where} down{pending}{why}")
    if device is None:
        return UplinkFacts(interface, False, None, local, hop, f"netifd: {interface} up without a device")
    if local is None:
        return UplinkFacts(interface, False, device, None, hop, f"netifd: no IPv{family} address on {where}")
    via = f" via {hop}" if hop else ""
    return UplinkFacts(interface, True, device, local, hop, f"netifd: {where} up, local address {local}{via}")


def event_interface(event: str, data: Any) -> str | None:
    """The interface a `network.interface` event or notification is about, else None.

    Events: `{"action": "ifup"|"ifdown", "interface": "wan"}`; notifications
    (`interface.update`, `interface.down`) carry `interface` plus the full status."""
    if not isinstance(data, dict):
        return None
    name = data.get("interface")
    return name if isinstance(name, str) and name else None


def status_in_notification(event: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The status object an `interface.update`/`interface.down` notification carries (its
    own fields, as `status` returns them), or None for a plain event that carries none."""
    if event in ("interface.update", "interface.down") and "up" in data:
        return data
    return None


class FactsDiff:
    """Last facts per uplink; `update` says whether a consumer must be told."""

    def __init__(self) -> None:
        self._last: dict[str, UplinkFacts] = {}

    def update(self, uplink: str, facts: UplinkFacts) -> bool:
        old = self._last.get(uplink)
        self._last[uplink] = facts
        return old is None or old.key != facts.key

    def get(self, uplink: str) -> UplinkFacts | None:
        return self._last.get(uplink)
