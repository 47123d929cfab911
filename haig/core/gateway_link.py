"""The gateway's side of the relay protocol as a pure state machine (sans-I/O).

One `GatewayLink` owns everything the gateway decides about its one association to the
endpoint: when to (re)connect and from which local addresses (back-off, link and
address facts), admission (haig.core.admission's table), the flow table, critical copies
and de-duplication, PATH announcements, flow CLOSE, the admission timeout, the path
policy, and the account of every datagram it does not deliver.

Inputs carry `now` (monotonic seconds): `connected`, `connect_failed`,
`association_lost`, `receive_message(data, addr)`, `receive_datagram(service, client,
data)`, `path_state`, `path_sample`, `uplink_facts`, `send_failed`, `abandoned`,
`handle_timer`. Outputs are pulled by the driver after each input, aioquic style:
`next_action()` (Connect, Disconnect, Sample, policy SetPrimary/SetHeartbeat),
`queue` (SCTP messages, head first), `datagrams_to_deliver()` (to local clients),
`next_event()`, `ledger.take()` (drop counts) and `get_timer()`.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from haig.config.model import Config, Uplink
from haig.core import drops, wire
from haig.core.abandonment import AfterSend
from haig.core.admission import GATEWAY, Adm, Admission, IllegalMessage
from haig.core.backoff import Backoff
from haig.core.datapath import (
    Abandoned,
    Outgoing,
    OutQueue,
    control,
    data_messages,
    data_stream,
    first_copy,
)
from haig.core.drops import DropLedger
from haig.core.endpoint_choice import EndpointChoice, Probe, Switch
from haig.core.events import ASSOC, Event
from haig.core.flows import FlowTable
from haig.core.outputs import CoreOutputs, earliest
from haig.core.policy import PathPolicy, SetHeartbeat, SetPrimary
from haig.core.states import AssocState, EndpointRole, PathState

N_STREAMS = 16  # SCTP streams: control, critical, then one per service (haig.core.datapath)
SAMPLE_INTERVAL = 0.25  # s between per-path samples (srtt, rto, cwnd, state)
ADMISSION_TIMEOUT = 10.0  # s from SCTP up to WELCOME before the attempt is given up
# With every path unreachable (or its link down) for this long the association is given
# up by haig: the kernel may keep it for ever (abandoned PR-SCTP data starts no
# retransmission timer), and a fresh one is made the moment a link returns.
DEAD_PATHS_TIMEOUT = 10.0


@dataclass(frozen=True)
class Connect:
    """Make the association: bind `bind`, INIT to `peers` in this order (a NATed path
    first, or the endpoint aborts it as out of the blue); `encap_port` for RFC 6951."""
    peers: tuple[tuple[str, int], ...]
    bind: tuple[str, ...]
    encap_port: int | None


@dataclass(frozen=True)
class Disconnect:
    """Close the association. `in_doubt`: (service, n) abandoned-after-send counts not yet
    confirmed (see `abandoned_sent`); the driver hands them back to `abandoned_confirmed`
    if the old association ends with a graceful SHUTDOWN_COMPLETE, and drops them if it
    ends any other way (the kernel's teardown events or SCTP_STATUS count those)."""
    reason: str
    in_doubt: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ProbeEndpoint:
    """Make a separate SCTP handshake to the primary endpoint (bind `bind`, INIT to
    `peers`), close it at once and report `probe_result`: the live association (to the
    standby) is not touched."""
    peers: tuple[tuple[str, int], ...]
    bind: tuple[str, ...]
    encap_port: int | None


@dataclass(frozen=True)
class AuthKey:
    """Install the association's SCTP-AUTH key as key 1 (accepted on receipt at once);
    `use`: also send with it and stop accepting the null key 0 (after WELCOME)."""
    key: bytes = field(repr=False)
    use: bool


@dataclass(frozen=True)
class Sample:
    """Read SCTP_GET_PEER_ADDR_INFO for every path and feed `path_sample`."""


Action = Connect | Disconnect | ProbeEndpoint | Sample | AuthKey | SetPrimary | SetHeartbeat


@dataclass(slots=True)  # not frozen: one per datagram, and frozen init costs 3x
class Delivery:
    service: int  # index of the listening service
    client: Hashable  # the client's UDP address
    payload: bytes


class GatewayLink(CoreOutputs):
    def __init__(self, cfg: Config, now: float, *, rand: random.Random | None = None,
                 nonce: Callable[[int], bytes] = os.urandom) -> None:
        super().__init__()
        self.cfg, self.main = cfg, cfg.main
        self.uplinks: list[Uplink] = list(cfg.uplinks)
        self.services = [s for s in cfg.services if s.listen]
        self._abandon_streams = self._streams_to_read()  # stream -> its (first) service
        self.by_name = {u.name: u for u in self.uplinks}
        # Both endpoints' addresses name the uplink they are reached over (all distinct).
        self.by_addr = {a: u for u in self.uplinks for a in (u.endpoint_address, u.standby_address) if a}
        self.choice = EndpointChoice(self.has_standby(cfg), self.main.standby_after,
                                     self.main.standby_hold_down, now)
        # The endpoint of the current association (or attempt): its paths are what the
        # driver samples, tunes and closes, even once the choice has moved on.
        self._connect_to = EndpointRole.PRIMARY
        self._rand = rand or random.Random()
        self._nonce_source = nonce
        self.policy = PathPolicy(self.uplinks, self.main.hold_down, now)
        # A random first flow id: a restarted daemon must not reuse ids the endpoint knows.
        self.flows = FlowTable(self.main.max_flows, self.main.flow_idle, n_streams=N_STREAMS,
                               first_id=self._rand.randint(1, 0x7FFFFFFF))
        self.ledger = DropLedger()
        self.queue = OutQueue(self.main.queue, self.ledger)
        self.abandoned = Abandoned()
        self.backoff = Backoff(rand=self._rand.uniform)
        self.state = AssocState.CONNECTING
        self.reason = "starting"
        self.adm: Admission | None = None  # None while there is no SCTP association
        self.accepted: tuple[bool, ...] = ()
        self.refusal: str | None = None
        self.auth: bool | None = None  # the association's DATA is SCTP-AUTHenticated (None: no association)
        self.links: dict[str, bool] = {}  # link up per uplink, as last reported
        self.local: dict[str, str] = {u.name: u.local_address for u in self.uplinks}
        self.bound: tuple[str, ...] = ()  # local addresses of the current association
        self._connecting = False  # a Connect is out, waiting for connected/connect_failed
        self._retry_at: float | None = now  # connect as soon as the driver runs the timer
        self._admit_by: float | None = None
        self._dead_by: float | None = None  # all paths dead: give the association up then
        self._next_sample: float | None = None
        self.after_send = AfterSend()  # the kernel's abandoned-after-send counts (haig.core.abandonment)
        self._challenge: bytes | None = None
        self._nonce = b""
        self._auth_key = b""  # this association's SCTP-AUTH key, derived with the HELLO
        self._last_failure = ""
        self.version = 0  # moves when association_view() changes

    # -- outputs ------------------------------------------------------------------------

    def _event_sources(self) -> tuple:
        return (self.choice, self.policy, self.ledger)

    def get_timer(self) -> float | None:
        return earliest(self.policy.get_timer(), self.flows.get_timer(), self.ledger.get_timer(),
                        self._admit_by, self._dead_by, self._next_sample, self.choice.get_timer(),
                        None if self._connecting else self._retry_at)

    @property
    def admitted(self) -> bool:
        return self.adm is not None and self.adm.admitted

    @property
    def associated(self) -> bool:
        return self.adm is not None

    def association_view(self) -> dict[str, Any]:
        return {"state": str(self.state), "reason": self.reason,
                "auth": self.auth if self.adm is not None else None}

    @staticmethod
    def has_standby(cfg: Config) -> bool:
        return any(u.standby_address for u in cfg.uplinks)

    def path_to(self, uplink: Uplink, endpoint: EndpointRole | None = None) -> tuple[str, int]:
        """The peer address of `uplink`'s path to `endpoint` (default: the endpoint of the
        current association or attempt)."""
        if (endpoint or self._connect_to) is EndpointRole.STANDBY:
            return (uplink.standby_address, self.main.standby_port or self.main.port)
        return (uplink.endpoint_address, self.main.port)

    def endpoint_view(self, now: float) -> dict[str, Any]:
        """The status's `endpoint` object: which endpoint is in use and its addresses."""
        paths = {u.name: self.path_to(u, self.choice.in_use) for u in self.uplinks}
        prim = paths.get(self.policy.primary or "") or next(iter(paths.values()), ("", 0))
        return {**self.choice.view(now), "address": prim[0] or None, "port": prim[1],
                "addresses": {k: v[0] for k, v in paths.items()}}

    def uplink_of(self, addr: Hashable | None) -> str | None:
        """The uplink a peer address (path) belongs to; None for an unknown one."""
        u = self.by_addr.get(addr[0]) if isinstance(addr, tuple) and addr else None
        return u.name if u is not None else None

    # -- reload -------------------------------------------------------------------------

    # Main options a running association does not depend on: a reload changing only
    # these (and service lifetimes / critical flags) is applied in place.
    IN_PLACE = ("hold_down", "flow_idle", "max_flows", "queue", "max_datagram", "log_level",
                "api_listen", "api_token", "standby_after", "standby_hold_down")

    def can_reconfigure(self, cfg: Config) -> bool:
        def fixed(c: Config) -> tuple:
            main = dataclasses.replace(c.main, **{k: getattr(self.main, k) for k in self.IN_PLACE})
            return main, c.uplinks, tuple((s.name, s.listen) for s in c.services if s.listen)
        return fixed(cfg) == fixed(self.cfg)

    def reconfigure(self, cfg: Config, now: float) -> None:
        """Policy and datapath knobs in place: the association and flows are kept."""
        assert self.can_reconfigure(cfg)
        self.cfg, self.main = cfg, cfg.main
        self.services = [s for s in cfg.services if s.listen]
        self._abandon_streams = self._streams_to_read()
        self.policy.hold_down = float(cfg.main.hold_down)
        self.flows.idle_s, self.flows.max_flows = cfg.main.flow_idle, cfg.main.max_flows
        self.queue.limit = cfg.main.queue
        self.choice.reconfigure(self.has_standby(cfg), cfg.main.standby_after, cfg.main.standby_hold_down, now)
        self.policy.handle_timer(now)
        self._drain_policy(now)
        self._drain_choice(now)

    # -- connection lifecycle -----------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        self.policy.handle_timer(now)
        self._drain_policy(now)
        self.choice.handle_timer(now)
        self._drain_choice(now)
        self.ledger.handle_timer(now)
        for f in self.flows.expire(now):
            if self.admitted:
                self.queue.push(control(wire.encode_close(f.id)), now)
        if self._admit_by is not None and now >= self._admit_by:
            self.association_lost(f"not admitted within {ADMISSION_TIMEOUT:g} s", now)
        if self._dead_by is not None and now >= self._dead_by:
            self.association_lost(f"no path usable for {DEAD_PATHS_TIMEOUT:g} s", now)
        if self._next_sample is not None and now >= self._next_sample:
            self._next_sample = now + SAMPLE_INTERVAL
            self._actions.append(Sample())
        if not self._connecting and self._retry_at is not None and now >= self._retry_at:
            self._try_connect(now)

    def _init_plan(self, endpoint: EndpointRole) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...], int | None]:
        """Peers (a NATed path first), local addresses and encapsulation port of an INIT."""
        order = sorted(self.uplinks, key=lambda u: (not u.udp_encap, u.metric))
        bind = tuple(a for a in (self.local.get(u.name) for u in order) if a)
        encap = next((u.udp_encap_port for u in order if u.udp_encap), None)
        return tuple(self.path_to(u, endpoint) for u in order), bind, encap

    def _try_connect(self, now: float) -> None:
        self._connect_to = self.choice.in_use
        peers, bind, encap = self._init_plan(self.choice.in_use)
        if not bind:
            self.connect_failed("no uplink has a local address yet", now)
            return
        self._retry_at = None
        self._connecting = True
        self.bound = bind
        self._actions.append(Connect(peers, bind, encap))

    def connected(self, now: float, auth: bool = True) -> None:
        """The INIT handshake completed: admission starts (the endpoint speaks first).
        `auth`: the endpoint authenticates DATA (SCTP-AUTH); without it the association
        is given up if `require_auth` (a man in the middle may have stripped it)."""
        self._connecting = False
        self.adm = Admission(GATEWAY)
        self.refusal = None
        self.auth = auth
        self._admit_by = now + ADMISSION_TIMEOUT
        self._next_sample = now
        self.after_send = AfterSend()  # per association: the kernel's counters start at 0
        self._set_state(AssocState.AUTHENTICATING, "association up, waiting for admission")
        self.policy.association(True, now, "association established")
        self._drain_policy(now)
        if self._connect_to is not self.choice.in_use:  # made while the choice moved on
            self._lose(f"associated with the {self._connect_to} endpoint, but the {self.choice.in_use} "
                       "is in use now", now, switched=True)
        elif not auth and self.main.require_auth:
            self.refusal = "the endpoint does not authenticate DATA (SCTP-AUTH) and require_auth is on"
            self._events.append(Event(now, ASSOC, "haig", "authenticating", "refused", self.refusal))
            self._lose(self.refusal, now)

    def auth_failed(self, why: str, now: float) -> None:
        """The driver could not install the association's key: start again (never run
        half-keyed: the endpoint may already accept only the new key)."""
        self._lose(f"cannot install the SCTP-AUTH key: {why}", now)

    def connect_failed(self, error: str, now: float) -> None:
        self._connecting = False
        why = f"cannot associate: {error}"
        if self._connect_to is not self.choice.in_use:  # an attempt to the endpoint left behind
            self._retry_at = now
            return
        self.choice.down(now, why)
        self._set_state(AssocState.CONNECTING, why)
        if why != self._last_failure:  # one event per distinct failure, not one per retry
            self._last_failure = why
            self._events.append(Event(now, ASSOC, "haig", None, str(AssocState.CONNECTING), why))
        self._schedule_retry(now)

    def association_lost(self, why: str, now: float, graceful: bool = False) -> None:
        """The association ended (peer, kernel, timeout, refusal or our own decision):
        the driver closes the socket (Disconnect); a new attempt is scheduled.
        `graceful`: by SHUTDOWN (haig.core.abandonment: the in-doubt abandonments count)."""
        if graceful:
            self._count_after_send(self.after_send.take_in_doubt(), now)
        self._lose(why, now)

    def _lose(self, why: str, now: float, switched: bool = False) -> None:
        """`switched`: given up for an endpoint switch, which says nothing of its health."""
        if self.adm is None:
            return
        if not switched:
            self.choice.down(now, why)
        was_admitted = self.admitted
        n = self.queue.lose_all(now)
        if n:
            why = f"{why} ({n} queued datagram{'s' if n != 1 else ''} lost)"
        self.adm = None
        self._admit_by = self._next_sample = self._dead_by = None
        self._challenge = None
        self._actions.append(Disconnect(why, self.after_send.take_in_doubt()))
        self._set_state(AssocState.REFUSED if self.refusal else AssocState.DOWN, why)
        self.policy.association(False, now, why)
        self._drain_policy(now)
        if was_admitted:
            self.backoff.reset()
            self._last_failure = ""
        self._schedule_retry(now)
        if switched:
            self._retry_at = now

    def probe_result(self, ok: bool, why: str, now: float) -> None:
        """The outcome of a ProbeEndpoint (the primary answered the handshake, or not)."""
        self.choice.probe_result(ok, now, why)
        self._drain_choice(now)

    def _drain_choice(self, now: float) -> None:
        while (a := self.choice.next_action()) is not None:
            if isinstance(a, Probe):
                peers, bind, encap = self._init_plan(EndpointRole.PRIMARY)
                if bind:
                    self._actions.append(ProbeEndpoint(peers, bind, encap))
                else:
                    self.choice.probe_result(False, now, "no uplink has a local address")
            elif isinstance(a, Switch):
                self.version += 1
                self.backoff.reset()
                self._last_failure = ""
                self._lose(f"switching to the {a.to} endpoint: {a.reason}", now, switched=True)
                if not self._connecting:
                    self._retry_at = now

    def _schedule_retry(self, now: float) -> None:
        usable = any(self.links.get(u.name, True) and self.local.get(u.name) for u in self.uplinks)
        # A refusal is no link problem: its retries may grow past the links-up cap.
        self._retry_at = now + self.backoff.next_delay(links_up=usable and not self.refusal)

    def uplink_facts(self, name: str, *, up: bool, local_address: str | None, reason: str,
                     now: float) -> bool:
        """Link/address facts (netlink, netifd). A configured local_address always wins
        over the device's; None = not known. Returns True if anything changed."""
        u = self.by_name.get(name)
        if u is None:
            return False
        was_up = self.links.get(name)
        old = self.local.get(name) or ""
        new = local_address if local_address and not u.local_address else old
        if was_up == up and new == old:
            return False
        self.links[name] = up
        self.local[name] = new
        if was_up != up:
            self.policy.link(name, up, now, reason)
            self._drain_policy(now)
        if up and self.adm is None and not self._connecting:
            self._retry_at = now  # a link or an address came back: do not sit out a back-off
        if new != old and old and old in self.bound and self.adm is not None:
            self.backoff.reset()
            self.association_lost(f"uplink {name}: local address {old} -> {new}", now)
            self._retry_at = now
        return True

    # -- messages from the endpoint -----------------------------------------------------

    def receive_message(self, data: bytes, addr: Hashable | None, now: float) -> None:
        try:
            typ = wire.msg_type(data)
        except wire.WireError:
            self.ledger.count(drops.MALFORMED)
            return
        if self.adm is None:
            self.ledger.count(drops.ILLEGAL_STATE)
            return
        try:
            nxt = self.adm.receive(typ)
        except IllegalMessage:
            self.ledger.count(drops.ILLEGAL_STATE)
            return
        try:
            if typ == wire.DATA:
                self._from_endpoint(wire.decode_data(data), now)
            elif typ == wire.CHALLENGE:
                self._on_challenge(wire.decode_challenge(data), nxt)
            elif typ == wire.WELCOME:
                self._on_welcome(wire.decode_welcome(data), nxt, now)
            elif typ == wire.REFUSED:
                self._on_refused(wire.decode_refused(data), nxt, now)
        except wire.WireError:
            self.ledger.count(drops.MALFORMED)

    def _on_challenge(self, challenge: bytes, nxt: Adm) -> None:
        self._challenge = challenge
        self._nonce = self._nonce_source(wire.NONCE)
        if self.auth:  # accepted from now on: the endpoint answers HELLO with it
            self._auth_key = wire.auth_key(self.main.key, challenge, self._nonce)
            self._actions.append(AuthKey(self._auth_key, use=False))
        names = tuple(s.name for s in self.services)
        self.queue.push(control(wire.encode_hello(self.main.key, challenge, self.main.gateway_id,
                                                  self._nonce, names)), 0.0)
        self.adm.to(nxt)

    def _on_welcome(self, w: wire.Welcome, nxt: Adm, now: float) -> None:
        assert self._challenge is not None  # HELLO_SENT is entered with a challenge only
        if not wire.welcome_ok(self.main.key, self._nonce, self._challenge, w):
            self.refusal = "endpoint failed to prove it knows the key"
            self._events.append(Event(now, ASSOC, "haig", "authenticating", "refused", self.refusal))
            self.association_lost(self.refusal, now)
            return
        self.adm.to(nxt)
        self._admit_by = None
        if self.auth:  # before anything is sent: DATA from now on goes with the new key
            self._actions.append(AuthKey(self._auth_key, use=True))
        self.accepted = w.accepted
        for f in self.flows:  # a new association: the endpoint's flows start afresh
            if f.dedup is not None:
                f.dedup.reset()
        missing = [s.name for s, ok in zip(self.services, w.accepted, strict=False) if not ok]
        why = f"admitted by the endpoint as {self.main.gateway_id}"
        if missing:
            why += f"; the endpoint has no target for {', '.join(missing)} (its datagrams are dropped)"
        self._events.append(Event(now, ASSOC, "haig", "authenticating", "up", why))
        self._set_state(AssocState.UP, why)
        self.choice.admitted(now)
        self._announce_path(now)

    def _on_refused(self, reason: str, nxt: Adm, now: float) -> None:
        # REFUSED carries no proof: it ends this attempt, nothing more (normal back-off).
        self.adm.to(nxt)
        self.refusal = reason
        self._events.append(Event(now, ASSOC, "haig", "authenticating", "refused",
                                  f"endpoint refused this gateway: {reason}"))
        self.association_lost(f"refused by the endpoint: {reason}", now)

    def late_message(self, data: bytes, now: float) -> None:
        """A message read from an association being closed (to its end) while the next
        one comes up. Data is delivered as usual until the new association is admitted;
        after that the de-duplication windows follow the endpoint's new flows, so a late
        copy cannot be told from a first one: it is counted as lost, never delivered
        unchecked. Admission messages of the old association mean nothing any more."""
        try:
            if wire.msg_type(data) != wire.DATA:
                return
            d = wire.decode_data(data)
        except wire.WireError:
            self.ledger.count(drops.MALFORMED)
            return
        if not self.admitted:
            self._from_endpoint(d, now)
            return
        svc = self.services[d.service] if d.service < len(self.services) else None
        self.ledger.count(drops.ASSOC_LOST, svc.name if svc else "",
                          critical=bool(svc and svc.critical), now=now)

    def _from_endpoint(self, d: wire.Data, now: float) -> None:
        flow = self.flows.by_id(d.flow_id)
        svc = self.services[d.service] if d.service < len(self.services) else None
        if flow is None or svc is None:
            self.ledger.count(drops.UNKNOWN_FLOW, svc.name if svc else "")
            return
        if not first_copy(flow, d):
            return  # the other path's copy already arrived
        self.flows.seen(flow, now)
        flow.count_tx(len(d.payload))
        self._deliver.append(Delivery(d.service, flow.key[1], d.payload))

    # -- datagrams from local clients ---------------------------------------------------

    def receive_datagram(self, index: int, client: Hashable, data: bytes, now: float) -> None:
        svc = self.services[index]
        reason = None
        if len(data) > self.main.max_datagram:
            reason = drops.OVERSIZED
        elif not self.admitted:
            reason = drops.NO_ASSOCIATION
        elif index < len(self.accepted) and not self.accepted[index]:
            reason = drops.NO_TARGET
        if reason is not None:
            self.ledger.count(reason, svc.name, critical=svc.critical, now=now)
            return
        flow = self.flows.get_or_open((index, client), now, stream=data_stream(index, svc.critical, N_STREAMS),
                                      service=svc.name, critical=svc.critical)
        if flow is None:
            self.ledger.count(drops.FLOW_TABLE_FULL, svc.name, critical=svc.critical, now=now)
            return
        flow.count_rx(len(data))
        other = self.by_name.get(self.policy.secondary or "") if svc.critical else None
        copy_path = self.path_to(other) if other is not None else None
        for item in data_messages(index, flow.id, flow, data, svc.name, svc.ttl, svc.critical, copy_path,
                                  self.abandoned):
            self.queue.push(item, now)

    def drop(self, reason: str, index: int | None, now: float, n: int = 1) -> None:
        """Datagrams the driver could not hand on (a UDP send to a client failed, the
        kernel dropped some at a listener's full receive buffer)."""
        svc = self.services[index] if index is not None and index < len(self.services) else None
        self.ledger.count(reason, svc.name if svc else "", n, critical=bool(svc and svc.critical), now=now)

    def send_failed(self, item: Outgoing, reason: str, now: float) -> None:
        """The socket refused a message (not 'would block'): a lost datagram if DATA."""
        if item.is_data:
            self.ledger.count(reason, item.service, critical=item.critical, now=now)

    def abandoned_message(self, msg: bytes, now: float) -> None:
        """SCTP_SEND_FAILED_EVENT: SCTP gave up on a message (lifetime, or unsent at abort)."""
        d = self.abandoned.lost(msg)
        if d is not None:
            self.drop(drops.TTL_EXPIRED, d.service, now)

    # -- paths --------------------------------------------------------------------------

    def path_state(self, addr: Hashable, state: PathState | None, now: float, why: str = "") -> None:
        name = self.uplink_of(addr)
        if name is not None and state is not None and self.adm is not None:
            self._count_after_send(self.after_send.path(name, state, now), now)
            self.policy.path_state(name, state, now, why or f"{name}: kernel says {state}")
            self._drain_policy(now)

    def path_sample(self, uplink: str, state: PathState | None, now: float, *,
                    srtt_ms: float | None, rto_ms: float | None, cwnd: int | None) -> None:
        if state is None or self.adm is None or state is PathState.UNKNOWN:
            return
        self._count_after_send(self.after_send.path(uplink, state, now), now)
        self.policy.sample(uplink, now, state=state, srtt_ms=srtt_ms, rto_ms=rto_ms, cwnd=cwnd)
        self._drain_policy(now)

    def abandon_streams(self) -> list[int]:
        """The streams whose abandoned-after-send count the driver reads with each sample."""
        return list(self._abandon_streams)

    def _streams_to_read(self) -> dict[int, str]:
        """Each non-critical service's own stream, with the (first) service on it. Not the
        critical stream: there a lifetime also abandons copies whose twin arrived on the
        other path: no loss count."""
        out: dict[int, str] = {}
        for i, s in enumerate(self.services):
            if not s.critical:
                out.setdefault(data_stream(i, False, N_STREAMS), s.name)
        return dict(sorted(out.items()))

    def abandoned_sent(self, stream: int, total: int, now: float) -> None:
        """The kernel's running count of `stream`'s messages abandoned after they were sent
        (PR-SCTP lifetime over while unacknowledged): no send-failed event reports those the
        peer's FORWARD-TSN acknowledgement frees. Counted `ttl_expired` against the stream's
        service (the first, if several share it) once confirmed (haig.core.abandonment).
        An upper bound: a message whose SACK was lost may have arrived."""
        service = self._abandon_streams.get(stream) if self.adm is not None else None
        if service is not None:
            self._count_after_send(self.after_send.total(stream, total, service, now), now)

    def abandoned_confirmed(self, in_doubt: tuple[tuple[str, int], ...], now: float) -> None:
        """An old association ended gracefully (SHUTDOWN_COMPLETE: everything acknowledged,
        FORWARD-TSNs included): its in-doubt abandonments were freed silently, count them."""
        self._count_after_send(in_doubt, now)

    def _count_after_send(self, confirmed, now: float) -> None:
        for service, n in confirmed:
            self.ledger.count(drops.TTL_EXPIRED, service, n, now=now)

    def force_primary(self, uplink: str | None, now: float, duration_s: float) -> None:
        if uplink is not None and uplink not in self.by_name:
            raise ValueError(f"unknown uplink {uplink!r}; configured: {', '.join(self.by_name)}")
        self.policy.force_primary(uplink, now, duration_s)
        self._drain_policy(now)

    def path_views(self) -> list[dict[str, Any]]:
        out = []
        for u in self.uplinks:
            v = self.policy.uplink_view(u.name)
            out.append({"address": self.path_to(u)[0], "uplink": u.name, "state": v.get("state"),
                        "srtt_ms": v.get("srtt_ms"), "rto_ms": v.get("rto_ms"), "cwnd": v.get("cwnd"),
                        "primary": u.name == self.policy.primary})
        return out

    # -- internals ----------------------------------------------------------------------

    def _check_dead(self, now: float) -> None:
        """Arm or clear the all-paths-dead deadline (see DEAD_PATHS_TIMEOUT)."""
        if self.adm is None:
            return
        dead = all(not self.links.get(u.name, True)
                   or self.policy.uplink_view(u.name).get("state") in (PathState.UNREACHABLE, PathState.REMOVED)
                   for u in self.uplinks)
        if not dead:
            self._dead_by = None
            if self.admitted:
                self.choice.admitted(now)
        elif self._dead_by is None:
            self._dead_by = now + DEAD_PATHS_TIMEOUT
            self.choice.down(now, "every path unreachable")

    def _drain_policy(self, now: float) -> None:
        self._check_dead(now)
        while (a := self.policy.next_action()) is not None:
            self._actions.append(a)
            if isinstance(a, SetPrimary):
                self._announce_path(now)

    def _announce_path(self, now: float) -> None:
        """Tell the endpoint our primary by sending over it: it makes the address this
        arrives from its own primary towards us, so replies follow (NAT included)."""
        u = self.by_name.get(self.policy.primary or "")
        if u is not None and self.admitted:
            self.queue.push(control(wire.encode_path(), to=self.path_to(u)), now)

    def _set_state(self, state: AssocState, reason: str) -> None:
        if (state, reason) != (self.state, self.reason):
            self.state, self.reason = state, reason
            self.version += 1
