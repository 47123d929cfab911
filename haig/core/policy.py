"""Path policy: which uplink carries traffic (the SCTP primary path), as a pure state machine.

One uplink = one SCTP path (each endpoint address is pinned to one uplink). The kernel
detects trouble (heartbeats, RTO, T3 timeouts -> PF, retransmissions -> unreachable); this
class decides the primary and the per-path heartbeat, and says why. It never touches a
socket or a clock: every input carries `now` (seconds, any monotonic clock), outputs are
queued as actions (`next_action()`) and events (`next_event()`), and `get_timer()` /
`handle_timer(now)` drive deadlines (hold-down end, forced-primary expiry).

Rules
-----
* **healthy** = link up (netlink) and SCTP state "active".
* **Link down** makes an uplink unhealthy at once. Its recorded SCTP state drops from
  "active" to "unconfirmed" (the kernel has not noticed yet) and "active" reports are
  ignored while the link is down, so link up alone never makes it healthy: the next
  "active" report after link up (notification or periodic sample) does.
* **Suspect**: an uplink that went pf / unreachable / removed or lost its link is suspect
  until it has been healthy continuously for `hold_down` seconds; any new failure restarts
  that clock, and so does a probe lost below the PF threshold: a sampled RTO that has
  doubled (RTO_BACKOFF) over the lowest one seen in the stretch is the kernel's backoff
  after a timeout (a lossy line passing the hold-down on lucky heartbeats, then failing
  again, is the flip-flop). An uplink that never failed (just confirmed at start) is not
  suspect.
* **Failover** (primary unhealthy): immediately to the best healthy uplink, ranked
  (suspect last, then lowest metric, then config order).
* **Jitter is not failure**: the primary moves off the carrying path only when it
  really failed: unreachable, removed, link down, or potentially failed for longer than
  its grace `pf_grace_s()` = 2 x (RTO + srtt) of that path, clamped to 0.5..5 s, taken
  when the PF begins from the RTO before the timeout (the kernel's backed-off RTO of a
  path that stays PF must not stretch it) (a T3
  timeout caused by a late SACK clears with the next answered heartbeat, which on a PF
  path comes after one backed-off RTO and one round trip). A PF that clears within its
  grace leaves SetPrimary where it is, whatever the alternative: holding it costs no
  gap, because the kernel itself stops sending on a PF transport and uses another active
  one (net/sctp/associola.c, sctp_select_active_and_retran_path skips PF transports and
  takes the primary only while it is active), and returns to the primary when it is
  active again; switching would cost a PATH round and a failback hold-down on what was
  one late SACK. `get_timer()` returns the grace end, so the failover happens exactly
  there. Towards a settled alternative, PFs of the primary less than one grace apart
  (from one clearing to the next PF) are one episode, and the grace runs from the
  episode's start (`pf_episode`): a path toggling PF/active every few hundred ms cannot
  re-arm it forever. Towards a suspect alternative (inside its hold-down) each PF has
  its own grace (moving there bypasses a hold-down, so only a long PF justifies it).
* **Per-path thresholds**: from the samples (srtt and RTO every few hundred ms) the
  policy estimates how far a path's RTO is above its RTT (headroom = RTO - srtt) against
  the jitter it has shown (half its srtt, or 4 x the mean deviation of its srtt samples,
  whichever is larger). A path whose headroom is smaller gets `pf_retrans + 1`
  (SetPathThresholds): one late SACK no longer makes it potentially failed; a real
  failure costs one more (backed-off) RTO on that path only. Back to the configured
  value when the headroom is twice the need (hysteresis). The RTO bounds themselves are
  per association (RTOINFO), the PF threshold is per path.
* **Failback / preference**: while the primary is healthy, switch only to an uplink with
  a strictly lower metric that is healthy and not suspect. So a lossy preferred uplink
  (toggling pf/active) costs exactly one switch away and one switch back, hold_down after
  it last recovered; equal metrics never switch.
* **No healthy uplink**: keep the primary unless another uplink the kernel reported on is
  strictly less bad (link up before link down; then unconfirmed < pf < unreachable;
  never an uplink in state unknown or removed),
  and say so once with a PATH_STATE event on subject "haig" (ok -> no_healthy_path, and
  back when an uplink is healthy again). Before any uplink was healthy, primary is None.
* **Forced primary** (operator): the forced uplink is primary while it is healthy,
  regardless of metric and hold-down; if it is unhealthy the normal rules apply until it
  is healthy again. It ends at its deadline or on `force_primary(None, ...)`; then the
  normal rules apply (a settled preferred uplink takes over at once).
* **Association down**: all paths become "unknown", primary None (the association and
  its settings are gone). Suspect marks survive. After it is up again, SetPrimary and one
  SetHeartbeat per uplink are emitted afresh.
* **Heartbeats**: a metered uplink that is not primary gets `metered_hb_interval`, the
  primary and non-metered uplinks `hb_interval`. SetHeartbeat is emitted for every uplink
  on the first step (and after association up), then only on change.
* **Probing**: a suspect, non-metered uplink that is not primary gets a heartbeat of
  `PROBE_HB_MS` (or its hb_interval if shorter) until the hold-down clears it, so a lossy
  line cannot pass the hold-down on a handful of lucky heartbeats.
* **SetPrimary** is emitted only when the primary differs from what the kernel was told,
  never while the association is known to be down.

Events (haig.core.events kinds):
* PATH_STATE subject=uplink, old/new = SCTP states (as believed by the policy);
* LINK subject=uplink, old/new = "up"/"down";
* FAILOVER / FAILBACK subject = the uplink now carrying traffic, old/new = uplink names;
  FAILBACK when the new primary has a lower metric than the old one, else FAILOVER;
* PATH_STATE subject="haig": first primary (old None, new uplink) and no_healthy_path/ok;
* ASSOC subject="haig": association up/down (emitted here; the daemon should not repeat);
* CONFIG subject=uplink: forced primary start (new "forced") and end (old "forced").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from haig.config.model import Uplink
from haig.core.events import (
    ASSOC,
    CONFIG,
    FAILBACK,
    FAILOVER,
    LINK,
    PATH_STATE,
    Event,
    EventHistory,
)
from haig.core.states import PATH_RANK, PathState

ACTIVE, PF, UNREACHABLE = PathState.ACTIVE, PathState.PF, PathState.UNREACHABLE
UNCONFIRMED, REMOVED = PathState.UNCONFIRMED, PathState.REMOVED
UNKNOWN = PathState.UNKNOWN  # association down, or nothing reported yet
STATES = (ACTIVE, PF, UNREACHABLE, UNCONFIRMED, REMOVED)
FAILED_STATES = (PF, UNREACHABLE, REMOVED)
NO_HEALTHY_PATH = "no_healthy_path"
OK = "ok"
SUBJECT = "haig"

_STATE_TEXT = {
    ACTIVE: "active",
    PF: "potentially failed (T3 timeout)",
    UNREACHABLE: "unreachable (retransmissions exhausted)",
    UNCONFIRMED: "unconfirmed (no heartbeat answered yet)",
    REMOVED: "removed from the association",
    UNKNOWN: "unknown",
}
# Only used when nothing is healthy: which unhealthy path is the least bad primary
# (the endpoint ranks paths for critical copies with the same table).
_BADNESS = PATH_RANK


@dataclass(frozen=True)
class SetPrimary:
    uplink: str


@dataclass(frozen=True)
class SetHeartbeat:
    uplink: str
    interval_ms: int


@dataclass(frozen=True)
class SetPathThresholds:
    """SCTP_PEER_ADDR_THLDS(_V2) for this uplink's path (sctp_opts.set_thresholds)."""

    uplink: str
    pf_retrans: int
    path_max_retrans: int


Action = SetPrimary | SetHeartbeat | SetPathThresholds


PROBE_HB_MS = 100  # heartbeat on a recovering (suspect) uplink, ms
RTO_BACKOFF = 2.0  # a sampled RTO this many times the stretch's lowest: a timed-out probe
DEFAULT_RTO_MS = 1000.0  # RFC 4960 initial RTO: a path's RTO before any sample
PF_GRACE_MIN_S, PF_GRACE_MAX_S = 0.5, 5.0  # bounds of the PF grace of a carrying path
JITTER_FRACTION = 0.5  # RTT variation to expect on a path, as a fraction of its srtt
JITTER_DEVS = 4.0  # ... or this many mean deviations of its srtt samples (RFC 6298's K)
MIN_SAMPLES = 4  # srtt samples before a path's thresholds are judged


class _Path:
    """Everything the policy believes about one uplink."""

    __slots__ = (
        "cfg", "index", "state", "link_up", "since", "healthy_since", "suspect",
        "srtt_ms", "rto_ms", "cwnd", "hb_applied", "pf_since", "srtt_avg", "srtt_dev",
        "samples", "pf_relaxed", "thr_applied", "rto_base", "pf_episode", "pf_cleared",
        "rto_prev", "grace_pf", "grace_episode",
    )

    def __init__(self, cfg: Uplink, index: int, now: float) -> None:
        self.cfg = cfg
        self.index = index
        self.state = UNKNOWN
        self.link_up = True  # until netlink says otherwise
        self.since = now  # last change of state or link
        self.healthy_since: float | None = None
        self.suspect = False
        self.srtt_ms: float | None = None
        self.rto_ms: float | None = None
        self.cwnd: int | None = None
        self.hb_applied: int | None = None
        self.pf_since: float | None = None  # when the path last went PF (while PF)
        self.pf_episode: float | None = None  # start of the PF episode pf_since belongs to
        self.pf_cleared: float | None = None  # when the path last left PF
        self.rto_prev: float | None = None  # the RTO sampled before the latest sample
        # Graces frozen when this PF / its episode began: the kernel backs the RTO off
        # while the path stays PF, and a grace following it would stretch with the loss.
        self.grace_pf = PF_GRACE_MIN_S
        self.grace_episode = PF_GRACE_MIN_S
        self.rto_base: float | None = None  # lowest RTO sampled in the current healthy stretch
        self.srtt_avg: float | None = None  # EWMA of srtt samples, ms
        self.srtt_dev = 0.0  # EWMA of |sample - srtt_avg|, ms
        self.samples = 0
        self.pf_relaxed = False  # pf_retrans raised by one: RTO too close to RTT jitter
        self.thr_applied: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def metric(self) -> int:
        return self.cfg.metric

    @property
    def healthy(self) -> bool:
        return self.link_up and self.state == ACTIVE

    @property
    def settled(self) -> bool:
        return self.healthy and not self.suspect

    def rank(self) -> tuple:
        """Failover order among healthy uplinks: settled first, then metric, then config order."""
        return (self.suspect, self.metric, self.index)

    def badness(self) -> tuple:
        return (not self.link_up, _BADNESS[self.state])

    def pf_grace_s(self, rto_ms: float | None = None) -> float:
        """How long a PF may last on the carrying path before it counts as a failure."""
        rto = rto_ms or self.rto_ms or DEFAULT_RTO_MS
        srtt = self.srtt_ms or 0.0
        return min(PF_GRACE_MAX_S, max(PF_GRACE_MIN_S, 2 * (rto + srtt) / 1000))

    def observe_rtt(self, srtt_ms: float | None, rto_ms: float | None) -> None:
        """Track srtt variation and decide whether the RTO leaves room for it."""
        if not srtt_ms or not rto_ms:
            return
        if self.srtt_avg is None:
            self.srtt_avg = float(srtt_ms)
        else:
            self.srtt_dev += (abs(srtt_ms - self.srtt_avg) - self.srtt_dev) / 4
            self.srtt_avg += (srtt_ms - self.srtt_avg) / 8
        self.samples += 1
        if self.samples < MIN_SAMPLES:
            return
        need = max(JITTER_FRACTION * self.srtt_avg, JITTER_DEVS * self.srtt_dev)
        headroom = rto_ms - srtt_ms
        if headroom < need:
            self.pf_relaxed = True
        elif headroom >= 2 * need:
            self.pf_relaxed = False

    def thresholds(self) -> tuple[int, int]:
        """(pf_retrans, path_max_retrans) this path should run with."""
        pmr, pf = self.cfg.path_max_retrans, self.cfg.pf_retrans
        return (min(pf + 1, pmr) if self.pf_relaxed else pf), pmr

    def metrics(self) -> dict[str, Any]:
        return {k: v for k, v in (("srtt_ms", self.srtt_ms), ("rto_ms", self.rto_ms), ("cwnd", self.cwnd)) if v is not None}


class PathPolicy:
    def __init__(
        self,
        uplinks: Sequence[Uplink],
        hold_down: float,
        now: float,
        history: EventHistory | None = None,
        event_time: Callable[[float], float] | None = None,
    ) -> None:
        """`now` is any monotonic clock (hold-down must not jump with NTP); `event_time`
        maps it to the timestamp events carry (e.g. to Unix time), identity by default."""
        if not uplinks:
            raise ValueError("PathPolicy needs at least one uplink")
        if hold_down < 0:
            raise ValueError("hold_down must be >= 0")
        self._paths: dict[str, _Path] = {}
        for i, u in enumerate(uplinks):
            if u.name in self._paths:
                raise ValueError(f"duplicate uplink name {u.name!r}")
            self._paths[u.name] = _Path(u, i, now)
        self.hold_down = float(hold_down)
        self._history = history
        self._event_time = event_time
        self._actions: deque[Action] = deque()
        self._events: deque[Event] = deque()
        self._now = now
        self._primary: str | None = None
        self._applied_primary: str | None = None
        self._assoc_up: bool | None = None  # None: never told
        self._forced: str | None = None
        self._forced_until = 0.0
        self._no_healthy = False  # the no_healthy_path event is outstanding
        self.switches = 0  # primary changes between two uplinks (not the first choice)
        self.failovers = 0
        self.failbacks = 0

    # ------------------------------------------------------------------ inputs

    def path_state(self, uplink: str, state: str, now: float, reason: str = "") -> None:
        """Kernel view of a path changed (address-change notification or sample)."""
        p = self._path(uplink)
        self._check_state(state)
        cause = self._set_state(p, state, now, reason)
        self._step(now, cause)

    def sample(
        self,
        uplink: str,
        now: float,
        *,
        state: str,
        srtt_ms: float | None = None,
        rto_ms: float | None = None,
        cwnd: int | None = None,
    ) -> None:
        """Periodic SCTP_GET_PEER_ADDR_INFO sample; a different state acts like path_state."""
        p = self._path(uplink)
        self._check_state(state)
        p.rto_prev = p.rto_ms
        p.srtt_ms, p.rto_ms, p.cwnd = srtt_ms, rto_ms, cwnd
        p.observe_rtt(srtt_ms, rto_ms)
        cause = ""
        if state != p.state:
            cause = self._set_state(p, state, now, f"{p.name} {_STATE_TEXT[state]} (sampled)")
        elif p.suspect and p.healthy and rto_ms:
            if p.rto_base is None or rto_ms < p.rto_base:
                p.rto_base = rto_ms
            elif rto_ms >= RTO_BACKOFF * p.rto_base:  # a probe timed out: prove it again
                p.healthy_since, p.rto_base = now, rto_ms
        self._step(now, cause)

    def link(self, uplink: str, up: bool, now: float, reason: str = "") -> None:
        """Carrier / default route of an uplink changed (netlink)."""
        p = self._path(uplink)
        cause = ""
        if up != p.link_up:
            was = p.healthy
            p.link_up = up
            p.since = now
            cause = reason or f"{p.name} link {'up' if up else 'down'}"
            self._emit(now, LINK, p.name, _updown(not up), _updown(up), cause)
            if not up:
                p.suspect = True
                if p.state == ACTIVE:
                    # The kernel still says active; it must prove it again after link up.
                    self._set_state(p, UNCONFIRMED, now, f"{p.name} must be confirmed again after link loss")
            self._track_health(p, was, now)
        self._step(now, cause)

    def association(self, up: bool, now: float, reason: str = "") -> None:
        """The SCTP association came up (COMM_UP/RESTART) or went down (COMM_LOST/SHUTDOWN)."""
        if up == self._assoc_up:
            self._step(now, "")
            return
        old = {None: None, True: "up", False: "down"}[self._assoc_up]
        self._assoc_up = up
        # A new or lost association has none of our settings: send them again when up.
        self._applied_primary = None
        for p in self._paths.values():
            p.hb_applied = None
            p.thr_applied = None
        if up:
            cause = reason or "association up"
        else:
            cause = reason or "association down"
            self._primary = None
            self._no_healthy = False
            for p in self._paths.values():
                p.state, p.healthy_since, p.since = UNKNOWN, None, now
        self._emit(now, ASSOC, SUBJECT, old, _updown(up), cause)
        self._step(now, cause)

    def force_primary(self, uplink: str | None, now: float, duration_s: float = 0.0) -> None:
        """Operator override for `duration_s` seconds; None cancels."""
        if uplink is None:
            if self._forced is not None:
                self._end_force(now, f"forced primary on {self._forced} cancelled by operator")
            self._step(now, "forced primary cancelled")
            return
        p = self._path(uplink)
        if duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        if self._forced is not None and self._forced != uplink:
            self._end_force(now, f"forced primary on {self._forced} replaced by {uplink}")
        self._forced = uplink
        self._forced_until = now + duration_s
        note = "" if p.healthy else f" (it is {p.state}: waits until it is healthy)"
        self._emit(
            now, CONFIG, uplink, None, "forced",
            f"operator forced primary to {uplink} for {duration_s:g} s{note}",
            {"until": self._forced_until, "duration_s": duration_s},
        )
        self._step(now, "forced by operator")

    def handle_timer(self, now: float) -> None:
        self._step(now, "")

    def get_timer(self) -> float | None:
        """Next time handle_timer must be called (hold-down end or force expiry), or None."""
        deadlines = [self._hold_down_end(p) for p in self._paths.values() if p.suspect and p.healthy]
        if self._forced is not None:
            deadlines.append(self._forced_until)
        cur = self._paths.get(self._primary) if self._primary else None
        hold = self._pf_hold(cur) if cur is not None else None
        if hold is not None and hold[0] + hold[1] > self._now:
            deadlines.append(hold[0] + hold[1])  # the failover, exactly at the grace end
        return min(deadlines, default=None)

    # ----------------------------------------------------------------- outputs

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    @property
    def primary(self) -> str | None:
        return self._primary

    @property
    def preferred(self) -> str | None:
        """Lowest-metric healthy uplink (whether or not it may carry traffic yet)."""
        best = min((p for p in self._paths.values() if p.healthy), key=lambda p: (p.metric, p.index), default=None)
        return best.name if best else None

    @property
    def secondary(self) -> str | None:
        """Best healthy uplink other than the primary: where critical datagrams send their copy.
        None while the primary is unhealthy (a PF held for its grace): the kernel already
        sends the original on an active path, so a copy would double the load there."""
        cur = self._paths.get(self._primary) if self._primary else None
        if cur is not None and not cur.healthy:
            return None
        others = (p for p in self._paths.values() if p.healthy and p.name != self._primary)
        best = min(others, key=_Path.rank, default=None)
        return best.name if best else None

    @property
    def forced(self) -> str | None:
        return self._forced

    @property
    def association_up(self) -> bool | None:
        return self._assoc_up

    def healthy(self, uplink: str) -> bool:
        return self._path(uplink).healthy

    def uplink_view(self, uplink: str, now: float | None = None) -> dict[str, Any]:
        """One uplink for the status model. `now` defaults to the last input's time."""
        p = self._path(uplink)
        now = self._now if now is None else now
        in_hold_down = p.suspect and p.healthy
        if p.name == self._primary:
            role = "primary"
        elif p.name == self.secondary:
            role = "secondary"
        else:
            role = "standby" if p.healthy else "down"
        return {
            "name": p.name,
            "metric": p.metric,
            "metered": p.cfg.metered,
            "role": role,
            "state": p.state,
            "healthy": p.healthy,
            "link_up": p.link_up,
            "srtt_ms": p.srtt_ms,
            "rto_ms": p.rto_ms,
            "cwnd": p.cwnd,
            "since": p.since,
            "healthy_since": p.healthy_since,
            "hold_down_remaining": max(0.0, self._hold_down_end(p) - now) if in_hold_down else None,
            "heartbeat_ms": self._wanted_hb(p),
            "pf_retrans": p.thresholds()[0],
            "forced": p.name == self._forced,
        }

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Policy part of the status model."""
        return {
            "primary": self._primary,
            "preferred": self.preferred,
            "secondary": self.secondary,
            "association": {None: "unknown", True: "up", False: "down"}[self._assoc_up],
            "forced": {"uplink": self._forced, "until": self._forced_until} if self._forced else None,
            "hold_down": self.hold_down,
            "switches": self.switches,
            "failovers": self.failovers,
            "failbacks": self.failbacks,
            "uplinks": [self.uplink_view(n, now) for n in self._paths],
        }

    # --------------------------------------------------------------- internals

    def _path(self, uplink: str) -> _Path:
        try:
            return self._paths[uplink]
        except KeyError:
            raise KeyError(f"unknown uplink {uplink!r}") from None

    @staticmethod
    def _check_state(state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown path state {state!r} (expected one of {STATES})")

    def _hold_down_end(self, p: _Path) -> float:
        assert p.healthy_since is not None
        return p.healthy_since + self.hold_down

    @staticmethod
    def _pf_grace_end(p: _Path, episode: bool = False) -> float:
        start = p.pf_episode if episode else p.pf_since
        assert start is not None
        return start + (p.grace_episode if episode else p.grace_pf)

    def _in_pf_grace(self, p: _Path, now: float, episode: bool = False) -> bool:
        """p is PF (link up) and not yet for longer than its grace, measured from this PF
        or (episode) from the start of the PF episode it belongs to."""
        return p.state == PF and p.link_up and p.pf_since is not None and now < self._pf_grace_end(p, episode)

    def _alternative(self, cur: _Path) -> _Path | None:
        """Where traffic would go if cur failed now: the best healthy other uplink."""
        return min((p for p in self._paths.values() if p.healthy and p is not cur), key=_Path.rank, default=None)

    def _pf_hold(self, cur: _Path) -> tuple[float, float, bool] | None:
        """(start, grace, towards a suspect uplink) of the PF hold on the carrying path cur
        (held until start + grace), or None when it is not PF or there is nowhere to go.
        Episode measure towards a settled alternative, this PF's own towards a suspect one."""
        if cur.state != PF or not cur.link_up or cur.pf_since is None:
            return None
        alt = self._alternative(cur)
        if alt is None:
            return None
        if alt.suspect:
            return cur.pf_since, cur.grace_pf, True
        assert cur.pf_episode is not None
        return cur.pf_episode, cur.grace_episode, False

    def _emit(self, now: float, kind: str, subject: str, old: str | None, new: str | None,
              reason: str, detail: dict[str, Any] | None = None) -> None:
        t = self._event_time(now) if self._event_time else now
        ev = Event(t=t, kind=kind, subject=subject, old=old, new=new, reason=reason, detail=detail or {})
        if self._history is not None:
            ev = self._history.append(ev)
        self._events.append(ev)

    def _set_state(self, p: _Path, state: str, now: float, reason: str) -> str:
        """Record a new SCTP state; returns the cause text ('' if nothing changed)."""
        if state == p.state or (state == ACTIVE and not p.link_up):
            return ""  # an 'active' while the link is down is stale
        was = p.healthy
        old, p.state, p.since = p.state, state, now
        if state == PF:
            # The RTO before the timeout: a sample reporting PF already carries the
            # kernel's doubled one.
            p.grace_pf = p.pf_grace_s(min((r for r in (p.rto_ms, p.rto_prev) if r), default=None))
            # A PF soon after the last one cleared continues that episode.
            cleared = p.pf_cleared
            if p.pf_episode is None or cleared is None or now - cleared >= p.grace_episode:
                p.pf_episode, p.grace_episode = now, p.grace_pf
            p.pf_since = now
        else:
            if old == PF:
                p.pf_cleared = now
            p.pf_since = None
        if state in FAILED_STATES:
            p.suspect = True
        cause = reason or f"{p.name} {_STATE_TEXT[state]}"
        self._emit(now, PATH_STATE, p.name, old, state, cause, p.metrics())
        self._track_health(p, was, now)
        return cause

    @staticmethod
    def _track_health(p: _Path, was_healthy: bool, now: float) -> None:
        if p.healthy and not was_healthy:
            p.healthy_since, p.rto_base = now, None
        elif not p.healthy:
            p.healthy_since = p.rto_base = None

    def _step(self, now: float, cause: str) -> None:
        self._now = now
        if self._forced is not None and now >= self._forced_until:
            self._end_force(now, f"forced primary on {self._forced} expired")
            cause = cause or "forced primary expired"
        for p in self._paths.values():
            # Same expression as get_timer's deadline, so a timer fired at it settles.
            if p.suspect and p.healthy and now >= self._hold_down_end(p):
                p.suspect = False
        self._decide(now, cause)
        self._sync(now)

    def _end_force(self, now: float, reason: str) -> None:
        uplink, self._forced = self._forced, None
        self._emit(now, CONFIG, uplink, "forced", None, reason)

    def _decide(self, now: float, cause: str) -> None:
        paths = self._paths.values()
        healthy = [p for p in paths if p.healthy]
        cur = self._paths.get(self._primary) if self._primary else None
        forced = self._paths.get(self._forced) if self._forced else None
        target, why = cur, ""

        if forced is not None and forced.healthy:
            target, why = forced, "forced by operator"
        elif healthy:
            if cur is None or not cur.healthy:
                target = min(healthy, key=_Path.rank)
                hold = self._pf_hold(cur) if cur is not None else None
                if cur is not None and hold is not None and now < hold[0] + hold[1]:
                    # Maybe a late SACK: the kernel already sends on another active path.
                    target = cur
                elif cur is None:
                    why = f"{target.name} is the best healthy uplink"
                elif hold is not None:
                    start, grace, towards_suspect = hold
                    inside = " inside its hold-down" if towards_suspect else ""
                    why = (f"{cur.name} potentially failed for {now - start:.2f} s "
                           f"(grace {grace:.2f} s); {target.name} takes over{inside}")
                else:
                    why = f"{cause or f'{cur.name} is {cur.state}'}; {target.name} takes over"
            else:
                better = [p for p in healthy if p.settled and p.metric < cur.metric]
                if better:
                    target = min(better, key=_Path.rank)
                    why = self._failback_reason(target, cur, now, cause)
        elif cur is not None:
            # Only paths the kernel reported on can be primary (not unknown / removed).
            known = [p for p in paths if p.state not in (UNKNOWN, REMOVED)]
            least_bad = min(known, key=lambda p: (p.badness(), p.metric, p.index), default=cur)
            if least_bad.badness() < cur.badness():
                target = least_bad
                why = f"no healthy uplink; {target.name} is least bad ({target.state})"

        self._announce_health(now, bool(healthy), cause, target)
        if target is not None and target is not cur:
            self._switch(now, cur, target, why)

    def _failback_reason(self, target: _Path, cur: _Path, now: float, cause: str) -> str:
        if cause.startswith("forced primary"):
            return f"{cause}; back to {target.name}"
        healthy_for = now - target.healthy_since if target.healthy_since is not None else 0.0
        if healthy_for >= self.hold_down > 0:
            return f"{target.name} healthy for {healthy_for:g} s (hold-down {self.hold_down:g} s); back from {cur.name}"
        return f"{target.name} is healthy and preferred over {cur.name} (metric {target.metric} < {cur.metric})"

    def _announce_health(self, now: float, any_healthy: bool, cause: str, target: _Path | None) -> None:
        if not any_healthy and not self._no_healthy and target is not None and self._assoc_up is not False:
            self._no_healthy = True
            why = f"{cause}; " if cause else ""
            self._emit(now, PATH_STATE, SUBJECT, OK, NO_HEALTHY_PATH,
                       f"no healthy uplink: {why}primary stays on {target.name} ({target.state})")
        elif any_healthy and self._no_healthy:
            self._no_healthy = False
            names = ", ".join(p.name for p in self._paths.values() if p.healthy)
            self._emit(now, PATH_STATE, SUBJECT, NO_HEALTHY_PATH, OK, f"healthy again: {names}")

    def _switch(self, now: float, cur: _Path | None, target: _Path, why: str) -> None:
        self._primary = target.name
        if cur is None:
            self._emit(now, PATH_STATE, SUBJECT, None, target.name, f"primary: {why}")
            return
        kind = FAILBACK if target.metric < cur.metric else FAILOVER
        self.switches += 1
        if kind == FAILBACK:
            self.failbacks += 1
        else:
            self.failovers += 1
        detail = {"from_state": cur.state, "to_state": target.state, **target.metrics()}
        if target.healthy_since is not None:
            detail["healthy_for_s"] = now - target.healthy_since
        self._emit(now, kind, target.name, cur.name, target.name, why, detail)

    def _wanted_hb(self, p: _Path) -> int:
        if p.cfg.metered and p.name != self._primary:
            return p.cfg.metered_hb_interval
        if p.suspect and p.name != self._primary:
            # Probe a recovering uplink densely: with sparse heartbeats a lossy line (10 %)
            # often passes the hold-down by luck and fails again as soon as it carries
            # traffic (seen in the VM: failback, then PF 120 ms later).
            return min(p.cfg.hb_interval, PROBE_HB_MS)
        return p.cfg.hb_interval

    def _sync(self, now: float) -> None:
        """Queue the actions that bring the kernel in line with the decision."""
        if self._assoc_up is False:
            return
        if self._primary is not None and self._primary != self._applied_primary:
            self._applied_primary = self._primary
            self._actions.append(SetPrimary(self._primary))
        for p in self._paths.values():
            want = self._wanted_hb(p)
            if p.hb_applied != want:
                p.hb_applied = want
                self._actions.append(SetHeartbeat(p.name, want))
            # Thresholds are set from the config when the association comes up; only a
            # change from that needs an action.
            thr = p.thresholds()
            if p.thr_applied is None:
                p.thr_applied = (p.cfg.pf_retrans, p.cfg.path_max_retrans)
            if p.thr_applied != thr:
                p.thr_applied = thr
                self._actions.append(SetPathThresholds(p.name, *thr))


def _updown(up: bool) -> str:
    return "up" if up else "down"
