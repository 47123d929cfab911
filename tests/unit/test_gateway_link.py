"""The relay protocol on the host: a gateway core and an endpoint core back to back on a
fake clock (tests/unit/relay_bench.py) — admission, illegal messages, critical copies and
de-duplication across re-association, flow expiry and CLOSE, queue overflow, back-off,
drop accounting."""

from __future__ import annotations

import pytest

from haig.config.model import Peer
from haig.core import drops, wire
from haig.core.abandonment import CONFIRM as ABANDON_CONFIRM
from haig.core.admission import Adm
from haig.core.endpoint_session import ADMISSION_TIMEOUT as EP_ADMISSION_TIMEOUT
from haig.core.gateway_link import ADMISSION_TIMEOUT, Connect, Disconnect
from haig.core.states import AssocState
from tests.unit.relay_bench import (
    CLIENT,
    DSL_EP,
    KEY,
    LTE_EP,
    Bench,
    endpoint_config,
    gateway_config,
)


def admitted(**gw_kw) -> Bench:
    b = Bench(gw_cfg=gateway_config(**gw_kw), ep_cfg=endpoint_config(critical=gw_kw.get("critical", False)))
    b.run_until(0.0)
    assert b.gw.state is AssocState.UP, b.gw.reason
    return b


# -- admission ---------------------------------------------------------------------------


def test_good_key_is_admitted_and_data_flows_both_ways():
    b = admitted()
    assert b.ep.by_gateway == {"home1": b.assoc_id}
    b.client_sends(b"hello")
    assert [d.payload for d in b.delivered_to_targets] == [b"hello"]
    b.target_replies(b"back")
    assert [(d.client, d.payload) for d in b.delivered_to_clients] == [(CLIENT, b"back")]
    assert b.drops() == {}
    assert any(e.kind == "assoc" and e.new == "up" and e.subject == "home1" for e in b.events)


def test_wrong_key_is_refused_and_retried_with_the_normal_back_off():
    b = Bench(gw_cfg=gateway_config(key="x" * 24))
    b.run_until(0.0)
    # the wire says only "not admitted"; the endpoint's own event says why
    assert b.gw.state is AssocState.REFUSED and b.gw.reason.endswith("not admitted")
    assert any("wrong key" in e.reason for e in b.events if e.new == "refused" and e.subject == "home1")
    assert not b.ep.by_gateway
    refusals = [e for e in b.events if e.new == "refused"]
    assert {e.subject for e in refusals} == {"haig", "home1"}
    # REFUSED proves nothing: no 60 s penalty; retries grow on the normal schedule
    first_retry = b.gw.get_timer()
    assert first_retry is not None and first_retry - b.now <= 0.6
    connects = [a for a in b.gw_actions if isinstance(a, Connect)]
    b.run_until(10.0)
    assert len([a for a in b.gw_actions if isinstance(a, Connect)]) > len(connects) + 2


def test_unknown_and_disabled_gateways_are_refused():
    for peers, why in (((Peer("other", KEY),), "unknown gateway"), ((Peer("home1", KEY, enabled=False),), "disabled")):
        b = Bench(ep_cfg=endpoint_config(peers=peers))
        b.run_until(0.0)
        assert b.gw.state is AssocState.REFUSED and b.gw.reason.endswith("not admitted")
        assert b.ep.refusals.totals == {why if why != "disabled" else "gateway disabled": 1}


def test_replayed_hello_fails_against_a_fresh_challenge():
    b = admitted()
    hello = wire.encode_hello(KEY, bytes(range(16)), "home1", b"g" * 16, ("telemetry",))
    b.ep._nonce = lambda n: b"\x07" * n  # the next association gets another challenge
    b.ep.association_up(99, b.now)
    b.ep.receive_message(99, hello, ("192.0.2.66", 40000), 0, b.now)
    b.pump()
    assert any("wrong key" in e.reason for e in b.events if e.new == "refused")
    assert b.ep.by_gateway["home1"] == b.assoc_id  # the real home keeps its association


def test_endpoint_that_cannot_prove_the_key_is_refused_by_the_gateway():
    b = Bench()
    b.gw.connected(0.0)
    b.gw.receive_message(wire.encode_challenge(b"c" * 16), (DSL_EP, 8888), 0.0)
    b.gw.receive_message(wire.encode_welcome("y" * 24, b"g" * 16, b"c" * 16, (True,)), (DSL_EP, 8888), 0.0)
    assert not b.gw.admitted and b.gw.state is AssocState.REFUSED
    assert "prove" in b.gw.reason


@pytest.mark.parametrize("msg", [
    wire.encode_data(0, 1, b"x"),
    wire.encode_path(),
    wire.encode_welcome(KEY, b"g" * 16, b"c" * 16, (True,)),
    wire.encode_refused("go away"),
], ids=["data", "path", "welcome", "refused"])
def test_gateway_rejects_messages_illegal_before_the_challenge(msg):
    b = Bench()
    b.gw.connected(0.0)
    b.gw.receive_message(msg, (DSL_EP, 8888), 0.0)
    assert b.gw.adm.state is Adm.AWAIT_CHALLENGE and b.gw.adm.illegal == 1
    assert b.gw.datagrams_to_deliver() == [] and b.gw.state is AssocState.AUTHENTICATING
    assert b.gw.ledger.total(drops.ILLEGAL_STATE) == 1


def test_gateway_rejects_data_before_welcome_and_refused_after_it():
    b = Bench()
    b.gw.connected(0.0)
    b.gw.receive_message(wire.encode_challenge(b"c" * 16), (DSL_EP, 8888), 0.0)
    b.gw.receive_message(wire.encode_data(0, 1, b"x"), (DSL_EP, 8888), 0.0)  # HELLO_SENT
    assert b.gw.datagrams_to_deliver() == [] and b.gw.adm.state is Adm.HELLO_SENT
    b2 = admitted()
    b2.gw.receive_message(wire.encode_refused("forged"), (DSL_EP, 8888), b2.now)
    assert b2.gw.admitted and b2.gw.ledger.total(drops.ILLEGAL_STATE) == 1


@pytest.mark.parametrize("msg", [wire.encode_data(0, 5, b"x"), wire.encode_path(), wire.encode_close(5)],
                         ids=["data", "path", "close"])
def test_endpoint_rejects_messages_before_hello(msg):
    b = Bench()
    b.ep.association_up(7, 0.0)
    b.ep.receive_message(7, msg, ("192.0.2.1", 40000), 0, 0.0)
    sess = b.ep.sessions[7]
    assert sess.adm.state is Adm.AWAIT_HELLO and sess.adm.illegal == 1
    assert b.ep.datagrams_to_deliver() == [] and sess.primary is None
    assert b.ep.ledger.total(drops.ILLEGAL_STATE) == 1


def test_no_hello_in_time_is_refused_then_aborted():
    b = Bench()
    b.ep.association_up(7, 0.0)
    b.ep.handle_timer(EP_ADMISSION_TIMEOUT)
    assert any("no HELLO" in e.reason for e in iter(b.ep.next_event, None))
    b.ep.handle_timer(EP_ADMISSION_TIMEOUT + 1)
    acts = [a for a in iter(b.ep.next_action, None)]
    assert any(type(a).__name__ == "Abort" and a.assoc_id == 7 for a in acts)


def test_gateway_gives_up_an_association_that_is_never_admitted():
    b = Bench()
    b.gw.connected(0.0)
    b.gw.handle_timer(ADMISSION_TIMEOUT)
    assert not b.gw.associated and b.gw.state is AssocState.DOWN
    assert any(isinstance(a, Disconnect) for a in iter(b.gw.next_action, None))


# -- back-off and reconnect --------------------------------------------------------------


def test_unreachable_endpoint_is_retried_quickly_while_links_are_up():
    b = Bench()
    b.up = None  # every connect is refused
    b.run_until(20.0)
    connects = [a for a in b.gw_actions if isinstance(a, Connect)]
    assert len(connects) >= 8  # waits 0.5, 1, 2, 2, 2 ... never more than the 2 s cap (+20%)
    assert b.gw.state is AssocState.CONNECTING
    assert len([e for e in b.events if e.new == "connecting"]) == 1  # one event, not one per retry


def test_endpoint_restart_reconnects_within_the_back_off_cap():
    b = admitted()
    b.endpoint_restarts()
    assert b.gw.state is AssocState.DOWN
    b.run_until(b.now + 3.0)
    assert b.gw.state is AssocState.UP


def test_link_up_skips_the_back_off():
    b = Bench()
    b.up = None
    for u in ("dsl", "lte"):
        b.gw.uplink_facts(u, up=False, local_address=None, reason="carrier lost", now=0.0)
    b.run_until(60.0)  # waits have grown (no usable link): up to 30 s
    b.up = False
    assert b.gw.get_timer() - b.now > 2.5
    b.gw.uplink_facts("dsl", up=True, local_address=None, reason="carrier", now=b.now)
    assert b.gw.get_timer() == b.now
    b.run_until(b.now)
    assert b.gw.state is AssocState.UP


def test_no_local_address_yet_is_retried_and_an_address_starts_the_association():
    b = Bench(gw_cfg=gateway_config(local=False))
    b.run_until(0.0)
    assert b.gw.state is AssocState.CONNECTING and "no uplink has a local address" in b.gw.reason
    b.gw.uplink_facts("dsl", up=True, local_address="192.0.2.9", reason="address", now=0.1)
    b.run_until(0.1)
    assert b.gw.state is AssocState.UP and b.gw.bound == ("192.0.2.9",)


def test_new_local_address_re_associates_from_it_at_once():
    b = Bench(gw_cfg=gateway_config(local=False))
    b.gw.uplink_facts("dsl", up=True, local_address="192.0.2.9", reason="address", now=0.0)
    b.gw.uplink_facts("lte", up=True, local_address="203.0.113.9", reason="address", now=0.0)
    b.run_until(0.0)
    n = b.assoc_id
    b.gw.uplink_facts("dsl", up=True, local_address="192.0.2.77", reason="new lease", now=1.0)
    b.run_until(1.0)
    assert b.assoc_id == n + 1 and b.gw.state is AssocState.UP
    assert "192.0.2.77" in b.gw.bound
    connects = [a for a in b.gw_actions if isinstance(a, Connect)]
    assert "192.0.2.77" in connects[-1].bind


# -- data: critical copies, de-duplication, flows ---------------------------------------


def test_critical_datagram_goes_on_both_paths_and_is_delivered_once():
    b = admitted(critical=True)
    for i in range(5):
        b.client_sends(b"alarm %d" % i)
    assert [d.payload for d in b.delivered_to_targets] == [b"alarm %d" % i for i in range(5)]
    dup = sum(s.flows.by_id(1).dedup.duplicates for s in b.ep.sessions.values() if s.flows and s.flows.by_id(1))
    assert dup == 5  # every copy arrived and was suppressed
    for i in range(5):
        b.target_replies(b"ack %d" % i)
    assert [d.payload for d in b.delivered_to_clients] == [b"ack %d" % i for i in range(5)]


def test_critical_copy_survives_a_dead_primary_path():
    b = admitted(critical=True)
    b.lossy.add(DSL_EP)  # primary path loses everything; the copy goes over lte
    b.client_sends(b"alarm")
    assert [d.payload for d in b.delivered_to_targets] == [b"alarm"]


def test_replies_are_not_deduplicated_away_after_re_association():
    """The endpoint's new flows number from a new epoch: the gateway's old windows must
    not reject them (issue 9: 0 of 10 delivered before)."""
    b = admitted(critical=True)
    for i in range(10):
        b.client_sends(b"q%d" % i)
        b.target_replies(b"r%d" % i)
    b.endpoint_restarts()
    b.run_until(b.now + 3.0)
    assert b.gw.admitted
    got = len(b.delivered_to_clients)
    for i in range(10):
        b.client_sends(b"q%d" % i)
        b.target_replies(b"r%d" % i)
    assert len(b.delivered_to_clients) - got == 10
    assert b.drops() == {}


def test_endpoint_flow_expiry_does_not_silence_replies():
    b = admitted(critical=True)
    b.client_sends(b"q")
    b.target_replies(b"r")
    sess = b.ep.sessions[b.assoc_id]
    sess.flows.expire(b.now + 10_000)  # the endpoint forgets the flow, the gateway does not
    b.client_sends(b"q2")
    b.target_replies(b"r2")
    assert [d.payload for d in b.delivered_to_clients] == [b"r", b"r2"]


def test_idle_flow_expires_and_close_frees_the_endpoint_side():
    b = admitted()
    b.client_sends(b"x")
    flow_id = b.delivered_to_targets[-1].flow_id
    b.run_until(b.now + b.gw_cfg.main.flow_idle + 1)
    assert len(b.gw.flows) == 0
    closes = [a for a in b.ep_actions if type(a).__name__ == "CloseTarget"]
    assert [(a.assoc_id, a.flow_id) for a in closes] == [(b.assoc_id, flow_id)]
    assert b.ep.sessions[b.assoc_id].flows.get(flow_id) is None


def test_datagrams_without_association_are_counted_by_service():
    b = Bench()
    b.gw.receive_datagram(0, CLIENT, b"x", 0.0)
    b.gw.receive_datagram(0, CLIENT, b"y" * 2000, 0.0)
    assert b.gw.ledger.total(drops.NO_ASSOCIATION, "telemetry") == 1
    assert b.gw.ledger.total(drops.OVERSIZED, "telemetry") == 1


def test_queue_overflow_and_association_loss_are_counted():
    b = admitted(queue=3)
    for i in range(5):  # the socket "would block": nothing leaves the queue
        b.gw.receive_datagram(0, CLIENT, b"%d" % i, b.now)
    assert len(b.gw.queue) == 3 and b.gw.ledger.total(drops.QUEUE_FULL, "telemetry") == 2
    b.gw.association_lost("association lost", b.now)
    assert b.gw.ledger.total(drops.ASSOC_LOST, "telemetry") == 3
    assert "3 queued datagrams lost" in b.gw.reason


def test_flow_table_full_is_counted():
    b = admitted(max_flows=1)
    b.client_sends(b"a", client=("192.168.1.10", 1))
    b.client_sends(b"b", client=("192.168.1.11", 2))
    assert b.drops(b.gw) == {(drops.FLOW_TABLE_FULL, "telemetry"): 1}


def test_abandoned_messages_count_as_lost_only_when_no_copy_made_it():
    b = admitted(critical=True)
    b.gw.receive_datagram(0, CLIENT, b"a", b.now)
    sent = list(b.gw.queue)
    assert len(sent) == 2  # the datagram and its copy
    b.gw.abandoned_message(sent[0].data, b.now)
    assert b.gw.ledger.total(drops.TTL_EXPIRED) == 0  # the copy may have arrived
    b.gw.abandoned_message(sent[1].data, b.now)
    assert b.gw.ledger.total(drops.TTL_EXPIRED, "telemetry") == 1
    b.gw.abandoned_message(wire.encode_path(), b.now)  # control: no datagram
    assert b.gw.ledger.total(drops.TTL_EXPIRED) == 1


def test_critical_loss_is_a_rate_limited_drop_event():
    b = Bench(gw_cfg=gateway_config(critical=True))
    for i in range(50):
        b.gw.receive_datagram(0, CLIENT, b"x", i * 0.1)  # 5 s of alarms with no association
    evs = [e for e in iter(b.gw.next_event, None) if e.kind == "drop"]
    assert len(evs) == 1 and evs[0].subject == "telemetry" and evs[0].detail["count"] == 1
    b.gw.handle_timer(10.0)
    evs = [e for e in iter(b.gw.next_event, None) if e.kind == "drop"]
    assert len(evs) == 1 and evs[0].detail["count"] == 49


def test_endpoint_without_target_for_a_service_counts_no_target():
    b = Bench(ep_cfg=endpoint_config(svcs=()))
    b.run_until(0.0)
    assert b.gw.admitted and b.gw.accepted == (False,)
    b.client_sends(b"x")
    assert b.drops() == {(drops.NO_TARGET, "telemetry"): 1}


def test_primary_change_is_announced_with_path_over_the_new_primary():
    b = admitted()
    assert b.ep.sessions[b.assoc_id].primary[0] == "192.0.2.1"
    b.lossy.add(DSL_EP)
    b.gw.path_state((DSL_EP, 8888), "unreachable", b.now)
    b.lossy.discard(DSL_EP)
    b.pump()
    assert b.gw.policy.primary == "lte"
    assert b.ep.sessions[b.assoc_id].primary[0] == "203.0.113.1"
    assert LTE_EP  # the PATH went over lte: the endpoint follows its source address


def test_a_pf_primary_is_held_for_its_grace_and_the_core_timer_moves_it_at_the_end():
    b = admitted()
    b.lossy.add(DSL_EP)  # every sample from now on says PF
    t0 = b.now
    b.gw.path_state((DSL_EP, 8888), "pf", t0)
    grace = b.gw.policy._paths["dsl"].grace_pf
    assert grace == 0.5  # samples: srtt 10, RTO 200 ms -> 0.42 s, raised to the floor
    b.run_until(t0 + grace - 0.01)
    assert b.gw.policy.primary == "dsl"  # the kernel sends on lte meanwhile
    b.run_until(t0 + grace + 0.01)
    assert b.gw.policy.primary == "lte"
    assert b.ep.sessions[b.assoc_id].primary[0] == "203.0.113.1"


def test_policy_knobs_are_reloaded_in_place_and_addresses_are_not():
    import dataclasses

    b = admitted()
    b.client_sends(b"x")
    cfg = dataclasses.replace(b.gw_cfg, main=dataclasses.replace(b.gw_cfg.main, hold_down=60, queue=9))
    assert b.gw.can_reconfigure(cfg)
    b.gw.reconfigure(cfg, b.now)
    assert b.gw.admitted and len(b.gw.flows) == 1
    assert b.gw.policy.hold_down == 60 and b.gw.queue.limit == 9
    moved = dataclasses.replace(b.gw_cfg, main=dataclasses.replace(b.gw_cfg.main, port=9999))
    assert not b.gw.can_reconfigure(moved)


def test_association_with_every_path_dead_is_given_up_and_remade_when_a_link_returns():
    from haig.core.gateway_link import DEAD_PATHS_TIMEOUT

    b = admitted()
    t0 = b.now
    for u, addr in (("dsl", DSL_EP), ("lte", LTE_EP)):
        b.gw.uplink_facts(u, up=False, local_address=None, reason="carrier lost", now=t0)
        b.gw.path_state((addr, 8888), "unreachable", t0)
    b.up = None  # while the links are down nothing connects
    b.run_until(t0 + DEAD_PATHS_TIMEOUT + 0.1)
    assert not b.gw.associated and "no path usable" in b.gw.reason
    b.up = False
    b.gw.uplink_facts("dsl", up=True, local_address=None, reason="carrier", now=b.now)
    b.run_until(b.now)
    assert b.gw.admitted


def test_messages_abandoned_after_sending_are_counted_against_their_service():
    """PR-SCTP drops a sent message whose lifetime ran out without a send-failed event:
    only the kernel's per-stream counter says so. The driver feeds the running totals;
    the core counts the increase once a path has carried the association past it
    (ABANDON_CONFIRM), and starts again with a new association."""
    b = admitted()
    gw = b.gw
    (stream,) = gw.abandon_streams()
    t = b.now
    gw.abandoned_sent(stream, 0, t + 1.0)
    gw.abandoned_sent(stream, 3, t + 1.25)
    gw.abandoned_sent(stream, 3, t + 1.5)  # no change: nothing new
    assert gw.after_send.in_doubt == 3 and (drops.TTL_EXPIRED, "telemetry") not in b.drops()
    b.run_until(t + 1.25 + ABANDON_CONFIRM + 0.3)  # samples: both paths ACTIVE throughout
    assert b.drops()[(drops.TTL_EXPIRED, "telemetry")] == 3 and gw.after_send.in_doubt == 0
    gw.association_lost("test", b.now)
    b.run_until(b.now + 5)
    assert gw.admitted
    gw.abandoned_sent(stream, 1, b.now)  # a new association's counter starts at 0
    b.run_until(b.now + ABANDON_CONFIRM + 0.3)
    assert b.drops()[(drops.TTL_EXPIRED, "telemetry")] == 4


def abandoned_while_paths_fail(n: int):
    """An admitted gateway whose every sample says PF from now on, and the kernel's count
    of one service's messages abandoned after sending at `n`."""
    b = admitted()
    (stream,) = b.gw.abandon_streams()
    b.lossy = {DSL_EP, LTE_EP}
    b.run_until(b.now + 0.5)
    b.gw.abandoned_sent(stream, n, b.now)
    return b, b.gw


def test_abandonments_of_an_association_that_dies_are_left_to_its_teardown():
    """Abandoned while no path works: still on the kernel's abandoned list when the
    association dies, so its teardown (send-failed events, SCTP_STATUS) counts them;
    counted here as well they were counted twice (both_down_20s: 851 for 753 lost).
    The Disconnect carries them, for the driver to confirm at a graceful SHUTDOWN."""
    b, gw = abandoned_while_paths_fail(7)
    b.run_until(b.now + ABANDON_CONFIRM + 1)
    assert gw.after_send.in_doubt == 7 and (drops.TTL_EXPIRED, "telemetry") not in b.drops()
    gw.association_lost("all paths down", b.now)
    b.pump()
    (d,) = [a for a in b.gw_actions if isinstance(a, Disconnect)]
    assert d.in_doubt == (("telemetry", 7),) and gw.after_send.in_doubt == 0
    assert (drops.TTL_EXPIRED, "telemetry") not in b.drops()
    gw.abandoned_confirmed(d.in_doubt, b.now)  # it ended with SHUTDOWN_COMPLETE after all
    assert b.drops()[(drops.TTL_EXPIRED, "telemetry")] == 7


def test_an_abandonment_is_confirmed_only_after_a_path_works_again_long_enough():
    b, gw = abandoned_while_paths_fail(2)
    b.run_until(b.now + 10)
    b.lossy = set()  # the paths come back: from the next sample on, ACTIVE
    back = b.now
    b.run_until(back + ABANDON_CONFIRM - 0.5)
    assert gw.after_send.in_doubt == 2
    b.run_until(back + ABANDON_CONFIRM + 0.5)
    assert gw.after_send.in_doubt == 0 and b.drops()[(drops.TTL_EXPIRED, "telemetry")] == 2


def test_the_critical_stream_is_not_read_as_losses():
    """Copies of critical datagrams go on the other path: a copy abandoned after its twin
    arrived is no loss, so the critical stream's counter is not a loss count."""
    b = admitted(critical=True)
    assert b.gw.abandon_streams() == []
    b.gw.abandoned_sent(1, 5, 1.0)
    assert drops.TTL_EXPIRED not in {r for r, _ in b.drops()}


def test_a_graceful_end_counts_the_abandonments_in_doubt():
    """A SHUTDOWN acknowledged everything, FORWARD-TSNs included: what was in doubt was
    freed silently, so it is counted (and not handed to the close)."""
    b, gw = abandoned_while_paths_fail(5)
    gw.association_lost("peer shut the association down", b.now, graceful=True)
    b.pump()
    (d,) = [a for a in b.gw_actions if isinstance(a, Disconnect)]
    assert d.in_doubt == () and b.drops()[(drops.TTL_EXPIRED, "telemetry")] == 5
