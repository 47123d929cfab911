"""Endpoint redundancy on a fake clock: the pure choice (haig.core.endpoint_choice) and the
gateway core switching its association between a primary and a standby endpoint core."""

from __future__ import annotations

import dataclasses
import random

from haig.config.model import Config, Main, Uplink
from haig.core.endpoint_choice import PROBE_INTERVAL, EndpointChoice, Probe, Switch
from haig.core.endpoint_session import EndpointCore
from haig.core.gateway_link import Connect, Disconnect, GatewayLink, ProbeEndpoint
from haig.core.states import AssocState, EndpointRole, PathState
from tests.unit.relay_bench import (
    DSL_EP,
    DSL_GW,
    KEY,
    LTE_EP,
    LTE_GW,
    PORT,
    endpoint_config,
    services,
)

PRIMARY, STANDBY = EndpointRole.PRIMARY, EndpointRole.STANDBY
AFTER, HOLD = 5.0, 30.0


class Clocked:
    """An EndpointChoice with its timer fired as a driver would, actions collected."""

    def __init__(self, has_standby: bool = True, after: float = AFTER, hold: float = HOLD) -> None:
        self.now = 0.0
        self.c = EndpointChoice(has_standby, after, hold, 0.0)
        self.actions: list = []
        self.events: list = []
        self.admit: set = set()  # endpoints that admit the gateway right after a switch to them

    def run_until(self, t: float, probe_ok: bool | None = None) -> None:
        while (due := self.c.get_timer()) is not None and due <= t:
            self.now = max(self.now, due)
            self.c.handle_timer(self.now)
            self._drain(probe_ok)
        self.now = t
        self._drain(probe_ok)

    def _drain(self, probe_ok: bool | None) -> None:
        while (a := self.c.next_action()) is not None:
            self.actions.append((self.now, a))
            if isinstance(a, Probe) and probe_ok is not None:
                self.c.probe_result(probe_ok, self.now)
            if isinstance(a, Switch) and a.to in self.admit:
                self.c.admitted(self.now)
        while (e := self.c.next_event()) is not None:
            self.events.append(e)

    def switches(self) -> list[tuple[float, EndpointRole]]:
        return [(t, a.to) for t, a in self.actions if isinstance(a, Switch)]


def test_a_primary_down_for_the_threshold_moves_to_the_standby_once():
    k = Clocked()
    k.c.down(10.0, "cannot associate: connection refused")
    k.run_until(14.9)
    assert k.c.in_use is PRIMARY and not k.switches()
    k.run_until(15.0)
    assert k.switches() == [(15.0, STANDBY)]
    ev = k.events[-1]
    assert (ev.kind, ev.old, ev.new) == ("endpoint_switch", "primary", "standby")
    assert "unreachable on every path" in ev.reason and "connection refused" in ev.reason
    k.c.admitted(16.0)
    k.run_until(100.0)  # no probes answered: stays on the standby
    assert k.switches() == [(15.0, STANDBY)] and k.c.in_use is STANDBY


def test_a_primary_restarting_within_the_threshold_keeps_the_home():
    k = Clocked()
    k.c.down(10.0, "association lost")
    k.run_until(13.0)
    k.c.admitted(13.0)  # back after 3 s
    k.run_until(60.0)
    assert k.switches() == [] and k.c.in_use is PRIMARY


def test_no_standby_configured_never_switches():
    k = Clocked(has_standby=False)
    k.c.down(0.0, "x")
    k.run_until(3600.0)
    assert k.switches() == [] and k.c.get_timer() is None


def test_back_to_the_primary_after_it_answered_probes_for_the_hold_down():
    k = Clocked()
    k.admit = {PRIMARY}
    k.c.down(0.0, "lost")
    k.run_until(5.0)
    k.c.admitted(6.0)  # on the standby, admitted
    k.run_until(5.0 + PROBE_INTERVAL * 3, probe_ok=False)  # primary still dead
    assert k.c.in_use is STANDBY
    t_ok = k.now
    k.run_until(t_ok + 200.0, probe_ok=True)
    sw = k.switches()
    assert [to for _, to in sw] == [STANDBY, PRIMARY]
    assert HOLD <= sw[1][0] - t_ok <= HOLD + PROBE_INTERVAL
    ev = k.events[-1]
    assert (ev.old, ev.new) == ("standby", "primary") and "answered for 30 s" in ev.reason
    assert sum(isinstance(a, Probe) for t, a in k.actions if t > sw[1][0]) == 0  # no probes on the primary


def test_probe_results_pass_through_the_view():
    k = Clocked()
    k.c.down(0.0, "lost")
    k.run_until(5.0)
    k.c.admitted(5.5)
    k.run_until(5.0 + PROBE_INTERVAL, probe_ok=True)
    v = k.c.view(k.now)
    assert v["in_use"] == "standby" and v["primary_answering_since"] == k.now and v["return_in_s"] == HOLD


def test_a_flapping_primary_is_never_returned_to():
    k = Clocked()
    k.c.down(0.0, "lost")
    k.run_until(5.0)
    k.c.admitted(5.5)
    ok = True
    for _ in range(40):  # answers every other probe, for 40 probe intervals
        k.run_until(k.now + PROBE_INTERVAL, probe_ok=ok)
        ok = not ok
    assert [to for _, to in k.switches()] == [STANDBY]


def test_a_return_that_does_not_hold_doubles_the_next_hold_down():
    k = Clocked()
    k.admit = {PRIMARY, STANDBY}
    k.c.down(0.0, "lost")
    k.run_until(5.0)
    k.c.admitted(5.5)
    k.run_until(100.0, probe_ok=True)
    t_back = k.switches()[-1][0]
    k.c.admitted(t_back + 1)
    k.c.down(t_back + 2, "lost again")  # the primary falls over right after the return
    k.run_until(t_back + 2 + AFTER)
    assert k.c.in_use is STANDBY
    k.c.admitted(k.now + 0.5)
    t_std = k.now
    k.run_until(t_std + 500.0, probe_ok=True)
    back2 = k.switches()[-1]
    assert back2[1] is PRIMARY and back2[0] - t_std >= 2 * HOLD


def test_both_down_alternates_with_growing_dwell_and_is_never_stuck():
    k = Clocked()
    k.c.down(0.0, "lost")
    k.run_until(600.0, probe_ok=False)
    sw = k.switches()
    assert len(sw) >= 5, sw
    assert [to for _, to in sw[:4]] == [STANDBY, PRIMARY, STANDBY, PRIMARY]
    gaps = [b[0] - a[0] for a, b in zip(sw, sw[1:], strict=False)]
    assert gaps[0] < gaps[1] < gaps[2] and max(gaps) <= 8 * AFTER  # growing, capped
    assert k.c.get_timer() is not None  # still trying


def test_standby_down_and_primary_answering_returns_at_once():
    k = Clocked()
    k.c.down(0.0, "lost")
    k.run_until(5.0)  # switched; the standby never admits
    k.run_until(5.0 + PROBE_INTERVAL, probe_ok=True)
    assert [to for _, to in k.switches()] == [STANDBY, PRIMARY]
    assert k.switches()[-1][0] == 5.0 + PROBE_INTERVAL
    assert "standby is not up" in k.events[-1].reason


def test_reload_removing_or_changing_the_standby_goes_back_to_the_primary():
    for has, changed, word in ((False, False, "removed"), (True, True, "changed")):
        k = Clocked()
        k.c.down(0.0, "lost")
        k.run_until(5.0)
        k.c.admitted(5.5)
        k.c.reconfigure(has, AFTER, HOLD, 7.0, standby_changed=changed)
        k.run_until(7.0)
        assert k.c.in_use is PRIMARY and word in k.events[-1].reason
    k = Clocked()
    k.c.reconfigure(True, 2.0, 10.0, 1.0)  # new thresholds only: nothing moves
    k.c.down(1.0, "lost")
    k.run_until(3.0)
    assert k.switches() == [(3.0, STANDBY)]


# -- the gateway core between two endpoint cores ------------------------------------------

SB_DSL, SB_LTE = "198.51.100.101", "198.51.100.102"


def _gw_config() -> Config:
    main = Main(role="gateway", gateway_id="home1", key=KEY, port=PORT, hold_down=5, max_datagram=1400,
                standby_after=5, standby_hold_down=20, standby_port=8899)
    ups = (Uplink("dsl", device="dsl0", metric=1, endpoint_address=DSL_EP, standby_address=SB_DSL,
                  local_address=DSL_GW),
           Uplink("lte", device="lte0", metric=2, endpoint_address=LTE_EP, standby_address=SB_LTE,
                  local_address=LTE_GW))
    return Config(main=main, uplinks=ups, services=services())


class TwoEndpoints:
    """A GatewayLink and two EndpointCores; `alive` says which endpoint answers."""

    def __init__(self) -> None:
        self.now = 0.0
        self.gw = GatewayLink(_gw_config(), 0.0, rand=random.Random(1), nonce=lambda n: b"g" * n)
        self.eps = {e: EndpointCore(endpoint_config(), 0.0, nonce=lambda n: bytes(range(n)))
                    for e in (PRIMARY, STANDBY)}
        self.alive = {PRIMARY: True, STANDBY: True}
        self.on: EndpointRole | None = None  # endpoint of the live association
        self.assoc = 1
        self.connects: list = []
        self.probes: list = []
        self.events: list = []

    @staticmethod
    def which(peers) -> EndpointRole:
        return STANDBY if peers[0][0] in (SB_DSL, SB_LTE) else PRIMARY

    def kill(self, e: EndpointRole) -> None:
        self.alive[e] = False
        if self.on is e:
            self.on = None
            self.gw.association_lost("association lost (peer unreachable)", self.now)

    def pump(self) -> None:
        for _ in range(50):
            moved = False
            while (a := self.gw.next_action()) is not None:
                moved = True
                if isinstance(a, Connect):
                    e = self.which(a.peers)
                    self.connects.append((self.now, e, a.peers))
                    if not self.alive[e]:
                        self.gw.connect_failed("connection refused", self.now)
                        continue
                    self.on, self.assoc = e, self.assoc + 1
                    self.eps[e] = EndpointCore(endpoint_config(), self.now, nonce=lambda n: bytes(range(n))) \
                        if self.eps[e] is None else self.eps[e]
                    self.gw.connected(self.now)
                    self.eps[e].association_up(self.assoc, self.now)
                    for u in ("dsl", "lte"):
                        self.gw.path_sample(u, PathState.ACTIVE, self.now, srtt_ms=10, rto_ms=200, cwnd=4380)
                elif isinstance(a, Disconnect) and self.on is not None:
                    self.eps[self.on].association_gone(self.assoc, "peer closed", self.now)
                    self.on = None
                elif isinstance(a, ProbeEndpoint):
                    e = self.which(a.peers)
                    assert e is PRIMARY
                    self.probes.append((self.now, a))
                    self.gw.probe_result(self.alive[e], "", self.now)
            for e, ep in self.eps.items():
                while ep.next_action() is not None:
                    moved = True
                for q in ep.queues():
                    while (item := q.peek()) is not None:
                        moved = True
                        q.pop()
                        if self.on is e:
                            self.gw.receive_message(item.data, (self.gw.path_to(self.gw.uplinks[0])[0], 0), self.now)
            while (item := self.gw.queue.peek()) is not None:
                moved = True
                self.gw.queue.pop()
                if self.on is not None:
                    self.eps[self.on].receive_message(self.assoc, item.data, (DSL_GW, 40000), item.stream, self.now)
            while (ev := self.gw.next_event()) is not None:
                self.events.append(ev)
            if not moved:
                return

    def run_until(self, t: float) -> None:
        while True:
            self.pump()
            due = [x for x in [self.gw.get_timer(), *(ep.get_timer() for ep in self.eps.values())]
                   if x is not None and x <= t]
            if not due:
                break
            self.now = max(self.now, min(due))
            self.gw.handle_timer(self.now)
            for ep in self.eps.values():
                ep.handle_timer(self.now)
        self.now = t
        self.pump()


def test_gateway_moves_to_the_standby_and_back_with_an_event_each_way():
    b = TwoEndpoints()
    b.run_until(1.0)
    assert b.gw.admitted and b.on is PRIMARY
    assert b.gw.endpoint_view(b.now)["in_use"] == "primary"
    b.now = 10.0
    b.kill(PRIMARY)
    b.run_until(14.0)
    assert b.on is None and b.gw.choice.in_use is PRIMARY  # a restart would be back by now
    b.run_until(16.0)
    assert b.gw.admitted and b.on is STANDBY
    standby_connect = [c for c in b.connects if c[1] is STANDBY][0]
    assert standby_connect[0] == 15.0 and {p for p in standby_connect[2]} == {(SB_DSL, 8899), (SB_LTE, 8899)}
    v = b.gw.endpoint_view(b.now)
    assert v["in_use"] == "standby" and v["address"] == SB_DSL and v["port"] == 8899
    assert {p["address"] for p in b.gw.path_views()} == {SB_DSL, SB_LTE}
    assert b.gw.uplink_of((SB_LTE, 8899)) == "lte"
    # the primary is probed without touching the live association
    b.run_until(40.0)
    assert b.probes and b.on is STANDBY and b.gw.admitted
    b.alive[PRIMARY] = True
    t_back = b.now
    b.run_until(80.0)
    assert b.on is PRIMARY and b.gw.admitted and b.gw.state is AssocState.UP
    sw = [e for e in b.events if e.kind == "endpoint_switch"]
    assert [(e.old, e.new) for e in sw] == [("primary", "standby"), ("standby", "primary")]
    assert 20.0 <= sw[1].t - t_back <= 20.0 + 2 * 5.0
    assert b.gw.endpoint_view(b.now)["address"] == DSL_EP


def test_a_connect_made_before_a_switch_is_given_up():
    b = TwoEndpoints()
    b.alive[PRIMARY] = False
    b.run_until(0.0)
    # a Connect to the primary is outstanding when the choice moves on: its success is dropped
    b.gw.choice.down(0.0, "x")
    b.gw._connect_to = PRIMARY
    b.gw._connecting = True
    b.gw.choice._switch(STANDBY, 0.1, "test")
    b.gw._drain_choice(0.1)
    b.gw.connected(0.2)
    acts = list(iter(b.gw.next_action, None))
    assert any(isinstance(a, Disconnect) for a in acts)
    assert b.gw._retry_at == 0.2


def test_reload_of_the_thresholds_is_in_place():
    b = TwoEndpoints()
    cfg = _gw_config()
    new = dataclasses.replace(cfg, main=dataclasses.replace(cfg.main, standby_after=9, standby_hold_down=60))
    assert b.gw.can_reconfigure(new)
    b.gw.reconfigure(new, 0.0)
    assert b.gw.choice.after_s == 9 and b.gw.choice.hold_down_s == 60
    other = dataclasses.replace(cfg, uplinks=(dataclasses.replace(cfg.uplinks[0], standby_address="198.51.100.7"),
                                              cfg.uplinks[1]))
    assert not b.gw.can_reconfigure(other)  # a new standby: a new relay, on the primary


# -- the status every surface shows -------------------------------------------------------


def test_the_endpoint_in_use_is_in_the_status_schema_summary_and_cli():
    from haig.surfaces import cli
    from tests.unit.surfaces_support import STATUS, T0, assert_valid, model_at

    b = TwoEndpoints()
    b.run_until(1.0)
    b.now = 10.0
    b.kill(PRIMARY)
    b.run_until(16.0)
    m = model_at("boot", "failover")
    m.set_endpoint(b.gw.endpoint_view(b.now))
    snap = m.snapshot(T0 + 100)
    assert_valid(STATUS, snap)
    assert snap["endpoint"]["in_use"] == "standby" and snap["endpoint"]["addresses"]["lte"] == SB_LTE
    line = cli.format_endpoint(snap["endpoint"])
    assert line.startswith(f"Endpoint: standby {SB_DSL}:8899") and "unreachable on every path" in line
    assert "Endpoint: standby" in cli.format_status(snap)
    from haig.surfaces.api import create_app

    assert b"haig_endpoint_standby 1.0" in create_app(m).test_client().get("/metrics").data
    v = m.version
    m.set_endpoint({**b.gw.endpoint_view(b.now), "return_in_s": 3.0})  # a countdown wakes nobody
    assert m.version == v
    m.set_endpoint(None)
    assert_valid(STATUS, m.snapshot(T0 + 101))
