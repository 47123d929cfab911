"""Messages the kernel abandons after sending them (haig.core.abandonment): counted once,
either when a working path has surely freed them or by the association's teardown."""

from __future__ import annotations

from haig.core import drops
from haig.core.abandonment import CONFIRM, AfterSend
from haig.core.datapath import data_stream
from haig.core.endpoint_session import N_STREAMS
from haig.core.states import PathState
from tests.unit.relay_bench import DSL_GW, LTE_GW
from tests.unit.test_gateway_link import admitted


def test_an_increase_counts_after_a_path_was_active_for_confirm_seconds():
    a = AfterSend()
    assert a.path("dsl", PathState.ACTIVE, 0.0) == []
    assert a.total(2, 5, "ecg", 1.0) == []
    assert a.total(2, 5, "ecg", 1.25) == []  # the same total: nothing new
    assert a.settle(1.0 + CONFIRM - 0.01) == [] and a.in_doubt == 5
    assert a.settle(1.0 + CONFIRM) == [("ecg", 5)] and a.in_doubt == 0
    assert a.settle(10.0) == []  # once


def test_no_active_path_keeps_it_in_doubt_and_the_stretch_starts_again():
    a = AfterSend()
    a.path("dsl", PathState.ACTIVE, 0.0)
    a.total(2, 3, "ecg", 1.0)
    a.path("dsl", PathState.PF, 2.0)  # the carrying path failed before confirming
    assert a.settle(30.0) == []
    a.path("lte", PathState.ACTIVE, 30.0)
    assert a.settle(30.0 + CONFIRM - 0.1) == []
    assert a.settle(30.0 + CONFIRM) == [("ecg", 3)]


def test_take_in_doubt_sums_by_service_and_forgets():
    a = AfterSend()
    a.total(2, 3, "ecg", 1.0)
    a.total(3, 1, "echo", 1.1)
    a.total(2, 4, "ecg", 1.2)
    assert dict(a.take_in_doubt()) == {"ecg": 4, "echo": 1}
    assert a.in_doubt == 0 and a.take_in_doubt() == ()


# -- the endpoint's replies ------------------------------------------------------------


def _reply_stream(b) -> int:
    b.client_sends(b"ping")  # opens the flow at the endpoint: its replies use its stream
    (stream,) = b.ep.reply_streams(b.assoc_id)
    assert stream == data_stream(0, False, N_STREAMS)
    return stream


def test_replies_abandoned_after_sending_are_counted_once_confirmed():
    b = admitted()
    stream = _reply_stream(b)
    t = b.now
    b.ep.abandoned_sent(b.assoc_id, stream, 2, t)
    assert (drops.TTL_EXPIRED, "telemetry") not in b.drops()
    b.ep.path_state(b.assoc_id, (DSL_GW, 40000), PathState.ACTIVE, t + CONFIRM)
    assert b.drops()[(drops.TTL_EXPIRED, "telemetry")] == 2


def test_replies_in_doubt_at_a_lost_association_are_left_to_its_teardown():
    b = admitted()
    stream = _reply_stream(b)
    for addr in (DSL_GW, LTE_GW):
        b.ep.path_state(b.assoc_id, (addr, 40000), PathState.UNREACHABLE, b.now)
    b.ep.abandoned_sent(b.assoc_id, stream, 4, b.now)
    b.ep.association_gone(b.assoc_id, "association lost (peer unreachable)", b.now + 1)
    assert (drops.TTL_EXPIRED, "telemetry") not in b.drops()  # its send-failed events count them


def test_replies_in_doubt_at_a_graceful_shutdown_are_counted():
    b = admitted()
    stream = _reply_stream(b)
    for addr in (DSL_GW, LTE_GW):
        b.ep.path_state(b.assoc_id, (addr, 40000), PathState.PF, b.now)
    b.ep.abandoned_sent(b.assoc_id, stream, 4, b.now)
    b.ep.association_gone(b.assoc_id, "association shut down", b.now + 1, graceful=True)
    assert b.drops()[(drops.TTL_EXPIRED, "telemetry")] == 4


def test_the_critical_stream_is_no_reply_stream():
    b = admitted(critical=True)
    b.client_sends(b"alarm")
    assert b.ep.reply_streams(b.assoc_id) == {}
