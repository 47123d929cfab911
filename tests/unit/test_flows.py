"""FlowTable: ids, streams, bounds, idle expiry, status snapshot."""

from __future__ import annotations

import pytest

from haig.core.flows import FLOW_ID_MAX, FlowTable, format_client

A = ("openvpn", "192.168.1.10", 51000)
B = ("openvpn", "192.168.1.11", 51000)
C = ("alarm", "fd00::5", 4000)


def test_same_key_same_flow_new_key_new_flow():
    t = FlowTable(max_flows=8, idle_s=60)
    a = t.get_or_open(A, 1.0, service="openvpn")
    assert t.get_or_open(A, 2.0) is a
    b = t.get_or_open(B, 3.0)
    assert a.id != b.id and len(t) == 2
    assert t.by_id(a.id) is a and t.get(B) is b
    assert (a.opened, a.last_seen, a.service) == (1.0, 2.0, "openvpn")
    assert t.opened_total == 2


def test_streams_spread_over_n_streams_or_pinned():
    t = FlowTable(max_flows=100, idle_s=60, n_streams=4, first_stream=1)
    streams = [t.get_or_open(("c", "h", p), 0).stream for p in range(8)]
    assert set(streams) == {1, 2, 3, 4}
    assert streams.count(1) == 2
    assert t.get_or_open("pinned", 0, stream=7).stream == 7


def test_full_table_refuses_and_counts():
    t = FlowTable(max_flows=2, idle_s=60)
    assert t.get_or_open(A, 0) and t.get_or_open(B, 0)
    assert t.get_or_open(C, 0) is None
    assert t.refused == 1 and len(t) == 2
    assert t.get_or_open(A, 1) is not None  # known flows still pass
    t.close(t.get(A).id)
    assert t.get_or_open(C, 2) is not None


def test_idle_flows_expire_and_timer_follows_the_oldest():
    t = FlowTable(max_flows=8, idle_s=10)
    assert t.get_timer() is None
    a = t.get_or_open(A, 0.0)
    b = t.get_or_open(B, 2.0)
    assert t.get_timer() == 10.0
    t.touch(a.id, 5.0)  # A is now the most recent
    assert t.get_timer() == 12.0
    assert t.expire(11.9) == []
    assert t.expire(12.0) == [b]
    assert t.get_timer() == 15.0
    assert t.expire(100.0) == [a]
    assert len(t) == 0 and t.expired_total == 2 and t.get_timer() is None
    assert t.by_id(a.id) is None and t.get(A) is None


def test_ids_unique_nonzero_not_reused_soon_and_wrap():
    t = FlowTable(max_flows=4, idle_s=60, first_id=FLOW_ID_MAX - 1)
    a = t.get_or_open("a", 0)
    b = t.get_or_open("b", 0)
    c = t.get_or_open("c", 0)
    assert (a.id, b.id, c.id) == (FLOW_ID_MAX - 1, FLOW_ID_MAX, 1)
    t.close(c.id)
    d = t.get_or_open("d", 0)
    assert d.id == 2  # the closed id 1 is not handed out again right away


def test_id_allocation_skips_ids_in_use():
    t = FlowTable(max_flows=3, idle_s=60, first_id=FLOW_ID_MAX)
    keep = t.get_or_open("keep", 0)  # id FLOW_ID_MAX
    t.get_or_open("x", 0)  # id 1
    t._next_id = FLOW_ID_MAX  # as after a full lap of the id space
    t.close(t.get("x").id)
    new = t.get_or_open("y", 0)
    assert new.id == 1 and keep.id == FLOW_ID_MAX


def test_counters_seq_and_dedup_window():
    t = FlowTable(max_flows=2, idle_s=60)
    f = t.get_or_open(A, 0, critical=True)
    f.count_rx(100)
    f.count_rx(50)
    f.count_tx(20)
    assert (f.rx_packets, f.rx_bytes, f.tx_packets, f.tx_bytes) == (2, 150, 1, 20)
    e = f.epoch << 24
    assert [f.next_seq() for _ in range(3)] == [e, e + 1, e + 2]
    w = f.dedup_window(64)
    assert f.dedup_window() is w and w.size == 64


def test_snapshot_for_status():
    t = FlowTable(max_flows=8, idle_s=60)
    t.get_or_open(A, 1.0, service="openvpn").count_rx(10)
    t.get_or_open(C, 2.0, service="alarm", critical=True)
    snap = t.snapshot(now=5.0)
    assert [s["client"] for s in snap] == ["[fd00::5]:4000", "192.168.1.10:51000"]
    assert snap[1]["rx_bytes"] == 10 and snap[1]["idle_s"] == 4.0
    assert snap[0]["critical"] is True and snap[0]["service"] == "alarm"
    assert "idle_s" not in t.snapshot()[0]
    assert t.snapshot(key_fmt=lambda k: "x")[0]["client"] == "x"


def test_format_client_and_clear():
    assert format_client(("gw1", 7)) == "gw1:7"
    assert format_client("k") == "k"
    t = FlowTable(max_flows=2, idle_s=60)
    t.get_or_open(A, 0)
    assert [f.key for f in t.clear()] == [A] and len(t) == 0 and t.get(A) is None


def test_bad_arguments():
    with pytest.raises(ValueError):
        FlowTable(0, 60)
    with pytest.raises(ValueError):
        FlowTable(1, 60, first_id=0)


def test_seq_counter_running_out_moves_to_the_next_epoch():
    f = FlowTable(max_flows=2, idle_s=60).get_or_open(A, 0, critical=True)
    f.epoch, f.tx_seq = 255, (1 << 24) - 1
    assert f.next_seq() == 0xFFFFFFFF
    assert (f.epoch, f.tx_seq) == (0, 0) and f.next_seq() == 0
