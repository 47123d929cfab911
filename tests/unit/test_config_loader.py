"""load_config / try_reload / `haig check-config`, and the shipped files."""

import io
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from haig.config import ConfigError, load_config, try_reload
from haig.config.docs import render_options_markdown
from haig.config.loader import check_config_cli

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "files" / "etc" / "config" / "haig"


def filled_in(text: str) -> str:
    """The shipped file as a user (and uci-defaults) would complete it."""
    text = text.replace("option gateway_id 'CHANGE_ME'", "option gateway_id 'home_42'")
    text = text.replace("option key 'CHANGE_ME'", "option key 'sixteen-chars-key-0001'")
    text = text.replace("'CHANGE_ME'", "'192.0.2.10'", 1).replace("'CHANGE_ME'", "'198.51.100.10'", 1)
    assert "CHANGE_ME'" not in text
    return text


@pytest.fixture
def good(tmp_path):
    p = tmp_path / "haig"
    p.write_text(filled_in(SHIPPED.read_text()))
    return p


def test_shipped_config_loads_once_placeholders_are_replaced(good):
    cfg = load_config(str(good))
    assert cfg.main.role == "gateway" and cfg.main.enabled is False
    wan, wwan = cfg.uplinks
    assert (wan.name, wan.interface, wan.metric, wan.metered, wan.udp_encap) == ("wan", "wan", 1, False, False)
    assert (wwan.name, wwan.interface, wwan.metric, wwan.metered, wwan.udp_encap) == ("wwan", "wwan", 2, True, True)
    assert [s.name for s in cfg.services] == ["openvpn"]


def test_shipped_config_refuses_its_placeholders():
    with pytest.raises(ConfigError) as ei:
        load_config(str(SHIPPED))
    text = str(ei.value)
    for what in ("haig 'main': option gateway_id", "haig 'main': option key",
                 "uplink 'wan': option endpoint_address", "uplink 'wwan': option endpoint_address"):
        assert f"{what} is still the placeholder 'CHANGE_ME'" in text


def test_role_override_applies(good):
    with pytest.raises(ConfigError) as ei:
        load_config(str(good), role_override="endpoint")
    assert "list bind is missing" in str(ei.value)


def test_syntax_errors_and_missing_files_are_config_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("config haig 'main'\n\toption role 'gateway\n")
    with pytest.raises(ConfigError) as ei:
        load_config(str(bad))
    assert ei.value.errors == ["line 2: unterminated ' (single quote opened here is not closed on this line)"]
    with pytest.raises(ConfigError) as ei:
        load_config(str(tmp_path / "nope"))
    assert "cannot read" in str(ei.value)


def test_try_reload_keeps_running_config_when_the_file_breaks(good):
    current = load_config(str(good))
    good.write_text(good.read_text().replace("option metric '2'", "option metric '0'"))
    cfg, err = try_reload(str(good), current)
    assert cfg is current
    assert isinstance(err, ConfigError)
    assert "uplink 'wwan': option metric = '0' is out of range (allowed 1..255)" in str(err)

    good.write_text(good.read_text().replace("option metric '0'", "option metric '3'"))
    cfg, err = try_reload(str(good), current)
    assert err is None and cfg is not current
    assert cfg.uplinks[1].metric == 3

    good.unlink()
    cfg2, err = try_reload(str(good), cfg)
    assert cfg2 is cfg and "cannot read" in str(err)


def test_check_config_cli_prints_summary_without_secrets(good):
    out, err = io.StringIO(), io.StringIO()
    rc = check_config_cli(Namespace(config=str(good), role=None), out, err)
    assert rc == 0, err.getvalue()
    text = out.getvalue()
    assert f"{good}: OK" in text
    assert "metric 1" in text and "192.0.2.10" in text and "metered" in text
    assert "enabled = 0" in text
    assert "sixteen-chars-key-0001" not in text
    assert err.getvalue() == ""


def test_check_config_cli_prints_all_errors_and_fails():
    out, err = io.StringIO(), io.StringIO()
    rc = check_config_cli(Namespace(config=str(SHIPPED), role=None), out, err)
    assert rc == 1 and out.getvalue() == ""
    assert err.getvalue().startswith(f"4 errors in {SHIPPED}:")


def test_haig_check_config_command_end_to_end(good):
    r = subprocess.run([sys.executable, "-m", "haig", "check-config", "-c", str(good)],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "haig", "check-config", "-c", str(good), "--role", "endpoint"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "list bind is missing" in r.stderr


def test_committed_options_doc_is_current():
    committed = (REPO / "docs" / "options.md").read_text()
    assert committed == render_options_markdown(), (
        "docs/options.md is stale: run `python -m haig.config.docs > docs/options.md`")


def test_options_doc_lists_every_option_with_default_and_range():
    doc = render_options_markdown()
    assert "| `metric` | `1` | 1..255 |" in doc
    assert "| `role` | `gateway` | one of gateway, endpoint |" in doc
    assert "| `list bind` | (none) |" in doc
    assert "| `metered` | `0` | 0/1" in doc


def test_endpoint_summary(tmp_path):
    p = tmp_path / "haig"
    p.write_text("""
config haig 'main'
	option role 'endpoint'
	list bind '192.0.2.1'
config gateway 'home_1'
	option key '0123456789abcdef'
config gateway 'home_2'
	option key '0123456789abcdef'
	option enabled 'no'
config service 'openvpn'
	option target '127.0.0.1:1194'
	option ttl '0'
""")
    out = io.StringIO()
    assert check_config_cli(Namespace(config=str(p), role=None), out, io.StringIO()) == 0
    text = out.getvalue()
    assert "bound to: 192.0.2.1" in text and "home_2   (disabled)" in text
    assert "target 127.0.0.1:1194  fully reliable" in text
    assert "0123456789abcdef" not in text


def test_check_config_warns_about_a_listen_address_not_on_this_machine(good):
    # 192.0.2.0/24 (TEST-NET-1) is nobody's address here: accepted, with a warning
    text = good.read_text().replace("127.0.0.1:1194", "192.0.2.77:1194")
    assert text != good.read_text()
    good.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    assert check_config_cli(Namespace(config=str(good), role=None), out, err) == 0
    assert "warning: service" in err.getvalue() and "192.0.2.77 cannot be bound" in err.getvalue()
