"""Events: every decision haig takes, as data.

One event stream feeds every surface (ubus, Flask, CLI, LuCI). An event is a
fact about one subject (an uplink, an association, the daemon): its state moved
from `old` to `new` for `reason`, at time `t` (seconds, the caller's clock).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

# Event kinds. Kept as plain strings so they travel through JSON and ubus as-is.
FAILOVER = "failover"  # primary moved away from the preferred uplink
FAILBACK = "failback"  # primary returned to a more preferred uplink
PATH_STATE = "path_state"  # an uplink's health state changed
LINK = "link"  # carrier / default route of an uplink changed
ASSOC = "assoc"  # association came up / went down / refused
CONFIG = "config"  # configuration loaded, reloaded or rejected
DROP = "drop"  # datagrams dropped (rate-limited summaries, never one per packet)
ENDPOINT_SWITCH = "endpoint_switch"  # the gateway moved to its standby endpoint or back (old/new: EndpointRole)
KINDS = (FAILOVER, FAILBACK, PATH_STATE, LINK, ASSOC, CONFIG, DROP, ENDPOINT_SWITCH)


@dataclass(frozen=True)
class Event:
    t: float  # seconds; wall clock (time.time()) once published
    kind: str  # one of KINDS
    subject: str  # uplink name, gateway id, or "haig"
    old: str | None
    new: str | None
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # set by EventHistory: monotonically increasing id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventHistory:
    """Bounded history with sequence numbers, so readers can ask 'since N'."""

    def __init__(self, maxlen: int = 200) -> None:
        self._items: deque[Event] = deque(maxlen=maxlen)
        self._next_seq = 1

    def append(self, ev: Event) -> Event:
        stamped = Event(**{**asdict(ev), "seq": self._next_seq})
        self._next_seq += 1
        self._items.append(stamped)
        return stamped

    def since(self, seq: int = 0) -> list[Event]:
        return [e for e in self._items if e.seq > seq]

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def __iter__(self) -> Iterator[Event]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
