"""Messages the kernel abandons after sending them: when they are a loss to count.

Linux frees a message whose PR-SCTP lifetime ran out after it was transmitted without a
send-failed event (net/sctp/outqueue.c): only the per-stream `abandoned_sent` counter of
SCTP_PR_STREAM_STATUS rises. Such a message waits on the kernel's abandoned list until
the peer acknowledges the FORWARD-TSN that skips it, and is freed silently then. If the
association dies first, it is failed at teardown instead: a send-failed event, and
SCTP_STATUS still counts it as unacknowledged. Counting the counter's increase at once
and the teardown as well counted it twice (both_down_20s: 851 counted for 753 lost).

So `AfterSend` holds each increase until some path has been ACTIVE for `CONFIRM`
seconds after it (the FORWARD-TSN surely acknowledged: freed silently, a loss to count);
an association that ends first hands its unconfirmed increases back (`take_in_doubt`):
confirmed by a graceful end (SHUTDOWN_COMPLETE: everything acknowledged), left to the
teardown's own count otherwise. One per association, on either role; pure, time passed in.
"""

from __future__ import annotations

from collections.abc import Hashable

from haig.core.states import PathState

CONFIRM = 3.0  # s a path must have been ACTIVE after an abandonment (several RTTs, PF detection)


class AfterSend:
    __slots__ = ("_totals", "_pending", "_active_since")

    def __init__(self) -> None:
        self._totals: dict[int, int] = {}  # stream -> the kernel's running total
        self._pending: list[tuple[float, str, int]] = []  # (seen at, service, n) unconfirmed
        self._active_since: dict[Hashable, float] = {}  # path -> start of its ACTIVE stretch

    def total(self, stream: int, total: int, service: str, now: float) -> list[tuple[str, int]]:
        """The kernel's running total for `stream` (whose messages are `service`'s); returns
        what is confirmed now, as (service, n)."""
        prev = self._totals.get(stream, 0)
        self._totals[stream] = total
        if total > prev:
            self._pending.append((now, service, total - prev))
        return self.settle(now)

    def path(self, key: Hashable, state: PathState, now: float) -> list[tuple[str, int]]:
        """A path's state (event or sample); returns what is confirmed now."""
        if state is PathState.ACTIVE:
            self._active_since.setdefault(key, now)
        else:
            self._active_since.pop(key, None)
        return self.settle(now)

    def settle(self, now: float) -> list[tuple[str, int]]:
        if not self._pending or not self._active_since:
            return []
        since = min(self._active_since.values())
        done, keep = [], []
        for t, service, n in self._pending:
            (done if now >= max(t, since) + CONFIRM else keep).append((t, service, n))
        self._pending = keep
        return [(service, n) for _t, service, n in done]

    @property
    def in_doubt(self) -> int:
        return sum(n for _t, _s, n in self._pending)

    def take_in_doubt(self) -> tuple[tuple[str, int], ...]:
        """The association ended: its unconfirmed increases by service (then forgotten)."""
        by: dict[str, int] = {}
        for _t, service, n in self._pending:
            by[service] = by.get(service, 0) + n
        self._pending = []
        return tuple(by.items())
