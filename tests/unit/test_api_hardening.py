"""The API on the open internet: stream cap (8 open streams used to block
/api/v1/status), security headers, Host/Origin on control routes, no token in logs,
and /metrics with and without prometheus_client."""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import re
import sys
import threading
import time
import urllib.request

import pytest

from haig.surfaces import metrics
from haig.surfaces.api import MAX_STREAMS, create_app, redact_query, serve
from tests.unit.surfaces_support import FakeControl, model_at, running_api
from tests.unit.synthetic_homes import synthetic_endpoint

CEILING = 10.0


def _open_stream(port: int, path: str = "/api/v1/stream"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CEILING)
    conn.request("GET", path)
    r = conn.getresponse()
    if r.status == 200:
        r.read1(64)  # the stream really started (a server thread is in it now)
    return conn, r.status, r


def test_open_streams_never_starve_status_and_extra_ones_get_503():
    m = model_at("boot")
    # keep-alives every 0.2 s: a server learns that a client left only when it writes
    with running_api(m, stream_refresh_s=30, keepalive_s=0.2) as base:
        port = int(base.rsplit(":", 1)[1])
        opened = [_open_stream(port) for _ in range(8)]  # what used to block /status
        codes = [s for _, s, _ in opened]
        assert codes.count(200) == MAX_STREAMS and codes.count(503) == 8 - MAX_STREAMS
        refused = next(r for _, s, r in opened if s == 503)
        assert int(refused.headers["Retry-After"]) > 0
        t = time.monotonic()
        with urllib.request.urlopen(base + "/api/v1/status", timeout=CEILING) as r:
            assert r.status == 200
        assert time.monotonic() - t < CEILING
        # long-polls past the cap answer at once instead of waiting
        with urllib.request.urlopen(base + f"/api/v1/events?since={m.last_event_seq}&wait=25", timeout=CEILING) as r:
            assert r.status == 200 and r.headers["Retry-After"]
        for conn, _, r in opened:
            r.close()
            conn.close()
        # slots come back when clients go away
        deadline = time.monotonic() + CEILING
        while True:
            conn, status, r = _open_stream(port)
            r.close()
            conn.close()
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200


def test_stream_slot_is_released_when_the_stream_ends():
    m = model_at("boot")
    c = create_app(m, max_streams=1, stream_max_s=0.0).test_client()
    for _ in range(3):  # each stream ends at once (max 0 s): the slot is free again
        r = c.get("/api/v1/stream")
        assert r.status_code == 200
        r.close()


def test_security_headers_everywhere():
    c = create_app(model_at("boot")).test_client()
    for path in ("/", "/api/v1/status", "/api/v1/events", "/nope"):
        h = c.get(path).headers
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        if path != "/":
            assert h["Cache-Control"] == "no-store"


def test_panel_csp_pins_the_inline_code_by_hash():
    r = create_app(model_at("boot")).test_client().get("/")
    csp = r.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    script = re.search(rb"<script>(.*?)</script>", r.data, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
    assert f"'sha256-{digest}'" in csp


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, 200),
        ({"Host": "127.0.0.1:8990"}, 200),
        ({"Host": "[::1]:8990"}, 200),
        ({"Host": "evil.example"}, 403),  # DNS rebinding
        ({"Origin": "http://evil.example"}, 403),  # CSRF from a page on the LAN
        ({"Origin": "http://localhost"}, 200),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Host": "haig.hospital.example", "Origin": "https://haig.hospital.example"}, 200),
    ],
)
def test_control_routes_check_host_and_origin(headers, code):
    app = create_app(model_at("boot"), control=FakeControl(), allowed_hosts=["haig.hospital.example"])
    r = app.test_client().post("/api/v1/reload", json={}, headers=headers)
    assert r.status_code == code, r.json
    if code == 403:
        assert "refused" in r.json["error"] or "Host" in r.json["error"]


def test_reads_are_not_host_checked():
    r = create_app(model_at("boot")).test_client().get("/api/v1/status", headers={"Host": "x.example"})
    assert r.status_code == 200


def test_redact_query():
    assert redact_query("GET /api/v1/stream?token=abc&since=3 HTTP/1.1") == \
        "GET /api/v1/stream?token=REDACTED&since=3 HTTP/1.1"
    assert redact_query("/x?a=1&TOKEN=zz") == "/x?a=1&TOKEN=REDACTED"


def test_werkzeug_access_log_never_shows_the_token(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "waitress", None)
    m = model_at("boot")
    h = serve(create_app(m, token="t0ps3cret-value"), "127.0.0.1", 0)
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=CEILING)
            conn.request("GET", "/api/v1/status?token=t0ps3cret-value&x=%0aforged")
            conn.getresponse().read()
            conn.close()
            time.sleep(0.2)
    finally:
        m.close()
        h.stop()
    text = caplog.text
    assert "/api/v1/status" in text
    assert "t0ps3cret-value" not in text and "REDACTED" in text


def test_metrics_expose_homes_paths_drops():
    from prometheus_client.parser import text_string_to_metric_families

    m = synthetic_endpoint(1000, now=time.time())
    m.count_drop("queue_full", 7)
    r = create_app(m).test_client().get("/metrics")
    assert r.status_code == 200
    fams = {f.name: f for f in text_string_to_metric_families(r.data.decode())}
    homes = {s.labels["state"]: s.value for s in fams["haig_homes"].samples}
    assert sum(homes.values()) == 1000 and homes["down"] > 0
    assert len([s for s in fams["haig_home_up"].samples]) == 1000
    assert any(s.labels["reason"] == "queue_full" and s.value == 7 for s in fams["haig_drops"].samples)
    assert fams["haig_path_state"].samples and fams["haig_home_association_age_seconds"].samples
    assert sum(s.value for s in fams["haig_home_on_backup"].samples) > 0


def test_admission_refusals_sheds_and_flow_refusals_in_status_and_metrics():
    from prometheus_client.parser import text_string_to_metric_families

    from tests.unit.surfaces_support import STATUS, assert_valid

    m = synthetic_endpoint(3, now=time.time())
    m.count_drop("fd_budget", 2)
    m.set_admission({"wrong key": 4, "too many pending associations": 9}, shed=9, pending=5)
    snap = m.snapshot(time.time())
    assert_valid(STATUS, snap)
    assert snap["admission"] == {"refused": {"too many pending associations": 9, "wrong key": 4}, "shed": 9,
                                 "pending": 5, "flows_refused": {"flow_table_full": 0, "fd_budget": 2}}
    fams = {f.name: f for f in text_string_to_metric_families(create_app(m).test_client().get("/metrics")
                                                              .data.decode())}
    assert {s.labels["reason"]: s.value for s in fams["haig_admissions_refused"].samples} == \
        {"too many pending associations": 9, "wrong key": 4}
    assert fams["haig_pending_sheds"].samples[0].value == 9
    assert fams["haig_pending_sessions"].samples[0].value == 5
    assert {s.labels["reason"]: s.value for s in fams["haig_flows_refused"].samples}["fd_budget"] == 2


def test_metrics_count_failovers_per_subject_across_scrapes():
    from prometheus_client.parser import text_string_to_metric_families

    m = model_at("boot", "failover")
    c = create_app(m).test_client()

    def failovers():
        fams = {f.name: f for f in text_string_to_metric_families(c.get("/metrics").data.decode())}
        return {s.labels["home"]: s.value for s in fams["haig_failovers"].samples}

    first = failovers()
    assert sum(first.values()) >= 1
    assert failovers() == first  # a second scrape does not count the same events again


def test_metrics_without_prometheus_client_say_so(monkeypatch):
    monkeypatch.setattr(metrics, "CollectorRegistry", None)
    r = create_app(model_at("boot")).test_client().get("/metrics")
    assert r.status_code == 501 and "prometheus_client" in r.json["error"]
    # everything else still works
    assert create_app(model_at("boot")).test_client().get("/api/v1/status").status_code == 200


def test_stream_cap_holds_under_concurrent_clients():
    """Many clients racing for slots: never more than max_streams granted at once."""
    m = model_at("boot")
    app = create_app(m, max_streams=3, stream_refresh_s=30, keepalive_s=30)
    granted, lock, resps = [], threading.Lock(), []

    def one():
        r = app.test_client().get("/api/v1/stream", buffered=False)
        with lock:
            granted.append(r.status_code)
            resps.append(r)

    ts = [threading.Thread(target=one) for _ in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(CEILING)
    assert granted.count(200) == 3 and granted.count(503) == 9
    m.close()
    for r in resps:
        r.close()

