"""One status model for every surface (ubus, Flask API and panel, CLI, LuCI).

The daemon (asyncio thread) feeds it with method calls; surfaces (Flask worker
threads, the ubus thread) read `snapshot(now)` and `events_since(seq)` and may
block in `wait_for_change()`. Everything is guarded by one lock, held only for
dict copies, never for I/O.

Two kinds of change are tracked apart on purpose:
* `version` moves on *state* changes (uplink state, primary, events, associations,
  flows, config) and wakes waiters; it is what live surfaces push on.
* `counters_version` moves on byte/packet/drop counters. Those tick at packet
  rate, so they never wake anyone: live surfaces refresh them on their own pace.

The snapshot layout is described by `haig/surfaces/status.schema.json`
(`schema_version` below) and documented in docs/status.md.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any

from haig.core import drops
from haig.core.events import Event, EventHistory
from haig.core.states import AssocState

SCHEMA_VERSION = 1  # additions only since 1 (drops_by_service, enums): readers of 1 keep working

# Reasons the relay counts drops for (haig.core.drops); always present in snapshots (as
# 0) so surfaces can show "nothing dropped" rather than nothing. Other reasons are
# accepted too.
DROP_REASONS = drops.REASONS

# What PathPolicy.uplink_view() reports, as the status shows it: the daemon can feed
# `update_uplink(name, **{k: v for k, v in view.items() if k in POLICY_FIELDS})`.
POLICY_FIELDS = (
    "role",
    "state",
    "healthy",
    "link_up",
    "srtt_ms",
    "rto_ms",
    "cwnd",
    "since",
    "healthy_since",
    "hold_down_remaining",
    "heartbeat_ms",
    "forced",
)
# Fields the daemon may set with update_uplink(); the rest come from config or counters.
UPLINK_DYNAMIC = (*POLICY_FIELDS, "local_address", "endpoint_address", "udp_encap")
_KEPT_ON_RELOAD = (*POLICY_FIELDS, "tx_bytes", "rx_bytes", "tx_packets", "rx_packets")
ASSOCIATION_FIELDS = ("state", "gateway_id", "assoc_id", "primary", "since", "reason", "paths", "auth")
PATH_FIELDS = ("address", "uplink", "state", "srtt_ms", "rto_ms", "cwnd", "primary")
# The gateway's `endpoint` object (GatewayLink.endpoint_view): which endpoint is in use.
ENDPOINT_FIELDS = ("in_use", "standby", "address", "port", "addresses", "since", "reason", "down_since",
                   "primary_answering_since", "return_in_s")

# Drop reasons that are a refused flow (a home's flow budget, the process's fd budget):
# shown again in the endpoint's `admission` object.
FLOW_REFUSALS = (drops.FLOW_TABLE_FULL, drops.FD_BUDGET)

# Association state meaning "traffic can flow" (see docs/status.md for the vocabulary).
ASSOC_UP = AssocState.UP
# At most this many flows are listed in a snapshot (an endpoint may hold thousands);
# `flows_total` always gives the real count.
MAX_FLOWS_LISTED = 200


def display_name(name: str) -> str:
    """How an uplink is named to people: short lowercase ids read as acronyms
    (dsl -> DSL, lte -> LTE); anything else is shown as configured."""
    if len(name) <= 4 and name.isalnum() and name.islower():
        return name.upper()
    return name


def _new_uplink(up: Any, order: int) -> dict[str, Any]:
    return {
        "name": up.name,
        "interface": up.interface,
        "metric": up.metric,
        "metered": bool(up.metered),
        "udp_encap": bool(up.udp_encap),
        "local_address": up.local_address or None,
        "endpoint_address": up.endpoint_address or None,
        "role": None,
        "state": "unknown",
        "healthy": False,
        "link_up": None,
        "srtt_ms": None,
        "rto_ms": None,
        "cwnd": None,
        "since": None,
        "healthy_since": None,
        "hold_down_remaining": None,
        "heartbeat_ms": None,
        "forced": False,
        "tx_bytes": 0,
        "rx_bytes": 0,
        "tx_packets": 0,
        "rx_packets": 0,
        "_order": order,
    }


def _path(p: dict[str, Any]) -> dict[str, Any]:
    unknown = set(p) - set(PATH_FIELDS)
    if unknown:
        raise TypeError(f"unknown path field(s) {sorted(unknown)}; known: {PATH_FIELDS}")
    if not p.get("address"):
        raise TypeError("a path needs an 'address'")
    return {
        "address": str(p["address"]),
        "uplink": p.get("uplink"),
        "state": p.get("state", "unknown"),
        "srtt_ms": p.get("srtt_ms"),
        "rto_ms": p.get("rto_ms"),
        "cwnd": p.get("cwnd"),
        "primary": bool(p.get("primary", False)),
    }


class StatusModel:
    """Thread-safe status of one haig instance. Time is always passed in."""

    def __init__(
        self,
        *,
        started_at: float | None = None,
        max_events: int = 200,
        recent_events: int = 20,
    ) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._version = 0
        self._counters_version = 0
        self._closed = False
        self._started_at = started_at
        self._recent = recent_events
        self._role: str | None = None
        self._gateway_id: str | None = None
        self._haig_version = ""
        self._uplinks: dict[str, dict[str, Any]] = {}
        self._primary: str | None = None
        self._history = EventHistory(max_events)
        self._assocs: dict[str, dict[str, Any]] = {}
        self._flows: list[dict[str, Any]] = []
        self._drops: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._drops_by_service: dict[str, dict[str, int]] = {}
        self._config = {"ok": True, "message": ""}
        self._endpoint: dict[str, Any] | None = None
        self._admission: dict[str, Any] | None = None
        self._sctp_socket: dict[str, Any] | None = None

    # -- change tracking -------------------------------------------------------

    def _changed(self) -> None:  # call with the lock held
        self._version += 1
        self._cond.notify_all()

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    @property
    def counters_version(self) -> int:
        with self._lock:
            return self._counters_version

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def wait_for_change(self, last_version: int, timeout: float | None) -> int:
        """Block until `version` differs from `last_version` (or timeout, or close());
        return the current version."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != last_version or self._closed, timeout)
            return self._version

    def close(self) -> None:
        """Wake every waiter for good (daemon shutdown): live streams then end."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- feeding API (daemon) --------------------------------------------------

    def set_identity(
        self,
        role: str,
        gateway_id: str | None,
        version: str,
        *,
        started_at: float | None = None,
    ) -> None:
        if role not in ("gateway", "endpoint"):
            raise ValueError(f"role must be 'gateway' or 'endpoint', not {role!r}")
        with self._lock:
            self._role = role
            self._gateway_id = gateway_id or None
            self._haig_version = version
            if started_at is not None:
                self._started_at = started_at
            self._changed()

    def set_uplinks(self, uplinks: Iterable[Any]) -> None:
        """(Re)declare the configured uplinks (config `Uplink` objects). State and
        counters of uplinks that keep their name survive a reload."""
        with self._lock:
            new: dict[str, dict[str, Any]] = {}
            for order, up in enumerate(uplinks):
                rec = _new_uplink(up, order)
                old = self._uplinks.get(up.name)
                if old is not None:
                    for k in _KEPT_ON_RELOAD:
                        rec[k] = old[k]
                    for k in ("local_address", "endpoint_address"):
                        if rec[k] is None:  # learnt from the device, not configured
                            rec[k] = old[k]
                new[up.name] = rec
            self._uplinks = new
            if self._primary is not None and self._primary not in new:
                self._primary = None
            self._changed()

    def update_uplink(self, name: str, **fields: Any) -> bool:
        """Set dynamic fields of one uplink (see UPLINK_DYNAMIC). Returns False when
        the uplink is not (or no longer) configured; unknown field names raise."""
        unknown = set(fields) - set(UPLINK_DYNAMIC)
        if unknown:
            raise TypeError(f"unknown uplink field(s) {sorted(unknown)}; known: {UPLINK_DYNAMIC}")
        with self._lock:
            rec = self._uplinks.get(name)
            if rec is None:
                return False
            if any(rec[k] != v for k, v in fields.items()):
                rec.update(fields)
                self._changed()
            return True

    def count_uplink(self, name: str, direction: str, nbytes: int, npackets: int = 1) -> bool:
        """Add traffic to an uplink's counters ('tx' = sent out of it). Hot path:
        does not wake waiters."""
        if direction not in ("tx", "rx"):
            raise ValueError(f"direction must be 'tx' or 'rx', not {direction!r}")
        with self._lock:
            rec = self._uplinks.get(name)
            if rec is None:
                return False
            rec[f"{direction}_bytes"] += nbytes
            rec[f"{direction}_packets"] += npackets
            self._counters_version += 1
            return True

    def set_primary(self, name: str | None) -> None:
        with self._lock:
            if name != self._primary:
                self._primary = name
                self._changed()

    def add_event(self, event: Event) -> Event:
        """Record an event; returns it stamped with its sequence number."""
        with self._lock:
            stamped = self._history.append(event)
            self._changed()
            return stamped

    def set_association(self, key: str, **fields: Any) -> None:
        """Create or update one association ('endpoint' on a gateway; one per
        gateway id on an endpoint). `paths` replaces the whole path list."""
        unknown = set(fields) - set(ASSOCIATION_FIELDS)
        if unknown:
            raise TypeError(
                f"unknown association field(s) {sorted(unknown)}; known: {ASSOCIATION_FIELDS}"
            )
        if "paths" in fields:
            fields["paths"] = [_path(p) for p in fields["paths"] or ()]
        with self._lock:
            rec = self._assocs.setdefault(
                key,
                {
                    "key": key,
                    "state": "unknown",
                    "gateway_id": None,
                    "assoc_id": None,
                    "primary": None,
                    "since": None,
                    "reason": "",
                    "paths": [],
                    "auth": None,
                },
            )
            rec.update(fields)
            self._changed()

    def set_endpoint(self, view: dict[str, Any] | None) -> None:
        """The gateway's endpoint in use (primary or standby), see ENDPOINT_FIELDS.
        Only a change of endpoint or reason wakes waiters (the countdowns tick)."""
        if view is not None:
            unknown = set(view) - set(ENDPOINT_FIELDS)
            if unknown:
                raise TypeError(f"unknown endpoint field(s) {sorted(unknown)}; known: {ENDPOINT_FIELDS}")
            view = {k: copy.deepcopy(view.get(k)) for k in ENDPOINT_FIELDS}
        with self._lock:
            old = self._endpoint
            self._endpoint = view
            moved = (old is None) != (view is None) or (
                old is not None and view is not None
                and any(old[k] != view[k] for k in ("in_use", "address", "reason", "standby")))
            if moved:
                self._changed()

    def set_admission(self, refused: dict[str, int], shed: int, pending: int) -> None:
        """Endpoint role: refusals by reason since start (sheds included), associations shed
        at once for too many pending, sessions pending now. Counters: wakes nobody."""
        with self._lock:
            self._admission = {"refused": {str(k): int(v) for k, v in sorted(refused.items())},
                               "shed": int(shed), "pending": int(pending)}
            self._counters_version += 1

    def set_sctp_socket(self, rcvbuf: int, asked: int, kernel: dict[str, int] | None) -> None:
        """Endpoint role: the receive buffer the kernel granted the shared SCTP socket
        against the one asked for (both as the kernel reports them, i.e. doubled), and the
        namespace's SCTP counters that show a full buffer. Counters: wakes nobody."""
        with self._lock:
            self._sctp_socket = {"rcvbuf": int(rcvbuf), "rcvbuf_asked": int(asked),
                                 "capped": rcvbuf < asked,
                                 "kernel": None if kernel is None else {k: int(v) for k, v in sorted(kernel.items())}}
            self._counters_version += 1

    def remove_association(self, key: str) -> None:
        with self._lock:
            if self._assocs.pop(key, None) is not None:
                self._changed()

    def set_flows(self, flows: Iterable[dict[str, Any]]) -> None:
        new = [dict(f) for f in flows]
        with self._lock:
            if new != self._flows:
                self._flows = new
                self._changed()

    def count_drop(self, reason: str, n: int = 1, *, service: str | None = None) -> None:
        """Count dropped datagrams (of `service` when one can be named). Hot path:
        does not wake waiters."""
        with self._lock:
            self._drops[reason] = self._drops.get(reason, 0) + n
            if service:
                per = self._drops_by_service.setdefault(service, {})
                per[reason] = per.get(reason, 0) + n
            self._counters_version += 1

    def set_config_state(self, ok: bool, message: str) -> None:
        with self._lock:
            self._config = {"ok": bool(ok), "message": message}
            self._changed()

    # -- reading API (surfaces) ------------------------------------------------

    def events_since(self, seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Events with a sequence number above `seq`, oldest first (at most `limit`,
        the oldest ones)."""
        with self._lock:
            evs = self._history.since(seq)
            if limit is not None:
                evs = evs[:limit]
            return [e.to_dict() for e in evs]

    def events_page(self, since: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The events response every surface gives (schema `$defs/events_response`).

        A `since` beyond the newest event means the daemon restarted (sequence
        numbers start over): the whole history is returned, so no reader waits
        forever for numbers that will not come back."""
        with self._lock:
            if since > self._history.last_seq:
                since = 0
            evs = self._history.since(since)
            if limit is not None:
                evs = evs[:limit]
            last = evs[-1].seq if evs else since
            return {
                "schema_version": SCHEMA_VERSION,
                "events": [e.to_dict() for e in evs],
                "last_seq": last,
            }

    @property
    def last_event_seq(self) -> int:
        with self._lock:
            return self._history.last_seq

    def snapshot(self, now: float) -> dict[str, Any]:
        with self._lock:
            uplinks = sorted(self._uplinks.values(), key=lambda u: (u["metric"], u["_order"]))
            ups = []
            for u in uplinks:
                d = {k: v for k, v in u.items() if not k.startswith("_")}
                d["primary"] = u["name"] == self._primary
                ups.append(d)
            assocs = [copy.deepcopy(a) for a in sorted(self._assocs.values(), key=lambda a: a["key"])]
            recent = list(self._history)[-self._recent :] if self._recent else []
            snap = {
                "schema_version": SCHEMA_VERSION,
                "time": now,
                "role": self._role,
                "gateway_id": self._gateway_id,
                "version": self._haig_version,
                "uptime_s": None if self._started_at is None else max(0.0, now - self._started_at),
                "primary": self._primary,
                "uplinks": ups,
                "associations": assocs,
                "flows": copy.deepcopy(self._flows[:MAX_FLOWS_LISTED]),
                "flows_total": len(self._flows),
                "drops": dict(self._drops),
                "drops_by_service": {k: dict(v) for k, v in sorted(self._drops_by_service.items())},
                "events": [e.to_dict() for e in recent],
                "last_event_seq": self._history.last_seq,
                "config": dict(self._config),
                "endpoint": copy.deepcopy(self._endpoint),
                "admission": None if self._admission is None else {
                    **copy.deepcopy(self._admission),
                    "flows_refused": {r: self._drops.get(r, 0) for r in FLOW_REFUSALS}},
                "sctp_socket": copy.deepcopy(self._sctp_socket),
            }
        snap["summary"] = summarize(snap)
        return snap


def summarize(snap: dict[str, Any]) -> dict[str, Any]:
    """The one-line answer to 'is it working?', shared by panel, CLI and LuCI."""
    assocs = snap["associations"]
    if snap["role"] == "endpoint":
        n = sum(1 for a in assocs if a["state"] == ASSOC_UP)
        text = "No gateway connected" if n == 0 else f"{n} gateway{'s' if n != 1 else ''} connected"
        return {"connected": n > 0, "on_backup": False, "text": text}
    ups = {u["name"]: u for u in snap["uplinks"]}
    prim = ups.get(snap["primary"]) if snap["primary"] else None
    assoc_down = any(a["state"] != ASSOC_UP for a in assocs)
    if prim is None or not prim["healthy"] or assoc_down:
        return {"connected": False, "on_backup": False, "text": "Not connected"}
    best = min(u["metric"] for u in snap["uplinks"])
    on_backup = prim["metric"] > best
    label = display_name(prim["name"])
    if on_backup:
        text = f"Connected via {label} backup"
    elif prim["interface"]:
        text = f"Connected via {label} ({prim['interface']})"
    else:
        text = f"Connected via {label}"
    if (snap.get("endpoint") or {}).get("in_use") == "standby":
        text += " to the standby endpoint"
    return {"connected": True, "on_backup": on_backup, "text": text}
