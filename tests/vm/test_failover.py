"""Path policy against real faults (issue 4): datagrams every 10 ms through haig while the
main link loses packets or goes down; the report's 3G shaping on the fallback.

Bounds are generous for software emulation; the measured numbers are printed, and the
benchmark (tests/bench/failover.py) compares them with kernel defaults.
"""

from __future__ import annotations

import time

import pytest

from tests.testbed import traffic
from tests.testbed.haig_procs import (
    UPLINK,
    Haig,
    Service,
    endpoint_config,
    gateway_config,
    paths_active,
)
from tests.testbed.topology import FALLBACK, MAIN

HOLD_DOWN = 5.0
PORT = 8850
BULK, ALARM = 7300, 7301
DSL, LTE = UPLINK[MAIN], UPLINK[FALLBACK]


@pytest.fixture(scope="module")
def pair(_shared_topo):
    topo = _shared_topo
    svcs = [Service("bulk", f"{topo.gw_lan_addr}:{BULK}", f"{topo.server_addr}:{BULK}", ttl=1000),
            Service("alarm", f"{topo.gw_lan_addr}:{ALARM}", f"{topo.server_addr}:{ALARM}", ttl=5000,
                    critical=True)]
    ep = Haig(topo.ep, endpoint_config(topo, PORT, svcs), "ep").start()
    gw = Haig(topo.gw, gateway_config(topo, PORT, svcs, main={"hold_down": int(HOLD_DOWN)}), "gw").start()
    try:
        yield topo, gw, ep
    finally:
        for p in (gw, ep):
            p.stop()
            print(f"--- {p.name} log (tail) ---\n{p.log()[-3000:]}")


def _settled(gw: Haig, timeout: float = 120) -> None:
    """Both paths active and the preferred uplink carrying traffic (after any hold-down)."""
    gw.wait_for(lambda s: paths_active(s) and s["primary"] == DSL, timeout, "dsl primary, both paths active")


def _switches(gw: Haig, since_seq: int) -> list[dict]:
    return [e for e in gw.events() if e["seq"] > since_seq and e["kind"] in ("failover", "failback")]


def _run(topo, port: int, fault, before: float = 1.5, after: float = 3.0):
    """Traffic at 10 ms; `fault()` returns the impairment's Change; returns (record, change)."""
    sink = traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, port))).start()
    cli = traffic.udp_in(topo.client)
    snd = traffic.Sender(cli, (topo.gw_lan_addr, port), interval=0.01).start()
    try:
        time.sleep(before)
        change = fault()
        time.sleep(after)
    finally:
        sent = snd.stop()
        time.sleep(1.5)  # let the last datagrams (200 ms fallback) arrive
        rec = sink.stop()
        cli.close()
    rec.sent = sent.sent
    return rec, change


def test_total_loss_on_main_fails_over_fast_and_back_once(pair):
    topo, gw, _ = pair
    _settled(gw)
    seq0 = gw.status()["last_event_seq"]
    rec, ch = _run(topo, BULK, lambda: topo.impair.loss(MAIN, 100), after=5.0)
    gap, _ = rec.longest_gap(ch.asked - 0.2)
    print(f"100% loss: longest gap {gap * 1000:.0f} ms (tc took {(ch.effective - ch.asked) * 1000:.0f} ms); "
          f"lost {rec.lost()} of {rec.sent}; dups {rec.duplicates()}")
    assert gw.status()["primary"] == LTE
    # Kernel defaults gave ~1.3 s in the notes; target <= 400 ms; emulation noise allowed.
    assert gap < 1.0
    assert rec.duplicates() == 0
    restored = topo.impair.loss(MAIN, 0)
    t_restored = time.time()
    gw.wait_for(lambda s: s["primary"] == DSL, HOLD_DOWN + 60, "failback to dsl")
    sw = _switches(gw, seq0)
    print("switches:", [(e["kind"], e["old"], e["new"], round(e["t"] - t_restored, 2)) for e in sw])
    assert [e["kind"] for e in sw] == ["failover", "failback"]
    # not before the hold-down: the main link must prove itself first
    assert sw[1]["t"] - t_restored >= HOLD_DOWN - 0.5, restored
    # and traffic flows on the main link again, nothing lost
    after, _ = _run(topo, BULK, lambda: None, before=1.0, after=1.0)
    print(f"after failback: lost {after.lost()} of {after.sent}; gw drops {gw.status()['drops']}")
    assert after.sent > 100 and after.lost() == 0
    assert gw.status()["primary"] == DSL


@pytest.mark.parametrize("loss", [10, 50])
def test_lossy_main_switches_at_most_once_each_way(pair, loss):
    topo, gw, _ = pair
    _settled(gw)
    seq0 = gw.status()["last_event_seq"]
    marks = {}

    def window():
        marks["start"] = time.time()
        start, end = topo.impair.window(MAIN, loss, 5.0)
        marks["end"] = time.time()
        return start

    rec, ch = _run(topo, BULK, window, before=1.0, after=0.5)
    # after the window: recovery (if it switched) within hold-down + settling time
    gw.wait_for(lambda s: s["primary"] == DSL, HOLD_DOWN + 60, "dsl primary again")
    time.sleep(1.0)
    sw = _switches(gw, seq0)
    kinds = [e["kind"] for e in sw]
    gap, _ = rec.longest_gap(ch.asked - 0.2)
    print(f"{loss}% loss for 5 s: switches {kinds} at "
          f"{[round(e['t'] - marks['start'], 2) for e in sw]} s after the loss began "
          f"(loss ended at {marks['end'] - marks['start']:.2f} s); longest gap {gap * 1000:.0f} ms; "
          f"lost {rec.lost()} of {rec.sent}")
    assert kinds in ([], ["failover", "failback"]), kinds


def test_link_down_moves_traffic_at_once(pair):
    topo, gw, _ = pair
    _settled(gw)
    seq0 = gw.status()["last_event_seq"]
    wall = {}

    def down():
        wall["asked"] = time.time()
        ch = topo.impair.down(MAIN)
        wall["effective"] = time.time()
        return ch

    try:
        rec, ch = _run(topo, BULK, down, after=3.0)
    finally:
        topo.impair.up(MAIN)
    sw = _switches(gw, seq0)
    assert sw and sw[0]["kind"] == "failover" and sw[0]["new"] == LTE
    react = sw[0]["t"] - wall["asked"]
    gap, _ = rec.longest_gap(ch.asked - 0.2)
    print(f"link down: failover {react * 1000:.0f} ms after `ip link set down` was issued, "
          f"{(sw[0]['t'] - wall['effective']) * 1000:.0f} ms after it returned "
          f"(the command took {(ch.effective - ch.asked) * 1000:.0f} ms); longest arrival gap {gap * 1000:.0f} ms")
    # Target 300 ms. The carrier drops somewhere inside the `ip` command, which itself
    # takes 0.2-2 s under emulation: bound the reaction by the moment it returned.
    assert sw[0]["t"] - wall["effective"] < 0.3
    assert "carrier" in sw[0]["reason"] or "down" in sw[0]["reason"], sw[0]
    assert gap < 1.0


def test_critical_flow_loses_nothing_across_total_failure(pair):
    topo, gw, _ = pair
    _settled(gw)
    rec, ch = _run(topo, ALARM, lambda: topo.impair.loss(MAIN, 100), after=4.0)
    topo.impair.loss(MAIN, 0)
    gap, _ = rec.longest_gap(ch.asked - 0.2)
    print(f"critical flow, 100% loss: lost {rec.lost()} of {rec.sent}; dups delivered "
          f"{rec.duplicates()}; longest gap {gap * 1000:.0f} ms")
    assert rec.sent > 400
    assert rec.lost() == 0
    assert rec.duplicates() == 0
