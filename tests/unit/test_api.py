"""Flask API: status/events/stream validated against the schema, token, control input."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request

import pytest

from haig.core.events import FAILOVER, Event
from haig.surfaces import api
from haig.surfaces.api import create_app, serve
from haig.surfaces.replay import apply_phase
from tests.unit.surfaces_support import (
    EVENT,
    EVENTS_RESPONSE,
    STATUS,
    T0,
    FakeControl,
    assert_valid,
    model_at,
    recording,
    running_api,
)

CEILING = 10.0


def client(model=None, **kw):
    model = model or model_at("boot")
    kw.setdefault("clock", lambda: T0 + 5)
    return create_app(model, **kw).test_client()


def test_status_is_a_valid_snapshot():
    r = client().get("/api/v1/status")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert_valid(STATUS, r.json)
    assert r.json["time"] == T0 + 5
    assert r.json["summary"]["text"] == "Connected via DSL (wan)"


def test_events_since():
    m = model_at("boot", "failover")
    c = client(m)
    all_ = c.get("/api/v1/events").json
    assert_valid(EVENTS_RESPONSE, all_)
    seqs = [e["seq"] for e in all_["events"]]
    assert seqs == list(range(1, len(seqs) + 1)) and all_["last_seq"] == seqs[-1]
    newer = c.get("/api/v1/events?since=3").json
    assert [e["seq"] for e in newer["events"]] == seqs[3:]
    assert any(e["kind"] == FAILOVER for e in newer["events"])


@pytest.mark.parametrize("query", ["since=-1", "since=abc", "since=1.5", "wait=soon"])
def test_events_bad_query_is_400_with_message(query):
    r = client().get(f"/api/v1/events?{query}")
    assert r.status_code == 400
    assert ("since" in r.json["error"]) or ("wait" in r.json["error"])


def test_events_long_poll_returns_when_an_event_arrives():
    m = model_at("boot")
    c = client(m)
    last = m.last_event_seq
    out = {}

    def poll():
        out["r"] = c.get(f"/api/v1/events?since={last}&wait=25")

    t = threading.Thread(target=poll)
    t.start()
    m.add_event(Event(t=T0, kind=FAILOVER, subject="lte", old="dsl", new="lte", reason="test"))
    t.join(CEILING)
    assert not t.is_alive()
    assert [e["kind"] for e in out["r"].json["events"]] == [FAILOVER]


def test_events_long_poll_times_out_empty():
    m = model_at("boot")
    r = client(m).get(f"/api/v1/events?since={m.last_event_seq}&wait=0.05")
    assert r.status_code == 200 and r.json["events"] == []


# -- token ------------------------------------------------------------------------

ROUTES = [
    ("get", "/api/v1/status"),
    ("get", "/metrics"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/stream"),
    ("post", "/api/v1/primary"),
    ("post", "/api/v1/reload"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("how", [None, "Bearer nope", "?token=nope", "?token=s3cret", "Basic czNjcmV0"])
def test_token_required_on_every_route(method, path, how):
    c = client(token="s3cret", control=FakeControl())
    headers = {}
    if how and how.startswith("?"):
        path += how
    elif how:
        headers["Authorization"] = how
    if how == "?token=s3cret" and path.startswith("/api/v1/stream"):
        return  # the one route EventSource clients use: the query token is valid there
    r = getattr(c, method)(path, headers=headers, json={})
    assert r.status_code == 401
    assert "token" in r.json["error"] and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_in_the_header_only_except_on_the_stream():
    c = client(token="s3cret")
    assert c.get("/api/v1/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/api/v1/status?token=s3cret").status_code == 401  # would land in access logs
    r = c.get("/api/v1/stream?token=s3cret", buffered=False)
    assert r.status_code == 200
    r.close()
    assert c.get("/").status_code == 200  # the panel page holds no data; it asks for the token


def test_token_compared_in_constant_time(monkeypatch):
    seen = []
    real = api.hmac.compare_digest
    monkeypatch.setattr(api.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    client(token="s3cret").get("/api/v1/status", headers={"Authorization": "Bearer guess"})
    assert seen == [(b"guess", b"s3cret")]


def test_no_token_configured_means_open():
    assert client().get("/api/v1/status").status_code == 200


# -- control ----------------------------------------------------------------------


def test_force_primary_reaches_control():
    ctl = FakeControl()
    r = client(control=ctl).post("/api/v1/primary", json={"uplink": "lte", "duration_s": 600})
    assert r.status_code == 200 and r.json["primary"] == "lte"
    assert ctl.calls == [("force_primary", "lte", 600)]


def test_reload_reaches_control():
    ctl = FakeControl()
    c = client(control=ctl)
    assert c.post("/api/v1/reload", json={}).json == {"ok": True, "message": "reloaded"}
    # an empty body is fine as long as it says it is JSON
    assert c.post("/api/v1/reload", headers={"Content-Type": "application/json"}).status_code == 200
    assert ctl.calls == [("reload",), ("reload",)]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"duration_s": 60}, "uplink"),
        ({"uplink": "", "duration_s": 60}, "uplink"),
        ({"uplink": 3, "duration_s": 60}, "uplink"),
        ({"uplink": "lte"}, "duration_s"),
        ({"uplink": "lte", "duration_s": "60"}, "duration_s"),
        ({"uplink": "lte", "duration_s": 1.5}, "duration_s"),
        ({"uplink": "lte", "duration_s": True}, "duration_s"),
        ({"uplink": "lte", "duration_s": -1}, "between"),
        ({"uplink": "lte", "duration_s": 86401}, "between"),
        ({"uplink": "lte", "duration_s": 60, "forever": True}, "unknown field"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_force_primary_input_is_400_with_a_clear_message(body, words):
    ctl = FakeControl()
    r = client(control=ctl).post("/api/v1/primary", json=body)
    assert r.status_code == 400
    assert words in r.json["error"]
    assert ctl.calls == []


def test_control_refusal_is_400_with_its_message():
    ctl = FakeControl(fail="unknown uplink 'cable'; configured: dsl, lte")
    r = client(control=ctl).post("/api/v1/primary", json={"uplink": "cable", "duration_s": 60})
    assert r.status_code == 400 and r.json["error"] == "unknown uplink 'cable'; configured: dsl, lte"
    r = client(control=ctl).post("/api/v1/reload", json={})
    assert r.status_code == 400


def test_post_needs_json_content_type_and_valid_json():
    c = client(control=FakeControl())
    r = c.post("/api/v1/reload", data="uplink=lte", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415 and "application/json" in r.json["error"]
    r = c.post("/api/v1/primary", data="{nope", content_type="application/json")
    assert r.status_code == 400 and "not valid JSON" in r.json["error"]


def test_control_missing_is_503():
    r = client().post("/api/v1/primary", json={"uplink": "lte", "duration_s": 60})
    assert r.status_code == 503


def test_unknown_route_and_method_answer_json():
    c = client()
    assert c.get("/api/v1/nope").status_code == 404 and "error" in c.get("/api/v1/nope").json
    assert c.get("/api/v1/reload").status_code == 405


# -- stream -----------------------------------------------------------------------


def sse_parse(text: str) -> list[tuple[str, str | None, str]]:
    """[(event-or-comment, id, data)] from a chunk of text/event-stream."""
    out = []
    for block in text.strip("\n").split("\n\n"):
        if block.startswith(":"):
            out.append((":", None, block))
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in fields:
            out.append((fields["event"], fields.get("id"), fields["data"]))
    return out


class Stream:
    def __init__(self, c, url: str) -> None:
        self.resp = c.get(url, buffered=False)
        assert self.resp.mimetype == "text/event-stream"
        self._it = iter(self.resp.response)
        self.pending: list = []

    def next(self):
        while not self.pending:
            chunk = next(self._it)
            self.pending = sse_parse(chunk.decode() if isinstance(chunk, bytes) else chunk)
        return self.pending.pop(0)

    def close(self):
        self.resp.close()


def test_stream_sends_status_then_events_on_change_all_schema_valid():
    m = model_at("boot")
    c = client(m, stream_refresh_s=0.05, keepalive_s=3600)
    s = Stream(c, "/api/v1/stream")
    kind, _, data = s.next()
    assert kind == "status"
    assert_valid(STATUS, json.loads(data))
    apply_phase(m, recording(), "failover", T0)  # live, after the page is "open"
    got = []
    while True:
        kind, ident, data = s.next()
        if kind == "status":
            snap = json.loads(data)
            assert_valid(STATUS, snap)
            if snap["summary"]["text"] == "Connected via LTE backup":
                break
        elif kind == "event":
            ev = json.loads(data)
            assert_valid(EVENT, ev)
            assert ident == str(ev["seq"])
            got.append(ev["kind"])
    s.close()
    m.close()
    assert got == ["path_state", "link", "failover"]


def test_stream_resumes_from_last_event_id_and_since():
    m = model_at("boot", "failover")
    c = client(m, stream_refresh_s=0.05)
    s = Stream(c, "/api/v1/stream?since=4")
    first = [s.next() for _ in range(3)]
    assert [k for k, _, _ in first] == ["event", "event", "status"]
    assert [i for _, i, _ in first[:2]] == ["5", "6"]
    s.close()
    s = Stream(c.application.test_client(), "/api/v1/stream")
    assert s.next()[0] == "status"  # no since: only the status (it carries recent events)
    s.close()
    resp = c.get("/api/v1/stream", headers={"Last-Event-ID": "5"}, buffered=False)
    it = iter(resp.response)
    text = ""
    while "event: status" not in text:
        text += next(it).decode()
    assert "id: 6" in text and "id: 5" not in text
    resp.close()
    m.close()


def test_stream_sends_counters_and_keepalives_when_nothing_else_changes():
    m = model_at("boot")
    c = client(m, stream_refresh_s=0.01, keepalive_s=0.02)
    s = Stream(c, "/api/v1/stream")
    assert s.next()[0] == "status"
    assert s.next()[0] == ":"  # idle: a comment keeps proxies and NAT from dropping us
    m.count_uplink("dsl", "tx", 1_000_000)
    while True:
        kind, _, data = s.next()
        if kind == "status":
            assert json.loads(data)["uplinks"][0]["tx_bytes"] == 48213377 + 1_000_000
            break
    s.close()
    m.close()


def test_stream_bad_since_is_400():
    assert client().get("/api/v1/stream?since=x").status_code == 400


def test_stream_ends_when_model_closes():
    m = model_at("boot")
    resp = client(m, stream_refresh_s=5).get("/api/v1/stream", buffered=False)
    it = iter(resp.response)
    next(it)
    m.close()
    rest = list(it)  # the generator finishes instead of blocking forever
    assert all(b"keep-alive" not in chunk for chunk in rest)


# -- real servers -----------------------------------------------------------------


def _get_json(url):
    with urllib.request.urlopen(url, timeout=CEILING) as r:
        return json.loads(r.read())


def test_waitress_server_serves_the_api():
    with running_api(model_at("boot")) as base:
        assert_valid(STATUS, _get_json(base + "/api/v1/status"))
        with urllib.request.urlopen(base + "/", timeout=CEILING) as r:
            assert b"<title>haig" in r.read()


def test_falls_back_to_werkzeug_without_waitress(monkeypatch):
    monkeypatch.setitem(sys.modules, "waitress", None)  # as on OpenWrt
    m = model_at("boot")
    h = serve(create_app(m), "127.0.0.1", 0)
    try:
        assert h.kind == "werkzeug"
        assert_valid(STATUS, _get_json(f"http://127.0.0.1:{h.port}/api/v1/status"))
    finally:
        m.close()
        h.stop()
    assert not h.thread.is_alive()


def test_panel_page_is_self_contained():
    html = client().get("/").data.decode()
    assert "http://" not in html and "https://" not in html  # works on an offline router
    assert "api/v1/stream" in html
