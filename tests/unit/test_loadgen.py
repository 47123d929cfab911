"""The scale bench's pieces that run without kernel SCTP: the endpoint config it
generates for N homes is one haig accepts, and the load generator's homes pass the
real admission check (the endpoint's side of haig.core.wire)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from haig.config.loader import load_config
from haig.core import wire
from tests.bench.scale import endpoint_conf
from tests.testbed.loadgen import SERVICES, home_id, home_key
from tests.testbed.topology import MAIN


def _topo():
    return SimpleNamespace(links={MAIN: SimpleNamespace(ep_addr="10.202.0.15")}, server_addr="10.2.0.2")


def test_config_for_1000_homes_is_accepted(tmp_path):
    p = tmp_path / "haig.conf"
    p.write_text(endpoint_conf(_topo(), 1000))
    cfg = load_config(str(p), None)
    assert len(cfg.peers) == 1000
    assert {p.name for p in cfg.peers} == {home_id(i) for i in range(1000)}
    assert [s.name for s in cfg.services] == list(SERVICES)


def test_loadgen_hello_passes_the_endpoint_check():
    challenge, nonce = os.urandom(wire.NONCE), os.urandom(wire.NONCE)
    msg = wire.encode_hello(home_key(7), challenge, home_id(7), nonce, SERVICES)
    hello = wire.decode_hello(msg)
    assert hello.gateway_id == home_id(7) and wire.hello_ok(home_key(7), challenge, hello)
    assert not wire.hello_ok(home_key(8), challenge, hello)


def test_each_home_gets_its_own_source_address():
    from tests.testbed.loadgen import source_of

    assert source_of(None, 5) is None
    addrs = [source_of("10.220.0.0/16", i) for i in range(1000)]
    assert addrs[0] == "10.220.0.1" and addrs[999] == "10.220.3.232" and len(set(addrs)) == 1000
    with pytest.raises(ValueError, match="no address for home 2"):
        source_of("10.220.0.0/30", 2)


def test_account_every_datagram_is_replied_counted_or_uncounted():
    from tests.testbed.loadgen import account

    a = account(1000, 900, 40, 10, {"ttl_expired": 20, "no_association": 5})
    assert a["sent"] == 1000 and a["replied"] == 900
    assert a["lost_by_reason"] == {"abandoned_sent": 40, "abandoned_unsent": 10, "ep_ttl_expired": 20,
                                   "ep_no_association": 5}
    assert a["counted_lost"] == 75 and a["uncounted"] == 25
    assert a["replied"] + a["counted_lost"] + a["uncounted"] == a["sent"]
    # nothing lost: no reasons, nothing uncounted; counted twice shows as negative
    assert account(10, 10, 0, 0)["lost_by_reason"] == {} and account(10, 10, 0, 0)["uncounted"] == 0
    assert account(10, 9, 2, 0)["uncounted"] == -1


def test_send_failed_counts_only_our_data_by_whether_it_went_out():
    from haig.adapters.sctp_io import SendFailed
    from tests.testbed.loadgen import PAYLOAD, Stats, on_send_failed

    st = Stats()
    data = wire.encode_data(0, 1, PAYLOAD.pack(3, 7, 0), seq=7)
    on_send_failed(st, SendFailed(0, True, 5, data))
    on_send_failed(st, SendFailed(0, False, 5, data))
    on_send_failed(st, SendFailed(0, False, 5, data))
    on_send_failed(st, SendFailed(0, True, 5, b"\xff"))  # not a haig message: not ours
    hello = wire.encode_hello(home_key(1), os.urandom(wire.NONCE), home_id(1), os.urandom(wire.NONCE), SERVICES)
    on_send_failed(st, SendFailed(0, True, 5, hello))  # control, not a datagram we counted as sent
    assert (st.abandoned_sent, st.abandoned_unsent) == (1, 2)


def test_a_reply_counts_once_per_home_and_message():
    from tests.testbed.loadgen import Stats, on_reply

    st = Stats()
    assert on_reply(st, 1, 7) and on_reply(st, 2, 7) and not on_reply(st, 1, 7)
    assert (st.replies, st.dup_replies) == (2, 1)


def test_raw_replies_are_parsed_like_relayed_ones():
    """The SCTP echo sends the generator's own DATA message back: the reply path is the
    one haig's replies take (round trip from the payload, counted once)."""
    from tests.testbed.loadgen import PAYLOAD, Home, Stats, _on_message

    st, h = Stats(), Home(3, None, state="admitted")
    msg = wire.encode_data(0, 1, PAYLOAD.pack(3, 7, 1_000_000).ljust(200, b"\0"), seq=7)
    _on_message(h, msg, "raw", st, 3_000_000)
    _on_message(h, msg, "raw", st, 4_000_000)
    assert st.replies == 1 and st.dup_replies == 1 and st.rtt_us == [2000]


def test_abandoned_after_send_comes_from_the_kernels_counters(monkeypatch):
    """Linux sends no SEND_FAILED for a message abandoned after it went out: the
    generator adds its data streams' PR-SCTP counters (ecg and alarm) per home."""
    from tests.testbed import loadgen

    calls = []

    def fake(sock, assoc_id, stream):
        calls.append(stream)
        if stream == 2:
            raise OSError("stream never used")
        return (4, 9)

    monkeypatch.setattr(loadgen.sctp_opts, "get_abandoned", fake)
    st = loadgen.Stats()
    loadgen.read_abandoned(loadgen.Home(0, None, state="admitted"), st)
    assert calls == list(loadgen.DATA_STREAMS) and (st.kernel_abandoned_unsent, st.kernel_abandoned_sent) == (4, 9)
