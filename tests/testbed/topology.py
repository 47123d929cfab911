"""The report's Figure 1 rebuilt from network namespaces (inside the VM):

    client ── gw ══ main     (10.202.0.0/24) ══ ep ── server
                 ══ fallback (10.203.0.0/24) ══

* client 10.1.0.2 → gw 10.1.0.1 (LAN); server 10.2.0.2 ← ep 10.2.0.1 (hospital LAN).
* main: gw 10.202.0.1, ep 10.202.0.15; fallback: gw 10.203.0.1, ep 10.203.0.15
  (the report's 192.168.202/203 subnets, moved to 10/8 so nothing here looks like a LAN).
* The fallback is shaped like the report's 3G link on the gateway side: netem 200 ms delay
  and 3.5 Mbit/s; the endpoint side gets the same rate limit. The main link carries a
  zero-delay netem qdisc on both ends so loss can be changed with `tc qdisc change`.
* Only two namespaces are strictly needed for SCTP tests (gw, ep); client and server
  exist for end-to-end peers (OpenVPN, iperf3).

An optional second endpoint (`add_standby`, only for the tests that ask for it): a
namespace `ep2` behind ep, reached over each uplink at its own address (10.212.0.15 via
main, 10.213.0.15 via fallback; ep routes for it), so the primary endpoint can be
killed while the standby stays reachable on both paths.

Namespace names carry a per-instance prefix so a leftover from a failed test never
collides with the next one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tests.testbed.impair import Impairments
from tests.testbed.netns import Netns, sh

_instance = itertools.count(1)

MAIN, FALLBACK = "main", "fallback"


@dataclass
class Link:
    name: str
    gw_dev: str
    ep_dev: str
    gw_addr: str
    ep_addr: str
    prefix: int = 24


@dataclass
class Topology:
    prefix: str
    client: Netns
    gw: Netns
    ep: Netns
    server: Netns
    links: dict[str, Link] = field(default_factory=dict)
    client_addr: str = "10.1.0.2"
    gw_lan_addr: str = "10.1.0.1"
    server_addr: str = "10.2.0.2"
    ep_lan_addr: str = "10.2.0.1"
    impair: Impairments = None  # type: ignore[assignment]
    standby: Standby | None = None
    fallback_shape: str = "delay 200ms rate 3500kbit limit 10000"  # its gateway-side netem

    @property
    def namespaces(self) -> list[Netns]:
        return [self.client, self.gw, self.ep, self.server] + ([self.standby.ns] if self.standby else [])

    def teardown(self) -> None:
        for ns in self.namespaces:
            ns.delete()


@dataclass
class Standby:
    """The second endpoint: `addrs[link]` is its address reached over that uplink."""
    ns: Netns
    addrs: dict[str, str]
    routes: list[str]  # the gateway's routes to it, removed with it


def add_standby(topo: Topology) -> Standby:
    """Give the bed a second endpoint namespace (idempotent); remove_standby undoes it."""
    if topo.standby is not None:
        return topo.standby
    sb = Standby(Netns(f"{topo.prefix}-ep2"), {}, [])
    sb.ns.create()
    topo.standby = sb
    try:
        for i, (name, net) in enumerate(((MAIN, "10.212.0"), (FALLBACK, "10.213.0"))):
            link = topo.links[name]
            dev = f"sb{i}"
            _veth(topo.ep, dev, sb.ns, dev)
            topo.ep.run(f"ip addr add {net}.1/24 dev {dev}")
            sb.ns.run(f"ip addr add {net}.15/24 dev {dev}")
            topo.ep.run(f"ip link set {dev} up")
            sb.ns.run(f"ip link set {dev} up")
            sb.ns.run(f"ip route add {link.gw_addr.rsplit('.', 1)[0]}.0/{link.prefix} via {net}.1 dev {dev}")
            route = f"{net}.0/24 via {link.ep_addr} dev {link.gw_dev}"
            topo.gw.run(f"ip route add {route}")
            sb.routes.append(route)
            sb.addrs[name] = f"{net}.15"
    except BaseException:
        remove_standby(topo)
        raise
    return sb


def remove_standby(topo: Topology) -> None:
    sb, topo.standby = topo.standby, None
    if sb is None:
        return
    for r in sb.routes:
        topo.gw.run(f"ip route del {r}", check=False)
    sb.ns.delete()  # its veths (and ep's ends) go with it


def _veth(a: Netns, a_dev: str, b: Netns, b_dev: str) -> None:
    sh(f"ip link add {a_dev} netns {a.name} type veth peer name {b_dev} netns {b.name}")


def build(fallback_delay_ms: int = 200, fallback_rate: str = "3500kbit",
          sctp_sysctls: dict[str, str | int] | None = None) -> Topology:
    """Create the namespaces, links and shaping. Raises (after cleaning up) on failure."""
    n = next(_instance)
    p = f"hb{n}"
    topo = Topology(
        prefix=p,
        client=Netns(f"{p}-client"), gw=Netns(f"{p}-gw"),
        ep=Netns(f"{p}-ep"), server=Netns(f"{p}-server"),
    )
    try:
        for ns in topo.namespaces:
            ns.create()
        topo.links[MAIN] = Link(MAIN, "main0", "main0", "10.202.0.1", "10.202.0.15")
        topo.links[FALLBACK] = Link(FALLBACK, "fb0", "fb0", "10.203.0.1", "10.203.0.15")
        # LANs
        _veth(topo.client, "lan0", topo.gw, "lan0")
        _veth(topo.ep, "lan0", topo.server, "lan0")
        topo.client.run(f"ip addr add {topo.client_addr}/24 dev lan0")
        topo.gw.run(f"ip addr add {topo.gw_lan_addr}/24 dev lan0")
        topo.ep.run(f"ip addr add {topo.ep_lan_addr}/24 dev lan0")
        topo.server.run(f"ip addr add {topo.server_addr}/24 dev lan0")
        for ns in (topo.client, topo.gw, topo.ep, topo.server):
            ns.run("ip link set lan0 up")
        topo.client.run(f"ip route add default via {topo.gw_lan_addr}")
        topo.server.run(f"ip route add default via {topo.ep_lan_addr}")
        # Uplinks
        for link in topo.links.values():
            _veth(topo.gw, link.gw_dev, topo.ep, link.ep_dev)
            topo.gw.run(f"ip addr add {link.gw_addr}/{link.prefix} dev {link.gw_dev}")
            topo.ep.run(f"ip addr add {link.ep_addr}/{link.prefix} dev {link.ep_dev}")
            topo.gw.run(f"ip link set {link.gw_dev} up")
            topo.ep.run(f"ip link set {link.ep_dev} up")
        # Main: zero-delay netem on both ends, so loss is a `tc qdisc change` away.
        main = topo.links[MAIN]
        topo.gw.run(f"tc qdisc add dev {main.gw_dev} root netem delay 0ms limit 10000")
        topo.ep.run(f"tc qdisc add dev {main.ep_dev} root netem delay 0ms limit 10000")
        # Fallback: the report's 3G shaping (200 ms + 3.5 Mbit/s) on the gateway, rate limit back.
        fb = topo.links[FALLBACK]
        topo.fallback_shape = f"delay {fallback_delay_ms}ms rate {fallback_rate} limit 10000"
        topo.gw.run(f"tc qdisc add dev {fb.gw_dev} root netem {topo.fallback_shape}")
        topo.ep.run(f"tc qdisc add dev {fb.ep_dev} root netem rate {fallback_rate} limit 10000")
        for ns in (topo.gw, topo.ep):
            ns.sysctl("net.ipv4.ip_forward", 1)
            for k, v in (sctp_sysctls or {}).items():
                ns.sysctl(k, v)
        topo.impair = Impairments(topo)
    except BaseException:
        topo.teardown()
        raise
    return topo
