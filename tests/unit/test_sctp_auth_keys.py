"""SCTP-AUTH keyed per association at admission (issue 13): when each end installs,
uses and retires which key, and what an end that does no SCTP-AUTH gets. The kernel
side (the socket options, DATA dropped under a wrong key) is in tests/vm/test_sctp_opts.py."""

from __future__ import annotations

import dataclasses
import os

from haig.core import endpoint_session as es
from haig.core import gateway_link as gl
from haig.core import wire
from haig.core.states import AssocState
from tests.unit.relay_bench import Bench, endpoint_config, gateway_config


def _bench(*, auth: bool = True, gw_require: bool = True, ep_require: bool = True) -> Bench:
    gw, ep = gateway_config(), endpoint_config()
    gw = dataclasses.replace(gw, main=dataclasses.replace(gw.main, require_auth=gw_require))
    ep = dataclasses.replace(ep, main=dataclasses.replace(ep.main, require_auth=ep_require))
    b = Bench(gw_cfg=gw, ep_cfg=ep, auth=auth)
    b.run_until(0.0)
    return b


def test_both_ends_derive_the_same_key_and_switch_in_a_safe_order():
    b = _bench()
    assert b.gw.state is AssocState.UP
    gw_keys = [a for a in b.gw_actions if isinstance(a, gl.AuthKey)]
    ep_keys = [a for a in b.ep_actions if isinstance(a, es.AuthKey)]
    # the gateway accepts key 1 from its HELLO on, and sends with it only after WELCOME;
    # the endpoint switches (and drops key 0) before it sends WELCOME
    assert [k.use for k in gw_keys] == [False, True]
    assert len(ep_keys) == 1 and ep_keys[0].assoc_id == b.assoc_id
    assert gw_keys[0].key == gw_keys[1].key == ep_keys[0].key and len(ep_keys[0].key) == 32
    assert "key" not in repr(gw_keys[0]).replace("AuthKey", "")  # never in a log line
    assert b.gw.association_view()["auth"] is True and b.ep.sessions[b.assoc_id].auth


def test_every_association_gets_its_own_key():
    b = _bench()
    b.gw._nonce_source = b.ep._nonce = os.urandom  # the bench's nonces are fixed; real ones are not
    first = next(a.key for a in b.ep_actions if isinstance(a, es.AuthKey))
    b.gw.association_lost("test", b.now)
    b.run_until(b.now + 5)
    keys = [a.key for a in b.ep_actions if isinstance(a, es.AuthKey)]
    assert len(keys) == 2 and keys[1] != first


def test_key_is_hkdf_of_the_shared_key_and_both_nonces():
    k = wire.auth_key("s" * 16, b"c" * wire.NONCE, b"n" * wire.NONCE)
    assert k != wire.auth_key("t" * 16, b"c" * wire.NONCE, b"n" * wire.NONCE)
    assert k != wire.auth_key("s" * 16, b"d" * wire.NONCE, b"n" * wire.NONCE)
    assert k != wire.auth_key("s" * 16, b"c" * wire.NONCE, b"m" * wire.NONCE)


def test_a_peer_without_sctp_auth_is_refused_by_both_ends():
    b = _bench(auth=False)
    assert b.gw.state is not AssocState.UP and "SCTP-AUTH" in b.gw.reason
    assert not b.ep.by_gateway


def test_the_endpoint_refuses_it_even_when_the_gateway_does_not_require_it():
    b = _bench(auth=False, gw_require=False)
    assert not b.ep.by_gateway
    assert any("no SCTP-AUTH" in line for line in b.ep.refusals.take_details())


def test_without_require_auth_both_ends_admit_it_unauthenticated():
    b = _bench(auth=False, gw_require=False, ep_require=False)
    assert b.gw.state is AssocState.UP
    assert b.gw.association_view()["auth"] is False
    assert not [a for a in b.gw_actions + b.ep_actions if isinstance(a, gl.AuthKey | es.AuthKey)]


def test_a_key_that_cannot_be_installed_ends_the_association():
    b = _bench()
    b.gw.auth_failed("EACCES", b.now)
    b.pump()
    assert "SCTP-AUTH" in b.gw.reason and b.gw.state is not AssocState.UP
    b2 = _bench()
    b2.ep.auth_failed(b2.assoc_id, "EACCES", b2.now)
    assert not b2.ep.by_gateway
