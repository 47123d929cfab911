"""The fallback uplink behind a carrier NAT that drops plain SCTP (nftables in a carrier
namespace): with `udp_encap 1` the SCTP-over-UDP path comes up through the NAT, carries
traffic and takes over when the main link dies; without it, that path never comes up
(so the NAT really does drop SCTP)."""

from __future__ import annotations

import time

import pytest

from tests.testbed import nat, traffic
from tests.testbed.haig_procs import (
    UPLINK,
    Haig,
    Service,
    Started,
    assoc_up,
    relayed,
)
from tests.testbed.topology import FALLBACK, MAIN

LTE, DSL = UPLINK[FALLBACK], UPLINK[MAIN]


@pytest.fixture(scope="module")
def bed():
    b = nat.build()
    try:
        yield b
    finally:
        b.teardown()


@pytest.fixture
def started(bed):
    procs = Started()
    try:
        yield procs
    finally:
        bed.topo.impair.clear()
        procs.stop_all(3000)


def _uplink(st: dict, name: str) -> dict:
    return next(u for u in st["uplinks"] if u["name"] == name)


def _ep_path(st: dict, addr: str) -> str | None:
    return next((p["state"] for a in st["associations"] for p in a.get("paths", [])
                 if p["address"] == addr), None)


def _daemons(bed, started, port: int, svc: list[Service], encap: bool) -> tuple[Haig, Haig]:
    return started.pair(bed.topo, port, svc, uplinks={FALLBACK: {"udp_encap": 1}} if encap else {})


def test_udp_encap_through_nat_carries_traffic_and_fails_over(bed, started):
    topo = bed.topo
    svc = [relayed(topo, "echo", 7201)]
    gw, ep = _daemons(bed, started, 8821, svc, encap=True)
    echo = traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, 7201)), echo=True).start()
    sock = traffic.udp_in(topo.client)
    back = traffic.Sink(sock).start()
    sender = None
    try:
        st = gw.wait_for(lambda s: assoc_up(s) and _uplink(s, LTE)["state"] == "active"
                         and _uplink(s, DSL)["state"] == "active", 90,
                         "association up, both paths active (LTE through the NAT)")
        assert _uplink(st, LTE)["udp_encap"] and not _uplink(st, DSL)["udp_encap"]
        udp0 = bed.counter("udp_fwd")
        assert udp0 > 0  # the LTE path's packets crossed the carrier as UDP
        # ...masqueraded: the endpoint knows that path by the carrier's address only.
        st = ep.wait_for(lambda s: _ep_path(s, nat.CARRIER_OUT) == "active", 20,
                         "endpoint sees the LTE path as the carrier's address, active")
        print(f"endpoint's paths: { {p['address']: p['state'] for a in st['associations'] for p in a['paths']} }")

        sender = traffic.Sender(sock, (topo.gw_lan_addr, 7201), interval=0.02, size=200).start()
        time.sleep(2.0)
        assert len(back.rec.seqs) > 0, "no echo over the main link"
        lte_rx0 = _uplink(gw.status(), LTE)["rx_bytes"]

        fault = topo.impair.loss(MAIN, 100)
        gw.wait_for(lambda s: s.get("primary") == LTE, 30, "failover to the NATed LTE uplink")
        switched = time.monotonic()
        time.sleep(3.0)
        window = [t for t in back.rec.times if t > switched]
        sent_in_window = sum(1 for t in sender.rec.send_times if switched < t < time.monotonic() - 1.0)
        gap, _ = back.rec.longest_gap(fault.asked)
        print(f"after failover: {len(window)} echoes in 3 s ({sent_in_window} sent in the first 2 s); "
              f"longest gap {gap * 1000:.0f} ms; udp through the carrier {bed.counter('udp_fwd')} "
              f"(was {udp0}), sctp dropped {bed.counter('sctp_drop')}")
        # Echoes keep coming back over the encapsulated, NATed path (generous: half).
        assert len(window) >= 0.5 * sent_in_window > 0
        st = gw.status()
        assert _uplink(st, LTE)["rx_bytes"] > lte_rx0
        assert bed.counter("udp_fwd") > udp0
        # The endpoint answers over the NATed path too (the gateway announced it).
        ep.wait_for(lambda s: any(a.get("primary") == nat.CARRIER_OUT for a in s["associations"]),
                    20, "endpoint replies via the carrier's address")
    finally:
        if sender is not None:
            sender.stop()
        back.stop()
        echo.stop()


def test_without_udp_encap_the_nat_keeps_the_fallback_down(bed, started):
    topo = bed.topo
    svc = [relayed(topo, "echo", 7202)]
    drops0 = bed.counter("sctp_drop")
    gw, _ = _daemons(bed, started, 8822, svc, encap=False)
    # The kernel calls a connectx'd address active until its first heartbeats go
    # unanswered; with heartbeats every 500 ms the NATed path is found dead in seconds...
    gw.wait_for(lambda s: assoc_up(s) and _uplink(s, DSL)["state"] == "active"
                and _uplink(s, LTE)["state"] in ("pf", "unreachable"), 90,
                "association up over the main link, LTE path found dead")
    # ...and, heartbeats still going out, it never comes back.
    states = set()
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        states.add(_uplink(gw.status(), LTE)["state"])
        time.sleep(0.3)
    dropped = bed.counter("sctp_drop") - drops0
    print(f"LTE states seen without udp_encap: {sorted(map(str, states))}; sctp dropped {dropped}")
    assert "active" not in states
    assert dropped > 0  # plain SCTP towards the LTE address died in the carrier
