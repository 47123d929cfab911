"""haig's message format: round trips, admission proofs, and malformed input (WireError only)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from haig.core import wire

KEY = "s3cret-key"
CHALLENGE = bytes(range(16))
NONCE_G = bytes(range(100, 116))
SERVICES = ("openvpn", "alarm")


def hello_msg(key=KEY, challenge=CHALLENGE, gw="home-42", nonce=NONCE_G, services=SERVICES) -> bytes:
    return wire.encode_hello(key, challenge, gw, nonce, services)


def welcome_msg(key=KEY, accepted=(True, False)) -> bytes:
    return wire.encode_welcome(key, NONCE_G, CHALLENGE, accepted)


# --- round trips ------------------------------------------------------------------------


@settings(deadline=None)
@given(service=st.integers(0, 255), flow_id=st.integers(0, 2**32 - 1), seq=st.integers(0, 2**32 - 1),
       flags=st.integers(0, 255), payload=st.binary(max_size=2000))
def test_data_round_trip(service, flow_id, seq, flags, payload):
    msg = wire.encode_data(service, flow_id, payload, seq, flags)
    assert len(msg) == wire.DATA_HEADER + len(payload) == 12 + len(payload)
    assert wire.msg_type(msg) == wire.DATA
    assert wire.decode_data(msg) == wire.Data(flags, service, flow_id, seq, payload)


def test_data_header_layout_is_network_order():
    msg = wire.encode_data(7, 0x01020304, b"xy", seq=0x0A0B0C0D, flags=wire.FLAG_CRITICAL | wire.FLAG_COPY)
    assert msg == bytes([1, 5, 3, 7, 1, 2, 3, 4, 10, 11, 12, 13]) + b"xy"


def test_data_decodes_from_memoryview():
    msg = wire.encode_data(1, 2, b"payload")
    d = wire.decode_data(memoryview(msg))
    assert d.payload == b"payload" and type(d.payload) is bytes


def test_data_out_of_range_field_is_value_error():
    with pytest.raises(ValueError):
        wire.encode_data(256, 1, b"")
    with pytest.raises(ValueError):
        wire.encode_data(0, 2**32, b"")


@settings(deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_close_round_trip(flow_id):
    msg = wire.encode_close(flow_id)
    assert wire.msg_type(msg) == wire.CLOSE
    assert wire.decode_close(msg) == flow_id


def test_path_round_trip():
    msg = wire.encode_path()
    assert msg == bytes([wire.VERSION, wire.PATH])
    assert wire.msg_type(msg) == wire.PATH
    assert wire.decode_path(msg) is None


@settings(deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_challenge_round_trip(nonce):
    msg = wire.encode_challenge(nonce)
    assert wire.msg_type(msg) == wire.CHALLENGE
    assert wire.decode_challenge(msg) == nonce


name = st.text(max_size=60)  # at most 240 UTF-8 bytes: always fits the 255-byte limit


@settings(deadline=None)
@given(gw=name, services=st.lists(name, max_size=8).map(tuple),
       challenge=st.binary(min_size=16, max_size=16), nonce=st.binary(min_size=16, max_size=16))
def test_hello_round_trip(gw, services, challenge, nonce):
    msg = wire.encode_hello(KEY, challenge, gw, nonce, services)
    assert wire.msg_type(msg) == wire.HELLO
    h = wire.decode_hello(msg)
    assert (h.gateway_id, h.nonce, h.services) == (gw, nonce, services)
    assert wire.hello_ok(KEY, challenge, h)


@settings(deadline=None)
@given(st.lists(st.booleans(), max_size=255).map(tuple))
def test_welcome_round_trip(accepted):
    msg = welcome_msg(accepted=accepted)
    assert wire.msg_type(msg) == wire.WELCOME
    w = wire.decode_welcome(msg)
    assert w.accepted == accepted
    assert wire.welcome_ok(KEY, NONCE_G, CHALLENGE, w)


@pytest.mark.parametrize("reason", ["", "wrong key", "unknown gateway", "Schlüssel falsch ✗"])
def test_refused_round_trip(reason):
    msg = wire.encode_refused(reason)
    assert wire.msg_type(msg) == wire.REFUSED
    assert wire.decode_refused(msg) == reason


def test_refused_long_reason_is_cut_on_a_character_boundary():
    reason = "é" * 150  # 300 bytes; byte 200 falls on a character boundary, 199 would not
    assert wire.decode_refused(wire.encode_refused(reason)) == "é" * 100
    odd = "x" + "é" * 150  # byte 200 falls inside an "é"
    got = wire.decode_refused(wire.encode_refused(odd))
    assert got == "x" + "é" * 99 and "\ufffd" not in got


def test_refused_replaces_invalid_utf8_instead_of_failing():
    # The reason is only shown to people: the refusal itself must still be noticed.
    assert wire.decode_refused(bytes([1, wire.REFUSED]) + b"bad \xff") == "bad \ufffd"


# --- admission --------------------------------------------------------------------------


def test_hello_with_the_right_key_is_accepted_and_a_wrong_key_refused():
    h = wire.decode_hello(hello_msg())
    assert wire.hello_ok(KEY, CHALLENGE, h)
    assert not wire.hello_ok("other-key", CHALLENGE, h)
    assert not wire.hello_ok(KEY, CHALLENGE, wire.decode_hello(hello_msg(key="other-key")))


def test_replayed_hello_fails_against_a_new_challenge():
    recorded = wire.decode_hello(hello_msg(challenge=CHALLENGE))
    fresh = bytes(16)
    assert not wire.hello_ok(KEY, fresh, recorded)


@pytest.mark.parametrize("tamper", [
    lambda h: wire.Hello(h.gateway_id, h.nonce, ("openvpn",), h.mac),            # service dropped
    lambda h: wire.Hello(h.gateway_id, h.nonce, ("alarm", "openvpn"), h.mac),    # reordered
    lambda h: wire.Hello(h.gateway_id, h.nonce, (*h.services, "ssh"), h.mac),    # service added
    lambda h: wire.Hello(h.gateway_id, h.nonce, ("openvpnalarm",), h.mac),       # boundaries moved
    lambda h: wire.Hello("home-43", h.nonce, h.services, h.mac),                 # other identity
    lambda h: wire.Hello(h.gateway_id, bytes(16), h.services, h.mac),            # other nonce
    lambda h: wire.Hello(h.gateway_id, h.nonce, h.services, bytes(32)),          # other mac
])
def test_tampered_hello_is_refused(tamper):
    h = wire.decode_hello(hello_msg())
    assert not wire.hello_ok(KEY, CHALLENGE, tamper(h))


def test_tampered_hello_bytes_never_verify():
    msg = hello_msg()
    for i in range(2, len(msg)):
        bad = bytearray(msg)
        bad[i] ^= 0x01
        try:
            h = wire.decode_hello(bytes(bad))
        except wire.WireError:
            continue
        assert not wire.hello_ok(KEY, CHALLENGE, h), f"bit flip at byte {i} still verified"


def test_welcome_from_an_endpoint_that_does_not_know_the_key_is_refused():
    w = wire.decode_welcome(welcome_msg(key="guessed"))
    assert not wire.welcome_ok(KEY, NONCE_G, CHALLENGE, w)
    assert wire.welcome_ok(KEY, NONCE_G, CHALLENGE, wire.decode_welcome(welcome_msg()))


def test_welcome_is_bound_to_this_hello_and_challenge():
    w = wire.decode_welcome(welcome_msg())
    assert not wire.welcome_ok(KEY, bytes(16), CHALLENGE, w)   # another HELLO's nonce
    assert not wire.welcome_ok(KEY, NONCE_G, bytes(16), w)     # another challenge


def test_welcome_with_flipped_acceptance_is_refused():
    w = wire.decode_welcome(welcome_msg(accepted=(True, False)))
    assert not wire.welcome_ok(KEY, NONCE_G, CHALLENGE, wire.Welcome((True, True), w.mac))


def test_welcome_flag_must_be_0_or_1():
    # A "2" would read as True and pass the MAC computed over the normalised booleans.
    msg = bytearray(welcome_msg(accepted=(True,)))
    msg[3] = 2
    with pytest.raises(wire.WireError):
        wire.decode_welcome(bytes(msg))


def test_hello_and_welcome_macs_are_domain_separated():
    # The gateway's HELLO MAC can never serve as a WELCOME MAC, even for equal inputs.
    h = wire.hello_mac(KEY, CHALLENGE, "", NONCE_G, ())
    assert h != wire.welcome_mac(KEY, NONCE_G, CHALLENGE, ())


@pytest.mark.parametrize("call", [
    lambda: wire.encode_challenge(bytes(15)),
    lambda: wire.encode_hello(KEY, bytes(15), "gw", NONCE_G, ()),
    lambda: wire.encode_hello(KEY, CHALLENGE, "gw", bytes(17), ()),
    lambda: wire.encode_hello(KEY, CHALLENGE, "g" * 256, NONCE_G, ()),
    lambda: wire.encode_hello(KEY, CHALLENGE, "gw", NONCE_G, ("s",) * 256),
    lambda: wire.encode_welcome(KEY, NONCE_G, CHALLENGE, (True,) * 256),
    lambda: wire.encode_close(-1),
])
def test_encoders_refuse_what_cannot_be_decoded(call):
    with pytest.raises(ValueError):
        call()


# --- malformed input --------------------------------------------------------------------

DECODERS = {
    wire.DATA: wire.decode_data,
    wire.CLOSE: wire.decode_close,
    wire.PATH: wire.decode_path,
    wire.CHALLENGE: wire.decode_challenge,
    wire.HELLO: wire.decode_hello,
    wire.WELCOME: wire.decode_welcome,
    wire.REFUSED: wire.decode_refused,
}

VALID = {
    wire.DATA: wire.encode_data(1, 2, b"abc", 3, 1),
    wire.CLOSE: wire.encode_close(9),
    wire.PATH: wire.encode_path(),
    wire.CHALLENGE: wire.encode_challenge(CHALLENGE),
    wire.HELLO: hello_msg(),
    wire.WELCOME: welcome_msg(),
    wire.REFUSED: wire.encode_refused("no"),
}

# DATA's payload and REFUSED's reason may have any length (within limits): their only
# truncations are the header ones; everything else has an exact length.
FIXED = [t for t in DECODERS if t not in (wire.DATA, wire.REFUSED)]
MIN_LEN = {wire.DATA: wire.DATA_HEADER, wire.REFUSED: 2}


@pytest.mark.parametrize("typ", FIXED)
def test_every_truncation_raises_wire_error(typ):
    msg = VALID[typ]
    for n in range(len(msg)):
        with pytest.raises(wire.WireError):
            DECODERS[typ](msg[:n])


@pytest.mark.parametrize("typ", [wire.DATA, wire.REFUSED])
def test_header_truncation_raises_wire_error(typ):
    for n in range(MIN_LEN[typ]):
        with pytest.raises(wire.WireError):
            DECODERS[typ](VALID[typ][:n])


@pytest.mark.parametrize("typ", FIXED)
def test_trailing_bytes_raise_wire_error(typ):
    with pytest.raises(wire.WireError):
        DECODERS[typ](VALID[typ] + b"\0")


def test_over_long_refusal_raises_wire_error():
    with pytest.raises(wire.WireError):
        wire.decode_refused(bytes([1, wire.REFUSED]) + b"x" * (wire.REASON_MAX + 1))


@pytest.mark.parametrize("typ", list(DECODERS))
@pytest.mark.parametrize("version", [0, 2, 255])
def test_wrong_version_raises_wire_error(typ, version):
    msg = bytes([version]) + VALID[typ][1:]
    with pytest.raises(wire.WireError):
        wire.msg_type(msg)
    with pytest.raises(wire.WireError):
        DECODERS[typ](msg)


@pytest.mark.parametrize("typ", list(DECODERS))
def test_decoder_refuses_another_type(typ):
    for other, msg in VALID.items():
        if other != typ:
            with pytest.raises(wire.WireError):
                DECODERS[typ](msg)


def test_msg_type_needs_a_header():
    for msg in (b"", b"\x01"):
        with pytest.raises(wire.WireError):
            wire.msg_type(msg)


def test_hello_with_non_utf8_name_raises_wire_error():
    msg = bytearray(hello_msg(gw="ab"))
    msg[3] = 0xFF  # first byte of the gateway id
    with pytest.raises(wire.WireError):
        wire.decode_hello(bytes(msg))


def test_hello_claiming_more_services_than_present_raises_wire_error():
    msg = bytearray(hello_msg(gw="g", services=("a",)))
    count_at = 2 + 1 + 1 + wire.NONCE
    assert msg[count_at] == 1
    msg[count_at] = 5
    with pytest.raises(wire.WireError):
        wire.decode_hello(bytes(msg))


decoder = st.sampled_from(sorted(DECODERS.items()))


@settings(deadline=None)
@given(decoder, st.binary(max_size=300))
@example((wire.HELLO, wire.decode_hello), b"\x01\x02\xff")
@example((wire.WELCOME, wire.decode_welcome), b"\x01\x03\xff")
def test_decoders_on_arbitrary_bytes_raise_only_wire_error(dec, data):
    _, fn = dec
    try:
        fn(data)
    except wire.WireError:
        pass


@settings(deadline=None)
@given(decoder, st.binary(max_size=300))
def test_decoders_behind_a_valid_header_raise_only_wire_error(dec, body):
    # Past the header check, so the fuzzing reaches the body parsers.
    typ, fn = dec
    try:
        fn(bytes([wire.VERSION, typ]) + body)
    except wire.WireError:
        pass


@settings(deadline=None)
@given(decoder, st.data())
def test_mutated_valid_messages_raise_only_wire_error(dec, data):
    typ, fn = dec
    msg = bytearray(VALID[typ])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(msg) - 1))
        msg[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(msg) + 3))
    msg = bytes(msg[:cut]) + bytes(max(0, cut - len(msg)))
    try:
        fn(msg)
    except wire.WireError:
        pass


@settings(deadline=None)
@given(st.binary(max_size=40))
def test_msg_type_on_arbitrary_bytes_raises_only_wire_error(data):
    try:
        assert wire.msg_type(data) == data[1]
    except wire.WireError:
        assert len(data) < 2 or data[0] != wire.VERSION
