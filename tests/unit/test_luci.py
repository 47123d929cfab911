"""luci-app-haig without a router: menu and ACL structure, JavaScript syntax
(wrapped as LuCI's loader wraps views), the status view run under node on
snapshots of the real StatusModel, the settings form against the config
model, and translations. How LuCI renders it in a browser is checked only on
a router."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from haig.config import model
from haig.core.status import StatusModel
from haig.surfaces.replay import apply_phase, load_recording
from haig.surfaces.ubus_adapter import SIGNATURES
from tests.unit.openwrt_support import REPO, tool

APP = REPO / "luci-app-haig"
VIEWS = APP / "htdocs/luci-static/resources/view"
MENU = APP / "root/usr/share/luci/menu.d/luci-app-haig.json"
ACL = APP / "root/usr/share/rpcd/acl.d/luci-app-haig.json"
HARNESS = Path(__file__).with_name("luci_harness.js")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

ACTION_TYPES = {"firstchild", "view", "alias", "rewrite", "template", "call", "cbi", "form", "function"}


def js_files() -> list[Path]:
    return sorted(VIEWS.rglob("*.js"))


# ------------------------------------------------------------- menu and ACL

def test_menu_entries_are_well_formed():
    menu = json.loads(MENU.read_text())
    assert set(menu) == {"admin/services/haig", "admin/services/haig/status", "admin/services/haig/settings"}
    for path, entry in menu.items():
        assert isinstance(entry["title"], str) and entry["title"]
        assert entry["action"]["type"] in ACTION_TYPES, path
        if entry["action"]["type"] == "view":
            view = VIEWS / (entry["action"]["path"] + ".js")
            assert view.is_file(), f"{path} points at a missing view {view}"
    top = menu["admin/services/haig"]
    assert top["action"]["type"] == "firstchild"
    assert top["depends"]["acl"] == ["luci-app-haig"]
    assert top["depends"]["uci"] == {"haig": True}


def test_acl_grants_what_the_views_call_and_nothing_else():
    acl = json.loads(ACL.read_text())
    assert list(acl) == ["luci-app-haig"], "the ACL group is the one the menu depends on"
    grp = acl["luci-app-haig"]
    assert grp["read"]["uci"] == ["haig"] and grp["write"]["uci"] == ["haig"]
    read, write = set(grp["read"]["ubus"]["haig"]), set(grp["write"]["ubus"]["haig"])
    assert read == {"status", "events"}
    assert write == {"set_primary", "reload"}
    assert read | write == set(SIGNATURES), "ACL and the daemon's ubus methods differ"
    declared = set()
    for js in js_files():
        for obj, method in re.findall(r"object:\s*'(\w+)',\s*method:\s*'(\w+)'", js.read_text()):
            declared.add((obj, method))
    assert declared, "no rpc.declare found"
    for obj, method in declared:
        assert obj == "haig" and method in read | write, f"{obj}.{method} not granted"


def test_rpc_params_match_the_ubus_signatures():
    text = (VIEWS / "haig/status.js").read_text()
    for method, params in re.findall(r"method:\s*'(\w+)',\s*params:\s*\[([^\]]*)\]", text):
        names = re.findall(r"'(\w+)'", params)
        assert set(names) == set(SIGNATURES[method]), method


# ------------------------------------------------------------ JavaScript

@needs_node
@pytest.mark.parametrize("js", js_files(), ids=lambda p: p.name)
def test_views_are_valid_javascript(js, tmp_path):
    """LuCI compiles a view's source as a function body, so top-level `return
    view.extend(...)` is legal there: check it the same way."""
    text = js.read_text()
    assert text.startswith("'use strict';\n'require view';\n")
    wrapped = tmp_path / js.name
    wrapped.write_text("(function(L, _, E) {\n" + text + "\n});\n")
    res = subprocess.run([NODE, "--check", str(wrapped)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    # the check does reject a broken view (one brace too many)
    broken = tmp_path / ("broken-" + js.name)
    broken.write_text("(function(L, _, E) {\n" + text + "\n}});\n")
    assert subprocess.run([NODE, "--check", str(broken)], capture_output=True, timeout=60).returncode != 0


# --------------------------------------------------- status view under node

RECORDING = REPO / "tests/fixtures/recorded_run.json"
T0 = 1_700_000_000.0


def snapshots() -> dict[str, dict]:
    """Snapshot after each phase of the recorded failover run (fresh copies)."""
    return copy.deepcopy(_snapshots())


@functools.cache
def _snapshots() -> dict[str, dict]:
    rec = load_recording(RECORDING)
    m = StatusModel(started_at=T0)
    out = {}
    for phase in rec["phases"]:
        apply_phase(m, rec, phase, T0)
        out[phase] = m.snapshot(T0 + 120)
    return out


def run_view(tmp_path: Path, case: dict) -> dict:
    f = tmp_path / "case.json"
    f.write_text(json.dumps(case))
    res = subprocess.run([NODE, str(HARNESS), str(VIEWS / "haig/status.js"), str(f)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@needs_node
@pytest.mark.parametrize("phase,level,text", [
    ("boot", "ok", "Connected via DSL"),
    ("failover", "backup", "Connected, on LTE backup"),
    ("recovery", "backup", "Connected, on LTE backup"),  # hold-down: no flip-flop yet
    ("failback", "ok", "Connected via DSL"),
])
def test_headline_follows_the_recorded_failover(tmp_path, phase, level, text):
    st = snapshots()[phase]
    report = run_view(tmp_path, {"status": st, "events": None, "networks": {}, "drop_summary": True})
    assert report["headline"]["level"] == level
    assert report["headline"]["text"] == text
    # the view's own reading of uplinks/metrics agrees with the daemon's summary
    assert report["headline_without_summary"] == report["headline"]


@needs_node
def test_headline_names_the_link_by_its_protocol(tmp_path):
    st = copy.deepcopy(snapshots()["failover"])
    for u in st["uplinks"]:
        u["name"] = {"dsl": "main", "lte": "backup"}[u["name"]]
    st["primary"] = "backup"
    report = run_view(tmp_path, {"status": st, "events": None,
                                 "networks": {"wan": "pppoe", "wwan": "qmi"}})
    assert report["headline"]["text"] == "Connected, on LTE backup"


@needs_node
def test_daemon_not_running_says_not_connected(tmp_path):
    report = run_view(tmp_path, {"status": None, "events": None, "networks": {}})
    assert report["headline"]["level"] == "down"
    assert report["headline"]["text"] == "Not connected"
    assert "not running" in report["text"]


@needs_node
def test_association_down_is_not_connected(tmp_path):
    st = copy.deepcopy(snapshots()["boot"])
    for a in st["associations"]:
        a["state"] = "down"
    del st["summary"]
    report = run_view(tmp_path, {"status": st, "events": None, "networks": {}})
    assert report["headline"]["text"] == "Not connected"


@needs_node
def test_status_page_shows_uplinks_timeline_and_polls(tmp_path):
    st = snapshots()["failback"]
    newer = {"t": T0 + 130, "kind": "failover", "subject": "dsl", "old": "dsl", "new": "lte",
             "reason": "test", "detail": {}, "seq": st["last_event_seq"] + 1}
    events = {"schema_version": 1, "events": [newer], "last_seq": newer["seq"]}
    report = run_view(tmp_path, {"status": st, "events": events, "networks": {}})
    text = report["text"]
    for u in st["uplinks"]:
        assert u["name"] in text and u["interface"] in text
        if u["srtt_ms"] is not None:
            assert f"{int(u['srtt_ms'])} ms" in text
    assert "Switched from dsl to lte" in text  # the recorded failover, in the timeline
    assert report["polls"] == [5]
    assert {"object": "haig", "method": "events", "params": ["since"], "args": [st["last_event_seq"]]} in report["calls"]
    # the poll fetched events newer than the snapshot's and added them
    assert report["events_after_poll"][-1] == newer["seq"]
    assert report["events_after_poll"] == sorted(set(report["events_after_poll"]))


@needs_node
def test_status_page_shows_the_endpoint_in_use(tmp_path):
    st = copy.deepcopy(snapshots()["boot"])
    st["endpoint"] = {"in_use": "standby", "standby": True, "address": "198.51.100.20", "port": 8888,
                      "addresses": {"dsl": "198.51.100.20", "lte": "203.0.113.20"}, "since": 5.0,
                      "reason": "the primary endpoint is unreachable on every path for 5 s", "down_since": None,
                      "primary_answering_since": 40.0, "return_in_s": 12.0}
    sw = {"t": T0 + 130, "kind": "endpoint_switch", "subject": "endpoint", "old": "primary", "new": "standby",
          "reason": "test", "detail": {}, "seq": st["last_event_seq"] + 1}
    events = {"schema_version": 1, "events": [sw], "last_seq": sw["seq"]}
    text = run_view(tmp_path, {"status": st, "events": events, "networks": {}})["after_poll"]
    assert "Endpoint in use: standby 198.51.100.20:8888" in text and "back to it in 12 s" in text
    assert "Switched to the standby hospital endpoint" in text
    st["endpoint"].update(in_use="primary", address="192.0.2.10", return_in_s=None, primary_answering_since=None)
    text = run_view(tmp_path, {"status": st, "events": None, "networks": {}})["text"]
    assert "Endpoint in use: primary 192.0.2.10:8888" in text


XSS = '<img src=x onerror="alert(1)">'


@needs_node
def test_text_from_network_and_config_is_shown_as_text_never_as_html(tmp_path):
    st = snapshots()["failover"]
    st["uplinks"][0]["interface"] = XSS + "if"
    st["uplinks"][1]["name"] = XSS + "name"
    st["associations"][0]["key"] = XSS + "key"
    st["config"] = {"ok": False, "message": XSS + "config", "at": T0}
    evil = {"t": T0 + 130, "kind": "link", "subject": XSS + "subject", "old": "up", "new": XSS + "new",
            "reason": XSS + "reason", "detail": {}, "seq": st["last_event_seq"] + 1}
    events = {"schema_version": 1, "events": [evil], "last_seq": evil["seq"]}
    report = run_view(tmp_path, {"status": st, "events": events, "networks": {},
                                 "force": {"uplink": "dsl", "duration": 60},
                                 "set_primary_reply": {"ok": False, "error": XSS + "refusal"}})
    for where in ("if", "name", "key", "config", "reason", "subject", "new"):
        assert XSS + where in report["text"] + report["after_poll"], where  # shown, as text
    assert [n["text"] for n in report["notifications"]] == [XSS + "refusal"]
    # nothing untrusted ever reached an innerHTML sink: only the view's own words did
    assert not [h for h in report["html_sinks"] if "<" in h or "onerror" in h]


@needs_node
def test_states_use_theme_classes_not_inline_colours(tmp_path):
    st = snapshots()["failover"]
    states = ["active", "pf", "unreachable", "unconfirmed", "down", "brand_new_state"]
    template = st["uplinks"][0]
    st["uplinks"] = [dict(template, name=f"u{i}", state=s, primary=False) for i, s in enumerate(states)]
    report = run_view(tmp_path, {"status": st, "events": None, "networks": {}})
    assert report["styles"] == []
    badge = {c["state"]: c["cls"] for c in report["classes"] if c["state"]}
    assert badge == {
        "active": "label success", "pf": "label warning", "unreachable": "label danger",
        "unconfirmed": "label", "down": "label danger",
        "brand_new_state": "label",  # a state the daemon adds later: neutral, shown by name
    }
    shown = {c["state"]: c["text"] for c in report["classes"] if c["state"]}
    assert shown["brand_new_state"] == "brand_new_state" and shown["pf"] == "failing"
    for phase, cls in (("failover", "alert-message warning"), ("failback", "alert-message success")):
        r = run_view(tmp_path, {"status": snapshots()[phase], "events": None, "networks": {}})
        assert [c["cls"] for c in r["classes"] if c["cls"].startswith("alert-message")][0] == cls, phase
    r = run_view(tmp_path, {"status": None, "events": None, "networks": {}})  # daemon not running
    assert [c["cls"] for c in r["classes"] if c["cls"].startswith("alert-message")] == ["alert-message danger"]


# --------------------------------------------------------- settings vs model

SECTION_TYPES = {"haig": model.Main, "uplink": model.Uplink, "service": model.Service, "gateway": model.Peer}


def form_options() -> dict[tuple[str, str], dict]:
    """(section type, option) -> {widget, datatype, values, default} read from settings.js."""
    text = (VIEWS / "haig/settings.js").read_text()
    out: dict[tuple[str, str], dict] = {}
    stype, current = None, None
    for line in text.splitlines():
        m = re.search(r"m\.section\(form\.NamedSection,\s*'\w+',\s*'(\w+)'", line) or \
            re.search(r"m\.section\(form\.\w+,\s*'(\w+)'", line)
        if m:
            stype = m.group(1)
            continue
        m = re.search(r"(?:s\.(?:tab)?option|intOption)\((?:s,\s*)?(?:'\w+',\s*)?(form\.\w+|widgets\.\w+|'\w+')", line)
        if m:
            name_m = re.search(r"(?:form|widgets)\.\w+,\s*'(\w+)'", line) or \
                re.search(r"intOption\(s,\s*'\w+',\s*'(\w+)'", line)
            widget = m.group(1) if "." in m.group(1) else "intOption"
            current = {"widget": widget, "datatype": None, "values": [], "default": None}
            if widget == "intOption":
                lo, hi, dflt = re.search(r",\s*(\d+),\s*(\d+),\s*(\d+)\s*[,)]", line).groups()
                current |= {"datatype": f"and(uinteger,range({lo},{hi}))", "default": dflt}
            out[(stype, name_m.group(1))] = current
            continue
        if current is None:
            continue
        if m := re.search(r"o\.datatype = '([^']*)'", line):
            current["datatype"] = m.group(1)
        elif m := re.search(r"o\.value\('([^']*)'", line):
            current["values"].append(m.group(1))
        elif m := re.search(r"o\.default = '([^']*)'", line):
            current["default"] = m.group(1)
    return out


def model_fields() -> dict[tuple[str, str], dataclasses.Field]:
    return {(stype, f.name): f for stype, cls in SECTION_TYPES.items()
            for f in dataclasses.fields(cls) if f.name != "name"}


def test_settings_cover_exactly_the_model():
    form, fields = set(form_options()), set(model_fields())
    assert not form - fields, f"options the model does not know: {sorted(form - fields)}"
    assert not fields - form, f"model options missing from the settings page: {sorted(fields - form)}"


def test_settings_types_ranges_defaults_match_the_model():
    form = form_options()
    for key, f in model_fields().items():
        o = form[key]
        meta = f.metadata
        if f.type in ("bool",) or isinstance(f.default, bool):
            assert o["widget"] == "form.Flag", key
            assert o["default"] == ("1" if f.default else "0"), key
        elif "choices" in meta:
            assert o["widget"] == "form.ListValue", key
            assert o["values"] == list(meta["choices"]), key
            assert o["default"] == f.default, key
        elif "range" in meta:
            lo, hi = meta["range"]
            assert o["datatype"] and f"range({lo},{hi})" in o["datatype"], key
            assert "uinteger" in o["datatype"], key
            if o["default"] is not None:
                assert o["default"] == str(f.default), key


def test_settings_parser_sees_what_it_should():
    """Guard for the parser above: a few options read back as written."""
    form = form_options()
    assert form[("uplink", "interface")]["widget"] == "widgets.NetworkSelect"
    assert form[("haig", "rto_min")]["datatype"] == "and(uinteger,range(10,60000))"
    assert form[("haig", "role")]["values"] == ["gateway", "endpoint"]
    assert form[("uplink", "endpoint_address")]["datatype"] == "ipaddr(1)"


# ------------------------------------------------------------ translations

def test_pot_is_up_to_date():
    pot = tool("luci-pot")
    assert pot.render(pot.collect()) == (APP / "po/templates/haig.pot").read_text(encoding="utf-8"), \
        "run tools/luci-pot"


def test_every_translatable_string_is_in_the_pot():
    pot = tool("luci-pot")
    ids = pot.pot_msgids((APP / "po/templates/haig.pot").read_text(encoding="utf-8"))
    for js in js_files():
        strings = {s for s, _ in pot.js_strings(js)}
        assert strings, js
        assert strings <= ids, f"{js.name}: not in the .pot: {sorted(strings - ids)}"
    for title in (e["title"] for e in json.loads(MENU.read_text()).values()):
        assert title in ids


@needs_node
def test_pot_scanner_agrees_with_what_the_view_translates(tmp_path):
    """Strings the running view passed to _() were all found by the scanner
    (a _() call the scanner cannot read would be missing from the .pot)."""
    pot = tool("luci-pot")
    ids = pot.pot_msgids((APP / "po/templates/haig.pot").read_text(encoding="utf-8"))
    report = run_view(tmp_path, {"status": snapshots()["failover"], "events": None, "networks": {}})
    assert set(report["translated"]) <= ids


# A stand-in for LuCI's form/uci/widgets that accepts any call: running the
# settings view through it catches references to things that do not exist
# (a misspelt helper, a missing variable) that a syntax check cannot see, and
# exercises the cross-field validators.
SETTINGS_RUNNER = r"""
'use strict';
const fs = require('fs');
String.prototype.format = function() { const a = arguments; let i = 0; return this.replace(/%[sd]/g, () => String(a[i++])); };
const options = [];
function stub(name) {
	const target = function() {};
	return new Proxy(target, {
		get: (t, p) => (p in t) ? t[p] : (typeof p === 'symbol' ? undefined : stub(name + '.' + String(p))),
		set: (t, p, v) => { t[p] = v; return true; },
		apply: (t, self, args) => {
			const o = stub(name + '()');
			if (/\.taboption$/.test(name)) options.push({ name: args[2], o });
			else if (/\.option$/.test(name)) options.push({ name: args[1], o });
			return o;
		},
		construct: () => stub('new ' + name)
	});
}
const form = stub('form'), uci = stub('uci'), widgets = stub('widgets');
const view = { extend: o => o };
const src = fs.readFileSync(process.argv[2], 'utf8');
const v = new Function('L', '_', 'E', 'view', 'form', 'uci', 'widgets', src)(stub('L'), s => s, stub('E'), view, form, uci, widgets);
v.load();
v.render();
const form_values = JSON.parse(process.argv[3]);
const results = {};
for (const { name, o } of options) {
	const validate = o.validate;
	if (typeof validate !== 'function' || !(name in form_values)) continue;
	const self = { section: { formvalue: (sid, opt) => form_values[opt] } };
	results[name] = validate.call(self, 'cfg', form_values[name]);
}
process.stdout.write(JSON.stringify(results));
"""


@needs_node
@pytest.mark.parametrize("values,bad", [
    ({"rto_min": "100", "rto_initial": "1000", "rto_max": "3000", "pf_retrans": "1", "path_max_retrans": "3"}, set()),
    ({"rto_min": "500", "rto_initial": "200", "rto_max": "300", "pf_retrans": "5", "path_max_retrans": "3"},
     {"rto_min", "rto_initial", "pf_retrans"}),
])
def test_settings_view_runs_and_cross_checks(tmp_path, values, bad):
    runner = tmp_path / "settings_runner.js"
    runner.write_text(SETTINGS_RUNNER)
    res = subprocess.run([NODE, str(runner), str(VIEWS / "haig/settings.js"), json.dumps(values)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    results = json.loads(res.stdout)
    assert set(results) == {"rto_min", "rto_initial", "pf_retrans"}
    assert {k for k, v in results.items() if v is not True} == bad
