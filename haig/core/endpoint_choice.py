"""Which endpoint a gateway associates with: its primary, or a standby (sans-I/O).

A home may list a standby endpoint (another server or site; `standby_address` per
uplink). The rule, with time passed in:

* The endpoint in use is *down* from the first sign that it is unreachable on every
  path (a connect that failed, the association lost or refused, every path unreachable)
  until it admits us again. Down for `after_s` → use the other one (an event). `after_s`
  is what lets a primary that merely restarts keep its homes: it answers again in a few
  seconds and nothing moves.
* While on the standby the primary is probed every PROBE_INTERVAL (the driver makes a
  separate SCTP handshake to it and closes it: the live association is not touched).
  Once it has answered every probe for the hold-down, the gateway returns (an event). A
  failed probe starts the hold-down over, so a flapping primary is never returned to; a
  return that does not hold (the primary is down again within `after_s`) doubles the
  next hold-down, up to HOLD_DOWN_GROWTH_MAX times.
* If the standby is not up either, a primary that answers a probe is returned to at
  once; with both down the gateway alternates, staying on each longer every time
  (`after_s` doubling, up to DWELL_GROWTH_MAX times), never stuck on either.

Inputs: `admitted(now)`, `down(now, why)`, `probe_result(ok, now, why)`,
`handle_timer(now)`, `reconfigure(...)`. Outputs: `next_action()` (Switch, Probe),
`next_event()`, `get_timer()`, `view(now)`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from haig.core.events import ENDPOINT_SWITCH, Event
from haig.core.states import EndpointRole

PROBE_INTERVAL = 5.0  # s between probes of the primary while the standby is in use
HOLD_DOWN_GROWTH_MAX = 8  # a return that did not hold doubles the next hold-down, up to this factor
DWELL_GROWTH_MAX = 8  # both endpoints down: the time on each doubles, up to this factor of after_s

PRIMARY, STANDBY = EndpointRole.PRIMARY, EndpointRole.STANDBY


@dataclass(frozen=True)
class Switch:
    """Associate with `to` from now on: the driver gives up the current association (or
    attempt) and connects to `to` at once."""
    to: EndpointRole
    reason: str


@dataclass(frozen=True)
class Probe:
    """Make a probe handshake to the primary and report `probe_result`."""


class EndpointChoice:
    def __init__(self, has_standby: bool, after_s: float, hold_down_s: float, now: float) -> None:
        self.has_standby = has_standby
        self.after_s, self.hold_down_s = float(after_s), float(hold_down_s)
        self.in_use = PRIMARY
        self.since = now
        self.reason = "configured primary endpoint"
        self._down_since: float | None = None  # the endpoint in use is down since then
        self._down_why = ""
        self._dwell = 1  # both down: factor on after_s, doubling per switch
        self._hold_factor = 1  # returns that did not hold: factor on the hold-down
        self._returned_at: float | None = None  # last return to the primary, until it admits us
        self._answering_since: float | None = None  # the primary answered every probe since then
        self._next_probe: float | None = None
        self._probing = False
        self._actions: deque[Switch | Probe] = deque()
        self._events: deque[Event] = deque()

    # -- outputs ------------------------------------------------------------------------

    def next_action(self) -> Switch | Probe | None:
        return self._actions.popleft() if self._actions else None

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        ts = [self._switch_at(), None if self._probing else self._next_probe]
        return min((t for t in ts if t is not None), default=None)

    @property
    def hold_down_now(self) -> float:
        return self.hold_down_s * self._hold_factor

    def view(self, now: float) -> dict[str, Any]:
        """What the status shows (the `endpoint` object, docs/status.md)."""
        ret = None
        if self.in_use is STANDBY and self._answering_since is not None:
            ret = max(0.0, self._answering_since + self.hold_down_now - now)
        return {"in_use": str(self.in_use), "standby": self.has_standby, "since": self.since,
                "reason": self.reason, "down_since": self._down_since,
                "primary_answering_since": self._answering_since if self.in_use is STANDBY else None,
                "return_in_s": ret}

    # -- inputs -------------------------------------------------------------------------

    def admitted(self, now: float) -> None:
        """The endpoint in use admitted us (or its paths work again)."""
        self._down_since = None
        self._dwell = 1

    def down(self, now: float, why: str) -> None:
        """The endpoint in use is unreachable on every path (or refused us) now."""
        if self._down_since is None:
            self._down_since, self._down_why = now, why

    def probe_result(self, ok: bool, now: float, why: str = "") -> None:
        self._probing = False
        if self.in_use is not STANDBY:
            return  # a late answer from before a switch
        self._next_probe = now + PROBE_INTERVAL
        if not ok:
            self._answering_since = None  # the hold-down starts over: no flip-flop
            return
        if self._answering_since is None:
            self._answering_since = now
        if self._down_since is not None:
            self._switch(PRIMARY, now, "the primary endpoint answers again and the standby is not up")
        elif now - self._answering_since >= self.hold_down_now:
            self._switch(PRIMARY, now, f"the primary endpoint answered for {self.hold_down_now:g} s")
            self._returned_at = now

    def handle_timer(self, now: float) -> None:
        at = self._switch_at()
        if at is not None and now >= at:
            old = self.in_use
            other = STANDBY if old is PRIMARY else PRIMARY
            reason = (f"the {old} endpoint is unreachable on every path for {now - self._down_since:.0f} s "
                      f"({self._down_why})")
            if old is PRIMARY:
                # back on the primary only a moment and down again: that return did not hold
                held = self._returned_at is None or now - self._returned_at >= self.hold_down_now + self.after_s
                self._hold_factor = 1 if held else min(HOLD_DOWN_GROWTH_MAX, self._hold_factor * 2)
                self._returned_at = None
            self._dwell = min(DWELL_GROWTH_MAX, self._dwell * 2)  # until one admits us (admitted())
            self._switch(other, now, reason)
        if self.in_use is STANDBY and not self._probing and self._next_probe is not None \
                and now >= self._next_probe:
            self._probing = True
            self._actions.append(Probe())

    def reconfigure(self, has_standby: bool, after_s: float, hold_down_s: float, now: float,
                    standby_changed: bool = False) -> None:
        """A reload. No standby any more, or a different one while it is in use: back to
        the primary at once (the old standby is not what the home is configured for)."""
        self.after_s, self.hold_down_s = float(after_s), float(hold_down_s)
        self.has_standby = has_standby
        if self.in_use is STANDBY and (not has_standby or standby_changed):
            self._switch(PRIMARY, now, "the standby endpoint was " + ("changed" if has_standby else "removed")
                         + " by a reload")

    # -- internals ----------------------------------------------------------------------

    def _switch_at(self) -> float | None:
        if not self.has_standby or self._down_since is None:
            return None
        return self._down_since + self.after_s * self._dwell

    def _switch(self, to: EndpointRole, now: float, reason: str) -> None:
        old = self.in_use
        self.in_use, self.since, self.reason = to, now, reason
        # Whichever endpoint is switched to must admit us within after_s (times the dwell)
        # of the switch, or it counts as down too.
        self._down_since, self._down_why = now, "not admitted since the switch"
        self._answering_since = None
        self._probing = False
        self._next_probe = now + PROBE_INTERVAL if to is STANDBY else None
        self._events.append(Event(now, ENDPOINT_SWITCH, "endpoint", str(old), str(to), reason))
        self._actions.append(Switch(to, reason))
