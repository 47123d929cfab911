"""Endpoint redundancy in the VM (issue 13): a home with a standby endpoint (a second
endpoint namespace behind the first, reached over both uplinks at its own addresses).
Sequence-numbered echoes flow; the primary endpoint is SIGKILLed → the gateway moves to
the standby and echoes come back through it; the primary is started again → the gateway
returns after the hold-down. An event each way, the status shows it, no traceback, no
relay restart. Times are printed; bounds are generous for emulation (TCG, contended)."""

from __future__ import annotations

import time

import pytest

from tests.testbed import topology, traffic
from tests.testbed.haig_procs import Haig, Service, assoc_up, endpoint_config, gateway_config
from tests.testbed.topology import FALLBACK, MAIN
from tests.vm.test_recovery import Echo, _listening_at, _no_tracebacks

STANDBY_AFTER, HOLD_DOWN = 5, 10


@pytest.fixture
def bed(topo):
    sb = topology.add_standby(topo)
    try:
        yield topo, sb
    finally:
        topology.remove_standby(topo)


@pytest.fixture
def procs():
    started: list[Haig] = []
    yield started
    for p in reversed(started):
        p.stop()
        print(f"--- {p.name} log ---\n{p.log()[-4000:]}")


def _on(which: str):
    return lambda s: assoc_up(s) and (s.get("endpoint") or {}).get("in_use") == which


class Trio:
    """Primary endpoint (ep), standby endpoint (ep2) and a gateway listing both, with
    sequence-numbered echoes from the client (through ep: the server; through ep2: an
    echo inside ep2)."""

    def __init__(self, topo, sb, procs, port: int, svc_port: int) -> None:
        self.topo, self.sb, self.port, self.sb_port = topo, sb, port, port + 1
        svc = [Service("echo", f"{topo.gw_lan_addr}:{svc_port}", f"{topo.server_addr}:{svc_port}", ttl=1000)]
        svc_sb = [Service("echo", svc[0].listen, f"127.0.0.1:{svc_port}", ttl=1000)]
        main = {"standby_port": self.sb_port, "standby_after": STANDBY_AFTER, "standby_hold_down": HOLD_DOWN}
        ups = {MAIN: {"standby_address": sb.addrs[MAIN]}, FALLBACK: {"standby_address": sb.addrs[FALLBACK]}}
        self.ep_cfg = endpoint_config(topo, port, svc)
        self.ep = Haig(topo.ep, self.ep_cfg, "ep").start()
        procs.append(self.ep)
        self.ep2 = Haig(sb.ns, endpoint_config(topo, self.sb_port, svc_sb,
                                               main={"bind": [sb.addrs[MAIN], sb.addrs[FALLBACK]]}),
                        "standby").start()
        procs.append(self.ep2)
        self.gw = Haig(topo.gw, gateway_config(topo, port, svc, main=main, uplinks=ups), "gw").start()
        procs.append(self.gw)
        self.sb_echo = traffic.Sink(traffic.udp_in(sb.ns, ("127.0.0.1", svc_port)), echo=True).start()
        self.echo = Echo(topo, svc_port, interval=0.05)

    def up_on_primary(self) -> None:
        st = self.gw.wait_for(_on("primary"), 120, "association up on the primary")
        assert st["endpoint"]["standby"] is True
        assert st["endpoint"]["address"] == self.topo.links[MAIN].ep_addr
        self.echo.first_after(time.monotonic(), 30)
        _listening_at(self.ep2)

    def on_standby(self, t_fault: float, what: str) -> float:
        st = self.gw.wait_for(_on("standby"), 90, "association up on the standby")
        t_sw = time.monotonic() - t_fault
        assert st["endpoint"]["address"] == self.sb.addrs[MAIN] and st["endpoint"]["port"] == self.sb_port
        assert {p["address"] for a in st["associations"] for p in a["paths"]} == set(self.sb.addrs.values())
        back = self.echo.first_after(time.monotonic(), 30)
        gap, _ = self.echo.back.rec.longest_gap(t_fault, time.monotonic())
        print(f"{what}: on the standby {t_sw:.2f} s later (standby_after {STANDBY_AFTER} s), "
              f"echo outage {gap:.2f} s, echo {back:.2f} s after the status said so")
        assert any(a.get("gateway_id") == "home1" and a["state"] == "up" for a in self.ep2.status()["associations"])
        return t_sw

    def back_on_primary(self, t_answers: float, what: str) -> None:
        assert self.gw.status()["endpoint"]["in_use"] == "standby"  # not at once: the hold-down runs first
        st = self.gw.wait_for(_on("primary"), 120, "association back on the primary")
        t_ret = time.monotonic() - t_answers
        self.echo.first_after(time.monotonic(), 30)
        print(f"{what}: returned {t_ret:.2f} s after the primary could answer (hold-down {HOLD_DOWN} s, "
              "probe every 5 s)")
        assert t_ret >= HOLD_DOWN - 1
        assert st["endpoint"]["address"] == self.topo.links[MAIN].ep_addr

    def check_events(self) -> None:
        evs = self.gw.events()
        sw = [(e["old"], e["new"]) for e in evs if e["kind"] == "endpoint_switch"]
        assert sw == [("primary", "standby"), ("standby", "primary")], sw
        assert not any(e["new"] == "restarting" for e in evs), "the relay was restarted"
        _no_tracebacks(self.gw, self.ep, self.ep2)

    def stop(self) -> None:
        self.echo.stop()
        self.sb_echo.stop()


def test_primary_killed_standby_takes_over_and_primary_returns_after_hold_down(bed, procs):
    topo, sb = bed
    t = Trio(topo, sb, procs, 8871, 7071)
    try:
        t.up_on_primary()
        # The primary endpoint dies (SIGKILL: its host answers INIT with ABORT from now on).
        t_kill = time.monotonic()
        t.ep.proc.kill()
        t.ep.proc.wait()
        procs.remove(t.ep)
        t_sw = t.on_standby(t_kill, "primary SIGKILLed")
        # The primary comes back: the gateway returns once it has answered for the hold-down.
        time.sleep(2)
        t.ep = Haig(topo.ep, t.ep_cfg, "ep-again").start()
        procs.append(t.ep)
        t.back_on_primary(_listening_at(t.ep), "primary restarted")
        t.check_events()
        assert t_sw < 60  # standby_after 5 s + a handshake; generous for emulation
    finally:
        t.stop()


def test_primary_site_silent_standby_takes_over_and_primary_returns_after_hold_down(bed, procs):
    """A dead site answers nothing (no ABORT): every path must be found unreachable first.
    The primary's SCTP is dropped in ep's input hook; forwarding to ep2 is untouched."""
    topo, sb = bed
    t = Trio(topo, sb, procs, 8881, 7081)
    addrs = ", ".join(topo.links[k].ep_addr for k in (MAIN, FALLBACK))
    try:
        t.up_on_primary()
        rules = (f"table inet haigsb {{\n chain in {{\n  type filter hook input priority 0;\n"
                 f"  ip daddr {{ {addrs} }} meta l4proto sctp drop\n }}\n}}")
        t0 = time.monotonic()
        topo.ep.run(f"nft -f - <<'EOF'\n{rules}\nEOF")
        t_cut = time.monotonic()  # in force by now (one `ip netns exec` takes seconds under TCG)
        print(f"primary site silent: the nft rule took {t_cut - t0:.2f} s to install")
        t_sw = t.on_standby(t_cut, "primary site silent")
        topo.ep.run("nft delete table inet haigsb")
        t.back_on_primary(time.monotonic(), "primary site answers again")
        t.check_events()
        assert t_sw < 90  # path failure detection (~4 s) + standby_after 5 s; generous for emulation
    finally:
        topo.ep.run("nft delete table inet haigsb", check=False)
        t.stop()
