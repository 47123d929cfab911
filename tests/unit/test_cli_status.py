"""`haig status` / `haig events` against a real API server on loopback."""

from __future__ import annotations

import io
import json
import socket
import threading

import pytest

from haig.cli import build_parser
from haig.cli import main as haig_main
from haig.surfaces import cli
from haig.surfaces.replay import apply_phase
from tests.unit.surfaces_support import (
    EVENT,
    STATUS,
    T0,
    assert_valid,
    model_at,
    recording,
    running_api,
)

CEILING = 20.0


def run(argv, capsys):
    code = haig_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_table(capsys):
    with running_api(model_at("boot", "failover")) as base:
        code, out, _ = run(["status", "--api", base, "-c", "/nonexistent"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("haig gateway home-0042")
    assert lines[1] == "Connected via LTE backup"
    header = next(line for line in lines if line.startswith("UPLINK"))
    assert header.split() == ["UPLINK", "IFACE", "METRIC", "STATE", "HEALTH", "SRTT", "RTO", "TX", "RX", "NOTES"]
    dsl = next(line for line in lines if line.startswith("DSL"))
    lte = next(line for line in lines if line.startswith("LTE *"))
    assert "link down" in dsl and "unconfirmed" in dsl
    assert "metered, udp" in lte and "48.2 MB" in dsl
    assert any("queue_full 12" in line for line in lines)
    assert any("failover" in line and "dsl -> lte" in line for line in lines)


def test_status_json_is_the_schema_valid_snapshot(capsys):
    with running_api(model_at("boot")) as base:
        code, out, _ = run(["status", "--json", "--api", base], capsys)
    assert code == 0
    snap = json.loads(out)
    assert_valid(STATUS, snap)
    assert snap["primary"] == "dsl"


def test_api_address_and_token_from_the_config(tmp_path, capsys):
    with running_api(model_at("boot"), token="t0ken-from-config") as base:
        port = base.rsplit(":", 1)[1]
        cfg = tmp_path / "haig"
        cfg.write_text(
            "config haig 'main'\n"
            "\toption role 'gateway'\n"
            f"\toption api_listen '0.0.0.0:{port}'\n"
            "\toption api_token 't0ken-from-config'  # comment\n"
        )
        code, out, err = run(["status", "--json", "-c", str(cfg)], capsys)
    assert code == 0, err
    assert_valid(STATUS, json.loads(out))


def test_wrong_token_is_a_clear_error(capsys):
    with running_api(model_at("boot"), token="right") as base:
        code, out, err = run(["status", "--api", base, "-c", "/nonexistent"], capsys)
    assert code == 1 and out == ""
    assert "refused the token" in err and "api_token" in err


def test_daemon_not_running(capsys):
    code, out, err = run(["status", "--api", f"http://127.0.0.1:{free_port()}"], capsys)
    assert code == cli.EXIT_UNREACHABLE and out == ""
    assert "cannot reach the haig daemon" in err and "Is it running?" in err


def test_api_disabled_in_config_asks_over_ubus(tmp_path, capsys, monkeypatch):
    """The router's default (no HTTP API): status and events come over ubus."""
    from haig.surfaces import ubus_adapter

    calls = []

    def fake_get(path):
        calls.append(path)
        if path.startswith("/api/v1/events"):
            return {"events": [{"t": 0.0, "seq": 1, "kind": "assoc", "subject": "home\n\x1b[31mX",
                                "old": None, "new": "up", "reason": "admitted"}], "last_seq": 1}
        raise ubus_adapter.UbusCallError("no `ubus` command here")

    monkeypatch.setattr(ubus_adapter, "ubus_get", fake_get)
    cfg = tmp_path / "haig"
    cfg.write_text("config haig 'main'\n\toption api_listen ''\n")
    code, out, err = run(["events", "-c", str(cfg)], capsys)
    assert code == 0 and calls == ["/api/v1/events?since=0"]
    # peer-supplied text never reaches the terminal raw
    assert "\x1b" not in out and out.count("\n") == 1 and "home" in out
    code, _, err = run(["status", "-c", str(cfg)], capsys)
    assert code == cli.EXIT_UNREACHABLE and "no `ubus` command" in err


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:8990", "http://127.0.0.1:8990"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("[::]:9000", "http://[::1]:9000"),
        ("[fd00::1]:9000", "http://[fd00::1]:9000"),
        ("192.168.1.1:80", "http://192.168.1.1:80"),
    ],
)
def test_listen_to_url(listen, url):
    assert cli.listen_to_url(listen) == url


def test_default_url_without_config():
    args = build_parser().parse_args(["status", "-c", "/nonexistent"])
    assert cli.resolve_api(args) == (cli.DEFAULT_API, "")


def test_events_timeline_and_json_lines(capsys):
    m = model_at("boot", "failover")
    with running_api(m) as base:
        code, out, _ = run(["events", "--api", base], capsys)
        assert code == 0
        lines = out.splitlines()
        assert len(lines) == m.last_event_seq
        assert "failover" in lines[-1] and "dsl -> lte" in lines[-1]
        code, out, _ = run(["events", "--json", "--api", base], capsys)
    evs = [json.loads(line) for line in out.splitlines()]
    for ev in evs:
        assert_valid(EVENT, ev)
    assert [e["seq"] for e in evs] == list(range(1, m.last_event_seq + 1))


def test_events_follow_prints_history_then_live_events_once():
    m = model_at("boot")
    rec = recording()
    out = io.StringIO()
    with running_api(m) as base:
        history = m.last_event_seq
        total = history + len([s for s in rec["phases"]["failover"] if s["op"] == "add_event"])
        result = {}
        t = threading.Thread(
            target=lambda: result.update(code=cli.cmd_events(base, "", True, True, out, max_events=total))
        )
        t.start()
        apply_phase(m, rec, "failover", T0)  # whenever it lands, each event prints once
        t.join(CEILING)
        assert not t.is_alive()
    evs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert result["code"] == 0
    assert [e["seq"] for e in evs] == list(range(1, total + 1))
    assert evs[-1]["kind"] == "failover"


def test_sse_parser():
    raw = [b": hello\n", b"\n", b"event: event\n", b"id: 7\n", b"data: {\"a\":\n", b"data: 1}\n", b"\n",
           b"retry: 3000\n", b"\n", b"data: x\r\n", b"\r\n"]  # fmt: skip
    assert list(cli.sse_messages(raw)) == [("event", '{"a":\n1}', "7"), ("message", "x", None)]


def test_broken_config_still_gives_the_api_from_the_main_section(tmp_path):
    # the file fails validation (no role settings at all), but the UCI reader finds main's options
    cfg = tmp_path / "haig"
    cfg.write_text(
        "config uplink 'x'\n\toption api_token 'wrong'\n"
        "config haig 'main'\n\toption api_token \"it's\"\n\toption api_listen '1.2.3.4:5'\n"
    )
    assert cli._config_api(str(cfg)) == ("1.2.3.4:5", "it's")


def test_unparsable_config_falls_back_to_the_default_api(tmp_path):
    cfg = tmp_path / "haig"
    cfg.write_text("config haig 'main'\n\toption api_listen '1.2.3.4:5\n")  # quote left open
    args = build_parser().parse_args(["status", "-c", str(cfg)])
    assert cli.resolve_api(args) == (cli.DEFAULT_API, "")


@pytest.mark.parametrize("listen", [":9000", "*:9000", "127.0.0.1", "1.2.3.4:99999", "[::1:80"])
def test_listen_not_host_port_is_a_named_error(listen):
    with pytest.raises(cli.CliError, match="api_listen"):
        cli.listen_to_url(listen)
