"""StatusModel: feeding API, snapshot contents, change tracking, thread safety."""

from __future__ import annotations

import threading

import pytest

from haig.config.model import Uplink
from haig.core.events import FAILOVER, PATH_STATE, Event
from haig.core.status import (
    DROP_REASONS,
    MAX_FLOWS_LISTED,
    POLICY_FIELDS,
    StatusModel,
    display_name,
)
from tests.unit.surfaces_support import STATUS, assert_valid

CEILING = 10.0  # seconds a blocked thread may take to wake: a bound, never a measurement

DSL = Uplink(name="dsl", interface="wan", metric=1, endpoint_address="203.0.113.5")
LTE = Uplink(name="lte", interface="wwan", metric=2, metered=True, udp_encap=True)


def ev(kind=PATH_STATE, subject="dsl", old="active", new="pf", t=100.0) -> Event:
    return Event(t=t, kind=kind, subject=subject, old=old, new=new, reason="test")


def gateway(primary: str | None = "dsl") -> StatusModel:
    m = StatusModel(started_at=0.0)
    m.set_identity("gateway", "home-1", "0.1.0")
    m.set_uplinks([LTE, DSL])  # config order differs from preference on purpose
    for name in ("dsl", "lte"):
        m.update_uplink(name, state="active", healthy=True, link_up=True)
    m.set_primary(primary)
    return m


def test_empty_model_is_a_valid_not_connected_snapshot():
    snap = StatusModel().snapshot(5.0)
    assert_valid(STATUS, snap)
    assert snap["role"] is None and snap["uptime_s"] is None
    assert snap["summary"] == {"connected": False, "on_backup": False, "text": "Not connected"}
    assert snap["drops"] == dict.fromkeys(DROP_REASONS, 0)


def test_uplinks_listed_by_preference_with_config_and_primary_flag():
    snap = gateway().snapshot(60.0)
    assert_valid(STATUS, snap)
    assert [u["name"] for u in snap["uplinks"]] == ["dsl", "lte"]
    dsl, lte = snap["uplinks"]
    assert dsl["primary"] and not lte["primary"]
    assert lte["metered"] and lte["udp_encap"] and lte["interface"] == "wwan"
    assert dsl["endpoint_address"] == "203.0.113.5" and lte["endpoint_address"] is None
    assert snap["uptime_s"] == 60.0 and snap["gateway_id"] == "home-1"


@pytest.mark.parametrize(
    ("primary", "healthy", "assoc", "text", "on_backup"),
    [
        ("dsl", True, "up", "Connected via DSL (wan)", False),
        ("lte", True, "up", "Connected via LTE backup", True),
        (None, True, "up", "Not connected", False),
        ("dsl", False, "up", "Not connected", False),
        ("dsl", True, "down", "Not connected", False),
    ],
)
def test_summary_headline(primary, healthy, assoc, text, on_backup):
    m = gateway(primary)
    if primary:
        m.update_uplink(primary, healthy=healthy)
    m.set_association("endpoint", state=assoc)
    s = m.snapshot(1.0)["summary"]
    assert s["text"] == text
    assert s["on_backup"] is on_backup
    assert s["connected"] is (text != "Not connected")


def test_endpoint_summary_counts_connected_gateways():
    m = StatusModel()
    m.set_identity("endpoint", None, "0.1.0")
    assert m.snapshot(0)["summary"]["text"] == "No gateway connected"
    m.set_association("home-1", state="up", gateway_id="home-1")
    m.set_association("home-2", state="down", gateway_id="home-2")
    assert m.snapshot(0)["summary"] == {"connected": True, "on_backup": False, "text": "1 gateway connected"}
    m.set_association("home-2", state="up")
    assert m.snapshot(0)["summary"]["text"] == "2 gateways connected"


def test_display_name():
    assert display_name("dsl") == "DSL"
    assert display_name("lte2") == "LTE2"
    assert display_name("fiber") == "fiber"
    assert display_name("Wan") == "Wan"


def test_update_uplink_rejects_unknown_fields_and_ignores_unknown_uplinks():
    m = gateway()
    with pytest.raises(TypeError, match="srtt"):
        m.update_uplink("dsl", srtt=3)
    assert m.update_uplink("gone", state="pf") is False
    assert m.update_uplink("dsl", state="pf") is True


def test_policy_uplink_view_fields_feed_straight_in():
    m = gateway()
    view = {
        "name": "dsl", "metric": 1, "metered": False, "role": "primary", "state": "active",
        "healthy": True, "link_up": True, "srtt_ms": 12.5, "rto_ms": 120.0, "cwnd": 4380,
        "since": 3.0, "healthy_since": 3.0, "hold_down_remaining": None, "heartbeat_ms": 1000,
        "forced": True,
    }  # fmt: skip
    m.update_uplink("dsl", **{k: v for k, v in view.items() if k in POLICY_FIELDS})
    dsl = m.snapshot(4.0)["uplinks"][0]
    assert dsl["forced"] and dsl["role"] == "primary" and dsl["srtt_ms"] == 12.5
    assert_valid(STATUS, m.snapshot(4.0))


def test_version_moves_on_state_changes_only():
    m = gateway()
    v = m.version
    m.update_uplink("dsl", state="active")  # same value: no change
    assert m.version == v
    m.update_uplink("dsl", srtt_ms=20)
    assert m.version == v + 1
    c = m.counters_version
    m.count_uplink("dsl", "tx", 1500)
    m.count_drop("queue_full", 3)
    assert m.version == v + 1 and m.counters_version == c + 2


def test_counters():
    m = gateway()
    m.count_uplink("dsl", "tx", 1000, 2)
    m.count_uplink("dsl", "rx", 300)
    assert m.count_uplink("nope", "rx", 300) is False
    with pytest.raises(ValueError):
        m.count_uplink("dsl", "up", 1)
    m.count_drop("oversized")
    m.count_drop("something_new", 2)
    snap = m.snapshot(0)
    dsl = snap["uplinks"][0]
    assert (dsl["tx_bytes"], dsl["tx_packets"], dsl["rx_bytes"], dsl["rx_packets"]) == (1000, 2, 300, 1)
    assert snap["drops"]["oversized"] == 1 and snap["drops"]["something_new"] == 2
    assert_valid(STATUS, snap)


def test_reload_keeps_state_and_counters_and_forgets_removed_primary():
    m = gateway(primary="lte")
    m.update_uplink("dsl", local_address="192.0.2.7")  # learnt from the device
    m.count_uplink("dsl", "tx", 500)
    m.set_uplinks([Uplink(name="dsl", interface="wan", metric=5)])
    snap = m.snapshot(0)
    (dsl,) = snap["uplinks"]
    assert dsl["metric"] == 5 and dsl["tx_bytes"] == 500 and dsl["healthy"]
    assert dsl["local_address"] == "192.0.2.7"
    assert snap["primary"] is None


def test_events_are_numbered_bounded_and_paged():
    m = StatusModel(max_events=3, recent_events=2)
    stamped = [m.add_event(ev(t=float(i))) for i in range(5)]
    assert [e.seq for e in stamped] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in m.events_since(0)] == [3, 4, 5]
    assert [e["seq"] for e in m.events_since(4)] == [5]
    assert [e["seq"] for e in m.snapshot(0)["events"]] == [4, 5]
    assert m.snapshot(0)["last_event_seq"] == 5
    page = m.events_page(3)
    assert [e["seq"] for e in page["events"]] == [4, 5] and page["last_seq"] == 5
    assert m.events_page(5) == {"schema_version": 1, "events": [], "last_seq": 5}


def test_events_page_after_daemon_restart_returns_whole_history():
    m = StatusModel()
    m.add_event(ev())
    page = m.events_page(since=900)  # a reader that knew the previous daemon
    assert [e["seq"] for e in page["events"]] == [1] and page["last_seq"] == 1


def test_associations_and_paths():
    m = gateway()
    m.set_association("endpoint", state="up", assoc_id=3, paths=[{"address": "203.0.113.5", "primary": True}])
    m.set_association("endpoint", reason="ok")  # merges
    (a,) = m.snapshot(0)["associations"]
    assert a["state"] == "up" and a["assoc_id"] == 3 and a["reason"] == "ok"
    assert a["paths"] == [
        {"address": "203.0.113.5", "uplink": None, "state": "unknown", "srtt_ms": None,
         "rto_ms": None, "cwnd": None, "primary": True}
    ]  # fmt: skip
    with pytest.raises(TypeError):
        m.set_association("endpoint", paths=[{"address": "x", "rtt": 1}])
    with pytest.raises(TypeError):
        m.set_association("endpoint", colour="red")
    m.remove_association("endpoint")
    assert m.snapshot(0)["associations"] == []


def test_flows_listed_up_to_a_cap_with_true_total():
    m = StatusModel()
    m.set_flows({"service": "vpn", "client": f"10.0.0.1:{p}"} for p in range(MAX_FLOWS_LISTED + 5))
    snap = m.snapshot(0)
    assert len(snap["flows"]) == MAX_FLOWS_LISTED and snap["flows_total"] == MAX_FLOWS_LISTED + 5
    assert_valid(STATUS, snap)


def test_config_state_and_identity_checks():
    m = StatusModel()
    m.set_config_state(False, "line 3: unknown option")
    assert m.snapshot(0)["config"] == {"ok": False, "message": "line 3: unknown option"}
    with pytest.raises(ValueError):
        m.set_identity("router", None, "1")


def test_snapshot_is_a_copy():
    m = gateway()
    m.set_association("endpoint", state="up", paths=[{"address": "a"}])
    snap = m.snapshot(0)
    snap["uplinks"][0]["state"] = "hacked"
    snap["associations"][0]["paths"][0]["state"] = "hacked"
    again = m.snapshot(0)
    assert again["uplinks"][0]["state"] == "active"
    assert again["associations"][0]["paths"][0]["state"] == "unknown"


def test_wait_for_change_returns_at_once_when_already_changed():
    m = StatusModel()
    m.set_primary("x")
    assert m.wait_for_change(0, timeout=CEILING) == m.version


def test_wait_for_change_wakes_on_change_from_another_thread():
    m = StatusModel()
    v = m.version
    started = threading.Event()
    got: list[int] = []

    def waiter():
        started.set()
        got.append(m.wait_for_change(v, timeout=CEILING * 3))

    t = threading.Thread(target=waiter)
    t.start()
    started.wait(CEILING)
    m.add_event(ev(kind=FAILOVER, old="dsl", new="lte"))
    t.join(CEILING)
    assert not t.is_alive() and got == [v + 1]


def test_counter_updates_do_not_wake_waiters_but_close_does():
    m = StatusModel()
    m.set_uplinks([DSL])
    v = m.version
    m.count_uplink("dsl", "tx", 1)
    assert m.wait_for_change(v, timeout=0) == v  # nothing to wake for
    done = threading.Event()
    t = threading.Thread(target=lambda: (m.wait_for_change(v, None), done.set()))
    t.start()
    m.close()
    t.join(CEILING)
    assert done.is_set() and m.closed


def test_concurrent_feeding_loses_nothing():
    m = StatusModel()
    m.set_uplinks([DSL])

    def feed():
        for _ in range(2000):
            m.count_uplink("dsl", "rx", 10)

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(200):
        m.snapshot(0)
    for t in threads:
        t.join()
    dsl = m.snapshot(0)["uplinks"][0]
    assert dsl["rx_packets"] == 8000 and dsl["rx_bytes"] == 80000
