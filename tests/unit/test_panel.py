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
from tests.unit.synthetic_homes import synthetic_endpoint

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
        browser.open(f"{base}/#token=panel-token")  # the fragment never reaches the server
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

        assert "token" not in browser.eval("location.href")  # and is out of the address bar
        (ROOT / "artifacts").mkdir(exist_ok=True)
        browser.screenshot(str(ROOT / "artifacts" / "panel.png"))
    assert (ROOT / "artifacts" / "panel.png").stat().st_size > 10_000


def test_panel_without_the_token_says_what_it_needs(browser):
    with running_api(model_at("boot"), token="t") as base:
        browser.open(base + "/")
        assert "token" in browser.wait_for(
            "document.getElementById('live-text').textContent.includes('token') && "
            "document.getElementById('live-text').textContent")


def test_panel_with_an_old_query_token_link_moves_it_out_of_the_url(browser):
    with running_api(model_at("boot"), token="old-link") as base:
        browser.open(base + "/?token=old-link")
        assert browser.wait_for(f"{STATUS_COUNT} >= 1 && {HEADLINE}") == "Connected via DSL (wan)"
        assert "old-link" not in browser.eval("location.href")


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
        rows = browser.eval(
            "Array.from(document.querySelectorAll('#homes-body tr'))"
            ".map(r => [r.dataset.home, r.children[1].textContent, r.children[2].textContent])"
        )
        assert rows == [["home-0077", "Down (down)", "–"], ["home-0042", "Path degraded", "1/2"]]
        assert browser.eval("document.getElementById('uplinks').style.display") == "none"
        (ROOT / "artifacts").mkdir(exist_ok=True)
        browser.screenshot(str(ROOT / "artifacts" / "panel-endpoint.png"))


ROWS = "Array.from(document.querySelectorAll('#homes-body tr')).map(r => r.dataset.home)"
TROUBLES = "Array.from(document.querySelectorAll('#homes-body tr')).map(r => Number(r.dataset.trouble))"
COUNTS = ("Object.fromEntries(Array.from(document.querySelectorAll('#counts button'))"
          ".map(b => [b.dataset.count, Number(b.querySelector('b').textContent)]))")


def test_panel_at_scale_1000_homes_trouble_first_sortable_filterable(browser):
    now = time.time()
    m = synthetic_endpoint(1000, now)
    snap = m.snapshot(now)
    want_down = sum(1 for a in snap["associations"] if a["state"] != "up")
    with running_api(m) as base:
        t = time.monotonic()
        browser.open(base + "/")
        browser.wait_for(f"{STATUS_COUNT} >= 1 && document.querySelectorAll('#homes-body tr').length === 1000")
        first_render_s = time.monotonic() - t
        counts = browser.eval(COUNTS)
        assert counts["all"] == 1000 and counts["0"] == want_down
        assert counts["1"] > 0 and counts["2"] > 0 and counts["3"] > 0 and counts["4"] > 500
        assert sum(counts[k] for k in "01234") == 1000
        troubles = browser.eval(TROUBLES)
        assert troubles == sorted(troubles) and troubles[0] == 0  # homes in trouble first
        (ROOT / "artifacts").mkdir(exist_ok=True)
        browser.screenshot(str(ROOT / "artifacts" / "panel-1000-homes.png"))

        # filter by text
        browser.eval("(() => { const f = document.getElementById('filter');"
                     " f.value = 'home_00042'; f.dispatchEvent(new Event('input')); })()")
        assert browser.wait_for(f"{ROWS}.length === 1 && {ROWS}[0]") == "home_00042"
        browser.eval("(() => { const f = document.getElementById('filter');"
                     " f.value = ''; f.dispatchEvent(new Event('input')); })()")
        # filter by class (click a count), then sort by id both ways
        browser.eval("document.querySelector('#counts button[data-count=\"2\"]').click()")
        flapping = browser.wait_for(f"{ROWS}.length === {counts['2']} && {ROWS}")
        assert set(browser.eval(TROUBLES)) == {2} and len(flapping) == counts["2"]
        browser.eval("document.querySelector('#counts button[data-count=\"2\"]').click()")
        browser.eval("document.querySelector('th[data-sort=id]').click()")
        ids = browser.wait_for(f"{ROWS}.length === 1000 && {ROWS}")
        assert ids == sorted(ids)
        browser.eval("document.querySelector('th[data-sort=id]').click()")
        assert browser.eval(ROWS) == sorted(ids, reverse=True)
        # a live change re-sorts: a healthy home goes down and moves to the top
        browser.eval("document.querySelector('th[data-sort=trouble]').click()")
        m.set_association("home_00500", state="down", reason="test: gone", paths=[])
        browser.wait_for(f"{ROWS}.indexOf('home_00500') >= 0 && {ROWS}.indexOf('home_00500') < {want_down + 1}")
    print(f"1000 homes: first render {first_render_s:.2f} s (informational)")
