"""Jitter is not failure: a PF blip on the carrying path must not end another uplink's
hold-down early, and a path whose RTO sits too close to its RTT gets a higher PF
threshold (fake clock; the `./dev demo` case: lte srtt 204 ms, RTO 252 ms)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haig.core.events import FAILBACK
from haig.core.policy import SetPathThresholds
from tests.unit.policy_timeline import Timeline, uplink

HOLD = 30.0
LTE = {"srtt_ms": 204, "rto_ms": 252}  # seen in ./dev demo
DSL = {"srtt_ms": 1, "rto_ms": 100}
GRACE = 2 * (252 + 204) / 1000


def on_fallback(hold_down: float = HOLD) -> Timeline:
    """dsl failed at 10 s and is back (suspect) at 12 s; lte carries the traffic."""
    tl = Timeline([uplink("dsl", 1), uplink("lte", 2)], hold_down).assoc(True, 0.0).all_active(0.0)
    for i in range(8):
        tl.sample("lte", "active", 1.0 + i * 0.25, **LTE)
    tl.state("dsl", "unreachable", 10.0).state("dsl", "active", 12.0)
    assert tl.p.primary == "lte" and len(tl.switches()) == 1
    return tl


def thresholds(tl: Timeline) -> list[SetPathThresholds]:
    return [a for a in tl.actions if isinstance(a, SetPathThresholds)]


def test_pf_blip_on_the_fallback_keeps_it_and_the_hold_down_holds():
    tl = on_fallback()
    tl.state("lte", "pf", 20.0, "lte: kernel says potentially_failed")
    assert tl.p.primary == "lte"
    assert tl.p.get_timer() == pytest.approx(20.0 + GRACE)
    tl.state("lte", "active", 20.0 + GRACE - 0.1)
    assert tl.p.primary == "lte" and len(tl.switches()) == 1
    tl.at(100.0)
    (fb,) = tl.kinds(FAILBACK)
    assert fb.t == pytest.approx(12.0 + HOLD) and fb.new == "dsl"
    assert tl.primaries_set() == ["dsl", "lte", "dsl"]


def test_a_sampled_pf_takes_its_grace_from_the_rto_before_the_timeout():
    tl = on_fallback()
    tl.sample("lte", "pf", 20.0, srtt_ms=204, rto_ms=504)  # the kernel doubled 252
    assert tl.p.get_timer() == pytest.approx(20.0 + GRACE)
    tl.sample("lte", "pf", 20.5, srtt_ms=204, rto_ms=1008)
    assert tl.p.get_timer() == pytest.approx(20.0 + GRACE)


def test_pf_beyond_its_grace_is_a_failure_and_moves_traffic_inside_the_hold_down():
    tl = on_fallback()
    tl.state("lte", "pf", 20.0)
    tl.at(20.0 + GRACE - 0.01)
    assert tl.p.primary == "lte"
    tl.at(20.0 + GRACE + 0.01)
    assert tl.p.primary == "dsl"
    sw = tl.switches()[-1]
    assert sw.t == pytest.approx(20.0 + GRACE)
    assert "potentially failed" in sw.reason and "inside its hold-down" in sw.reason


@pytest.mark.parametrize("fail", ["unreachable", "removed", "link down"])
def test_real_failure_of_the_fallback_moves_traffic_at_once(fail):
    tl = on_fallback()
    if fail == "link down":
        tl.link("lte", False, 20.0)
    else:
        tl.state("lte", fail, 20.0)
    assert tl.p.primary == "dsl" and tl.switches()[-1].t == 20.0


def test_pf_that_turns_unreachable_within_the_grace_moves_at_once():
    tl = on_fallback()
    tl.state("lte", "pf", 20.0).state("lte", "unreachable", 20.3)
    assert tl.p.primary == "dsl" and tl.switches()[-1].t == pytest.approx(20.3)


def test_pf_on_the_main_line_with_a_settled_fallback_is_held_for_its_grace():
    # The kernel sends on lte by itself meanwhile; the failover comes at the grace end.
    tl = Timeline([uplink("dsl", 1), uplink("lte", 2)], HOLD).assoc(True, 0.0).all_active(0.0)
    tl.sample("dsl", "active", 0.25, **DSL)
    tl.state("dsl", "pf", 5.0)
    assert tl.p.primary == "dsl" and tl.p.get_timer() == pytest.approx(5.5)
    tl.at(6.0)
    assert tl.p.primary == "lte" and tl.switches()[-1].t == pytest.approx(5.5)
    assert "inside its hold-down" not in tl.switches()[-1].reason


def test_grace_is_derived_from_the_path_and_bounded():
    tl = Timeline([uplink("dsl", 1), uplink("lte", 2)], HOLD)
    p = tl.p._paths["lte"]
    assert p.pf_grace_s() == pytest.approx(2.0)  # no sample yet: RFC 4960's 1 s RTO
    p.srtt_ms, p.rto_ms = 204, 252
    assert p.pf_grace_s() == pytest.approx(GRACE)
    p.srtt_ms, p.rto_ms = 1, 100
    assert p.pf_grace_s() == 0.5
    p.srtt_ms, p.rto_ms = 2000, 6000
    assert p.pf_grace_s() == 5.0


def test_rto_too_close_to_rtt_raises_the_pf_threshold_of_that_path_only():
    tl = Timeline([uplink("dsl", 1), uplink("lte", 2)], HOLD).assoc(True, 0.0).all_active(0.0)
    for i in range(8):
        t = 0.25 * (i + 1)
        tl.sample("dsl", "active", t, **DSL).sample("lte", "active", t, **LTE)
    assert thresholds(tl) == [SetPathThresholds("lte", 1, 3)]
    assert tl.p.uplink_view("lte")["pf_retrans"] == 1 and tl.p.uplink_view("dsl")["pf_retrans"] == 0
    # Still close: no repeat. Plenty of headroom (>= twice the need): back to the config.
    tl.sample("lte", "active", 3.0, srtt_ms=204, rto_ms=330)
    assert len(thresholds(tl)) == 1
    tl.sample("lte", "active", 3.25, srtt_ms=204, rto_ms=420)
    assert thresholds(tl)[-1] == SetPathThresholds("lte", 0, 3)


def test_thresholds_wait_for_enough_samples_and_are_resent_after_association_up():
    tl = Timeline([uplink("dsl", 1), uplink("lte", 2)], HOLD).assoc(True, 0.0).all_active(0.0)
    tl.sample("lte", "active", 0.25, **LTE).sample("lte", "active", 0.5, **LTE)
    assert thresholds(tl) == []
    for i in range(4):
        tl.sample("lte", "active", 0.75 + 0.25 * i, **LTE)
    assert len(thresholds(tl)) == 1
    tl.assoc(False, 5.0)
    assert len(thresholds(tl)) == 1  # nothing to apply while down
    tl.assoc(True, 6.0)
    assert thresholds(tl)[-1] == SetPathThresholds("lte", 1, 3)


def test_noisy_srtt_samples_count_as_jitter():
    # RTO well above half the RTT, but the samples swing by ~60 ms: 4 deviations > headroom.
    tl = Timeline([uplink("dsl", 1), uplink("lte", 2)], HOLD).assoc(True, 0.0).all_active(0.0)
    for i in range(12):
        tl.sample("lte", "active", 0.25 * (i + 1), srtt_ms=100 + (60 if i % 2 else 0), rto_ms=240)
    assert thresholds(tl) == [SetPathThresholds("lte", 1, 3)]


def test_relaxed_threshold_never_exceeds_path_max_retrans():
    tl = Timeline([uplink("dsl", 1), uplink("lte", 2, path_max_retrans=1, pf_retrans=1)], HOLD)
    tl.assoc(True, 0.0).all_active(0.0)
    for i in range(6):
        tl.sample("lte", "active", 0.25 * (i + 1), **LTE)
    assert thresholds(tl) == []


# ------------------------------------------------------------------ properties

blips = st.lists(
    st.tuples(st.floats(min_value=0.05, max_value=3.0),  # time to the next blip
              st.floats(min_value=0.0, max_value=GRACE * 0.99)),  # how long it lasts
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(blips)
def test_random_pf_blips_on_the_carrying_path_never_flip_flop(script):
    tl = on_fallback()
    t = 12.0
    for gap, length in script:
        t += gap
        if t + length >= 12.0 + HOLD:
            break
        tl.state("lte", "pf", t)
        if length:
            tl.state("lte", "active", t + length)
        else:
            tl.state("lte", "active", t)
        t += length
        assert tl.p.primary == "lte", "a PF blip ended dsl's hold-down early"
    tl.at(12.0 + HOLD + 60.0)
    assert tl.primaries_set() == ["dsl", "lte", "dsl"]
    assert tl.kinds(FAILBACK)[0].t == pytest.approx(12.0 + HOLD)


@settings(max_examples=150, deadline=None)
@given(blips, st.floats(min_value=0.0, max_value=HOLD - 1), st.sampled_from(["unreachable", "link down"]))
def test_failover_stays_immediate_on_unreachable_or_link_down_between_blips(script, at, fail):
    tl = on_fallback()
    t, fail_at = 12.0, 12.0 + at
    for gap, length in script:
        t += gap
        if t + length >= fail_at:
            break
        tl.state("lte", "pf", t).state("lte", "active", t + length)
        t += length
    if fail == "link down":
        tl.link("lte", False, fail_at)
    else:
        tl.state("lte", "unreachable", fail_at)
    assert tl.p.primary == "dsl" and tl.switches()[-1].t == pytest.approx(fail_at)
