"""`haig status` and `haig events`: read the running daemon through its HTTP API.

stdlib only (urllib): this runs on the router, where every package costs flash.
The API address and token come from the config file (`api_listen`, `api_token`)
unless --api is given.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any, TextIO

from haig.config.errors import ConfigError
from haig.config.loader import load_config, main_options
from haig.config.validate import parse_hostport
from haig.core.status import display_name
from haig.surfaces.logsafe import safe_fields

DEFAULT_API = "http://127.0.0.1:8990"
EXIT_UNREACHABLE = 3
UBUS_BASE = "ubus:"  # base "URL" meaning: no HTTP API, ask over ubus


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- where the daemon is -------------------------------------------------------


def _config_api(path: str) -> tuple[str | None, str]:
    """(api_listen or None when not configured, api_token) from the config file: the
    checked config when it loads, else the main section as written (a config broken
    elsewhere must not stop `haig status` from finding the daemon)."""
    try:
        main = load_config(path).main
        return main.api_listen, main.api_token
    except ConfigError:
        opts = main_options(path)
        return opts.get("api_listen"), opts.get("api_token", "")


def listen_to_url(listen: str) -> str:
    """'host:port' (as in api_listen) -> base URL a local client can reach."""
    try:
        host, port = parse_hostport(listen)
    except ValueError as e:
        raise CliError(f"api_listen '{listen}' is not host:port ({e})") from None
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def resolve_api(args: Any) -> tuple[str, str]:
    config = getattr(args, "config", None)
    listen, token = _config_api(config) if config else (None, "")
    if args.api:
        return args.api.rstrip("/"), token
    if listen is None:
        return DEFAULT_API, token
    if not listen.strip():
        # The router's default: no HTTP API, so ask the daemon over ubus instead.
        return UBUS_BASE, token
    return listen_to_url(listen.strip()), token


# -- HTTP ------------------------------------------------------------------------


def _open(url: str, token: str, timeout: float):
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", "")
        except Exception:
            msg = ""
        if e.code == 401:
            raise CliError(
                f"the haig API at {url.split('/api/')[0]} refused the token "
                "(set api_token in the config, or check it matches the daemon's)"
            ) from None
        raise CliError(f"the haig API answered {e.code}: {msg or e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise CliError(
            f"cannot reach the haig daemon at {url.split('/api/')[0]} ({reason}).\n"
            "Is it running? Check with: /etc/init.d/haig status (or: logread -e haig)",
            EXIT_UNREACHABLE,
        ) from None


def fetch_json(url: str, token: str, timeout: float = 10.0) -> Any:
    if url.startswith(UBUS_BASE):
        from haig.surfaces.ubus_adapter import UbusCallError, ubus_get

        try:
            return ubus_get(url[len(UBUS_BASE):])
        except UbusCallError as e:
            raise CliError(str(e), EXIT_UNREACHABLE) from None
    with _open(url, token, timeout) as resp:
        return json.loads(resp.read())


def sse_messages(resp) -> Iterator[tuple[str, str, str | None]]:
    """(event, data, id) from a text/event-stream response."""
    kind, data, ident = "message", [], None
    for raw in resp:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield kind, "\n".join(data), ident
            kind, data, ident = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                ident = value


# -- formatting ------------------------------------------------------------------


def _when(t: float) -> str:
    lt = time.localtime(t)
    if time.strftime("%Y-%m-%d", lt) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", lt)
    return time.strftime("%Y-%m-%d %H:%M:%S", lt)


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.0f}ms"


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _duration(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(s)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s % 60:02d}s"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = []
    for row in [headers, *rows]:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    return "\n".join(lines)


def format_event(ev: dict[str, Any]) -> str:
    # Subjects and reasons can carry peer-supplied text (a gateway id, a refusal):
    # never let a newline or an escape sequence reach the terminal as it is.
    ev = safe_fields(ev)
    change = f"{ev['old'] if ev['old'] is not None else '-'} -> {ev['new'] if ev['new'] is not None else '-'}"
    return f"{_when(ev['t'])}  #{ev['seq']:<4} {ev['kind']:<10} {ev['subject']:<10} {change:<24} {ev['reason']}".rstrip()


def format_endpoint(e: dict[str, Any]) -> str:
    """One line: which endpoint the gateway uses, and why when it is not the primary."""
    line = f"Endpoint: {e['in_use']} {e['address'] or '-'}:{e['port']}"
    if not e["standby"]:
        return line + "  (no standby configured)"
    if e["in_use"] == "standby":
        line += f"  ({e['reason']})"
        if e["return_in_s"] is not None:
            line += f"; primary answers, back in {e['return_in_s']:.0f}s"
    return line


def format_status(s: dict[str, Any]) -> str:
    who = f"haig {s['role'] or '?'}"
    if s["gateway_id"]:
        who += f" {s['gateway_id']}"
    out = [f"{who}  (v{s['version']}, up {_duration(s['uptime_s'])})", s["summary"]["text"], ""]
    if s["uplinks"]:
        rows = []
        for u in s["uplinks"]:
            notes = []
            if u["link_up"] is False:
                notes.append("link down")
            if u["hold_down_remaining"]:
                notes.append(f"hold-down {u['hold_down_remaining']:.0f}s")
            if u["metered"]:
                notes.append("metered")
            if u["udp_encap"]:
                notes.append("udp")
            rows.append(
                [
                    display_name(u["name"]) + (" *" if u["primary"] else ""),
                    u["interface"] or "-",
                    str(u["metric"]),
                    u["state"],
                    "ok" if u["healthy"] else "down",
                    _ms(u["srtt_ms"]),
                    _ms(u["rto_ms"]),
                    _bytes(u["tx_bytes"]),
                    _bytes(u["rx_bytes"]),
                    ", ".join(notes),
                ]
            )
        out.append(
            table(["UPLINK", "IFACE", "METRIC", "STATE", "HEALTH", "SRTT", "RTO", "TX", "RX", "NOTES"], rows)
        )
        out.append("(* = carrying traffic)")
        out.append("")
    if s["associations"]:
        rows = []
        for a in s["associations"]:
            paths = " | ".join(
                f"{p['address']} {p['state']}{'*' if p['primary'] else ''} {_ms(p['srtt_ms'])}"
                for p in a["paths"]
            )
            since = _when(a["since"]) if a["since"] else "-"
            name = a["gateway_id"] or a["key"] if s["role"] == "endpoint" else a["key"]
            auth = {True: "on", False: "OFF"}.get(a.get("auth"), "-")  # SCTP-AUTH of its DATA
            rows.append([name, a["state"], auth, since, paths or "-"])
        out.append(table(["ASSOCIATION", "STATE", "AUTH", "SINCE", "PATHS (* = primary)"], rows))
        out.append("")
    if s.get("endpoint"):
        out.append(format_endpoint(s["endpoint"]))
        out.append("")
    drops = ", ".join(f"{k} {v}" for k, v in s["drops"].items() if v) or "none"
    cfg = "ok" if s["config"]["ok"] else f"REJECTED: {s['config']['message']}"
    out.append(f"Flows: {s['flows_total']}   Drops: {drops}   Config: {cfg}")
    if s["events"]:
        out.append("")
        out.append("Recent events:")
        out.extend("  " + format_event(e) for e in s["events"][-5:])
    return "\n".join(out)


# -- commands --------------------------------------------------------------------


def cmd_status(base: str, token: str, as_json: bool, out: TextIO) -> int:
    snap = fetch_json(f"{base}/api/v1/status", token)
    if as_json:
        out.write(json.dumps(snap, indent=2) + "\n")
    else:
        out.write(format_status(snap) + "\n")
    return 0


def _print_event(ev: dict[str, Any], as_json: bool, out: TextIO) -> None:
    out.write((json.dumps(ev) if as_json else format_event(ev)) + "\n")
    out.flush()


def cmd_events(
    base: str,
    token: str,
    as_json: bool,
    follow: bool,
    out: TextIO,
    max_events: int | None = None,
) -> int:
    """Print the history; with follow, keep printing new events (server-sent
    events; reconnects when the stream ends or the daemon restarts)."""
    page = fetch_json(f"{base}/api/v1/events?since=0", token)
    printed = 0
    for ev in page["events"]:
        _print_event(ev, as_json, out)
        printed += 1
    if not follow:
        return 0
    last = page["last_seq"]
    if base == UBUS_BASE:
        from haig.surfaces.ubus_adapter import ubus_follow

        for ev in ubus_follow(last):
            _print_event(ev, as_json, out)
            printed += 1
            if max_events is not None and printed >= max_events:
                break
        return 0
    warned = False
    while max_events is None or printed < max_events:
        try:
            with _open(f"{base}/api/v1/stream?since={last}", token, timeout=60) as resp:
                warned = False
                for kind, data, _ in sse_messages(resp):
                    if kind != "event":
                        continue
                    ev = json.loads(data)
                    _print_event(ev, as_json, out)
                    last = ev["seq"]
                    printed += 1
                    if max_events is not None and printed >= max_events:
                        return 0
        except CliError as e:
            if e.code != EXIT_UNREACHABLE:
                raise
            if not warned:
                print("haig: daemon not reachable, retrying...", file=sys.stderr)
                warned = True
            time.sleep(2)
        except (TimeoutError, ConnectionError):
            time.sleep(1)  # silent connection: reconnect from the last seen event
    return 0


def main(args: Any) -> int:
    out = sys.stdout
    try:
        base, token = resolve_api(args)
        if args.cmd == "status":
            return cmd_status(base, token, args.json, out)
        return cmd_events(
            base, token, args.json, args.follow, out, getattr(args, "max_events", None)
        )
    except CliError as e:
        print(f"haig: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
