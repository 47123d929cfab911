"""Every datagram haig does not deliver, counted by reason and service; a lost datagram
of a critical service becomes a `drop` event, rate-limited per service.

Pure: the protocol cores count into a ledger; the driver moves the counts to the status
model (`take()`) and publishes the events (`next_event()`), both after each input.
"""

from __future__ import annotations

from collections import Counter, deque

from haig.core.events import DROP, Event

# Why a datagram was not delivered (the status model lists each, 0 when nothing happened).
QUEUE_FULL = "queue_full"  # our send queue (socket full) was at its bound
TTL_EXPIRED = "ttl_expired"  # SCTP abandoned it: PR-SCTP lifetime over, or unsent at abort
ASSOC_LOST = "assoc_lost"  # still queued when the association went away
FLOW_TABLE_FULL = "flow_table_full"  # the home's max_flows (plus the critical reserve) in use
FD_BUDGET = "fd_budget"  # the endpoint's target sockets would pass its share of RLIMIT_NOFILE
MALFORMED = "malformed"  # could not be decoded
OVERSIZED = "oversized"  # larger than max_datagram
NO_ASSOCIATION = "no_association"  # nothing admitted to send it over
NO_TARGET = "no_target"  # the endpoint has no target for the service
UNKNOWN_FLOW = "unknown_flow"  # a reply for a flow this side does not know
SEND_FAILED = "send_failed"  # the socket refused it (error other than "would block")
ILLEGAL_STATE = "illegal_state"  # a message not allowed in the admission state
RCVBUF_FULL = "rcvbuf_full"  # the kernel dropped it at haig's full UDP receive buffer (the loop fell behind)
REASONS = (QUEUE_FULL, TTL_EXPIRED, ASSOC_LOST, FLOW_TABLE_FULL, FD_BUDGET, MALFORMED, OVERSIZED,
           NO_ASSOCIATION, NO_TARGET, UNKNOWN_FLOW, SEND_FAILED, ILLEGAL_STATE, RCVBUF_FULL)

NO_SERVICE = ""  # for drops no service can be named for (malformed messages...)
DROP_EVENT_INTERVAL = 10.0  # s: at most one drop event per critical service this often


class DropLedger:
    def __init__(self, event_interval: float = DROP_EVENT_INTERVAL) -> None:
        self.interval = event_interval
        self._pending: Counter[tuple[str, str]] = Counter()  # not yet taken by the driver
        self.totals: Counter[tuple[str, str]] = Counter()
        self._unreported: dict[str, Counter[str]] = {}  # critical service -> reason counts
        self._last_event: dict[str, float] = {}
        self._events: deque[Event] = deque()

    def count(self, reason: str, service: str = NO_SERVICE, n: int = 1, *,
              critical: bool = False, now: float = 0.0) -> None:
        if n <= 0:
            return
        key = (reason, service or NO_SERVICE)
        self._pending[key] += n
        self.totals[key] += n
        if critical:
            self._unreported.setdefault(service, Counter())[reason] += n
            last = self._last_event.get(service)
            if last is None or now - last >= self.interval:
                self._report(service, now)

    def take(self) -> list[tuple[str, str, int]]:
        """(reason, service, n) counted since the last take()."""
        if not self._pending:
            return []
        out = [(r, s, n) for (r, s), n in self._pending.items()]
        self._pending.clear()
        return out

    def total(self, reason: str | None = None, service: str | None = None) -> int:
        return sum(n for (r, s), n in self.totals.items()
                   if (reason is None or r == reason) and (service is None or s == service))

    def handle_timer(self, now: float) -> None:
        for svc in [s for s, c in self._unreported.items() if c]:
            if now - self._last_event.get(svc, -1e18) >= self.interval:
                self._report(svc, now)

    def get_timer(self) -> float | None:
        if not self._unreported:  # every pump asks: the usual answer, fast
            return None
        due = [self._last_event.get(s, 0.0) + self.interval for s, c in self._unreported.items() if c]
        return min(due) if due else None

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def _report(self, service: str, now: float) -> None:
        counts = self._unreported.pop(service, Counter())
        n = sum(counts.values())
        if not n:
            return
        self._last_event[service] = now
        why = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        self._events.append(Event(now, DROP, service, None, "lost",
                                  f"critical service {service}: {n} datagram{'s' if n != 1 else ''} lost ({why})",
                                  {"count": n, "reasons": dict(counts)}))
