"""JSON API, live stream and panel over HTTP (Flask).

Routes (all under one optional token):
  GET  /                     the panel (static page, no external resources)
  GET  /api/v1/status        status snapshot (status.schema.json)
  GET  /api/v1/events        ?since=N[&wait=S]: events after seq N (long-poll up to S s)
  GET  /api/v1/stream        server-sent events: `status` and `event` messages
  POST /api/v1/primary       {"uplink": str, "duration_s": int}
  POST /api/v1/reload        {}

The token may come as `Authorization: Bearer <token>` or `?token=<token>`
(EventSource cannot set headers). POSTs must be `application/json`: a
cross-site HTML form cannot send that without a CORS preflight we never grant.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from haig.core.status import StatusModel
from haig.surfaces.control import Control, check_force_primary, check_since

log = logging.getLogger(__name__)

MAX_WAIT_S = 30.0  # longest long-poll on /api/v1/events


def _panel_html() -> bytes:
    return resources.files("haig.surfaces").joinpath("static/panel.html").read_bytes()


def sse_message(kind: str, data: Any, id_: int | None = None) -> str:
    lines = [f"event: {kind}"]
    if id_ is not None:
        lines.append(f"id: {id_}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def create_app(
    model: StatusModel,
    token: str | None = None,
    clock: Callable[[], float] = time.time,
    control: Control | None = None,
    *,
    stream_refresh_s: float = 2.0,
    keepalive_s: float = 15.0,
    stream_max_s: float = 600.0,
) -> Flask:
    """Build the app. `stream_refresh_s`: how often counters are re-sent on the stream
    when nothing else changed; `keepalive_s`: idle comment interval (proxies and
    NAT drop silent connections); `stream_max_s`: a stream ends after this long and
    the browser reconnects, so a forgotten tab never pins a server thread."""
    app = Flask("haig", static_folder=None)
    app.json.sort_keys = False
    want = token.encode() if token else None

    @app.before_request
    def _auth() -> Any:
        if want is None:
            return None
        given = ""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer ") :].strip()
        elif "token" in request.args:
            given = request.args.get("token", "")
        if hmac.compare_digest(given.encode(), want):
            return None
        resp = jsonify(error="missing or wrong token: send 'Authorization: Bearer <api_token>' or ?token=")
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = 'Bearer realm="haig"'
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Any:
        resp = jsonify(error=e.description or e.name)
        resp.status_code = e.code or 500
        return resp

    def bad(msg: str, code: int = 400) -> Any:
        resp = jsonify(error=msg)
        resp.status_code = code
        return resp

    @app.get("/")
    def panel() -> Response:
        return Response(_panel_html(), mimetype="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/v1/status")
    def status() -> Any:
        return jsonify(model.snapshot(clock()))

    @app.get("/api/v1/events")
    def events() -> Any:
        try:
            since = check_since(request.args.get("since", "0"))
        except ValueError as e:
            return bad(str(e))
        try:
            wait = max(0.0, min(float(request.args.get("wait", "0")), MAX_WAIT_S))
        except ValueError:
            return bad(f"'wait' must be a number of seconds (at most {MAX_WAIT_S:g})")
        version = model.version  # read before the page: no change slips between
        page = model.events_page(since)
        deadline = time.monotonic() + wait
        while not page["events"] and not model.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            version = model.wait_for_change(version, left)
            page = model.events_page(since)
        return jsonify(page)

    @app.get("/api/v1/stream")
    def stream() -> Any:
        raw = request.args.get("since", request.headers.get("Last-Event-ID"))
        try:
            since = model.last_event_seq if raw is None else check_since(raw)
        except ValueError as e:
            return bad(str(e))
        gen = _stream(model, clock, since, stream_refresh_s, keepalive_s, stream_max_s)
        return Response(
            gen,
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def _json_body() -> dict[str, Any] | Any:
        if not request.is_json:
            return bad("send a JSON body with 'Content-Type: application/json'", 415)
        body = request.get_json(silent=True)
        if body is None and request.get_data():
            return bad("the body is not valid JSON")
        body = body if body is not None else {}
        if not isinstance(body, dict):
            return bad("the body must be a JSON object")
        return body

    def _call(fn: Callable[[], dict[str, Any]]) -> Any:
        if control is None:
            return bad("control is not available (daemon still starting?)", 503)
        try:
            result = fn()
        except ValueError as e:
            return bad(str(e))
        return jsonify(result if result is not None else {"ok": True})

    @app.post("/api/v1/primary")
    def primary() -> Any:
        body = _json_body()
        if not isinstance(body, dict):
            return body
        unknown = set(body) - {"uplink", "duration_s"}
        if unknown:
            return bad(f"unknown field(s) {sorted(unknown)}; expected 'uplink' and 'duration_s'")
        try:
            uplink, duration = check_force_primary(body.get("uplink"), body.get("duration_s"))
        except ValueError as e:
            return bad(str(e))
        return _call(lambda: control.force_primary(uplink, duration))

    @app.post("/api/v1/reload")
    def reload() -> Any:
        body = _json_body()
        if not isinstance(body, dict):
            return body
        return _call(lambda: control.reload())

    return app


def _stream(
    model: StatusModel,
    clock: Callable[[], float],
    since: int,
    refresh_s: float,
    keepalive_s: float,
    max_s: float,
) -> Iterator[str]:
    """Events first (so a status never mentions an event the client has not been
    sent), then the status; again on every change; counters every refresh_s."""
    start = last_push = time.monotonic()
    seq = since
    version = model.version
    counters = model.counters_version
    yield "retry: 3000\n\n"

    def push() -> Iterator[str]:
        nonlocal seq
        page = model.events_page(seq)
        for ev in page["events"]:
            yield sse_message("event", ev, ev["seq"])
        seq = page["last_seq"]
        yield sse_message("status", model.snapshot(clock()))

    yield from push()
    while not model.closed and time.monotonic() - start < max_s:
        new_version = model.wait_for_change(version, refresh_s)
        if model.closed:
            break
        new_counters = model.counters_version
        if new_version != version or new_counters != counters:
            version, counters = new_version, new_counters
            yield from push()
            last_push = time.monotonic()
        elif time.monotonic() - last_push >= keepalive_s:
            yield ": keep-alive\n\n"
            last_push = time.monotonic()


@dataclass
class ServerHandle:
    """A running HTTP server: `kind` is 'waitress' or 'werkzeug'."""

    kind: str
    host: str
    port: int
    thread: threading.Thread
    _stop: Callable[[], None]

    def stop(self) -> None:
        self._stop()
        self.thread.join(timeout=5)


def serve(app: Flask, host: str, port: int, *, threads: int = 8) -> ServerHandle:
    """Serve `app` on a daemon thread; port 0 picks a free port (see handle.port).

    waitress (a production WSGI server) when installed: the Debian endpoint has it.
    OpenWrt's feed has no python3-waitress, so on the router this falls back to
    werkzeug's threaded server, which is adequate for a handful of local clients."""
    try:
        import waitress  # noqa: F401
    except ImportError:
        return _serve_werkzeug(app, host, port)
    return _serve_waitress(app, host, port, threads)


def _serve_waitress(app: Flask, host: str, port: int, threads: int) -> ServerHandle:
    from waitress import create_server, wasyncore

    server = create_server(app, host=host, port=port, threads=threads, ident="haig")
    stop = threading.Event()

    def run() -> None:
        # Loop in small steps so stop() takes effect from this very thread:
        # closing waitress' sockets from another thread races its poll loop.
        while not stop.is_set():
            wasyncore.loop(timeout=0.2, map=server._map, use_poll=True, count=1)
        server.task_dispatcher.shutdown(timeout=2)
        wasyncore.close_all(server._map)

    t = threading.Thread(target=run, name="haig-http", daemon=True)
    t.start()
    log.info("API on http://%s:%s (waitress)", host, server.effective_port)
    return ServerHandle("waitress", host, int(server.effective_port), t, stop.set)


def _serve_werkzeug(app: Flask, host: str, port: int) -> ServerHandle:
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, name="haig-http", daemon=True)
    t.start()
    log.info("API on http://%s:%s (werkzeug threaded server)", host, server.server_port)
    return ServerHandle("werkzeug", host, int(server.server_port), t, server.shutdown)
