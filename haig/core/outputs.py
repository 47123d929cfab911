"""The output side every protocol core shares (aioquic style): the driver pulls actions,
datagrams to deliver and events after each input, until each is empty."""

from __future__ import annotations

from collections import deque
from typing import Any

from haig.core.drops import DropLedger
from haig.core.events import Event


def earliest(*times: float | None) -> float | None:
    """The earliest of the deadlines that are set (None if none is): every pump asks."""
    best = None
    for t in times:
        if t is not None and (best is None or t < best):
            best = t
    return best


class CoreOutputs:
    ledger: DropLedger

    def __init__(self) -> None:
        self._actions: deque[Any] = deque()
        self._deliver: deque[Any] = deque()
        self._events: deque[Event] = deque()

    def next_action(self) -> Any | None:
        return self._actions.popleft() if self._actions else None

    def datagrams_to_deliver(self) -> list[Any]:
        if not self._deliver:
            return []
        out = list(self._deliver)
        self._deliver.clear()
        return out

    def next_event(self) -> Event | None:
        """The core's own events first, then those of its parts (policy, drop ledger)."""
        if self._events:
            return self._events.popleft()
        for source in self._event_sources():
            ev = source.next_event()
            if ev is not None:
                return ev
        return None

    def _event_sources(self) -> tuple[Any, ...]:
        return (self.ledger,)
