"""Config limits: huge numbers, names the wire format cannot carry, and a fuzzer showing
that no input makes the validator raise anything but ConfigError."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haig.config.errors import ConfigError
from haig.config.loader import config_from_text, summarize
from haig.config.validate import WIRE_MAX_SERVICES, WIRE_NAME_MAX_BYTES
from haig.core import wire
from tests.unit.test_config_validate import ENDPOINT, GATEWAY, add, errors

NONCE = b"n" * wire.NONCE


def test_wire_limits_are_the_ones_hello_encodes():
    # The validator's limits are exactly the encoder's: at the limit it encodes, past it not.
    name = "s" * WIRE_NAME_MAX_BYTES
    wire.decode_hello(wire.encode_hello("k", NONCE, "home", NONCE, (name,)))
    with pytest.raises(ValueError):
        wire.encode_hello("k", NONCE, "home", NONCE, (name + "s",))
    many = tuple(f"s{i}" for i in range(WIRE_MAX_SERVICES))
    wire.decode_hello(wire.encode_hello("k", NONCE, "home", NONCE, many))
    with pytest.raises(ValueError):
        wire.encode_hello("k", NONCE, "home", NONCE, (*many, "one_more"))
    wire.decode_welcome(wire.encode_welcome("k", NONCE, NONCE, (True,) * WIRE_MAX_SERVICES))


@pytest.mark.parametrize("digits", [19, 400, 5000, 20000])
def test_huge_numbers_are_out_of_range_not_a_traceback(digits):
    errs = errors(add(GATEWAY, "config haig 'main'", f"\toption port '{'9' * digits}'"))
    assert len(errs) == 1
    msg = errs[0]
    assert "option port" in msg and "out of range (allowed 1..65535)" in msg
    if digits > 40:
        assert f"({digits} characters)" in msg and len(msg) < 300  # the value is cut, not echoed


def test_huge_number_with_leading_zeros_is_still_its_value():
    from tests.unit.test_config_validate import build
    cfg = build(add(GATEWAY, "config haig 'main'", f"\toption port '{'0' * 5000}8888'"))
    assert cfg.main.port == 8888


def test_service_name_longer_than_hello_can_carry_is_refused():
    long = "s" * (WIRE_NAME_MAX_BYTES + 45)  # the 300-character name
    for base, opt in ((GATEWAY, "listen"), (ENDPOINT, "target")):
        errs = errors(base + f"config service '{long}'\n\toption {opt} '127.0.0.1:1195'\n")
        assert len(errs) == 1, errs
        assert f"300 bytes long; allowed 1..{WIRE_NAME_MAX_BYTES}" in errs[0]
        assert "..." in errs[0] and long not in errs[0]


def test_service_name_at_the_limit_is_accepted():
    from tests.unit.test_config_validate import build
    name = "s" * WIRE_NAME_MAX_BYTES
    cfg = build(GATEWAY + f"config service '{name}'\n\toption listen '127.0.0.1:1195'\n")
    assert name in {s.name for s in cfg.services}


def test_more_services_than_hello_can_count_are_refused():
    text = GATEWAY + "".join(f"config service 's{i}'\n\toption listen '127.0.0.1:{2000 + i}'\n"
                             for i in range(WIRE_MAX_SERVICES))  # + the base file's one
    errs = errors(text)
    assert len(errs) == 1 and f"allowed at most {WIRE_MAX_SERVICES}" in errs[0]


def test_endpoint_gateway_sections_must_be_gateway_ids():
    errs = errors(ENDPOINT + f"config gateway '{'g' * 65}'\n\toption key '0123456789abcdefXYZ'\n")
    assert len(errs) == 1 and "is not a gateway id" in errs[0] and "1..64" in errs[0]


# -- fuzzing -------------------------------------------------------------------------

OPTIONS = {
    "haig": ["role", "gateway_id", "key", "port", "bind", "rto_initial", "rto_min", "rto_max",
             "hold_down", "queue", "api_listen", "api_token", "log_level", "udp_port", "bogus"],
    "uplink": ["interface", "device", "metric", "local_address", "endpoint_address", "gateway",
               "udp_encap", "hb_interval", "path_max_retrans", "pf_retrans", "metered"],
    "service": ["listen", "target", "ttl", "critical"],
    "gateway": ["key", "enabled"],
}
VALUES = st.one_of(
    st.sampled_from(["", "0", "1", "-1", "65535", "65536", "9" * 5000, "0" * 30 + "5", "+7",
                     "127.0.0.1:1194", "[::1]:80", "[::1]", "::1", "1.2.3.4", "host.example:1",
                     "gateway", "endpoint", "CHANGE_ME", "0123456789abcdefXYZ", "wan", "eth0",
                     "10.0.0.1:0", "a" * 300, "x:99999999999999999999", "yes", "\u00e9\u00e9"]),
    st.text(max_size=40),
    st.integers().map(str),
)
NAMES = st.one_of(st.none(), st.sampled_from(["main", "wan", "home_1", "s" * 300]),
                  st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True))


def _quote(v: str) -> str:
    return "'" + v.replace("'", "'\\''") + "'"


@st.composite
def uci_files(draw) -> str:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        typ = draw(st.sampled_from([*OPTIONS, "bogus"]))
        name = draw(NAMES)
        out.append(f"config {typ}" + (f" {_quote(name)}" if name else ""))
        for _ in range(draw(st.integers(0, 6))):
            opt = draw(st.sampled_from(OPTIONS.get(typ, ["x"])))
            kw = draw(st.sampled_from(["option", "option", "list"]))
            out.append(f"\t{kw} {opt} {_quote(draw(VALUES))}")
    return "\n".join(out) + "\n"


def _check(text: str, role=None) -> None:
    try:
        cfg = config_from_text(text, role_override=role)
    except ConfigError as e:
        assert e.errors and all(isinstance(m, str) for m in e.errors)
        return
    summarize(cfg)  # an accepted config can be described, too


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(uci_files(), st.sampled_from([None, "gateway", "endpoint", "bogus"]))
def test_fuzz_structured_files_raise_only_config_error(text, role):
    _check(text, role)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_any_text_raises_only_config_error(text):
    _check(text)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted({o for opts in OPTIONS.values() for o in opts})), VALUES)
def test_fuzz_one_option_on_a_valid_gateway(opt, value):
    for base, header in ((GATEWAY, "config haig 'main'"), (GATEWAY, "config uplink 'wan'"),
                         (ENDPOINT, "config service 'openvpn'")):
        _check(add(base, header, f"\toption {opt} {_quote(value)}"))
