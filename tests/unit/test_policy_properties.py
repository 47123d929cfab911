"""Properties of PathPolicy over random input sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from haig.core.events import ASSOC, FAILBACK, FAILOVER
from haig.core.policy import SetPrimary
from tests.unit.policy_timeline import Timeline, uplink

NAMES = ("wan", "cable", "lte")
HOLD = 20.0

op = st.one_of(
    st.tuples(st.just("state"), st.sampled_from(NAMES), st.sampled_from(("active", "active", "pf", "unreachable", "unconfirmed", "removed"))),
    st.tuples(st.just("link"), st.sampled_from(NAMES), st.booleans()),
    st.tuples(st.just("assoc"), st.just(""), st.booleans()),
    st.tuples(st.just("tick"), st.just(""), st.just(None)),
)
steps = st.lists(st.tuples(st.floats(min_value=0.0, max_value=25.0), op), max_size=60)


def run(script, hold_down=HOLD):
    tl = Timeline([uplink("wan", 1), uplink("cable", 2, metered=True), uplink("lte", 3, metered=True)], hold_down)
    tl.assoc(True, 0.0)
    t = 0.0
    failures: dict[str, list[float]] = {n: [] for n in NAMES}  # times an uplink was reported failing
    assoc_downs = 0
    for dt, (kind, name, arg) in script:
        t += dt
        if kind == "state":
            tl.state(name, arg, t)
            if arg in ("pf", "unreachable", "removed"):
                failures[name].append(t)
        elif kind == "link":
            tl.link(name, arg, t)
            if not arg:
                failures[name].append(t)
        elif kind == "assoc":
            tl.assoc(arg, t)
            assoc_downs += not arg
        else:
            tl.at(t)
        check_step(tl)
    tl.at(t + 10 * hold_down)
    check_step(tl)
    return tl, failures, assoc_downs


def check_step(tl: Timeline) -> None:
    p = tl.p
    assert p.primary in (None, *NAMES)
    if any(p.healthy(n) for n in NAMES):
        assert p.primary is not None and p.healthy(p.primary), "a healthy uplink exists but primary is not healthy"
    timer = p.get_timer()
    assert timer is None or timer > tl.t, "timer left in the past"
    assert p.secondary != p.primary or p.secondary is None


@settings(max_examples=150, deadline=None)
@given(steps)
def test_never_fail_back_to_an_uplink_within_hold_down_of_its_failure(script):
    tl, failures, _ = run(script)
    for ev in tl.switches():
        if ev.kind == FAILBACK and ev.detail.get("from_state") == "active":
            # The old primary was fine: this was a chosen return, so hold-down must hold.
            recent = [f for f in failures[ev.new] if ev.t - HOLD < f <= ev.t]
            assert not recent, f"failback to {ev.new} at {ev.t} after failure at {recent}"


@settings(max_examples=150, deadline=None)
@given(steps)
def test_failbacks_to_an_uplink_are_bounded_by_its_failures(script):
    tl, failures, assoc_downs = run(script)
    for name in NAMES:
        back = [e for e in tl.switches() if e.kind == FAILBACK and e.new == name]
        assert len(back) <= 1 + len(failures[name]) + assoc_downs


@settings(max_examples=150, deadline=None)
@given(steps)
def test_set_primary_only_on_change_and_matches_switch_events(script):
    tl, _, _ = run(script)
    applied = None  # what the kernel was told; a new association knows nothing
    for actions, events in tl.steps:
        if any(e.kind == ASSOC for e in events):
            applied = None
        for a in actions:
            if isinstance(a, SetPrimary):
                assert a.uplink != applied, "SetPrimary repeated"
                applied = a.uplink
    assert applied == tl.p.primary or tl.p.association_up is False
    switch_events = [e for e in tl.events if e.kind in (FAILOVER, FAILBACK)]
    assert tl.p.switches == len(switch_events)
    assert tl.p.failovers + tl.p.failbacks == tl.p.switches


@settings(max_examples=100, deadline=None)
@given(steps)
def test_same_inputs_same_outputs(script):
    a, _, _ = run(script)
    b, _, _ = run(script)
    assert a.actions == b.actions
    assert [e.to_dict() for e in a.events] == [e.to_dict() for e in b.events]
