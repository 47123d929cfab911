"""The fallback link behind a carrier NAT that drops plain SCTP, as most 3G/LTE carriers
and home NATs do:

    gw fb0 100.64.0.2 ── 100.64.0.1 cpe0 [carrier: masquerade, drop SCTP] wan0 10.203.0.254
                                                                  ── 10.203.0.15 fb0 ep

Built from an ordinary topology by moving the endpoint's end of the fallback veth into
a new "carrier" namespace and joining the carrier to the endpoint with a fresh veth
pair; the fallback shaping stays (gateway side: the 200 ms delay and rate; the
endpoint's rate limit is set again on its new device). The gateway reaches the
endpoint's fallback address through a plain route via the carrier — no default route,
so the gateway's link watcher keeps judging the uplink by its carrier alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.testbed import topology
from tests.testbed.netns import Netns, sh
from tests.testbed.topology import FALLBACK, Link, Topology

GW_ADDR, CARRIER_IN, CARRIER_OUT = "100.64.0.2", "100.64.0.1", "10.203.0.254"

# Plain SCTP dies in the carrier; UDP (so SCTP over UDP, RFC 6951) is masqueraded.
RULES = """
table ip carrier {
    chain forward {
        type filter hook forward priority 0; policy accept;
        meta l4proto sctp counter drop comment "sctp_drop"
        meta l4proto udp counter comment "udp_fwd"
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        oifname "wan0" masquerade
    }
}
"""


@dataclass
class NatBed:
    topo: Topology
    carrier: Netns

    def counter(self, comment: str) -> int:
        """Packets that matched the carrier's rule with this comment."""
        out = self.carrier.run("nft list table ip carrier").stdout
        for line in out.splitlines():
            if f'comment "{comment}"' in line:
                m = re.search(r"counter packets (\d+)", line)
                if m:
                    return int(m.group(1))
        raise KeyError(f"no rule {comment!r} in:\n{out}")

    def teardown(self) -> None:
        self.carrier.delete()
        self.topo.teardown()


def put_fallback_behind_nat(topo: Topology, fallback_rate: str = "3500kbit") -> Netns:
    """Rewire topo's fallback link through a masquerading, SCTP-dropping carrier."""
    fb = topo.links[FALLBACK]
    carrier = Netns(f"{topo.prefix}-carrier").create()
    sh("modprobe -q nft_masq", check=False)  # usually autoloaded; harmless when built in
    topo.ep.run(f"ip link set {fb.ep_dev} netns {carrier.name}")
    carrier.run(f"ip link set {fb.ep_dev} name cpe0")
    sh(f"ip link add wan0 netns {carrier.name} type veth peer name {fb.ep_dev} netns {topo.ep.name}")
    carrier.run(f"ip addr add {CARRIER_IN}/24 dev cpe0")
    carrier.run(f"ip addr add {CARRIER_OUT}/24 dev wan0")
    carrier.run("ip link set cpe0 up")
    carrier.run("ip link set wan0 up")
    carrier.sysctl("net.ipv4.ip_forward", 1)
    carrier.run(f"nft -f - <<'EOF'\n{RULES}\nEOF")
    topo.ep.run(f"ip addr add {fb.ep_addr}/{fb.prefix} dev {fb.ep_dev}")
    topo.ep.run(f"ip link set {fb.ep_dev} up")
    topo.ep.run(f"tc qdisc add dev {fb.ep_dev} root netem rate {fallback_rate} limit 10000")
    topo.gw.run(f"ip addr flush dev {fb.gw_dev}")
    topo.gw.run(f"ip addr add {GW_ADDR}/24 dev {fb.gw_dev}")
    topo.gw.run(f"ip route add {fb.ep_addr}/32 via {CARRIER_IN} dev {fb.gw_dev}")
    topo.links[FALLBACK] = Link(FALLBACK, fb.gw_dev, fb.ep_dev, GW_ADDR, fb.ep_addr, 24)
    return carrier


def build(**kw) -> NatBed:
    """A fresh Figure 1 topology whose fallback link goes through the carrier NAT."""
    topo = topology.build(**kw)
    try:
        carrier = put_fallback_behind_nat(topo, kw.get("fallback_rate", "3500kbit"))
    except BaseException:
        sh(f"ip netns del {topo.prefix}-carrier", check=False)
        topo.teardown()
        raise
    return NatBed(topo, carrier)


def change_external_port(carrier: Netns, ports: str = "40000-40999") -> None:
    """The carrier maps its flows to other external ports (as a CGNAT does when its
    mapping times out or it restarts): masquerade into a new port range and forget every
    existing mapping, so the next packet of each flow leaves from a new port."""
    from pyroute2 import Conntrack  # in the dev venv (requirements-dev.txt)

    carrier.run("nft flush chain ip carrier postrouting")
    # a port range needs the transport protocol matched first (nft refuses it otherwise)
    carrier.run(f"nft add rule ip carrier postrouting oifname wan0 meta l4proto udp masquerade to :{ports}")
    carrier.run("nft add rule ip carrier postrouting oifname wan0 masquerade")
    with carrier.enter():
        ct = Conntrack()
        try:
            ct.flush()
        finally:
            ct.close()
