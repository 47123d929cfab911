"""Real peers over haig: Debian's OpenVPN (UDP) from the client namespace to the server
namespace, carried by the gateway and endpoint daemons; ping and iperf3 through the
tunnel; the tunnel keeps answering when the main link dies."""

from __future__ import annotations

import pytest

from tests.testbed import iperf, openvpn
from tests.testbed.haig_procs import (
    UPLINK,
    Haig,
    Service,
    endpoint_config,
    gateway_config,
    paths_active,
)
from tests.testbed.topology import FALLBACK, MAIN


@pytest.fixture
def started():
    procs: list = []
    yield procs
    for p in reversed(procs):
        p.stop()
        print(f"--- {p.name} log ---\n{p.log()[-3000:]}")  # shown for a failing test only


def test_openvpn_over_haig_ping_iperf3_and_main_loss(topo, started, tmp_path):
    vpn_port = 1194
    svc = [Service("openvpn", f"{topo.gw_lan_addr}:{vpn_port}", f"{topo.server_addr}:{vpn_port}")]
    ep = Haig(topo.ep, endpoint_config(topo, 8811, svc), "ep").start()
    started.append(ep)
    gw = Haig(topo.gw, gateway_config(topo, 8811, svc), "gw").start()
    started.append(gw)
    certs = openvpn.make_certs(tmp_path / "certs")
    gw.wait_for(paths_active, 90, "association up with both paths active")

    srv = openvpn.server(topo.server, certs, topo.server_addr, vpn_port)
    started.append(srv)
    cli = openvpn.client(topo.client, certs, topo.gw_lan_addr, vpn_port)
    started.append(cli)
    took = openvpn.wait_tunnel(topo.client, openvpn.TUN_SERVER, 90, (srv, cli))
    print(f"tunnel up after {took:.1f} s")

    p = openvpn.ping(topo.client, openvpn.TUN_SERVER, 10)
    print(f"ping through the tunnel: {p.received}/{p.sent}, avg {p.avg_ms} ms")
    assert p.received >= 8, p

    rep = iperf.tcp(topo.client, topo.server, openvpn.TUN_SERVER, seconds=3)
    print(f"iperf3 TCP through OpenVPN over haig: {rep['mbps']:.2f} Mbit/s, {rep['bytes']} bytes")
    assert rep["bytes"] > 0
    st = gw.status()
    tx = sum(u["tx_bytes"] for u in st["uplinks"])
    print(f"haig tx by uplink: { {u['name']: u['tx_bytes'] for u in st['uplinks']} }")
    assert tx >= rep["bytes"]  # the tunnel's bytes really went through haig
    assert st["flows"] and st["flows"][0]["service"] == "openvpn"

    # The main link dies: haig moves to the fallback, the tunnel keeps answering.
    topo.impair.loss(MAIN, 100)
    gw.wait_for(lambda s: s.get("primary") == UPLINK[FALLBACK], 30, "failover to the fallback")
    p = openvpn.ping(topo.client, openvpn.TUN_SERVER, 8, interval=0.5, wait=3)
    print(f"ping over the fallback: {p.received}/{p.sent}, avg {p.avg_ms} ms")
    assert p.received >= 4, p
    # The fallback adds 200 ms one way: replies that fast came over it, not over main.
    assert min(p.rtts_ms) >= 150, p
