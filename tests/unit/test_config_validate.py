"""Sections -> Config: types, ranges, cross-checks, and the words of every error."""

import dataclasses

import pytest

from haig.config.errors import ConfigError
from haig.config.model import Config, Main, Peer, Service, Uplink
from haig.config.uci import parse_uci
from haig.config.validate import (
    build_config,
    field_kind,
    is_loopback_host,
    option_fields,
    parse_hostport,
)

KEY = "0123456789abcdefXYZ"

GATEWAY = f"""
config haig 'main'
	option role 'gateway'
	option gateway_id 'home_1'
	option key '{KEY}'
config uplink 'wan'
	option interface 'wan'
	option metric '1'
	option endpoint_address '192.0.2.1'
config uplink 'wwan'
	option interface 'wwan'
	option metric '2'
	option endpoint_address '198.51.100.1'
	option metered '1'
config service 'openvpn'
	option listen '127.0.0.1:1194'
"""

ENDPOINT = f"""
config haig 'main'
	option role 'endpoint'
	list bind '192.0.2.1'
	list bind '198.51.100.1'
config gateway 'home_1'
	option key '{KEY}'
config service 'openvpn'
	option target '127.0.0.1:1194'
"""


def build(text, role=None):
    return build_config(parse_uci(text), role_override=role, source="test")


def errors(text, role=None):
    with pytest.raises(ConfigError) as ei:
        build(text, role)
    return ei.value.errors


def add(text, section_header, *lines):
    """Insert option lines right after a section header line."""
    return text.replace(section_header, section_header + "".join(f"\n\t{ln}" for ln in lines), 1)


def test_valid_gateway_config_builds_typed_values():
    cfg = build(GATEWAY)
    assert isinstance(cfg, Config)
    assert cfg.main.role == "gateway" and cfg.main.gateway_id == "home_1"
    assert [u.name for u in cfg.uplinks] == ["wan", "wwan"]
    assert cfg.uplinks[1].metric == 2 and cfg.uplinks[1].metered is True
    assert cfg.uplinks[0].metered is False
    assert cfg.services == (Service(name="openvpn", listen="127.0.0.1:1194"),)


def test_valid_endpoint_config_builds():
    cfg = build(ENDPOINT)
    assert cfg.main.bind == ("192.0.2.1", "198.51.100.1")
    assert cfg.peers == (Peer(name="home_1", key=KEY),)
    hash(cfg)  # frozen all the way down: usable as a dict key / compared on reload


def test_single_option_bind_is_a_one_element_list():
    cfg = build(ENDPOINT.replace("\tlist bind '198.51.100.1'\n", "").replace("list bind", "option bind"))
    assert cfg.main.bind == ("192.0.2.1",)


@pytest.mark.parametrize("word, expected", [
    ("1", True), ("yes", True), ("on", True), ("true", True), ("enabled", True), ("TRUE", True),
    ("0", False), ("no", False), ("off", False), ("false", False), ("disabled", False),
])
def test_booleans_accept_uci_words(word, expected):
    cfg = build(add(GATEWAY, "config uplink 'wan'", f"option udp_encap '{word}'"))
    assert cfg.uplinks[0].udp_encap is expected


def test_empty_value_means_default():
    cfg = build(add(GATEWAY, "config haig 'main'", "option hold_down ''"))
    assert cfg.main.hold_down == Main().hold_down


def test_role_override_replaces_the_role():
    both = add(GATEWAY, "config haig 'main'", "list bind '192.0.2.1'") + f"""
config gateway 'home_2'
	option key '{KEY}'
"""
    both = both.replace("option listen", "option target '127.0.0.1:1194'\n\toption listen")
    assert build(both).main.role == "gateway"
    cfg = build(both, role="endpoint")
    assert cfg.main.role == "endpoint" and cfg.peers[0].name == "home_2"
    errs = errors(GATEWAY, role="endpoint")
    assert any("list bind is missing" in e for e in errs), errs


# ------------------------------------------------------------ per-option errors


@pytest.mark.parametrize(
    "header, line, message",
    [
        ("config uplink 'wwan'", "option metric '0'",
         "uplink 'wwan': option metric = '0' is out of range (allowed 1..255)"),
        ("config uplink 'wwan'", "option metric '256'",
         "uplink 'wwan': option metric = '256' is out of range (allowed 1..255)"),
        ("config uplink 'wwan'", "option metric 'two'",
         "uplink 'wwan': option metric = 'two' is not a whole number (allowed 1..255)"),
        ("config uplink 'wan'", "option hb_interval '1.5'",
         "uplink 'wan': option hb_interval = '1.5' is not a whole number (allowed 100..3600000)"),
        ("config haig 'main'", "option rto_max '70000'",
         "haig 'main': option rto_max = '70000' is out of range (allowed 10..60000)"),
        ("config haig 'main'", "option log_level 'verbose'",
         "haig 'main': option log_level = 'verbose' is not allowed (choices: debug, info, warning, error)"),
        ("config uplink 'wan'", "option metered 'maybe'",
         "uplink 'wan': option metered = 'maybe' is not a boolean (allowed 0/1, no/yes, off/on, "
         "false/true, disabled/enabled)"),
        ("config service 'openvpn'", "option ttl '-1'",
         "service 'openvpn': option ttl = '-1' is out of range (allowed 0..60000)"),
        ("config uplink 'wan'", "option metirc '3'", "uplink 'wan': unknown option 'metirc'; did you mean 'metric'?"),
        ("config service 'openvpn'", "list ttl '3'", "service 'openvpn': option ttl is given as a list"),
        ("config uplink 'wan'", "option local_address 'eth0'",
         "uplink 'wan': option local_address = 'eth0' is not an IP address"),
        ("config uplink 'wan'", "option device 'a/b'", "uplink 'wan': option device = 'a/b' is not a Linux device name"),
    ],
)
def test_each_bad_value_is_named_with_its_range(header, line, message):
    text = GATEWAY
    if "metric" in line and "metirc" not in line and "list" not in line:
        text = text.replace("\toption metric '2'\n", "")  # replace, not set twice
    errs = errors(add(text, header, line))
    assert any(message in e for e in errs), errs


def test_error_lines_point_at_the_option():
    text = add(GATEWAY, "config uplink 'wan'", "option udp_encap_port '0'")
    (err,) = errors(text)
    lineno = text.splitlines().index("\toption udp_encap_port '0'") + 1
    assert err.startswith(f"line {lineno}: uplink 'wan': option udp_encap_port = '0' is out of range (allowed 1..65535)")


def test_all_errors_are_collected_into_one_exception():
    text = add(GATEWAY, "config uplink 'wan'", "option metered 'x'", "option hb_interval '5'")
    text = add(text, "config haig 'main'", "option port '0'")
    text += "config servce 'x'\n"
    with pytest.raises(ConfigError) as ei:
        build(text)
    e = ei.value
    assert isinstance(e, ValueError)
    assert len(e.problems) == 4
    assert str(e).startswith("4 errors in test:")
    assert "unknown section type 'servce'; did you mean 'service'?" in str(e)
    lines = [p.line for p in e.problems]
    assert lines == sorted(lines)


# ------------------------------------------------------------ cross-checks


def test_rto_order_is_checked():
    errs = errors(add(GATEWAY, "config haig 'main'", "option rto_min '2000'"))
    assert any("rto_min <= rto_initial <= rto_max does not hold (rto_min = '2000', rto_initial = '1000', "
               "rto_max = '1000')" in e for e in errs), errs


def test_rto_order_not_checked_when_a_value_was_already_refused():
    errs = errors(add(GATEWAY, "config haig 'main'", "option rto_min 'x'"))
    assert len(errs) == 1 and "not a whole number" in errs[0]


def test_pf_retrans_must_not_exceed_path_max_retrans():
    errs = errors(add(GATEWAY, "config uplink 'wan'", "option pf_retrans '4'", "option path_max_retrans '3'"))
    assert any("uplink 'wan': option pf_retrans = '4' is out of range (allowed 0..path_max_retrans = 3)" in e
               for e in errs), errs


def test_shared_endpoint_address_is_explained_as_one_path():
    errs = errors(GATEWAY.replace("198.51.100.1", "192.0.2.1"))
    assert any("uplink 'wwan': option endpoint_address = '192.0.2.1' is also used by uplink 'wan'" in e
               and "ONE path" in e for e in errs), errs


def test_equal_endpoint_addresses_are_compared_as_addresses():
    text = GATEWAY.replace("192.0.2.1", "2001:db8::1").replace("198.51.100.1", "2001:DB8:0::1")
    assert any("ONE path" in e for e in errors(text))


def test_duplicate_metrics_are_refused():
    errs = errors(GATEWAY.replace("option metric '2'", "option metric '1'"))
    assert any("uplink 'wwan': option metric = '1' is also used by uplink 'wan'; metrics must differ" in e
               for e in errs), errs


def test_duplicate_interfaces_are_refused():
    errs = errors(GATEWAY.replace("option interface 'wwan'", "option interface 'wan'"))
    assert any("option interface = 'wan' is also used by uplink 'wan'" in e for e in errs), errs


def test_mixed_address_families_in_one_uplink_are_refused():
    errs = errors(add(GATEWAY, "config uplink 'wan'", "option local_address '2001:db8::5'"))
    assert any("mix IPv4 and IPv6" in e for e in errs), errs


def test_uplink_needs_interface_or_device():
    errs = errors(GATEWAY.replace("\toption interface 'wan'\n", ""))
    assert any("uplink 'wan': set option interface" in e for e in errs), errs
    cfg = build(GATEWAY.replace("\toption interface 'wan'\n", "\toption device 'eth1'\n"))
    assert cfg.uplinks[0].device == "eth1"


def test_gateway_role_requirements():
    text = """
config haig 'main'
	option role 'gateway'
"""
    errs = errors(text)
    joined = "\n".join(errs)
    assert "option gateway_id is missing" in joined
    assert "option key is missing" in joined
    assert "at least one `config uplink` section" in joined
    assert "at least one `config service` section" in joined


def test_gateway_key_length_and_id_charset():
    text = GATEWAY.replace(KEY, "short").replace("'home_1'", "'home-1'")
    errs = errors(text)
    assert any("option key is too short (5 characters; allowed at least 16)" in e for e in errs), errs
    assert any("option gateway_id = 'home-1' is not allowed (letters, digits and _" in e for e in errs), errs


def test_gateway_services_need_listen_and_distinct_ones():
    errs = errors(GATEWAY + "config service 'alarm'\n\toption target '1.2.3.4:5'\n")
    assert any("service 'alarm': option listen is missing" in e for e in errs), errs
    errs = errors(GATEWAY + "config service 'alarm'\n\toption listen '127.0.0.1:1194'\n")
    assert any("two services cannot listen on one host:port" in e for e in errs), errs


@pytest.mark.parametrize("listen, fragment", [
    ("1194", "the port is missing"),
    ("::1:1194", "an IPv6 address needs brackets, e.g. [::1]:1194"),
    ("127.0.0.1:0", "port '0' is not a number in 1..65535"),
    ("127.0.0.1:70000", "port '70000' is not a number in 1..65535"),
    ("localhost:1194", "'localhost' is not an IPv4 address"),  # listen: literals only
    ("[1.2.3.4]:5", "'[1.2.3.4]' is not an IPv6 address"),
])
def test_listen_host_port_errors(listen, fragment):
    errs = errors(GATEWAY.replace("127.0.0.1:1194", listen))
    assert any(f"service 'openvpn': option listen = '{listen}' is not host:port ({fragment}" in e
               for e in errs), errs


def test_endpoint_role_requirements():
    errs = errors("config haig 'main'\n\toption role 'endpoint'\n")
    joined = "\n".join(errs)
    assert "list bind is missing" in joined
    assert "at least one `config gateway 'ID'` section" in joined
    assert "at least one `config service` section with option target" in joined


def test_endpoint_all_peers_disabled_and_short_peer_key():
    text = add(ENDPOINT, "config gateway 'home_1'", "option enabled '0'").replace(KEY, "tiny")
    errs = errors(text)
    assert any("all 1 have enabled = 0" in e for e in errs), errs
    assert any("gateway 'home_1': option key is too short" in e for e in errs), errs


def test_endpoint_bind_must_be_addresses():
    errs = errors(ENDPOINT.replace("'198.51.100.1'", "'lan'"))
    assert any("list bind = 'lan' is not an IP address" in e for e in errs), errs


def test_endpoint_target_may_be_a_host_name_but_must_have_a_port():
    assert build(ENDPOINT.replace("127.0.0.1:1194", "collector.example:5140")).services[0].target
    errs = errors(ENDPOINT.replace("127.0.0.1:1194", "collector.example"))
    assert any("option target = 'collector.example' is not host:port (the port is missing" in e for e in errs)


def test_api_token_required_off_loopback():
    text = add(GATEWAY, "config haig 'main'", "option api_listen '0.0.0.0:8990'")
    errs = errors(text)
    assert any("option api_token is missing: api_listen = '0.0.0.0:8990' is not loopback" in e for e in errs)
    ok = add(text, "config haig 'main'", "option api_token 'a-long-enough-token'")
    assert build(ok).main.api_token == "a-long-enough-token"
    assert build(add(GATEWAY, "config haig 'main'", "option api_listen '[::1]:8990'")).main.api_listen
    assert build(add(GATEWAY, "config haig 'main'", "option api_listen ''")).main.api_listen == Main().api_listen


@pytest.mark.parametrize("word", ["0", "off", "none", "OFF"])
def test_api_listen_off_disables_the_api(word):
    # '' cannot be stored through uci (it deletes the option), so a word disables it
    cfg = build(add(GATEWAY, "config haig 'main'", f"option api_listen '{word}'"))
    assert cfg.main.api_listen == ""


def test_placeholders_are_refused_everywhere():
    text = GATEWAY.replace("'192.0.2.1'", "'CHANGE_ME'").replace("'home_1'", "'CHANGE_ME'")
    errs = errors(text)
    assert any("uplink 'wan': option endpoint_address is still the placeholder 'CHANGE_ME'; set it" in e
               for e in errs), errs
    assert any("haig 'main': option gateway_id is still the placeholder 'CHANGE_ME'" in e for e in errs), errs


def test_sections_need_names_and_main_must_be_main():
    errs = errors(GATEWAY + "config service\n\toption listen '127.0.0.1:5'\n")
    assert any("service (unnamed, line" in e and "needs a name: config service 'NAME'" in e for e in errs), errs
    errs = errors(GATEWAY.replace("config haig 'main'", "config haig 'settings'"))
    assert any("the main section must be named: config haig 'main'" in e for e in errs), errs
    errs = errors(GATEWAY.replace("config haig 'main'", "config uplink 'x'"))
    assert any("no `config haig 'main'` section" in e for e in errs), errs


def test_bad_role_does_not_flood_with_role_checks():
    errs = errors("config haig 'main'\n\toption role 'gw'\n")
    assert errs == ["line 2: haig 'main': option role = 'gw' is not allowed (choices: gateway, endpoint)"]


# ------------------------------------------------------------ helpers others use


def test_parse_hostport_and_loopback():
    assert parse_hostport("[2001:db8::1]:443") == ("2001:db8::1", 443)
    assert parse_hostport("10.0.0.1:1") == ("10.0.0.1", 1)
    assert parse_hostport("host.example:80") == ("host.example", 80)
    with pytest.raises(ValueError):
        parse_hostport("1.2.3:80")  # digits and dots: a broken address, not a name
    assert is_loopback_host("127.0.0.2") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("192.168.1.1")


def test_every_model_field_has_a_known_kind_and_doc():
    for cls in (Main, Uplink, Service, Peer):
        for f in option_fields(cls):
            assert field_kind(cls, f) in ("bool", "int", "str", "list")
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no doc"
            if field_kind(cls, f) == "int":
                lo, hi = f.metadata["range"]
                assert lo <= f.default <= hi
        assert dataclasses.is_dataclass(cls)


def test_stray_spaces_in_addresses_are_refused_visibly():
    errs = errors(GATEWAY.replace("'192.0.2.1'", "' 192.0.2.1'"))
    assert any("option endpoint_address = ' 192.0.2.1' is not an IP address" in e for e in errs), errs


# -- a standby endpoint ----------------------------------------------------------------


def test_standby_endpoint_builds_with_defaults():
    text = add(add(GATEWAY, "config uplink 'wan'", "option standby_address '192.0.2.50'"),
               "config uplink 'wwan'", "option standby_address '198.51.100.50'")
    cfg = build(text)
    assert [u.standby_address for u in cfg.uplinks] == ["192.0.2.50", "198.51.100.50"]
    assert (cfg.main.standby_port, cfg.main.standby_after, cfg.main.standby_hold_down) == (0, 5, 30)


def test_standby_endpoint_errors_name_the_option_and_what_is_allowed():
    one = add(GATEWAY, "config uplink 'wan'", "option standby_address '192.0.2.50'")
    (err,) = errors(one)
    assert "uplink 'wwan'" in err and "standby_address is missing" in err and "every uplink" in err
    same = add(add(GATEWAY, "config uplink 'wan'", "option standby_address '198.51.100.1'"),
               "config uplink 'wwan'", "option standby_address '192.0.2.51'")
    (err,) = errors(same)
    assert "standby_address = '198.51.100.1' is the endpoint_address of uplink 'wwan'" in err
    dup = add(add(GATEWAY, "config uplink 'wan'", "option standby_address '192.0.2.50'"),
              "config uplink 'wwan'", "option standby_address '192.0.2.50'")
    assert any("also used by" in e for e in errors(dup))
    mixed = add(add(GATEWAY, "config uplink 'wan'", "option standby_address '2001:db8::5'"),
                "config uplink 'wwan'", "option standby_address '198.51.100.50'")
    assert any("mix IPv4 and IPv6" in e for e in errors(mixed))
    for opt, bad, rng in (("standby_after", "0", "1..3600"), ("standby_hold_down", "-1", "0..86400"),
                          ("standby_port", "70000", "0..65535")):
        errs = errors(add(GATEWAY, "config haig 'main'", f"option {opt} '{bad}'"))
        assert any(opt in e and rng in e for e in errs), errs
