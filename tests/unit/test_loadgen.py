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
