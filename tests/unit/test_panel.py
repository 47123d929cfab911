"""The live panel in headless Chromium: it renders the recorded run, follows a
failover fed *after* it loaded, and leaves a screenshot in artifacts/panel.png."""

from __future__ import annotations

import os
import time

import pytest

from haig.core.events import ASSOC, Event
from haig.core.status import StatusModel
from haig.surfaces.replay import apply_phase
from tests.unit.cdp_pipe import CHROMIUM, Browser
from tests.unit.surfaces_support import ROOT, model_at, recording, running_api

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs Debian's chromium")

HEADLINE = "document.getElementById('headline').textContent"
STATUS_COUNT = "Number(document.body.dataset.statusCount)"


@pytest.fixture
def browser():
    b = Browser()
    try:
        yield b
    finally:
        b.close()


def test_panel_follows_a_failover_live(browser):
    t0 = time.time() - 15  # recent, so the timeline shows today's times
    m = model_at("boot", t0=t0)
    rec = recording()
    with running_api(m, token="panel-token") as base:
        browser.open(f"{base}/?token=panel-token")  # EventSource carries the token in the URL
        assert browser.wait_for(f"{STATUS_COUNT} >= 1 && {HEADLINE}") == "Connected via DSL (wan)"
        assert browser.eval("document.getElementById('hero').className") == "hero ok"
        seen = browser.eval(STATUS_COUNT)

        apply_phase(m, rec, "failover", t0)

        browser.wait_for(f"{HEADLINE} === 'Connected via LTE backup'")
        assert browser.eval(STATUS_COUNT) > seen  # came over the stream, no reload
        assert browser.eval("document.getElementById('hero').className") == "hero warn"
        assert browser.eval("document.getElementById('live-text').textContent") == "Live"
        badges = browser.eval(
            "Array.from(document.querySelectorAll('[data-uplink]'))"
            ".map(c => [c.dataset.uplink, c.querySelector('.badge').textContent])"
        )
        assert badges == [["dsl", "Cable / signal lost"], ["lte", "Carrying traffic"]]
        rows = browser.eval(
            "Array.from(document.querySelectorAll('#events tr'))"
            ".map(r => r.children[1].textContent + '|' + r.children[3].textContent)"
        )
        assert rows[0] == "Switched line|DSL → LTE"  # newest first
        assert len(rows) == m.last_event_seq
        assert browser.eval("document.querySelector('[data-assoc=endpoint] .badge').textContent") == "up"

        (ROOT / "artifacts").mkdir(exist_ok=True)
        browser.screenshot(str(ROOT / "artifacts" / "panel.png"))
    assert (ROOT / "artifacts" / "panel.png").stat().st_size > 10_000


def test_panel_endpoint_view_lists_gateways_and_paths(browser):
    m = StatusModel(started_at=time.time() - 3 * 86400)
    m.set_identity("endpoint", None, "0.1.0")
    m.set_association(
        "home-0042", state="up", gateway_id="home-0042", since=time.time() - 600,
        paths=[{"address": "192.0.2.10", "state": "active", "primary": True, "srtt_ms": 20, "rto_ms": 120},
               {"address": "100.64.12.7", "state": "pf", "srtt_ms": 70, "rto_ms": 400}],
    )  # fmt: skip
    m.set_association("home-0077", state="down", gateway_id="home-0077", reason="no heartbeat answer")
    m.add_event(Event(t=time.time() - 5, kind=ASSOC, subject="home-0077", old="up", new="down",
                      reason="no heartbeat answer"))  # fmt: skip
    with running_api(m) as base:
        browser.open(base + "/")
        assert browser.wait_for(f"{STATUS_COUNT} >= 1 && {HEADLINE}") == "1 gateway connected"
        cards = browser.eval(
            "Array.from(document.querySelectorAll('[data-assoc]'))"
            ".map(c => [c.querySelector('h3').firstChild.textContent, c.querySelectorAll('tbody tr').length])"
        )
        assert cards == [["home-0042", 2], ["home-0077", 0]]
        assert browser.eval("document.getElementById('uplinks').style.display") == "none"
        (ROOT / "artifacts").mkdir(exist_ok=True)
        browser.screenshot(str(ROOT / "artifacts" / "panel-endpoint.png"))
