"""Refused and shed associations, as one rate-limited summary event (sans-I/O).

An unauthenticated peer can refuse itself as often as it likes: one event per refusal
would push the real events out of the bounded history. So each refusal is a log line
(`take_details()`, for the driver's log) and a count; at most one `assoc refused` event
per `interval` seconds summarises them: "N refusals from M addresses in the last 10 s;
last: ...", with the counts per reason in its detail.
"""

from __future__ import annotations

from collections import Counter, deque

from haig.core.events import ASSOC, Event
from haig.surfaces.logsafe import safe

REFUSAL_EVENT_INTERVAL = 10.0  # s: at most one refusal summary event this often
SUBJECT_LIMIT = 64  # characters of a peer-supplied gateway id kept in an event
DETAIL_BACKLOG = 1024  # log lines kept until the driver takes them (oldest dropped)


class Refusals:
    def __init__(self, interval: float = REFUSAL_EVENT_INTERVAL) -> None:
        self.interval = interval
        self.totals: Counter[str] = Counter()  # reason -> refusals since start
        self._reasons: Counter[str] = Counter()  # since the last event
        self._addrs: set[str] = set()
        self._last: tuple[str, str, str] | None = None  # (gateway id, address, reason)
        self._last_event: float | None = None
        self._events: deque[Event] = deque()
        self._details: deque[str] = deque(maxlen=DETAIL_BACKLOG)

    def refused(self, gw_id: str, where: str, why: str, now: float) -> None:
        gid, addr = safe(gw_id or "?", SUBJECT_LIMIT), safe(where, SUBJECT_LIMIT)
        self.totals[why] += 1
        self._reasons[why] += 1
        self._addrs.add(addr)
        self._last = (gid, addr, why)
        self._details.append(f"refused gateway {gid!r} from {addr}: {why}")
        if self._last_event is None or now - self._last_event >= self.interval:
            self._report(now)

    def handle_timer(self, now: float) -> None:
        if self._reasons and (self._last_event is None or now - self._last_event >= self.interval):
            self._report(now)

    def get_timer(self) -> float | None:
        if not self._reasons:
            return None
        return self._last_event + self.interval if self._last_event is not None else 0.0

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def take_details(self) -> list[str]:
        out = list(self._details)
        self._details.clear()
        return out

    def _report(self, now: float) -> None:
        n, m = sum(self._reasons.values()), len(self._addrs)
        assert self._last is not None
        gid, addr, why = self._last
        window = f"the last {self.interval:g} s" if self._last_event is not None else "a first burst"
        text = (f"{n} refusal{'s' if n != 1 else ''} from {m} address{'es' if m != 1 else ''} in {window}; "
                f"last: gateway {gid!r} from {addr}: {why}")
        self._events.append(Event(now, ASSOC, gid, "authenticating", "refused", text,
                                  {"count": n, "addresses": m, "reasons": dict(self._reasons)}))
        self._last_event = now
        self._reasons.clear()
        self._addrs.clear()
