"""The send queue's policy (haig.core.datapath.OutQueue): a bulk service fills and loses
only its own share, quiet services keep theirs, critical DATA and control go first, and
every datagram it refuses or pushes out is counted against its own service."""

from __future__ import annotations

from haig.core import drops
from haig.core.datapath import Outgoing, OutQueue, control
from haig.core.drops import DropLedger


def data(svc: str, n: int, critical: bool = False) -> Outgoing:
    return Outgoing(b"%s%d" % (svc.encode(), n), 1, 1000, service=svc, critical=critical)


def drain(q: OutQueue) -> list[bytes]:
    out = []
    while (it := q.peek()) is not None:
        assert q.pop() is it  # pop takes exactly what peek showed
        out.append(it.data)
    return out


def test_bulk_overflow_never_costs_a_quiet_service_its_datagrams():
    ledger = DropLedger()
    q = OutQueue(8, ledger)
    sent: list[bytes] = []
    # the socket takes one message per step, the tunnel offers three, telemetry one in ten
    for step in range(300):
        for j in range(3):
            q.push(data("openvpn", 3 * step + j), 0.0)
        if step % 10 == 0:
            assert q.push(data("ecg", step), 0.0)
        sent.append(q.pop().data)
    sent += drain(q)
    assert ledger.total(drops.QUEUE_FULL, "ecg") == 0
    assert [d for d in sent if d.startswith(b"ecg")] == [b"ecg%d" % s for s in range(0, 300, 10)]
    # every datagram accounted for: sent, or refused/pushed out and counted
    assert len(sent) + ledger.total(drops.QUEUE_FULL, "openvpn") == 900 + 30


def test_a_blocked_socket_leaves_each_service_its_share_of_the_bound():
    ledger = DropLedger()
    q = OutQueue(8, ledger)
    for i in range(200):
        q.push(data("openvpn", i), 0.0)
        if i % 20 == 0:
            q.push(data("ecg", i), 0.0)
    got = drain(q)
    assert sum(1 for d in got if d.startswith(b"ecg")) == 8  # its own `limit`, all it offered...
    assert sum(1 for d in got if d.startswith(b"openvpn")) == 8  # ...and the bulk its own
    assert ledger.total(drops.QUEUE_FULL, "ecg") == 2  # offered 10: its last 2 past its room
    assert len(got) + ledger.total(drops.QUEUE_FULL) == 200 + 10


def test_a_service_at_the_longest_queue_is_refused_its_own_new_datagram():
    ledger = DropLedger()
    q = OutQueue(2, ledger)
    for i in range(2):
        q.push(data("bulk", i), 0.0)
    assert not q.push(data("bulk", 2), 0.0)  # tail drop: it is the longest itself
    assert q.push(data("ecg", 0), 0.0)  # a second service brings its own room...
    assert q.push(data("bulk", 3), 0.0)  # ...which the bulk may use while ecg does not
    assert q.push(data("ecg", 1), 0.0)  # until ecg wants it back: the bulk's oldest goes
    assert q.evicted == 1
    assert ledger.total(drops.QUEUE_FULL, "bulk") == 2 and ledger.total(drops.QUEUE_FULL, "ecg") == 0
    assert drain(q) == [b"bulk1", b"ecg0", b"bulk3", b"ecg1"]  # round robin


def test_control_then_critical_then_round_robin_between_services():
    q = OutQueue(100, DropLedger())
    for i in range(3):
        q.push(data("bulk", i), 0.0)
    q.push(data("ecg", 0), 0.0)
    q.push(data("alarm", 0, critical=True), 0.0)
    q.push(control(b"ctl"), 0.0)
    q.push(data("ecg", 1), 0.0)
    assert drain(q) == [b"ctl", b"alarm0", b"bulk0", b"ecg0", b"bulk1", b"ecg1", b"bulk2"]
    assert len(q) == 0 and q.peek() is None


def test_critical_pushes_out_the_longest_non_critical_and_only_critical_refuses_critical():
    ledger = DropLedger()
    q = OutQueue(2, ledger)
    q.push(data("ecg", 0), 0.0)
    for i in range(3):
        q.push(data("bulk", i), 0.0)  # room for 4 with two services: bulk takes 3
    for i in range(3):  # alarm brings room for 2, then pushes the longest out
        assert q.push(data("alarm", i, critical=True), 0.0)
    assert ledger.total(drops.QUEUE_FULL, "bulk") == 1 and ledger.total(drops.QUEUE_FULL, "ecg") == 0
    for i in range(3, 6):
        assert q.push(data("alarm", i, critical=True), 0.0)
    assert not q.push(data("alarm", 6, critical=True), 0.0)  # nothing but critical left
    assert ledger.total(drops.QUEUE_FULL, "alarm") == 1 and ledger.total(drops.QUEUE_FULL) == 5
    assert drain(q) == [b"alarm%d" % i for i in range(6)]


def test_control_messages_are_never_refused_and_do_not_take_datagram_room():
    ledger = DropLedger()
    q = OutQueue(2, ledger)
    q.push(data("ecg", 0), 0.0)
    q.push(data("ecg", 1), 0.0)
    for _ in range(5):
        assert q.push(control(b"c"), 0.0)
    assert len(q) == 7 and ledger.total() == 0


def test_association_loss_counts_every_queued_datagram_once():
    ledger = DropLedger()
    q = OutQueue(10, ledger)
    for i in range(3):
        q.push(data("bulk", i), 0.0)
    q.push(data("alarm", 0, critical=True), 0.0)
    q.push(control(b"c"), 0.0)
    assert q.lose_all(0.0) == 4
    assert ledger.total(drops.ASSOC_LOST, "bulk") == 3 and ledger.total(drops.ASSOC_LOST, "alarm") == 1
    assert len(q) == 0 and q.peek() is None
    assert q.push(data("bulk", 9), 0.0) and drain(q) == [b"bulk9"]


def test_stream_plan_puts_control_critical_and_each_service_apart():
    from haig.core.datapath import CONTROL_STREAM, CRITICAL_STREAM, data_stream, stream_priority

    assert data_stream(0, True, 16) == data_stream(5, True, 16) == CRITICAL_STREAM
    assert [data_stream(i, False, 16) for i in range(3)] == [2, 3, 4]
    assert data_stream(14, False, 16) == 2  # past the streams: shared, never 0 or 1
    assert stream_priority(CONTROL_STREAM) < stream_priority(CRITICAL_STREAM) < stream_priority(2)
    assert len({stream_priority(s) for s in range(2, 16)}) == 1  # services take turns


def test_gateway_flows_use_their_service_stream_and_the_endpoint_answers_on_it():
    from haig.core.datapath import CRITICAL_STREAM
    from tests.unit.relay_bench import CLIENT, Bench, endpoint_config, gateway_config

    for critical, stream in ((False, 2), (True, CRITICAL_STREAM)):
        b = Bench(gw_cfg=gateway_config(critical=critical), ep_cfg=endpoint_config(critical=critical))
        b.run_until(0.0)
        b.gw.receive_datagram(0, CLIENT, b"x", b.now)
        assert {it.stream for it in b.gw.queue if it.is_data} == {stream}
        b.pump()
        b.target_replies(b"back")
        flow = next(iter(b.ep.sessions.values())).flows
        assert {f.stream for f in flow} == {stream}
