"""JSON API, live stream, metrics and panel over HTTP (Flask).

Routes (all but the panel page under one optional token):
  GET  /                     the panel (static page without data; it asks for the token)
  GET  /api/v1/status        status snapshot (status.schema.json)
  GET  /api/v1/events        ?since=N[&wait=S]: events after seq N (long-poll up to S s)
  GET  /api/v1/stream        server-sent events: `status` and `event` messages
  GET  /metrics              Prometheus exposition (needs prometheus_client; else 501)
  POST /api/v1/primary       {"uplink": str, "duration_s": int}
  POST /api/v1/reload        {}

Safe to face the internet (an endpoint does):
* The token comes as `Authorization: Bearer <token>`. Only the stream also takes
  `?token=` (EventSource cannot set headers); that query is redacted from the access
  log and the panel never uses it (its token lives in the URL fragment, which browsers
  never send). Compared in constant time.
* Waiting requests (streams, long-polls) hold a server thread each: at most
  `max_streams` at once, past that 503 + Retry-After (a long-poll answers at once
  instead), so /api/v1/status always has threads left (serve() sizes the pool).
* Control routes (POST) check Host (an IP literal, localhost or `allowed_hosts`:
  DNS rebinding) and Origin/Sec-Fetch-Site (cross-site requests from a browser on
  the LAN), and need `application/json` (a form cannot send it without a preflight
  we never grant).
* Security headers on every answer: CSP with the panel's inline code pinned by hash,
  nosniff, frame-ancestors/X-Frame-Options, Referrer-Policy no-referrer, and
  Cache-Control no-store on everything but the panel page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from haig.core.status import StatusModel
from haig.surfaces.control import Control, check_force_primary, check_since

log = logging.getLogger(__name__)

MAX_WAIT_S = 30.0  # longest long-poll on /api/v1/events
MAX_STREAMS = 4  # concurrent streams + long-polls; serve() keeps threads beyond these
STREAM_RETRY_AFTER_S = 15


@cache
def _panel_html() -> bytes:
    return resources.files("haig.surfaces").joinpath("static/panel.html").read_bytes()


def _inline_hashes(html: bytes, tag: str) -> str:
    """CSP source list pinning each inline <script>/<style> of the panel by its sha256:
    no 'unsafe-inline', so text a peer smuggled into the page could never run."""
    blocks = re.findall(rb"<" + tag.encode() + rb">(.*?)</" + tag.encode() + rb">", html, re.S)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'" for b in blocks)


@cache
def panel_csp() -> str:
    html = _panel_html()
    return (f"default-src 'none'; script-src {_inline_hashes(html, 'script')}; "
            f"style-src {_inline_hashes(html, 'style')}; connect-src 'self'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


def host_allowed(host_header: str, allowed: frozenset[str]) -> bool:
    """Host of a control request: an IP literal, localhost, or a configured name. A
    name the attacker controls (DNS rebinding towards 127.0.0.1) is none of these."""
    try:
        host = urlsplit("//" + host_header).hostname or ""
    except ValueError:
        return False
    if host in allowed or host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def same_origin(origin: str, host_header: str) -> bool:
    try:
        o = urlsplit(origin)
    except ValueError:
        return False
    return o.scheme in ("http", "https") and o.netloc.lower() == host_header.lower()


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
    max_streams: int = MAX_STREAMS,
    allowed_hosts: Iterable[str] = (),
) -> Flask:
    """Build the app. `stream_refresh_s`: how often counters are re-sent on the stream
    when nothing else changed; `keepalive_s`: idle comment interval (proxies and
    NAT drop silent connections); `stream_max_s`: a stream ends after this long and
    the browser reconnects, so a forgotten tab never pins a server thread;
    `max_streams`: streams and long-polls open at once; `allowed_hosts`: DNS names
    (besides IP literals and localhost) control requests may be addressed to."""
    app = Flask("haig", static_folder=None)
    app.json.sort_keys = False
    want = token.encode() if token else None
    waiting = threading.BoundedSemaphore(max(1, max_streams))
    hosts = frozenset(h.lower() for h in allowed_hosts)

    def _slot() -> Callable[[], None] | None:
        """A waiting slot, or None when all are taken. The release is idempotent."""
        if not waiting.acquire(blocking=False):
            return None
        done = threading.Event()

        def release() -> None:
            if not done.is_set():
                done.set()
                waiting.release()

        return release

    @app.before_request
    def _auth() -> Any:
        if want is None or request.path == "/":
            return None  # the panel page holds no data; it asks for the token itself
        given = ""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer ") :].strip()
        elif request.path == "/api/v1/stream" and "token" in request.args:
            given = request.args.get("token", "")  # EventSource clients only
        if hmac.compare_digest(given.encode(), want):
            return None
        resp = jsonify(error="missing or wrong token: send 'Authorization: Bearer <api_token>'")
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = 'Bearer realm="haig"'
        return resp

    @app.before_request
    def _same_origin() -> Any:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        host = request.headers.get("Host", "")
        if not host_allowed(host, hosts):
            return bad(f"Host {host!r} is not this server's address; add the name to "
                       "'api_allowed_hosts' to reach the API by name", 403)
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(origin, host):
            return bad("cross-origin request refused (Origin is not this server)", 403)
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return bad("cross-site request refused (Sec-Fetch-Site)", 403)
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        h = resp.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        h.setdefault("Content-Security-Policy", panel_csp() if request.path == "/" else API_CSP)
        if request.path != "/":
            h["Cache-Control"] = "no-store"
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

    @app.get("/metrics")
    def metrics() -> Any:
        from haig.surfaces import metrics as prom

        if not prom.available():
            return bad("metrics need the Python package prometheus_client "
                       "(pip install 'haig[endpoint]' or apt install python3-prometheus-client)", 501)
        body, ctype = prom.exposition(model, clock, request.headers.get("Accept"))
        return Response(body, content_type=ctype)

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
        if page["events"] or wait <= 0:
            return jsonify(page)
        release = _slot()
        if release is None:  # all waiting slots taken: answer now, the client polls again
            resp = jsonify(page)
            resp.headers["Retry-After"] = str(STREAM_RETRY_AFTER_S)
            return resp
        try:
            deadline = time.monotonic() + wait
            while not page["events"] and not model.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                version = model.wait_for_change(version, left)
                page = model.events_page(since)
        finally:
            release()
        return jsonify(page)

    @app.get("/api/v1/stream")
    def stream() -> Any:
        raw = request.args.get("since", request.headers.get("Last-Event-ID"))
        try:
            since = model.last_event_seq if raw is None else check_since(raw)
        except ValueError as e:
            return bad(str(e))
        release = _slot()
        if release is None:
            resp = bad(f"too many live streams open (at most {max_streams}); retry later "
                       "or poll /api/v1/status", 503)
            resp.headers["Retry-After"] = str(STREAM_RETRY_AFTER_S)
            return resp
        gen = _released(_stream(model, clock, since, stream_refresh_s, keepalive_s, stream_max_s), release)
        resp = Response(gen, mimetype="text/event-stream", headers={"X-Accel-Buffering": "no"})
        resp.call_on_close(release)  # also when the client goes away before the first chunk
        return resp

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


def _released(gen: Iterator[str], release: Callable[[], None]) -> Iterator[str]:
    """`gen`, then `release` when it ends, fails or is closed by the server."""
    try:
        yield from gen
    finally:
        release()


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
    last_status = last_push
    while not model.closed and time.monotonic() - start < max_s:
        # Wake for the keep-alive too: writing is how a server learns the client left
        # (and frees its slot), so a long refresh must not delay it.
        now = time.monotonic()
        wait = min(max(0.01, refresh_s - (now - last_status)), max(0.01, keepalive_s - (now - last_push)))
        new_version = model.wait_for_change(version, wait)
        if model.closed:
            break
        new_counters = model.counters_version
        now = time.monotonic()
        if new_version != version or (new_counters != counters and now - last_status >= refresh_s):
            version, counters = new_version, new_counters
            yield from push()
            last_push = last_status = time.monotonic()
        elif now - last_push >= keepalive_s:
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


def serve(app: Flask, host: str, port: int, *, threads: int | None = None) -> ServerHandle:
    """Serve `app` on a daemon thread; port 0 picks a free port (see handle.port).

    waitress (a production WSGI server) when installed: the Debian endpoint has it.
    Its pool gets MAX_STREAMS + 4 threads, so four are always free for short requests
    while every waiting slot is taken (the cap in create_app answers 503 past it).
    OpenWrt's feed has no python3-waitress, so on the router this falls back to
    werkzeug's threaded server (a thread per request, adequate for local clients)."""
    try:
        import waitress  # noqa: F401
    except ImportError:
        return _serve_werkzeug(app, host, port)
    return _serve_waitress(app, host, port, threads or MAX_STREAMS + 4)


def _serve_waitress(app: Flask, host: str, port: int, threads: int) -> ServerHandle:
    from waitress import create_server, wasyncore

    # connection_limit: beyond it waitress stops accepting (backlog) instead of
    # spending memory per idle socket; channel_timeout closes silent keep-alives.
    server = create_server(app, host=host, port=port, threads=threads, ident="haig",
                           connection_limit=200, channel_timeout=60)
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

    server = make_server(host, port, app, threaded=True, request_handler=_RedactingHandler)
    t = threading.Thread(target=server.serve_forever, name="haig-http", daemon=True)
    t.start()
    log.info("API on http://%s:%s (werkzeug threaded server)", host, server.server_port)
    return ServerHandle("werkzeug", host, int(server.server_port), t, server.shutdown)


def redact_query(path: str) -> str:
    """A request target with the value of any `token` parameter hidden (access logs)."""
    return re.sub(r"([?&]token=)[^&#\s]*", r"\1REDACTED", path, flags=re.I)


def _redacting_handler() -> type:
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        """werkzeug's access log line without the token (and without control bytes)."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            from haig.surfaces.logsafe import safe

            line = f"{self.command} {getattr(self, 'path', '')} {self.request_version}" \
                if hasattr(self, "path") else self.requestline
            self.log("info", '"%s" %s %s', safe(redact_query(line), 400), code, size)

    return Handler


_RedactingHandler = _redacting_handler()
