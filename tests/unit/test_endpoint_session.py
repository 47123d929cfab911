"""The endpoint core on the host: several homes on one socket, a reload applied in
place, the path for critical copies, the kernel's names mapped at the driver."""

from __future__ import annotations

import dataclasses

import pytest

from haig.adapters import sctp_io
from haig.config.model import Peer, Service
from haig.core import drops, wire
from haig.core.datapath import Outgoing, OutQueue
from haig.core.drops import DropLedger
from haig.core.endpoint_session import (
    ADMISSION_TIMEOUT,
    CRITICAL_RESERVE,
    NOT_ADMITTED,
    PENDING_MAX,
    PENDING_PER_SOURCE,
    SAMPLE_BATCH,
    SAMPLE_INTERVAL,
    EndpointCore,
)
from haig.core.refusals import REFUSAL_EVENT_INTERVAL
from haig.core.states import PathState, best_path
from haig.relay import sctp_driver
from tests.unit.relay_bench import KEY, endpoint_config, services


def hello(gw: str, challenge: bytes, key: str = KEY) -> bytes:
    return wire.encode_hello(key, challenge, gw, b"n" * 16, ("telemetry",))


def three_homes() -> EndpointCore:
    cfg = endpoint_config(peers=tuple(Peer(f"home{i}", KEY) for i in (1, 2, 3)))
    core = EndpointCore(cfg, 0.0, nonce=lambda n: b"c" * n)
    for i in (1, 2, 3):
        core.association_up(i, 0.0)
        core.receive_message(i, hello(f"home{i}", b"c" * 16), (f"192.0.2.{i}", 40000), 0, 0.0)
    assert core.by_gateway == {"home1": 1, "home2": 2, "home3": 3}
    return core


def aborted(core: EndpointCore) -> set[int]:
    return {a.assoc_id for a in iter(core.next_action, None) if type(a).__name__ == "Abort"}


def test_reload_adding_a_home_touches_no_association():
    core = three_homes()
    aborted(core)
    cfg = endpoint_config(peers=tuple(Peer(f"home{i}", KEY) for i in (1, 2, 3, 4)))
    assert core.reconfigure(cfg, 1.0) == []
    assert aborted(core) == set() and core.by_gateway == {"home1": 1, "home2": 2, "home3": 3}
    core.association_up(4, 1.0)
    core.receive_message(4, hello("home4", b"c" * 16), ("192.0.2.4", 40000), 0, 1.0)
    assert core.by_gateway["home4"] == 4


def test_reload_ends_only_the_changed_or_removed_homes():
    core = three_homes()
    aborted(core)
    cfg = endpoint_config(peers=(Peer("home1", KEY), Peer("home2", "z" * 24)))  # home2 re-keyed, home3 gone
    assert sorted(core.reconfigure(cfg, 1.0)) == ["home2", "home3"]
    assert aborted(core) == {2, 3} and core.by_gateway == {"home1": 1}


def test_reload_changing_a_target_re_associates_the_homes_using_it():
    core = three_homes()
    aborted(core)
    svcs = (Service("telemetry", target="10.2.0.9:7000"),)
    cfg = endpoint_config(peers=tuple(Peer(f"home{i}", KEY) for i in (1, 2, 3)), svcs=svcs)
    assert sorted(core.reconfigure(cfg, 1.0)) == ["home1", "home2", "home3"]
    assert services()[0].target != svcs[0].target


def test_new_association_of_a_home_replaces_its_old_one():
    core = three_homes()
    aborted(core)
    core.association_up(9, 2.0)
    core.receive_message(9, hello("home1", b"c" * 16), ("192.0.2.99", 40000), 0, 2.0)
    assert core.by_gateway["home1"] == 9 and aborted(core) == {1}


def test_copy_path_is_the_best_ranked_other_path():
    paths = {"a": PathState.ACTIVE, "b": PathState.PF, "c": PathState.ACTIVE}
    assert best_path(paths, exclude="a") == "c"
    assert best_path({"a": PathState.ACTIVE, "b": PathState.PF}, exclude="a") is None  # no dead copies
    assert best_path({"a": PathState.UNCONFIRMED, "b": PathState.ACTIVE}) == "b"


def test_kernel_names_are_mapped_once_at_the_driver():
    up = sctp_driver.translate(sctp_io.AssocChange("comm_up", 0, 5))
    assert up == sctp_driver.AssocUp(5, False)
    gone = sctp_driver.translate(sctp_io.AssocChange("comm_lost", 0, 5))
    assert isinstance(gone, sctp_driver.AssocGone) and gone.assoc_id == 5
    for kernel, ours in (("available", PathState.ACTIVE), ("potentially_failed", PathState.PF),
                         ("unreachable", PathState.UNREACHABLE), ("added", PathState.UNCONFIRMED)):
        ch = sctp_driver.translate(sctp_io.PeerAddrChange(("192.0.2.1", 1), kernel, 0, 5))
        assert ch.state is ours and ch.kernel == kernel
    assert sctp_driver.translate(sctp_io.PeerAddrChange(("192.0.2.1", 1), "made_prim", 0, 5)).state is None
    ab = sctp_driver.translate(sctp_io.SendFailed(0, True, 5, b"msg"))
    assert ab == sctp_driver.Abandoned(5, b"msg")
    assert sctp_driver.translate(sctp_io.OtherNotification(sctp_io.SCTP_SHUTDOWN_EVENT, 5)).assoc_id == 5


def test_send_errors_map_to_drop_reasons():
    import errno

    from haig.core import drops

    assert sctp_driver.drop_reason(OSError(errno.EPIPE, "x")) == drops.NO_ASSOCIATION
    assert sctp_driver.drop_reason(OSError(errno.EMSGSIZE, "x")) == drops.SEND_FAILED


# -- open-internet hardening (issue 13 item 4) ---------------------------------------------



def one_home(**kw) -> EndpointCore:
    return EndpointCore(endpoint_config(**kw), 0.0, nonce=lambda n: b"c" * n)


def refused_bytes(core: EndpointCore, assoc_id: int) -> list[bytes]:
    return [it.data for it in core.sessions[assoc_id].queue if wire.msg_type(it.data) == wire.REFUSED]


def test_pending_sessions_are_capped_globally_and_the_rest_aborted_at_once():
    core = one_home()
    for i in range(PENDING_MAX + 10):  # each from its own address: only the global cap applies
        core.association_up(i + 1, 0.0, f"10.{i // 250}.{i % 250}.1")
    assert core.pending == PENDING_MAX and len(core.sessions) == PENDING_MAX
    assert core.shed == 10
    assert aborted(core) == set(range(PENDING_MAX + 1, PENDING_MAX + 11))
    # a real home still gets in once a slot is free (the HELLO deadline frees them)
    core.handle_timer(ADMISSION_TIMEOUT)
    assert core.pending == 0
    core.association_up(9999, ADMISSION_TIMEOUT, "192.0.2.1")
    core.receive_message(9999, hello("home1", b"c" * 16), ("192.0.2.1", 40000), 0, ADMISSION_TIMEOUT)
    assert core.by_gateway == {"home1": 9999}


def test_pending_sessions_are_capped_per_source_address():
    core = one_home()
    for i in range(PENDING_PER_SOURCE + 3):
        core.association_up(i + 1, 0.0, "203.0.113.66")
    core.association_up(100, 0.0, "192.0.2.1")  # another address is not affected
    assert core.pending == PENDING_PER_SOURCE + 1 and core.shed == 3
    assert 100 in core.sessions and aborted(core) >= {PENDING_PER_SOURCE + 1, PENDING_PER_SOURCE + 3}
    assert core.refusals.totals == {"too many pending associations from this address": 3}


def test_hello_deadline_is_short_and_frees_the_slot():
    assert 2.0 <= ADMISSION_TIMEOUT <= 3.0
    core = one_home()
    core.association_up(1, 0.0, "203.0.113.66")
    core.handle_timer(ADMISSION_TIMEOUT - 0.01)
    assert core.pending == 1
    core.handle_timer(ADMISSION_TIMEOUT)
    assert core.pending == 0 and refused_bytes(core, 1) == [wire.encode_refused(NOT_ADMITTED)]
    core.handle_timer(ADMISSION_TIMEOUT + 1)
    assert 1 in aborted(core)


def test_refusals_are_one_rate_limited_event_and_real_events_survive():
    core = one_home()
    t, events = 0.0, []
    for i in range(500):  # 500 unknown HELLOs over 25 s from 50 addresses
        t = i * 0.05
        core.association_up(i + 1, t, f"203.0.113.{i % 50}")
        core.receive_message(i + 1, hello(f"nobody{i}\n\x1b[31m", b"c" * 16), (f"203.0.113.{i % 50}", 1), 0, t)
        core.handle_timer(t)
        events += iter(core.next_event, None)
        aborted(core)
    core.handle_timer(t + REFUSAL_EVENT_INTERVAL)
    events += iter(core.next_event, None)
    refusals = [e for e in events if e.new == "refused"]
    assert 2 <= len(refusals) <= 1 + 25 / REFUSAL_EVENT_INTERVAL + 1
    assert sum(e.detail["count"] for e in refusals) == 500
    assert all(e.detail["addresses"] <= 50 for e in refusals)
    assert "refusals from" in refusals[-1].reason and "unknown gateway" in refusals[-1].reason
    # peer-supplied ids are made printable in the event and the log lines
    assert all("\n" not in e.subject + e.reason and "\x1b" not in e.subject + e.reason for e in refusals)
    lines = core.refusals.take_details()
    assert len(lines) == 500 and all("\n" not in ln and "\x1b" not in ln for ln in lines)
    # a real home's events are not pushed out: admitted → one "up" event
    core.association_up(9999, t + 11, "192.0.2.1")
    core.receive_message(9999, hello("home1", b"c" * 16), ("192.0.2.1", 1), 0, t + 11)
    assert [e.new for e in iter(core.next_event, None)] == ["up"]


def test_refused_is_the_same_bytes_for_unknown_disabled_and_wrong_key():
    core = one_home(peers=(Peer("home1", KEY), Peer("home2", KEY, enabled=False)))
    for aid, msg in ((1, hello("stranger", b"c" * 16)), (2, hello("home2", b"c" * 16)),
                     (3, hello("home1", b"c" * 16, key="w" * 24))):
        core.association_up(aid, 0.0, "203.0.113.9")
        core.receive_message(aid, msg, ("203.0.113.9", 1), 0, 0.0)
    got = {aid: refused_bytes(core, aid) for aid in (1, 2, 3)}
    assert got[1] == got[2] == got[3] == [wire.encode_refused(NOT_ADMITTED)]
    # the real reasons are counted (and logged), never sent
    assert core.refusals.totals == {"unknown gateway": 1, "gateway disabled": 1, "wrong key": 1}
    assert any("wrong key" in ln for ln in core.refusals.take_details())


def admit(core: EndpointCore, aid: int, gw: str) -> None:
    core.association_up(aid, 0.0, f"192.0.2.{aid}")
    core.receive_message(aid, wire.encode_hello(KEY, b"c" * 16, gw, b"n" * 16, ("telemetry", "alarm")),
                         (f"192.0.2.{aid}", 40000), 0, 0.0)
    assert core.by_gateway[gw] == aid


def budget_config(max_flows: int):
    cfg = endpoint_config(peers=(Peer("home1", KEY), Peer("home2", KEY)),
                          svcs=(services()[0], Service("alarm", target="10.2.0.3:7001", critical=True)))
    return dataclasses.replace(cfg, main=dataclasses.replace(cfg.main, max_flows=max_flows))


def data(core: EndpointCore, aid: int, svc: int, flow_id: int, now: float = 0.0) -> None:
    flags = wire.FLAG_CRITICAL if svc == 1 else 0
    core.receive_message(aid, wire.encode_data(svc, flow_id, b"x", flow_id if flags else 0, flags),
                         ("192.0.2.1", 40000), 1, now)


def test_one_homes_flows_leave_another_homes_alarm_deliverable():
    core = EndpointCore(budget_config(8), 0.0, nonce=lambda n: b"c" * n)
    admit(core, 1, "home1")
    admit(core, 2, "home2")
    for fid in range(1, 20):  # home1 floods new telemetry flows
        data(core, 1, 0, fid)
    assert len(core.sessions[1].flows) == 8
    assert core.ledger.total(drops.FLOW_TABLE_FULL, "telemetry") == 11
    core.datagrams_to_deliver()
    data(core, 1, 1, 100)  # home1's own alarm still opens (critical reserve)
    data(core, 2, 1, 200)  # and home2's
    assert [(d.assoc_id, d.service.name) for d in core.datagrams_to_deliver()] == [(1, "alarm"), (2, "alarm")]
    for fid in range(300, 300 + CRITICAL_RESERVE + 3):  # the reserve itself is bounded
        data(core, 1, 1, fid)
    assert len(core.sessions[1].flows) == 8 + CRITICAL_RESERVE
    assert core.ledger.total(drops.FLOW_TABLE_FULL, "alarm") == 4


def test_fd_budget_bounds_all_homes_together_and_keeps_a_reserve_for_alarms():
    core = EndpointCore(budget_config(1000), 0.0, nonce=lambda n: b"c" * n, fd_budget=CRITICAL_RESERVE + 20)
    admit(core, 1, "home1")
    admit(core, 2, "home2")
    for fid in range(1, 40):  # one home takes every normal slot of the process
        data(core, 1, 0, fid)
    assert len(core.sessions[1].flows) == 20 and core.ledger.total(drops.FD_BUDGET, "telemetry") == 19
    data(core, 2, 0, 1)  # another home's telemetry: no fd left for it
    assert core.ledger.total(drops.FD_BUDGET, "telemetry") == 20
    core.datagrams_to_deliver()
    data(core, 2, 1, 7)  # but its alarm opens from the reserve
    assert [(d.assoc_id, d.service.name) for d in core.datagrams_to_deliver()] == [(2, "alarm")]
    for fid in range(10, 10 + CRITICAL_RESERVE + 2):
        data(core, 2, 1, fid)
    held = sum(len(s.flows) for s in core.sessions.values())
    assert held == CRITICAL_RESERVE + 20 and core.ledger.total(drops.FD_BUDGET, "alarm") == 3
    assert drops.FD_BUDGET in drops.REASONS


def test_critical_datagram_evicts_a_queued_non_critical_one():
    ledger = DropLedger()
    q = OutQueue(3, ledger)  # 3 per service with something queued
    for i in range(4):
        q.push(Outgoing(b"t%d" % i, 1, service="telemetry"), 0.0)  # t3 refused: full for one service
    for _ in range(4):
        assert q.push(Outgoing(b"alarm", 1, service="alarm", critical=True), 0.0)
    assert [it.data for it in q] == [b"alarm"] * 4 + [b"t1", b"t2"] and q.evicted == 1  # critical first
    assert ledger.total(drops.QUEUE_FULL, "telemetry") == 2 and ledger.total(drops.QUEUE_FULL, "alarm") == 0
    assert not q.push(Outgoing(b"t4", 1, service="telemetry"), 0.0)  # non-critical: dropped itself
    for _ in range(2):
        assert q.push(Outgoing(b"alarm", 1, service="alarm", critical=True), 0.0)
    assert not q.push(Outgoing(b"alarm", 1, service="alarm", critical=True), 0.0)  # only critical left
    assert ledger.total(drops.QUEUE_FULL, "alarm") == 1 and ledger.total(drops.QUEUE_FULL, "telemetry") == 5


def many_homes(n: int) -> EndpointCore:
    cfg = endpoint_config(peers=tuple(Peer(f"h{i}", KEY) for i in range(1, n + 1)),
                          svcs=(services()[0], Service("alarm", target="10.2.0.3:7001", critical=True)))
    core = EndpointCore(cfg, 0.0, nonce=lambda n: b"c" * n)
    for i in range(1, n + 1):
        admit(core, i, f"h{i}")
    return core


def test_a_pump_hands_out_only_the_queues_pushed_to():
    core = many_homes(50)
    assert len(core.queues()) == 50  # each got its CHALLENGE and WELCOME
    assert core.queues() == []  # nothing new: no O(homes) walk per pump
    core.receive_from_target(7, 1, b"x", 0.1)  # no such flow yet: nothing queued
    data(core, 7, 0, 1, 0.1)
    core.receive_from_target(7, 1, b"reply", 0.2)
    assert core.queues() == [core.sessions[7].queue]


def test_flows_expire_on_the_tick_and_the_timer_is_not_the_flows():
    core = many_homes(3)
    idle = core.main.flow_idle
    for aid in (1, 2, 3):
        data(core, aid, 0, 1, 0.0)
    assert core.flows_held == 3
    assert core.get_timer() == pytest.approx(SAMPLE_INTERVAL)  # the tick, not a flow deadline
    data(core, 2, 0, 1, idle / 2)  # home 2's flow stays busy
    list(iter(core.next_action, None))
    t = 0.0
    while t < idle + SAMPLE_INTERVAL:
        t = core.get_timer()
        core.handle_timer(t)
    closed = [(a.assoc_id, a.flow_id) for a in iter(core.next_action, None) if type(a).__name__ == "CloseTarget"]
    assert sorted(closed) == [(1, 1), (3, 1)] and core.flows_held == 1
    assert t - idle <= SAMPLE_INTERVAL + 1e-9  # late by less than one tick


def test_path_samples_are_batched_and_reach_every_home_in_turn():
    n = SAMPLE_BATCH * 2 + 5
    core = many_homes(n)
    seen: list[int] = []
    t = 0.0
    for _ in range(3):
        t = core.get_timer()
        core.handle_timer(t)
        batches = [a for a in iter(core.next_action, None) if type(a).__name__ == "SamplePaths"]
        assert len(batches) == 1 and len(batches[0].assoc_ids) <= SAMPLE_BATCH
        seen += batches[0].assoc_ids
    assert set(seen) == set(range(1, n + 1))


def test_held_flows_follow_opens_closes_and_lost_homes():
    core = many_homes(2)
    for fid in (1, 2, 3):
        data(core, 1, 0, fid)
    data(core, 2, 1, 9)
    assert core.flows_held == 4
    core.receive_message(1, wire.encode_close(2), ("192.0.2.1", 40000), 0, 0.1)
    assert core.flows_held == 3
    core.association_gone(1, "peer closed", 0.2)
    assert core.flows_held == 1 == sum(len(s.flows) for s in core.sessions.values())


def test_no_critical_copy_onto_the_path_the_first_copy_takes():
    """Before the gateway says PATH, the kernel sends on the association's first address
    (its primary by default): the copy must not go there too, nor anywhere for a home
    with a single path (a copy on the same path is no second chance, only a duplicate)."""
    core = many_homes(2)
    for aid in (1, 2):
        core.path_state(aid, (f"192.0.2.{aid}", 40000), PathState.ACTIVE, 0.0)
    core.path_state(2, ("198.51.100.2", 40000), PathState.ACTIVE, 0.0)  # home 2: a second path
    for aid in (1, 2):
        data(core, aid, 1, 5)  # an alarm flow each
    core.queues()
    for aid in (1, 2):
        core.receive_from_target(aid, 5, b"answer", 0.1)
    q1 = list(core.sessions[1].queue)
    q2 = list(core.sessions[2].queue)
    assert [it.to for it in q1[-1:]] == [None] and len([it for it in q1 if it.critical]) == 1
    copies = [it for it in q2 if it.critical]
    assert len(copies) == 2 and copies[1].to == ("198.51.100.2", 40000)
