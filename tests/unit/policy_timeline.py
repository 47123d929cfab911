"""A fake-clock driver for PathPolicy, shared by the policy tests."""

from __future__ import annotations

from haig.config.model import Uplink
from haig.core.events import FAILBACK, FAILOVER, EventHistory
from haig.core.policy import PathPolicy, SetHeartbeat, SetPrimary


def uplink(name: str, metric: int = 1, **kw) -> Uplink:
    return Uplink(name=name, metric=metric, **kw)


class Timeline:
    """Feeds inputs at a fake time, fires timers like the daemon would, records outputs."""

    def __init__(self, uplinks, hold_down: float = 30.0, t0: float = 0.0) -> None:
        self.history = EventHistory(maxlen=10_000)
        self.p = PathPolicy(uplinks, hold_down, t0, self.history)
        self.t = t0
        self.actions: list = []
        self.events: list = []
        self.timers_fired: list[float] = []
        self.steps: list[tuple[list, list]] = []  # (actions, events) of each input or timer

    # time
    def at(self, t: float) -> Timeline:
        """Advance to t, firing every timer due on the way at its own deadline."""
        assert t >= self.t
        for _ in range(1000):
            d = self.p.get_timer()
            if d is None or d > t:
                break
            self.t = max(self.t, d)
            self.timers_fired.append(self.t)
            self.p.handle_timer(self.t)
            self._drain()
        else:
            raise AssertionError("timer keeps firing without progress")
        self.t = t
        return self

    # inputs
    def state(self, name: str, st: str, t: float | None = None, reason: str = "") -> Timeline:
        self._when(t)
        self.p.path_state(name, st, self.t, reason)
        return self._drain()

    def sample(self, name: str, st: str, t: float | None = None, **metrics) -> Timeline:
        self._when(t)
        self.p.sample(name, self.t, state=st, **metrics)
        return self._drain()

    def link(self, name: str, up: bool, t: float | None = None, reason: str = "") -> Timeline:
        self._when(t)
        self.p.link(name, up, self.t, reason)
        return self._drain()

    def assoc(self, up: bool, t: float | None = None) -> Timeline:
        self._when(t)
        self.p.association(up, self.t)
        return self._drain()

    def force(self, name: str | None, duration: float = 0.0, t: float | None = None) -> Timeline:
        self._when(t)
        self.p.force_primary(name, self.t, duration)
        return self._drain()

    def all_active(self, t: float | None = None) -> Timeline:
        for u in self.p._paths:
            self.state(u, "active", t)
        return self

    # outputs
    def switches(self) -> list:
        return [e for e in self.events if e.kind in (FAILOVER, FAILBACK)]

    def kinds(self, *kinds: str) -> list:
        return [e for e in self.events if e.kind in kinds]

    def primaries_set(self) -> list[str]:
        return [a.uplink for a in self.actions if isinstance(a, SetPrimary)]

    def heartbeats(self) -> list[tuple[str, int]]:
        return [(a.uplink, a.interval_ms) for a in self.actions if isinstance(a, SetHeartbeat)]

    def mark(self) -> tuple[int, int]:
        return len(self.actions), len(self.events)

    def since(self, mark: tuple[int, int]) -> tuple[list, list]:
        return self.actions[mark[0]:], self.events[mark[1]:]

    def _when(self, t: float | None) -> None:
        if t is not None:
            self.at(t)

    def _drain(self) -> Timeline:
        actions, events = [], []
        while (a := self.p.next_action()) is not None:
            actions.append(a)
        while (e := self.p.next_event()) is not None:
            events.append(e)
        self.actions += actions
        self.events += events
        self.steps.append((actions, events))
        return self
