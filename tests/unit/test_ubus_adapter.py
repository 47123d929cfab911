"""ubus surface: method table, argument checks, event forwarding, the service
thread, and the python-ubus backend against a stand-in module."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import types

import pytest

from haig.core.events import CONFIG, FAILBACK, FAILOVER, Event
from haig.surfaces.replay import apply_phase
from haig.surfaces.ubus_adapter import (
    EVENT_FAILOVER,
    EVENT_OTHER,
    PythonUbusBackend,
    UbusService,
    start_ubus,
)
from tests.unit.surfaces_support import (
    EVENT,
    EVENTS_RESPONSE,
    ROOT,
    STATUS,
    T0,
    FakeControl,
    assert_valid,
    model_at,
    recording,
)

CEILING = 10.0


class FakeBackend:
    def __init__(self, loops_before_stop: int | None = None, stop: threading.Event | None = None,
                 fail_connects: int = 0) -> None:  # fmt: skip
        self.log: list = []
        self.objects: dict = {}
        self.sent: list = []
        self.loops_before_stop = loops_before_stop
        self.stop = stop
        self.fail_connects = fail_connects
        self.alive = True  # False: ubusd is gone (send() then returns False, as python-ubus does)
        self.lose_after_sends: int | None = None

    def connect(self):
        self.log.append("connect")
        if self.fail_connects:
            self.fail_connects -= 1
            raise OSError("Failed to connect to the ubus socket")

    def add_object(self, name, methods):
        self.log.append(("add", name))
        self.objects[name] = methods

    def send(self, event, data):
        if self.lose_after_sends is not None:
            if self.lose_after_sends == 0:
                self.alive = False
            self.lose_after_sends -= 1
        if not self.alive:
            return False
        self.sent.append((event, data))
        return True

    def connected(self):
        return self.alive

    def loop(self, timeout_ms):
        self.log.append("loop")
        if self.loops_before_stop is not None:
            self.loops_before_stop -= 1
            if self.loops_before_stop <= 0:
                self.stop.set()

    def disconnect(self):
        self.log.append("disconnect")
        self.alive = True  # the next connect() reaches a restarted ubusd
        self.lose_after_sends = None

    def call(self, method, args):  # as ubusd would dispatch a `ubus call haig ...`
        return self.objects["haig"][method][1](args)


def service(model=None, control=None, **kw):
    model = model or model_at("boot")
    return UbusService(model, control, FakeBackend(), clock=lambda: T0 + 5, **kw)


def test_method_table_matches_the_documented_signatures():
    table = service().method_table()
    assert {m: sig for m, (sig, _) in table.items()} == {
        "status": {},
        "events": {"since": "int"},
        "set_primary": {"uplink": "string", "duration": "int"},
        "reload": {},
    }


def test_status_is_a_valid_snapshot():
    snap = service().call("status")
    assert_valid(STATUS, snap)
    assert snap["time"] == T0 + 5


def test_events_since():
    m = model_at("boot", "failover")
    page = service(m).call("events", {"since": 2})
    assert_valid(EVENTS_RESPONSE, page)
    assert [e["seq"] for e in page["events"]] == list(range(3, m.last_event_seq + 1))


@pytest.mark.parametrize(
    ("method", "args", "words"),
    [
        ("events", {}, "missing argument 'since'"),
        ("events", {"since": "0"}, "'since' must be int"),
        ("events", {"since": True}, "'since' must be int"),
        ("events", {"since": -1}, "non-negative"),
        ("status", {"verbose": 1}, "unexpected argument"),
        ("set_primary", {"uplink": "lte"}, "missing argument 'duration'"),
        ("set_primary", {"uplink": "lte", "duration": 60, "x": 1}, "unexpected argument"),
        ("set_primary", {"uplink": 5, "duration": 60}, "'uplink' must be string"),
        ("set_primary", {"uplink": " ", "duration": 60}, "non-empty"),
        ("set_primary", {"uplink": "lte", "duration": 86401}, "between 0"),
        ("nope", {}, "unknown method"),
    ],
)
def test_bad_arguments_get_a_clear_error_reply(method, args, words):
    ctl = FakeControl()
    reply = service(control=ctl).call(method, args)
    assert reply["ok"] is False and words in reply["error"]
    assert ctl.calls == []


def test_set_primary_and_reload_reach_control():
    ctl = FakeControl()
    s = service(control=ctl)
    assert s.call("set_primary", {"uplink": "lte", "duration": 600})["primary"] == "lte"
    assert s.call("reload")["ok"] is True
    assert ctl.calls == [("force_primary", "lte", 600), ("reload",)]


def test_control_refusal_and_absence_are_error_replies():
    reply = service(control=FakeControl(fail="unknown uplink 'x'")).call(
        "set_primary", {"uplink": "x", "duration": 5}
    )
    assert reply == {"ok": False, "error": "unknown uplink 'x'"}
    assert "not available" in service().call("reload")["error"]


def test_a_crashing_handler_is_an_error_reply_not_a_dead_thread():
    class Broken(FakeControl):
        def reload(self):
            raise RuntimeError("boom")

    assert "internal error" in service(control=Broken()).call("reload")["error"]


def test_events_forwarded_once_by_kind():
    m = model_at("boot")
    s = service(m)
    assert s.forward_events() == m.last_event_seq  # boot history goes out too
    names = [n for n, _ in s.backend.sent]
    assert set(names) == {EVENT_OTHER}
    s.backend.sent.clear()
    apply_phase(m, recording(), "failover", T0)
    m.add_event(Event(t=T0, kind=FAILBACK, subject="dsl", old="lte", new="dsl", reason="x"))
    m.add_event(Event(t=T0, kind=CONFIG, subject="haig", old=None, new="reloaded", reason="x"))
    s.forward_events()
    assert [(n, d["kind"]) for n, d in s.backend.sent] == [
        (EVENT_OTHER, "path_state"),
        (EVENT_OTHER, "link"),
        (EVENT_FAILOVER, FAILOVER),
        (EVENT_FAILOVER, FAILBACK),
        (EVENT_OTHER, CONFIG),
    ]
    for _, data in s.backend.sent:
        assert_valid(EVENT, data)
    assert s.forward_events() == 0


def test_run_publishes_serves_forwards_and_disconnects():
    stop = threading.Event()
    backend = FakeBackend(loops_before_stop=3, stop=stop)
    m = model_at("boot")
    UbusService(m, None, backend).run(stop, slice_ms=1)
    assert backend.log == ["connect", ("add", "haig"), "loop", "loop", "loop", "disconnect"]
    assert len(backend.sent) == m.last_event_seq
    assert_valid(STATUS, backend.call("status", {}))


def test_run_retries_when_ubusd_is_not_there_yet():
    stop = threading.Event()
    backend = FakeBackend(loops_before_stop=1, stop=stop, fail_connects=2)
    UbusService(model_at("boot"), None, backend).run(stop, slice_ms=1, retry_s=0)
    assert backend.log[:3] == ["connect", "connect", "connect"]
    assert ("add", "haig") in backend.log


def test_lost_ubusd_seen_from_send_false_reconnects_reregisters_and_resends():
    stop = threading.Event()
    backend = FakeBackend(loops_before_stop=4, stop=stop)
    backend.lose_after_sends = 2  # ubusd restarts while the boot history goes out
    m = model_at("boot")
    waits = []
    stop_wait = stop.wait
    stop.wait = lambda t: waits.append(t) or stop_wait(0)  # record the back-off, do not sleep
    svc = UbusService(m, None, backend)
    svc.run(stop, slice_ms=1, retry_s=0.5)
    assert backend.log[:5] == ["connect", ("add", "haig"), "loop", "disconnect", "connect"]
    assert backend.log.count(("add", "haig")) == 2  # the object is registered again
    assert svc.reconnects == 1 and waits == [0.5]
    # every event reached ubus exactly once, in order, despite the loss
    assert [d["seq"] for _, d in backend.sent] == list(range(1, m.last_event_seq + 1))


def test_connection_reported_closed_after_a_loop_slice_reconnects():
    stop = threading.Event()
    backend = FakeBackend(loops_before_stop=3, stop=stop)
    original_loop = backend.loop

    def loop(ms):
        original_loop(ms)
        if backend.log.count("loop") == 1:
            backend.alive = False  # ubusd died while we were serving

    backend.loop = loop
    svc = UbusService(model_at("boot"), None, backend)
    svc.run(stop, slice_ms=1, retry_s=0)
    assert svc.reconnects == 1 and backend.log.count(("add", "haig")) == 2


def test_backoff_doubles_up_to_the_ceiling_while_ubusd_is_away():
    stop = threading.Event()
    backend = FakeBackend(loops_before_stop=1, stop=stop, fail_connects=6)
    waits = []
    stop_wait = stop.wait
    stop.wait = lambda t: waits.append(t) or stop_wait(0)
    UbusService(model_at("boot"), None, backend).run(stop, slice_ms=1, retry_s=1, retry_max_s=8)
    assert waits == [1, 2, 4, 8, 8, 8]


def test_run_gives_up_quietly_without_python_ubus(monkeypatch):
    monkeypatch.setitem(sys.modules, "ubus", None)  # as on Debian
    t, _ = start_ubus(model_at("boot"), None)
    t.join(CEILING)
    assert not t.is_alive()


def test_start_ubus_runs_on_its_own_thread_until_stopped():
    backend = FakeBackend()
    t, stop = start_ubus(model_at("boot"), None, backend=backend)
    try:
        assert t.name == "haig-ubus" and t.daemon
    finally:
        stop.set()
        t.join(CEILING)
    assert not t.is_alive() and backend.log[-1] == "disconnect"


# -- the python-ubus backend against a stand-in module ----------------------------


class Request:
    def __init__(self):
        self.replies = []

    def reply(self, data):
        self.replies.append(data)


def fake_ubus_module():
    mod = types.SimpleNamespace(BLOBMSG_TYPE_INT32=5, BLOBMSG_TYPE_STRING=3, calls=[], connected=False)

    def connect(socket_path=None):
        mod.connected = True
        mod.calls.append(("connect", socket_path))

    mod.connect = connect
    mod.add = lambda name, methods: mod.calls.append(("add", name, methods))
    mod.send = lambda event, data: mod.calls.append(("send", event, data)) or mod.connected
    mod.loop = lambda timeout: mod.calls.append(("loop", timeout))
    mod.get_connected = lambda: mod.connected
    mod.disconnect = lambda: mod.calls.append(("disconnect",))
    return mod


def test_python_ubus_backend_speaks_the_binding_api(monkeypatch):
    mod = fake_ubus_module()
    monkeypatch.setitem(sys.modules, "ubus", mod)
    ctl = FakeControl()
    backend = PythonUbusBackend(socket_path="/var/run/ubus/ubus.sock")
    s = UbusService(model_at("boot"), ctl, backend, clock=lambda: T0)
    backend.connect()
    backend.add_object("haig", s.method_table())
    _, name, methods = mod.calls[1]
    assert name == "haig"
    assert {m: spec["signature"] for m, spec in methods.items()} == {
        "status": {},
        "events": {"since": 5},
        "set_primary": {"uplink": 3, "duration": 5},
        "reload": {},
    }
    for spec in methods.values():  # python-ubus insists on exactly these two keys
        assert set(spec) == {"method", "signature"}
    req = Request()
    methods["set_primary"]["method"](req, {"uplink": "lte", "duration": 30})
    assert req.replies == [{"ok": True, "primary": "lte", "until_s": 30}]
    req = Request()
    methods["status"]["method"](req, {})
    assert_valid(STATUS, req.replies[0])
    assert backend.send("haig.failover", {"a": 1}) is True
    backend.loop(250)
    assert backend.connected()
    mod.connected = False  # ubusd gone: python-ubus' send() returns False, it does not raise
    assert backend.send("haig.event", {"b": 2}) is False and not backend.connected()
    backend.disconnect()  # still called: python-ubus keeps its context until then
    assert mod.calls[0] == ("connect", "/var/run/ubus/ubus.sock")
    assert mod.calls[2:] == [("send", "haig.failover", {"a": 1}), ("loop", 250),
                             ("send", "haig.event", {"b": 2}), ("disconnect",)]


def test_only_the_ubus_adapter_imports_python_ubus():
    importers = []
    for path in (ROOT / "haig").rglob("*.py"):
        if re.search(r"^\s*(import ubus\b|from ubus\b)", path.read_text(), re.M):
            importers.append(path.relative_to(ROOT).as_posix())
    assert importers == ["haig/surfaces/ubus_adapter.py"]


def test_importing_the_adapter_does_not_need_python_ubus():
    code = "import sys, haig.surfaces.ubus_adapter; assert 'ubus' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# -- client for the CLI when the API is off ----------------------------------------------


@pytest.fixture
def fake_ubus_cli(tmp_path, monkeypatch):
    """A stand-in `ubus` tool answering `ubus call haig ...` from the given replies."""
    script = tmp_path / "ubus"
    log = tmp_path / "argv"

    def install(body: str) -> None:
        script.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n[ \"$1\" = -t ] && shift 2\n{body}\n")
        script.chmod(0o755)

    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    install.log = log
    return install


def test_ubus_call_passes_method_and_args_and_parses_the_reply(fake_ubus_cli):
    from haig.surfaces.ubus_adapter import ubus_call

    fake_ubus_cli("""echo '{"events": [], "last_seq": 7}'""")
    assert ubus_call("events", {"since": 3}) == {"events": [], "last_seq": 7}
    assert fake_ubus_cli.log.read_text().split() == ["-t", "10", "call", "haig", "events", '{"since":', "3}"]


def test_ubus_call_errors_say_what_to_do(fake_ubus_cli, monkeypatch, tmp_path):
    from haig.surfaces.ubus_adapter import UbusCallError, ubus_call

    fake_ubus_cli('echo "Command failed: Not found" >&2; exit 4')
    with pytest.raises(UbusCallError, match="is haig running"):
        ubus_call("status")
    fake_ubus_cli("""echo '{"ok": false, "error": "set_primary: unknown uplink"}'""")
    with pytest.raises(UbusCallError, match="unknown uplink"):
        ubus_call("set_primary", {"uplink": "x", "duration": 1})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UbusCallError, match="no `ubus` command"):
        ubus_call("status")


def test_ubus_follow_yields_new_events_once_and_rides_out_a_restart():
    from haig.surfaces.ubus_adapter import UbusCallError, ubus_follow

    pages = [
        {"events": [{"seq": 4}, {"seq": 5}], "last_seq": 5},
        UbusCallError("no ubus object 'haig'"),  # daemon restarting
        {"events": [{"seq": 5}, {"seq": 6}], "last_seq": 6},
    ]
    asked = []

    def call(method, args):
        asked.append(args["since"])
        r = pages.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    got = []
    for ev in ubus_follow(3, call=call, sleep=lambda s: None):
        got.append(ev["seq"])
        if len(got) == 3:
            break
    assert got == [4, 5, 6] and asked == [3, 5, 5]


def test_ubus_get_answers_the_cli_paths(fake_ubus_cli):
    from haig.surfaces.ubus_adapter import UbusCallError, ubus_get

    fake_ubus_cli("""echo '{"method": "'$3'", "args": '"${4:-null}"'}'""")
    assert ubus_get("/api/v1/status") == {"method": "status", "args": None}
    assert ubus_get("/api/v1/events?since=12") == {"method": "events", "args": {"since": 12}}
    with pytest.raises(UbusCallError, match="no ubus equivalent"):
        ubus_get("/api/v1/stream?since=0")
