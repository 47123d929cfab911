"""PathPolicy driven by scripted timelines on a fake clock."""

from __future__ import annotations

import pytest

from haig.core.events import ASSOC, CONFIG, FAILBACK, FAILOVER, LINK, PATH_STATE
from haig.core.policy import NO_HEALTHY_PATH, OK, PROBE_HB_MS, PathPolicy, SetHeartbeat, SetPrimary
from tests.unit.policy_timeline import Timeline, uplink

HOLD = 30.0


def two(hold_down: float = HOLD, **lte_kw) -> Timeline:
    return Timeline([uplink("wan", 1), uplink("lte", 2, **lte_kw)], hold_down)


def started(hold_down: float = HOLD, **lte_kw) -> Timeline:
    tl = two(hold_down, **lte_kw).assoc(True, 0.0).all_active(0.0)
    assert tl.p.primary == "wan"
    return tl


# --------------------------------------------------------------------- startup


def test_first_healthy_uplink_becomes_primary_once():
    tl = two().assoc(True, 0.0)
    assert tl.p.primary is None and tl.primaries_set() == []
    tl.state("wan", "active", 0.5).state("lte", "active", 1.0)
    assert tl.primaries_set() == ["wan"]
    first = [e for e in tl.events if e.kind == PATH_STATE and e.subject == "haig"]
    assert [(e.old, e.new) for e in first] == [(None, "wan")]
    assert tl.switches() == [] and tl.p.switches == 0


def test_preferred_uplink_confirmed_late_takes_over_without_hold_down():
    # lte answers first (e.g. INIT sent over the NATed path); wan has never failed.
    tl = two().assoc(True, 0.0).state("lte", "active", 0.2).state("wan", "active", 1.5)
    assert tl.primaries_set() == ["lte", "wan"]
    (ev,) = tl.switches()
    assert (ev.kind, ev.old, ev.new, ev.t) == (FAILBACK, "lte", "wan", 1.5)


def test_nothing_healthy_at_start_means_no_primary_and_no_alarm():
    tl = two().assoc(True, 0.0).state("wan", "unconfirmed", 0.1).state("lte", "pf", 0.2)
    assert tl.p.primary is None
    assert tl.primaries_set() == []
    assert not [e for e in tl.events if e.new == NO_HEALTHY_PATH]


def test_heartbeats_sent_for_every_uplink_at_start_then_only_on_change():
    tl = started(metered=True, metered_hb_interval=30000, hb_interval=2000)
    assert sorted(tl.heartbeats()) == [("lte", 30000), ("wan", 1000)]
    m = tl.mark()
    tl.sample("wan", "active", 1.0, srtt_ms=20, rto_ms=100, cwnd=4380)
    tl.sample("lte", "active", 1.0, srtt_ms=400, rto_ms=800, cwnd=4380)
    assert tl.since(m)[0] == []


# ------------------------------------------------------------ loss scenarios


def dsl_like(tl: Timeline, t: float = 5.0) -> float:
    """wan measured like the test bed's main line at the shipped rto_min; its PF grace."""
    tl.sample("wan", "active", t, srtt_ms=1, rto_ms=40)
    grace = tl.p._paths["wan"].pf_grace_s()
    assert grace == 0.5  # 2 x (40 + 1) ms, raised to the floor
    return grace


def test_total_loss_holds_the_pf_primary_for_its_grace_then_fails_over_at_its_end():
    # The kernel already sends on lte while wan is PF: holding SetPrimary costs no gap.
    tl = started()
    grace = dsl_like(tl)
    m = tl.mark()
    tl.state("wan", "pf", 10.0)
    actions, events = tl.since(m)
    assert actions == [] and [(e.kind, e.old, e.new) for e in events] == [(PATH_STATE, "active", "pf")]
    assert tl.p.primary == "wan" and tl.p.get_timer() == pytest.approx(10.0 + grace)
    tl.at(10.0 + grace - 1e-6)
    assert tl.p.primary == "wan"
    tl.at(12.0)
    assert tl.timers_fired[-1] == pytest.approx(10.0 + grace)
    actions, events = tl.since(m)
    assert SetPrimary("lte") in actions
    (fo,) = tl.switches()
    assert (fo.kind, fo.old, fo.new, fo.subject) == (FAILOVER, "wan", "lte", "lte")
    assert fo.t == pytest.approx(10.0 + grace)
    assert "wan potentially failed for 0.50 s (grace 0.50 s); lte takes over" in fo.reason
    # Further bad news about wan changes nothing.
    m = tl.mark()
    tl.state("wan", "unreachable", 14.0)
    assert tl.since(m)[0] == [] and tl.p.primary == "lte"


def test_the_kernels_backed_off_rto_does_not_stretch_the_grace():
    # Seen in the VM: samples of a PF path report its RTO doubling (80, 160, 320, 1000 ms);
    # a grace following them moved the failover from 0.5 s to 2.2 s after the PF.
    tl = started()
    grace = dsl_like(tl)
    tl.sample("wan", "pf", 10.0, srtt_ms=1, rto_ms=80)  # the sample carries the doubled RTO
    for i, rto in enumerate((160, 320)):
        tl.sample("wan", "pf", 10.15 + 0.15 * i, srtt_ms=1, rto_ms=rto)
        assert tl.p.get_timer() == pytest.approx(10.0 + grace)
    tl.sample("wan", "pf", 10.45, srtt_ms=1, rto_ms=1000)
    tl.at(11.0)
    (fo,) = tl.switches()
    assert fo.t == pytest.approx(10.0 + grace) and "(grace 0.50 s)" in fo.reason


def test_late_sack_pf_that_clears_within_its_grace_is_no_failover():
    tl = started()
    dsl_like(tl)
    m = tl.mark()
    tl.state("wan", "pf", 10.0).state("wan", "active", 10.3)
    tl.at(100.0)
    actions, events = tl.since(m)
    assert not [a for a in actions if isinstance(a, SetPrimary)]
    assert not [e for e in events if e.kind in (FAILOVER, FAILBACK)]
    assert tl.p.primary == "wan" and tl.p.switches == 0


def test_no_critical_copy_target_while_the_primary_is_held_pf():
    # The kernel sends the originals on lte meanwhile: a copy there doubles its load.
    tl = started()
    dsl_like(tl)
    assert tl.p.secondary == "lte"
    tl.state("wan", "pf", 10.0)
    assert tl.p.primary == "wan" and tl.p.secondary is None
    tl.state("wan", "active", 10.2)
    assert tl.p.secondary == "lte"


def test_pf_toggling_on_the_primary_is_one_episode_and_fails_over_at_its_grace_end():
    # PF every 0.4 s, 0.2 s each: every PF alone clears within its grace, but they are
    # less than a grace apart, so they count from the first one.
    tl = started()
    grace = dsl_like(tl)
    tl.state("wan", "pf", 10.0).state("wan", "active", 10.2).state("wan", "pf", 10.4)
    assert tl.p.primary == "wan" and tl.p.get_timer() == pytest.approx(10.0 + grace)
    tl.at(10.6)
    (fo,) = tl.switches()
    assert fo.t == pytest.approx(10.0 + grace) and tl.p.primary == "lte"
    assert "potentially failed for 0.50 s" in fo.reason


def test_pf_toggling_that_re_arms_the_grace_never_holds_past_the_episode():
    tl = started()
    grace = dsl_like(tl)
    t = 10.0
    while tl.p.primary == "wan":
        assert t < 10.0 + grace + 0.3, "PF toggling kept the PF primary past its episode's grace"
        tl.state("wan", "pf", t).state("wan", "active", t + 0.1)
        t += 0.3
    # PFs at 10.0, 10.3, 10.6, each cleared after 0.1 s (alone never a failure): the one
    # at 10.6 is past its episode's grace, so it moves traffic at once.
    (fo,) = tl.switches()
    assert fo.t == pytest.approx(10.6) and fo.detail["from_state"] == "pf"


def test_pfs_more_than_a_grace_apart_are_separate_episodes():
    tl = started()
    dsl_like(tl)
    for t in (10.0, 11.0, 12.0, 13.0):
        tl.state("wan", "pf", t).state("wan", "active", t + 0.3)
    tl.at(100.0)
    assert tl.switches() == [] and tl.p.primary == "wan"


@pytest.mark.parametrize("after", [0.0, 0.2])
def test_unreachable_bypasses_the_grace(after):
    tl = started()
    dsl_like(tl)
    if after:
        tl.state("wan", "pf", 10.0)
    tl.state("wan", "unreachable", 10.0 + after)
    (fo,) = tl.switches()
    assert fo.t == pytest.approx(10.0 + after) and fo.reason.startswith("wan unreachable")


def test_link_down_of_a_pf_primary_bypasses_the_grace():
    tl = started()
    dsl_like(tl)
    tl.state("wan", "pf", 10.0).link("wan", False, 10.1, "wan carrier lost")
    (fo,) = tl.switches()
    assert fo.t == pytest.approx(10.1) and fo.reason.startswith("wan carrier lost")


@pytest.mark.parametrize(
    "toggles",
    [
        # ~10 % loss: a PF episode now and then during 5 s
        [(10.0, "pf"), (10.3, "active"), (12.1, "pf"), (12.4, "active"), (14.6, "pf"), (14.9, "active")],
        # ~50 % loss: PF/active every quarter second
        [(10.0 + 0.25 * i, "pf" if i % 2 == 0 else "active") for i in range(20)],
    ],
    ids=["10pct", "50pct"],
)
def test_lossy_preferred_link_switches_away_once_and_back_once(toggles):
    tl = started()
    for t, st in toggles:
        tl.state("wan", st, t)
    last_recovery = toggles[-1][0]
    assert toggles[-1][1] == "active"
    tl.at(last_recovery + HOLD - 0.01)
    assert tl.p.primary == "lte"
    tl.at(last_recovery + HOLD + 100)
    assert [(e.kind, e.new) for e in tl.switches()] == [(FAILOVER, "lte"), (FAILBACK, "wan")]
    assert tl.switches()[1].t == pytest.approx(last_recovery + HOLD)
    assert tl.primaries_set() == ["wan", "lte", "wan"]


def test_recovery_fails_back_exactly_once_after_hold_down():
    tl = started()
    tl.state("wan", "pf", 10.0).state("wan", "active", 12.0)
    assert tl.p.get_timer() == pytest.approx(12.0 + HOLD)
    tl.at(12.0 + HOLD - 0.5)
    assert tl.p.primary == "lte"
    tl.at(500.0)
    fb = tl.kinds(FAILBACK)
    assert len(fb) == 1 and fb[0].t == pytest.approx(12.0 + HOLD)
    assert "hold-down" in fb[0].reason and fb[0].detail["healthy_for_s"] == pytest.approx(HOLD)
    assert tl.p.get_timer() is None
    assert (tl.p.switches, tl.p.failovers, tl.p.failbacks) == (2, 1, 1)


def test_hold_down_restarts_on_pf():
    tl = started()
    tl.state("wan", "unreachable", 10.0).state("wan", "active", 11.0)
    tl.state("wan", "pf", 25.0).state("wan", "active", 26.0)
    tl.at(11.0 + HOLD + 1)
    assert tl.p.primary == "lte"
    tl.at(100.0)
    (fb,) = tl.kinds(FAILBACK)
    assert fb.t == pytest.approx(26.0 + HOLD)


def test_a_probe_lost_below_the_pf_threshold_restarts_the_hold_down():
    """A lossy line can pass the hold-down on heartbeats that happen to get through, then
    fail again (the flip-flop). A timed-out probe that did not reach the PF threshold
    still shows: the kernel doubles the path's RTO. That restarts the hold-down."""
    tl = started()
    tl.state("wan", "unreachable", 10.0).state("wan", "active", 11.0)
    for t in (11.5, 12.0, 12.5):
        tl.sample("wan", "active", t, srtt_ms=4, rto_ms=100)
    tl.sample("wan", "active", 20.0, srtt_ms=4, rto_ms=200)  # backed off: a probe was lost
    tl.sample("wan", "active", 20.5, srtt_ms=4, rto_ms=100)
    tl.at(11.0 + HOLD + 1)
    assert tl.p.primary == "lte"
    tl.at(100.0)
    (fb,) = tl.kinds(FAILBACK)
    assert fb.t == pytest.approx(20.0 + HOLD)


def test_an_rto_that_only_varies_does_not_restart_the_hold_down():
    tl = started()
    tl.state("wan", "unreachable", 10.0).state("wan", "active", 11.0)
    for i, rto in enumerate((900, 400, 250, 300, 350, 280)):  # settling after the failure, jitter
        tl.sample("wan", "active", 11.5 + i, srtt_ms=120, rto_ms=rto)
    tl.at(100.0)
    (fb,) = tl.kinds(FAILBACK)
    assert fb.t == pytest.approx(11.0 + HOLD)


def test_hold_down_zero_fails_back_at_once():
    tl = started(hold_down=0.0)
    tl.state("wan", "unreachable", 10.0).state("wan", "active", 10.5)
    assert tl.primaries_set() == ["wan", "lte", "wan"]
    assert tl.p.get_timer() is None


def test_primary_failure_during_hold_down_returns_to_recovering_uplink():
    # lte dies while wan is still in hold-down: wan is the only healthy one, use it.
    tl = started()
    tl.state("wan", "pf", 10.0).state("wan", "active", 12.0)
    tl.state("lte", "unreachable", 20.0)
    assert tl.p.primary == "wan"
    assert tl.switches()[-1].reason.startswith("lte unreachable")
    tl.at(200.0)
    assert len(tl.switches()) == 2


# --------------------------------------------------------------------- links


def test_link_down_fails_over_at_once_and_link_up_alone_is_not_healthy():
    tl = started()
    m = tl.mark()
    tl.link("wan", False, 10.0, "wan carrier lost")
    actions, events = tl.since(m)
    assert actions[0] == SetPrimary("lte")
    assert [(e.kind, e.old, e.new) for e in events] == [
        (LINK, "up", "down"),
        (PATH_STATE, "active", "unconfirmed"),
        (FAILOVER, "wan", "lte"),
    ]
    assert events[2].reason.startswith("wan carrier lost")
    # The kernel has not noticed: its 'active' is stale while the link is down.
    tl.sample("wan", "active", 10.5)
    assert not tl.p.healthy("wan")
    tl.link("wan", True, 20.0)
    assert not tl.p.healthy("wan") and tl.p.get_timer() is None
    tl.at(100.0)
    assert tl.p.primary == "lte"
    tl.sample("wan", "active", 101.0)  # confirmed by SCTP after link up
    assert tl.p.healthy("wan")
    tl.at(101.0 + HOLD + 50)
    assert [(e.kind, e.t) for e in tl.switches()] == [(FAILOVER, 10.0), (FAILBACK, 101.0 + HOLD)]


def test_link_flap_during_hold_down_restarts_it():
    tl = started()
    tl.link("wan", False, 10.0).link("wan", True, 11.0).state("wan", "active", 11.5)
    tl.link("wan", False, 30.0).link("wan", True, 30.2).sample("wan", "active", 31.0)
    tl.at(200.0)
    (fb,) = tl.kinds(FAILBACK)
    assert fb.t == pytest.approx(31.0 + HOLD)


def test_repeated_link_report_is_not_an_event():
    tl = started()
    m = tl.mark()
    tl.link("wan", True, 1.0)
    assert tl.since(m) == ([], [])


# ------------------------------------------------------------- three uplinks


def three() -> Timeline:
    tl = Timeline([uplink("wan", 1), uplink("cable", 2), uplink("lte", 3)], HOLD)
    return tl.assoc(True, 0.0).all_active(0.0)


def test_three_uplinks_fail_down_the_metrics_and_come_back_in_order():
    tl = three()
    tl.state("wan", "unreachable", 10.0)
    assert tl.p.primary == "cable"
    tl.state("cable", "unreachable", 11.0)
    assert tl.p.primary == "lte"
    tl.state("cable", "active", 12.0)
    tl.state("wan", "active", 20.0)
    tl.at(12.0 + HOLD)
    assert tl.p.primary == "cable"
    tl.at(20.0 + HOLD)
    assert tl.p.primary == "wan"
    assert [(e.kind, e.new, e.t) for e in tl.switches()] == [
        (FAILOVER, "cable", 10.0),
        (FAILOVER, "lte", 11.0),
        (FAILBACK, "cable", 12.0 + HOLD),
        (FAILBACK, "wan", 20.0 + HOLD),
    ]


def test_failover_prefers_a_settled_uplink_over_a_recently_failed_one():
    tl = three()
    tl.state("cable", "pf", 5.0).state("cable", "active", 6.0)  # cable is in hold-down
    tl.state("wan", "unreachable", 10.0)
    assert tl.p.primary == "lte"
    assert tl.p.secondary == "cable"
    tl.at(6.0 + HOLD)
    assert tl.p.primary == "cable"


def test_equal_metrics_never_switch_back():
    tl = Timeline([uplink("a", 1), uplink("b", 1)], HOLD).assoc(True, 0).all_active(0)
    tl.state("a", "unreachable", 1.0).state("a", "active", 2.0).at(1000.0)
    assert tl.primaries_set() == ["a", "b"]


# ------------------------------------------------------------------- metered


def test_metered_uplink_heartbeat_follows_its_role():
    tl = started(metered=True, metered_hb_interval=30000)
    assert ("lte", 30000) in tl.heartbeats()
    m = tl.mark()
    tl.state("wan", "unreachable", 10.0)
    acts = tl.since(m)[0]
    assert acts[0] == SetPrimary("lte")
    # lte carries traffic: normal heartbeat; wan recovers under dense probing
    assert set(acts[1:]) == {SetHeartbeat("lte", 1000), SetHeartbeat("wan", PROBE_HB_MS)}
    m = tl.mark()
    tl.state("wan", "active", 11.0).at(11.0 + HOLD)
    acts = tl.since(m)[0]
    assert acts[0] == SetPrimary("wan")
    assert set(acts[1:]) == {SetHeartbeat("lte", 30000), SetHeartbeat("wan", 1000)}
    assert tl.p.uplink_view("lte")["heartbeat_ms"] == 30000


def test_recovering_uplink_is_probed_densely_until_hold_down_clears_it():
    tl = started()
    tl.state("wan", "unreachable", 10.0).state("wan", "active", 11.0)
    assert [h for h in tl.heartbeats() if h[0] == "wan"] == [("wan", 1000), ("wan", PROBE_HB_MS)]
    tl.at(100.0)
    assert [h for h in tl.heartbeats() if h[0] == "wan"] == [
        ("wan", 1000), ("wan", PROBE_HB_MS), ("wan", 1000)]
    assert [h for h in tl.heartbeats() if h[0] == "lte"] == [("lte", 1000)]


# ---------------------------------------------------------------- no path


def test_no_healthy_uplink_keeps_primary_and_says_so_once():
    tl = started()
    tl.state("lte", "pf", 5.0)
    m = tl.mark()
    tl.state("wan", "pf", 10.0).state("lte", "unreachable", 11.0)
    actions, events = tl.since(m)
    assert actions == [] and tl.p.primary == "wan"
    alarms = [e for e in events if e.subject == "haig"]
    assert [(e.old, e.new) for e in alarms] == [(OK, NO_HEALTHY_PATH)]
    assert "wan potentially failed" in alarms[0].reason


def test_no_healthy_uplink_moves_to_the_least_bad_one():
    tl = started()
    tl.state("lte", "pf", 5.0).state("wan", "unreachable", 10.0)
    assert tl.p.primary == "lte"
    assert tl.switches()[-1].reason.startswith("no healthy uplink; lte is least bad (pf)")
    m = tl.mark()
    tl.state("lte", "active", 12.0)
    _, events = tl.since(m)
    assert [(e.old, e.new) for e in events if e.subject == "haig"] == [(NO_HEALTHY_PATH, OK)]


# -------------------------------------------------------------------- forced


def test_force_primary_until_expiry_then_back():
    tl = started()
    tl.force("lte", 60.0, 10.0)
    assert tl.p.primary == "lte" and tl.p.forced == "lte"
    assert tl.p.get_timer() == 70.0
    assert [(e.kind, e.new) for e in tl.kinds(CONFIG)] == [(CONFIG, "forced")]
    assert tl.switches()[-1].reason == "forced by operator"
    tl.at(69.9)
    assert tl.p.primary == "lte"
    tl.at(70.0)
    assert tl.p.primary == "wan" and tl.p.forced is None
    assert tl.timers_fired == [70.0]
    assert [(e.old, e.new, e.reason) for e in tl.kinds(CONFIG)][-1] == ("forced", None, "forced primary on lte expired")
    assert tl.switches()[-1].reason == "forced primary expired; back to wan"
    assert tl.primaries_set() == ["wan", "lte", "wan"]


def test_force_cancel_returns_at_once():
    tl = started().force("lte", 600.0, 10.0).force(None, t=20.0)
    assert tl.p.primary == "wan" and tl.p.get_timer() is None
    assert "cancelled" in tl.kinds(CONFIG)[-1].reason


def test_force_to_unhealthy_uplink_waits_for_it_and_survives_its_failure():
    tl = started()
    tl.state("lte", "pf", 1.0)
    tl.force("lte", 100.0, 2.0)
    assert tl.p.primary == "wan" and "waits" in tl.kinds(CONFIG)[0].reason
    tl.state("lte", "active", 3.0)
    assert tl.p.primary == "lte"  # operator's choice: no hold-down
    tl.state("lte", "pf", 4.0)
    assert tl.p.primary == "wan"  # never kept on a failed path
    tl.state("lte", "active", 5.0)
    assert tl.p.primary == "lte"


def test_force_rejects_bad_input():
    tl = started()
    with pytest.raises(KeyError):
        tl.force("dsl", 10.0)
    with pytest.raises(ValueError):
        tl.force("lte", 0.0)


# --------------------------------------------------------------- association


def test_association_down_and_up_resends_settings():
    tl = started(metered=True)
    m = tl.mark()
    tl.assoc(False, 10.0)
    actions, events = tl.since(m)
    assert actions == [] and tl.p.primary is None
    assert [(e.kind, e.old, e.new) for e in events] == [(ASSOC, "up", "down")]
    assert tl.p.uplink_view("wan")["state"] == "unknown"
    # Late path reports while down are recorded but nothing is sent to a dead association.
    tl.state("wan", "active", 10.5)
    assert tl.since(m)[0] == []
    m = tl.mark()
    tl.assoc(True, 11.0).state("lte", "active", 11.2)
    actions, _ = tl.since(m)
    assert actions[0] == SetPrimary("wan")
    assert {a for a in actions if isinstance(a, SetHeartbeat)} == {SetHeartbeat("wan", 1000), SetHeartbeat("lte", 30000)}
    assert tl.switches() == []


def test_association_down_keeps_hold_down_of_a_failed_uplink():
    tl = started()
    tl.state("wan", "pf", 10.0).state("wan", "active", 11.0)
    tl.assoc(False, 12.0).assoc(True, 13.0)
    tl.state("lte", "active", 13.1).state("wan", "active", 13.2)
    assert tl.p.primary == "lte"
    tl.at(13.2 + HOLD)
    assert tl.p.primary == "wan"


# ------------------------------------------------------------ status & misc


def test_uplink_view_and_snapshot():
    tl = started(metered=True)
    tl.sample("wan", "active", 5.0, srtt_ms=21.5, rto_ms=120, cwnd=4380)
    tl.state("wan", "pf", 10.0).state("wan", "active", 12.0)
    v = tl.p.uplink_view("wan", now=20.0)
    assert v["hold_down_remaining"] == pytest.approx(12.0 + HOLD - 20.0)
    assert (v["state"], v["healthy"], v["link_up"], v["role"]) == ("active", True, True, "secondary")
    assert (v["srtt_ms"], v["rto_ms"], v["cwnd"], v["since"]) == (21.5, 120, 4380, 12.0)
    lte = tl.p.uplink_view("lte")
    assert (lte["role"], lte["hold_down_remaining"], lte["metered"]) == ("primary", None, True)
    snap = tl.p.snapshot()
    assert (snap["primary"], snap["preferred"], snap["secondary"], snap["association"]) == ("lte", "wan", "wan", "up")
    assert [u["name"] for u in snap["uplinks"]] == ["wan", "lte"]


def test_events_go_to_history_with_sequence_numbers():
    tl = started()
    tl.state("wan", "pf", 10.0)
    assert [e.seq for e in tl.events] == list(range(1, len(tl.events) + 1))
    assert list(tl.history) == tl.events


def test_path_state_event_carries_reason_and_metrics():
    tl = started()
    tl.sample("lte", "active", 1.0, srtt_ms=410.0, rto_ms=900, cwnd=1200)
    tl.state("lte", "pf", 2.0, reason="lte: 3 heartbeats lost")
    ev = tl.events[-1]
    assert (ev.kind, ev.subject, ev.reason) == (PATH_STATE, "lte", "lte: 3 heartbeats lost")
    assert ev.detail == {"srtt_ms": 410.0, "rto_ms": 900, "cwnd": 1200}


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        PathPolicy([], 30, 0)
    with pytest.raises(ValueError):
        PathPolicy([uplink("a"), uplink("a")], 30, 0)
    tl = started()
    with pytest.raises(ValueError):
        tl.state("wan", "dead")
    with pytest.raises(KeyError):
        tl.state("dsl", "active")


def test_event_time_maps_the_monotonic_clock_for_events_only():
    p = PathPolicy([uplink("wan", 1), uplink("lte", 2)], 5.0, 100.0, event_time=lambda m: m + 1_700_000_000)
    p.path_state("wan", "active", 100.0)
    p.path_state("lte", "active", 100.0)
    p.path_state("wan", "pf", 101.0)
    p.path_state("wan", "active", 102.0)
    assert p.get_timer() == 107.0  # deadlines stay on the policy's own clock
    events = []
    while (e := p.next_event()) is not None:
        events.append(e)
    assert events[-1].t == 1_700_000_102


def test_no_healthy_uplink_never_moves_primary_to_an_unreported_one():
    tl = two().assoc(True, 0.0).state("lte", "active", 0.1)
    tl.state("lte", "unreachable", 5.0)  # wan never reported: maybe not in the association
    assert tl.p.primary == "lte" and tl.switches() == []
