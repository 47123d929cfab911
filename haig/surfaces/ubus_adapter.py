"""ubus object `haig` (for LuCI, rpcd ACLs and shell scripts) and ubus events.

    ubus call haig status
    ubus call haig events '{"since": 0}'
    ubus call haig set_primary '{"uplink": "lte", "duration": 600}'
    ubus call haig reload
    ubus listen haig.failover haig.event

Split in two so that everything but the binding is tested on any machine:
`UbusService` (method table, argument checks, event forwarding; pure Python)
drives a `UbusBackend`; `PythonUbusBackend` is the thin layer over OpenWrt's
python3-ubus and the only place in haig that imports `ubus`.

python-ubus keeps one global connection and libubus is not thread-safe, so one
thread owns it: it runs the ubus loop in short slices and forwards new events
from the status model between slices (no cross-thread ubus calls).

python-ubus reports a lost ubusd (restarted, upgraded) not by raising but by
`send()` returning False (and `get_connected()` turning false): the service then
drops the connection, backs off (1 s doubling to 30 s), connects again and
re-registers the object; events not yet sent are sent after the reconnect.

`ubus_call()` / `ubus_follow()` are the client side for `haig status` /
`haig events` when the HTTP API is off (the router default): they run the `ubus`
tool, so the CLI needs neither python-ubus nor Flask.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from haig.core.events import FAILBACK, FAILOVER
from haig.core.status import StatusModel
from haig.surfaces.control import Control, check_force_primary

log = logging.getLogger(__name__)

OBJECT = "haig"
EVENT_FAILOVER = "haig.failover"  # failover and failback events
EVENT_OTHER = "haig.event"  # every other event kind

Handler = Callable[[dict[str, Any]], dict[str, Any]]
# method name -> ({argument: "int" | "string"}, handler)
MethodTable = dict[str, tuple[dict[str, str], Handler]]


class UbusBackend(Protocol):
    def connect(self) -> None: ...

    def add_object(self, name: str, methods: MethodTable) -> None:
        """Publish `name`; each handler gets the call's arguments and returns the reply."""
        ...

    def send(self, event: str, data: dict[str, Any]) -> bool | None:
        """False when the connection is lost (python-ubus does not raise then)."""
        ...

    def loop(self, timeout_ms: int) -> None:
        """Serve calls for up to timeout_ms."""
        ...

    def connected(self) -> bool: ...

    def disconnect(self) -> None: ...


# Arguments per method. python-ubus rejects a call whose arguments are not exactly
# these (missing, extra or of another type) before haig sees it; UbusService checks
# the same again so every backend gives the same answers.
SIGNATURES: dict[str, dict[str, str]] = {
    "status": {},
    "events": {"since": "int"},
    "set_primary": {"uplink": "string", "duration": "int"},
    "reload": {},
}
_PYTYPES = {"int": int, "string": str}


class ConnectionLost(Exception):
    """ubusd went away (send() returned False, or the connection reports closed)."""


def _error(message: str) -> dict[str, Any]:
    # A ubus reply cannot carry a message with an error status through python-ubus,
    # so failures are replies with an `error` field (LuCI shows it as is).
    return {"ok": False, "error": message}


class UbusService:
    def __init__(
        self,
        model: StatusModel,
        control: Control | None,
        backend: UbusBackend,
        clock: Callable[[], float] = time.time,
        *,
        start_seq: int = 0,
    ) -> None:
        self.model = model
        self.control = control
        self.backend = backend
        self.clock = clock
        self._seq = start_seq  # last event forwarded to ubus

    # -- methods ---------------------------------------------------------------

    def method_table(self) -> MethodTable:
        handlers: dict[str, Handler] = {
            "status": self._status,
            "events": self._events,
            "set_primary": self._set_primary,
            "reload": self._reload,
        }
        return {name: (SIGNATURES[name], self._checked(name, fn)) for name, fn in handlers.items()}

    def call(self, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Dispatch as the ubus daemon would (tests and the fake backend use this)."""
        table = self.method_table()
        if method not in table:
            return _error(f"unknown method {method!r}; haig has {sorted(table)}")
        return table[method][1](args or {})

    def _checked(self, name: str, fn: Handler) -> Handler:
        sig = SIGNATURES[name]

        def handler(args: dict[str, Any]) -> dict[str, Any]:
            args = args or {}
            extra = set(args) - set(sig)
            if extra:
                return _error(f"{name}: unexpected argument(s) {sorted(extra)}; it takes {_describe(sig)}")
            for arg, kind in sig.items():
                if arg not in args:
                    return _error(f"{name}: missing argument '{arg}' ({kind}); it takes {_describe(sig)}")
                v = args[arg]
                if isinstance(v, bool) or not isinstance(v, _PYTYPES[kind]):
                    return _error(f"{name}: argument '{arg}' must be {kind}, not {type(v).__name__}")
            try:
                return fn(args)
            except ValueError as e:
                return _error(str(e))
            except Exception:  # a surface must never take the daemon down
                log.exception("ubus %s failed", name)
                return _error(f"{name}: internal error (see the log)")

        return handler

    def _status(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.model.snapshot(self.clock())

    def _events(self, args: dict[str, Any]) -> dict[str, Any]:
        if args["since"] < 0:
            raise ValueError("'since' must be a non-negative whole number (an event seq)")
        return self.model.events_page(args["since"])

    def _set_primary(self, args: dict[str, Any]) -> dict[str, Any]:
        uplink, duration = check_force_primary(args["uplink"], args["duration"], "duration")
        if self.control is None:
            return _error("control is not available (daemon still starting?)")
        return self.control.force_primary(uplink, duration) or {"ok": True}

    def _reload(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.control is None:
            return _error("control is not available (daemon still starting?)")
        return self.control.reload() or {"ok": True}

    # -- events ----------------------------------------------------------------

    def forward_events(self) -> int:
        """Send model events newer than the last forwarded one; returns how many.
        Raises ConnectionLost when ubusd is gone; the unsent ones go after reconnecting."""
        page = self.model.events_page(self._seq)
        sent = 0
        for ev in page["events"]:
            name = EVENT_FAILOVER if ev["kind"] in (FAILOVER, FAILBACK) else EVENT_OTHER
            if self.backend.send(name, ev) is False:
                raise ConnectionLost(f"sending {name} failed")
            self._seq = ev["seq"]
            sent += 1
        self._seq = page["last_seq"]
        return sent

    # -- thread ----------------------------------------------------------------

    def run(
        self, stop: threading.Event, slice_ms: int = 250, retry_s: float = 1.0, retry_max_s: float = 30.0
    ) -> None:
        """Serve until `stop` is set; reconnect with back-off if ubusd goes away.
        Without python3-ubus (Debian endpoint) it returns at once."""
        delay = retry_s
        self.reconnects = 0
        while not stop.is_set():
            try:
                self.backend.connect()
            except ImportError:
                log.info("python3-ubus is not installed: no ubus object (API and CLI still work)")
                return
            except Exception as e:
                log.warning("ubus: cannot connect (%s); retrying in %.0f s", e, delay)
                stop.wait(delay)
                delay = min(delay * 2, retry_max_s)
                continue
            try:
                self.backend.add_object(OBJECT, self.method_table())
                log.info("ubus object %r published", OBJECT)
                delay = retry_s  # registered: a later loss starts the back-off anew
                while not stop.is_set():
                    self.backend.loop(slice_ms)
                    if not self.backend.connected():
                        raise ConnectionLost("connection closed")
                    self.forward_events()
            except Exception as e:
                self.reconnects += 1
                log.warning("ubus: %s; reconnecting in %.0f s", e, delay)
                stop.wait(delay)
                delay = min(delay * 2, retry_max_s)
            finally:
                try:
                    self.backend.disconnect()
                except Exception:
                    pass


def _describe(sig: dict[str, str]) -> str:
    if not sig:
        return "no arguments"
    return ", ".join(f"'{k}' ({v})" for k, v in sig.items())


class PythonUbusBackend:
    """python3-ubus (OpenWrt). Exercised only on a router: see docs/status.md."""

    def __init__(self, socket_path: str | None = None) -> None:
        self.socket_path = socket_path
        self._ubus: Any = None

    def connect(self) -> None:
        import ubus  # the only import of python-ubus in haig

        self._ubus = ubus
        if self.socket_path:
            ubus.connect(socket_path=self.socket_path)
        else:
            ubus.connect()

    def add_object(self, name: str, methods: MethodTable) -> None:
        u = self._ubus
        types = {"int": u.BLOBMSG_TYPE_INT32, "string": u.BLOBMSG_TYPE_STRING}

        def wrap(fn: Handler) -> Callable[[Any, dict[str, Any]], None]:
            def on_call(request: Any, data: dict[str, Any]) -> None:
                request.reply(fn(data))

            return on_call

        u.add(
            name,
            {
                m: {"method": wrap(fn), "signature": {a: types[t] for a, t in sig.items()}}
                for m, (sig, fn) in methods.items()
            },
        )

    def send(self, event: str, data: dict[str, Any]) -> bool:
        return bool(self._ubus.send(event, data))

    def loop(self, timeout_ms: int) -> None:
        self._ubus.loop(timeout_ms)

    def connected(self) -> bool:
        return bool(self._ubus is not None and self._ubus.get_connected())

    def disconnect(self) -> None:
        # Also after a loss: python-ubus keeps its context until disconnect(), and
        # connect() on a kept context raises.
        if self._ubus is not None:
            try:
                self._ubus.disconnect()
            except Exception as e:
                log.debug("ubus disconnect: %s", e)


def start_ubus(
    model: StatusModel,
    control: Control | None,
    clock: Callable[[], float] = time.time,
    backend: UbusBackend | None = None,
) -> tuple[threading.Thread, threading.Event]:
    """Run the ubus service on its own daemon thread; set the returned event to stop."""
    service = UbusService(model, control, backend or PythonUbusBackend(), clock)
    stop = threading.Event()
    t = threading.Thread(target=service.run, args=(stop,), name="haig-ubus", daemon=True)
    t.start()
    return t, stop


# ------------------------------------------------------------------- client


class UbusCallError(Exception):
    """A `ubus call haig ...` that did not answer; the message says why and what to do."""


UBUS_STATUS_NOT_FOUND = 4  # `ubus` exit status: no such object (haig not running)


def ubus_call(method: str, args: dict[str, Any] | None = None, *, timeout_s: int = 10, ubus: str = "ubus") -> dict[str, Any]:
    """`ubus call haig <method> <args>` through the `ubus` tool; the reply as a dict.
    Raises UbusCallError (not running, no ubus, an `error` reply)."""
    exe = shutil.which(ubus)
    if exe is None:
        raise UbusCallError("no `ubus` command here (not OpenWrt?): enable the API (api_listen) instead")
    argv = [exe, "-t", str(timeout_s), "call", OBJECT, method]
    if args:
        argv.append(json.dumps(args))
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 5)
    except subprocess.TimeoutExpired:
        raise UbusCallError(f"ubus call {OBJECT} {method}: no answer in {timeout_s} s") from None
    if res.returncode == UBUS_STATUS_NOT_FOUND:
        raise UbusCallError(
            f"no ubus object '{OBJECT}': is haig running? Check with: /etc/init.d/haig status (or: logread -e haig)"
        )
    if res.returncode != 0:
        raise UbusCallError(f"ubus call {OBJECT} {method} failed: {res.stderr.strip() or res.returncode}")
    try:
        reply = json.loads(res.stdout or "{}")
    except ValueError as e:
        raise UbusCallError(f"ubus call {OBJECT} {method}: reply is not JSON ({e})") from None
    if isinstance(reply, dict) and reply.get("ok") is False and "error" in reply:
        raise UbusCallError(str(reply["error"]))
    return reply


def ubus_get(path: str, **kw: Any) -> dict[str, Any]:
    """The HTTP API's GET paths the CLI uses, answered over ubus instead:
    `/api/v1/status` and `/api/v1/events?since=N` (same JSON: one status model)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(path)
    if parts.path == "/api/v1/status":
        return ubus_call("status", **kw)
    if parts.path == "/api/v1/events":
        since = parse_qs(parts.query).get("since", ["0"])[0]
        if not since.isdigit():
            raise UbusCallError(f"'since' must be a non-negative whole number, not {since!r}")
        return ubus_call("events", {"since": int(since)}, **kw)
    raise UbusCallError(f"{parts.path} has no ubus equivalent (enable the API: api_listen)")


def ubus_follow(
    since: int, *, poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep, call: Callable[..., dict[str, Any]] = ubus_call
) -> Iterator[dict[str, Any]]:
    """Events after `since`, as they come (polls the `events` method; survives a daemon
    or ubusd restart by retrying). For `haig events --follow` without the API."""
    last = since
    while True:
        try:
            page = call("events", {"since": last})
        except UbusCallError:
            sleep(max(poll_s, 2.0))
            continue
        for ev in page.get("events", []):
            if ev.get("seq", 0) > last:
                last = ev["seq"]
                yield ev
        sleep(poll_s)
