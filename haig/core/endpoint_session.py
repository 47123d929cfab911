"""The endpoint's side of the relay protocol as a pure state machine (sans-I/O).

`EndpointCore` holds one `Session` per SCTP association on the endpoint's one-to-many
socket: admission (haig.core.admission's table: CHALLENGE out, HELLO checked against
the gateway's key, WELCOME or REFUSED then ABORT), the gateway's flows and their
targets, critical copies (the second copy on the best other path, ranked like the
gateway's policy ranks paths), de-duplication, PATH (follow the gateway's primary),
CLOSE, the admission timeout, and the account of every datagram not delivered.

Inputs carry `now`; outputs are pulled after each input: `next_action()` (Tune, Abort,
FollowPath, SamplePaths, CloseTarget), `queues()` (those pushed to), `datagrams_to_deliver()`
(to targets), `next_event()`, `ledger.take()`, `status_updates()`, `get_timer()`.
A changed config is applied in place (`reconfigure`): only the homes whose gateway
section, key or service targets changed lose their association.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from haig.config.model import Config, Peer, Service
from haig.core import drops, wire
from haig.core.abandonment import AfterSend
from haig.core.admission import ENDPOINT, Adm, Admission, IllegalMessage
from haig.core.datapath import (
    CRITICAL_STREAM,
    Abandoned,
    Outgoing,
    OutQueue,
    control,
    data_messages,
    first_copy,
)
from haig.core.drops import DropLedger
from haig.core.events import ASSOC, Event
from haig.core.flows import Flow, FlowTable
from haig.core.outputs import CoreOutputs, earliest
from haig.core.refusals import SUBJECT_LIMIT, Refusals
from haig.core.states import AssocState, PathState, best_path
from haig.surfaces.logsafe import safe

N_STREAMS = 16
# An unauthenticated peer costs a session until its HELLO checks out: bound them.
ADMISSION_TIMEOUT = 3.0  # s from COMM_UP to a valid HELLO (a real gateway sends it in one RTT)
PENDING_MAX = 256  # sessions not yet admitted, all sources together
PENDING_PER_SOURCE = 8  # ... from one source address
NOT_ADMITTED = "not admitted"  # the one reason REFUSED gives: the real one only in the log
# Flows (one UDP socket each) a critical service may still open when the home's
# max_flows, or the process's fd budget, is used up by others.
CRITICAL_RESERVE = 16
REFUSE_ABORT_DELAY = 0.5  # s: let REFUSED reach the gateway before the ABORT
# Once per tick (s): idle flows expire and up to SAMPLE_BATCH admitted associations
# have their paths read (srtt, cwnd for the panel), in turn; path *state* changes come
# from the kernel's notifications at once. So per-tick work is O(homes) once a second,
# and nothing per datagram depends on the number of homes (1,000 homes: each sampled
# every ~16 s).
SAMPLE_INTERVAL = 1.0
SAMPLE_BATCH = 64


@dataclass(frozen=True)
class Tune:
    assoc_id: int


@dataclass(frozen=True)
class AuthKey:
    """Make `key` the association's SCTP-AUTH key 1, send with it and stop accepting the
    null key 0 (the gateway already accepts key 1: it added it with its HELLO)."""
    assoc_id: int
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class Abort:
    assoc_id: int


@dataclass(frozen=True)
class FollowPath:
    """Make `addr` the primary path towards the gateway (it sent PATH over it)."""
    assoc_id: int
    addr: tuple


@dataclass(frozen=True)
class SamplePaths:
    """Read these admitted associations' paths and feed `path_sample`."""
    assoc_ids: tuple[int, ...]


@dataclass(frozen=True)
class CloseTarget:
    assoc_id: int
    flow_id: int


Action = Tune | AuthKey | Abort | FollowPath | SamplePaths | CloseTarget


@dataclass(slots=True)  # not frozen: one per datagram, and frozen init costs 3x
class Delivery:
    assoc_id: int
    flow_id: int
    service: Service  # whose target gets the payload (the driver opens the UDP socket)
    payload: bytes


@dataclass(eq=False)
class Session:
    assoc_id: int
    challenge: bytes
    since: float
    queue: OutQueue
    adm: Admission = field(default_factory=lambda: Admission(ENDPOINT))
    gateway: Peer | None = None
    services: list[Service | None] = field(default_factory=list)
    names: tuple[str, ...] = ()  # the services the gateway announced in its HELLO
    flows: FlowTable | None = None
    primary: tuple | None = None
    port: int | None = None  # the gateway's SCTP port (from any message's source)
    paths: dict[str, PathState] = field(default_factory=dict)  # peer address -> state
    infos: dict[str, Any] = field(default_factory=dict)  # last sample per address
    admit_by: float | None = None
    version: int = 0
    source: str = "?"  # the peer's first address at COMM_UP (for the per-source cap)
    auth: bool = True  # the peer authenticates DATA (SCTP-AUTH), as the driver found at COMM_UP
    # The kernel's abandoned-after-send counts of the replies (haig.core.abandonment), and
    # the non-critical streams replies have gone out on (stream -> service).
    after_send: AfterSend = field(default_factory=AfterSend)
    reply_streams: dict[int, str] = field(default_factory=dict)


class EndpointCore(CoreOutputs):
    def __init__(self, cfg: Config, now: float, *, nonce: Callable[[int], bytes] = os.urandom,
                 fd_budget: int | None = None) -> None:
        super().__init__()
        self.main = cfg.main
        self._nonce = nonce
        # Target sockets (flows) the process may hold at once (None: unbounded); the
        # driver derives it from RLIMIT_NOFILE. The last CRITICAL_RESERVE are critical's.
        self.fd_budget = fd_budget
        self.ledger = DropLedger()
        self.refusals = Refusals()
        self.shed = 0  # associations aborted at COMM_UP: too many pending
        self._pending: Counter[str] = Counter()  # source address -> sessions not yet admitted
        # sessions not yet admitted, oldest first: admit_by = since + ADMISSION_TIMEOUT,
        # so the first one is always the next to time out (O(1) timer, no scan)
        self._unadmitted: dict[int, Session] = {}
        self._dirty: dict[int, OutQueue] = {}  # queues pushed to since the last queues()
        self.flows_held = 0  # flows (= target sockets) over all homes, for the fd budget
        self._sample_turn = 0  # where the next SamplePaths batch starts
        self.abandoned = Abandoned()
        self.sessions: dict[int, Session] = {}
        self.by_gateway: dict[str, int] = {}
        self._aborts: dict[int, float] = {}  # refused association -> when to ABORT it (oldest first)
        self._status: dict[str, dict[str, Any]] = {}
        self._next_sample = now + SAMPLE_INTERVAL
        self._configure(cfg)

    def _configure(self, cfg: Config) -> None:
        self.cfg, self.main = cfg, cfg.main
        self.peers = {p.name: p for p in cfg.peers}
        self.targets = {s.name: s for s in cfg.services if s.target}

    # -- outputs ------------------------------------------------------------------------

    def status_updates(self) -> dict[str, dict[str, Any]]:
        """Association records for the status model (key = gateway id) changed since last."""
        out, self._status = self._status, {}
        return out

    def queues(self) -> list[OutQueue]:
        """The queues pushed to since the last call (the driver flushes them; one the
        socket cannot take yet it keeps and resumes itself). Not every session's: a
        pump must not cost O(homes)."""
        out = list(self._dirty.values())
        self._dirty.clear()
        return out

    def _push(self, sess: Session, item: Outgoing, now: float) -> None:
        sess.queue.push(item, now)
        self._dirty[sess.assoc_id] = sess.queue

    def _event_sources(self) -> tuple[Any, ...]:
        return (self.ledger, self.refusals)

    def get_timer(self) -> float | None:
        # O(1): aborts and admission deadlines are a constant after their start, so
        # the oldest is the first; flows expire on the tick (late by < SAMPLE_INTERVAL).
        best = earliest(self.ledger.get_timer(), self.refusals.get_timer())
        if self._aborts:
            best = earliest(best, next(iter(self._aborts.values())))
        if self._unadmitted:
            best = earliest(best, next(iter(self._unadmitted.values())).admit_by)
        if self.by_gateway:
            best = earliest(best, self._next_sample)
        return best

    # -- association lifecycle ----------------------------------------------------------

    def association_up(self, assoc_id: int, now: float, source: str | None = None, auth: bool = True) -> None:
        """`source`: the peer's (first) address, for the per-source cap on pending sessions;
        `auth`: the peer authenticates DATA with SCTP-AUTH (see `require_auth`)."""
        old = self.sessions.get(assoc_id)
        if old is not None:
            self._end(old, "association restarted", now)
        self._aborts.pop(assoc_id, None)
        src = source or "?"
        if sum(self._pending.values()) >= PENDING_MAX or self._pending[src] >= PENDING_PER_SOURCE:
            # Shed at once: no session, no CHALLENGE, nothing kept but a count.
            self.shed += 1
            why = ("too many pending associations" if self._pending[src] < PENDING_PER_SOURCE
                   else "too many pending associations from this address")
            self.refusals.refused("", src, why, now)
            self._actions.append(Abort(assoc_id))
            return
        sess = Session(assoc_id, self._nonce(wire.NONCE), now, OutQueue(self.main.queue, self.ledger),
                       admit_by=now + ADMISSION_TIMEOUT, source=src, auth=auth)
        self._pending[src] += 1
        self._unadmitted[assoc_id] = sess
        self.sessions[assoc_id] = sess
        self._actions.append(Tune(assoc_id))
        self._push(sess, control(wire.encode_challenge(sess.challenge), assoc_id=assoc_id), now)

    def association_gone(self, assoc_id: int, why: str, now: float, graceful: bool = False) -> None:
        """`graceful`: a SHUTDOWN (everything acknowledged, FORWARD-TSNs included), so the
        replies abandoned after sending but not yet confirmed were freed silently: counted.
        Otherwise the kernel's teardown send-failed events count them."""
        self._aborts.pop(assoc_id, None)
        sess = self.sessions.get(assoc_id)
        if sess is not None:
            in_doubt = sess.after_send.take_in_doubt()
            if graceful:
                self._count_after_send(in_doubt, now)
            self._end(sess, why, now)

    def auth_failed(self, assoc_id: int, why: str, now: float) -> None:
        """The driver could not install the association's key: end it (the gateway
        re-associates) rather than run half-keyed."""
        sess = self.sessions.get(assoc_id)
        if sess is not None:
            self._end(sess, f"cannot install the SCTP-AUTH key: {why}", now, abort=True)

    @property
    def pending(self) -> int:
        """Sessions not yet admitted (nor refused)."""
        return sum(self._pending.values())

    def _unpend(self, sess: Session) -> None:
        if sess.admit_by is not None:
            sess.admit_by = None
            self._unadmitted.pop(sess.assoc_id, None)
            self._pending[sess.source] -= 1
            if self._pending[sess.source] <= 0:
                del self._pending[sess.source]

    def handle_timer(self, now: float) -> None:
        self.ledger.handle_timer(now)
        self.refusals.handle_timer(now)
        while self._aborts:
            aid, at = next(iter(self._aborts.items()))
            if now < at:
                break
            del self._aborts[aid]
            self._actions.append(Abort(aid))
        while self._unadmitted:
            sess = next(iter(self._unadmitted.values()))
            if now < sess.admit_by:
                break
            self._refuse(sess, "", sess.source, f"no HELLO within {ADMISSION_TIMEOUT:g} s", now)
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_INTERVAL
            self._tick(now)

    def _tick(self, now: float) -> None:
        admitted = []
        for sess in self.sessions.values():
            if sess.flows is not None:
                for f in sess.flows.expire(now):
                    self._flow_closed(sess, f.key)
            if sess.gateway is not None and sess.adm.admitted:
                admitted.append(sess.assoc_id)
        if admitted:
            k = self._sample_turn % len(admitted)
            batch = (admitted[k:] + admitted[:k])[:SAMPLE_BATCH]
            self._sample_turn = k + len(batch)
            self._actions.append(SamplePaths(tuple(batch)))

    def _flow_closed(self, sess: Session, key: Hashable) -> None:
        self.flows_held -= 1
        self._actions.append(CloseTarget(sess.assoc_id, key))

    # -- messages from gateways ---------------------------------------------------------

    def receive_message(self, assoc_id: int, data: bytes, addr: Hashable | None, stream: int,
                        now: float) -> None:
        sess = self.sessions.get(assoc_id)
        if sess is None:  # refused (ABORT pending) or already ended
            self.ledger.count(drops.ILLEGAL_STATE)
            return
        if isinstance(addr, tuple) and len(addr) >= 2:
            sess.port = addr[1]
        try:
            typ = wire.msg_type(data)
            nxt = sess.adm.receive(typ)
        except wire.WireError:
            self.ledger.count(drops.MALFORMED)
            return
        except IllegalMessage:
            self.ledger.count(drops.ILLEGAL_STATE)
            return
        try:
            if typ == wire.HELLO:
                self._on_hello(sess, wire.decode_hello(data), addr, nxt, now)
            elif typ == wire.DATA:
                self._from_gateway(sess, wire.decode_data(data), stream, now)
            elif typ == wire.PATH:
                wire.decode_path(data)
                if isinstance(addr, tuple) and sess.primary != addr[:2]:
                    sess.primary = addr[:2]
                    self._actions.append(FollowPath(assoc_id, addr[:2]))
                    self._changed(sess)
            elif typ == wire.CLOSE:
                f = sess.flows.get(wire.decode_close(data)) if sess.flows else None
                if f is not None:  # keyed by the gateway's flow id
                    sess.flows.close(f.id)
                    self._flow_closed(sess, f.key)
        except wire.WireError:
            self.ledger.count(drops.MALFORMED)

    def _on_hello(self, sess: Session, hello: wire.Hello, addr, nxt: Adm, now: float) -> None:
        peer = self.peers.get(hello.gateway_id)
        where = f"{addr[0]}" if isinstance(addr, tuple) and addr else "?"
        if peer is None:
            return self._refuse(sess, hello.gateway_id, where, "unknown gateway", now)
        if not peer.enabled:
            return self._refuse(sess, hello.gateway_id, where, "gateway disabled", now)
        if not wire.hello_ok(peer.key, sess.challenge, hello):
            return self._refuse(sess, hello.gateway_id, where, "wrong key", now)
        if not sess.auth and self.main.require_auth:
            # Its INIT offered no SCTP-AUTH: an older haig, or a man in the middle who
            # stripped it to inject DATA under the home's name.
            return self._refuse(sess, hello.gateway_id, where, "no SCTP-AUTH (require_auth)", now)
        old = self.by_gateway.get(peer.name)
        if old is not None and old != sess.assoc_id and old in self.sessions:
            # The home re-associated (router reboot, new addresses): the old one is stale.
            self._end(self.sessions[old], "replaced by a new association", now, abort=True)
        sess.adm.to(nxt)
        self._unpend(sess)
        sess.gateway, sess.names = peer, hello.services
        sess.services = [self.targets.get(name) for name in hello.services]
        # max_flows for every service, plus a reserve only critical services may use
        sess.flows = FlowTable(self.main.max_flows + CRITICAL_RESERVE, self.main.flow_idle, n_streams=N_STREAMS)
        self.by_gateway[peer.name] = sess.assoc_id
        accepted = tuple(s is not None for s in sess.services)
        if sess.auth:  # before WELCOME is sent: it goes with the new key already
            self._actions.append(AuthKey(sess.assoc_id, wire.auth_key(peer.key, sess.challenge, hello.nonce)))
        self._push(sess, control(wire.encode_welcome(peer.key, hello.nonce, sess.challenge, accepted),
                                 assoc_id=sess.assoc_id), now)
        missing = [n for n, s in zip(hello.services, sess.services, strict=False) if s is None]
        self._events.append(Event(now, ASSOC, safe(peer.name, SUBJECT_LIMIT), "authenticating", "up",
                                  f"gateway {safe(peer.name, SUBJECT_LIMIT)} admitted from {where}"
                                  + (f"; no target for {', '.join(missing)}" if missing else "")))
        self._changed(sess)

    def _refuse(self, sess: Session, gw_id: str, where: str, why: str, now: float) -> None:
        # The wire says only NOT_ADMITTED (a scanner must not learn which ids exist);
        # `why` goes to the log and the summary event's counts.
        self.refusals.refused(gw_id, where, why, now)
        self._push(sess, control(wire.encode_refused(NOT_ADMITTED), assoc_id=sess.assoc_id), now)
        sess.adm.to(Adm.CLOSED)
        self._unpend(sess)
        # The session stays until the ABORT so REFUSED still gets flushed; nothing it
        # sends is accepted any more (CLOSED has no legal message).
        self._aborts[sess.assoc_id] = now + REFUSE_ABORT_DELAY

    def _end(self, sess: Session, why: str, now: float, abort: bool = False) -> None:
        self.sessions.pop(sess.assoc_id, None)
        self._unpend(sess)
        n = sess.queue.lose_all(now)
        if n:
            why = f"{why} ({n} queued datagram{'s' if n != 1 else ''} lost)"
        if sess.flows is not None:
            for f in sess.flows.clear():
                self._flow_closed(sess, f.key)
        if sess.gateway is not None:
            name = sess.gateway.name
            if self.by_gateway.get(name) == sess.assoc_id:
                del self.by_gateway[name]
                self._status[name] = {"state": str(AssocState.DOWN), "reason": why, "paths": [],
                                      "assoc_id": None, "primary": None, "auth": None}
            self._events.append(Event(now, ASSOC, name, "up", "down", f"gateway {name}: {why}"))
        if abort:
            self._actions.append(Abort(sess.assoc_id))

    # -- data ---------------------------------------------------------------------------

    def _from_gateway(self, sess: Session, d: wire.Data, stream: int, now: float) -> None:
        assert sess.flows is not None
        svc = sess.services[d.service] if d.service < len(sess.services) else None
        if svc is None:
            name = sess.names[d.service] if d.service < len(sess.names) else ""
            self.ledger.count(drops.NO_TARGET, name)
            return
        flow = sess.flows.get(d.flow_id)
        if flow is not None:
            sess.flows.seen(flow, now)
        else:
            reason = self._no_room(sess, svc)
            if reason is not None:
                self.ledger.count(reason, svc.name, critical=svc.critical, now=now)
                return
            flow = sess.flows.get_or_open(d.flow_id, now, stream=stream, service=svc.name,
                                          critical=bool(d.flags & wire.FLAG_CRITICAL))
            if flow is None:
                self.ledger.count(drops.FLOW_TABLE_FULL, svc.name, critical=svc.critical, now=now)
                return
            self.flows_held += 1
            if stream != CRITICAL_STREAM:  # a critical copy abandoned on one path is no loss
                sess.reply_streams.setdefault(stream, svc.name)
        if not first_copy(flow, d):
            return
        flow.count_rx(len(d.payload))
        self._deliver.append(Delivery(sess.assoc_id, flow.key, svc, d.payload))

    def _no_room(self, sess: Session, svc: Service) -> str | None:
        """Why a new flow (= a new target socket) may not open, or None. Only on opens:
        O(flows) is fine there. A critical service (by the endpoint's own config, not the
        peer's flag) may go CRITICAL_RESERVE past the home's max_flows and into the last
        CRITICAL_RESERVE of the fd budget, so a full home or process still carries alarms."""
        assert sess.flows is not None
        reserve = 0 if svc.critical else CRITICAL_RESERVE
        n_critical = sum(1 for f in sess.flows if self._critical(f.service))
        if svc.critical:
            if n_critical >= CRITICAL_RESERVE and len(sess.flows) >= self.main.max_flows:
                return drops.FLOW_TABLE_FULL
        elif len(sess.flows) - n_critical >= self.main.max_flows:
            return drops.FLOW_TABLE_FULL
        if self.fd_budget is not None:
            if self.flows_held >= self.fd_budget - reserve:
                return drops.FD_BUDGET
        return None

    def _critical(self, service: str) -> bool:
        svc = self.targets.get(service)
        return svc is not None and svc.critical

    def receive_from_target(self, assoc_id: int, flow_id: int, data: bytes, now: float) -> None:
        sess = self.sessions.get(assoc_id)
        flow = sess.flows.get(flow_id) if sess is not None and sess.flows is not None else None
        if flow is None:
            self.ledger.count(drops.UNKNOWN_FLOW)
            return
        svc_index, svc = self._service_of(sess, flow)
        if svc is None:
            self.ledger.count(drops.NO_TARGET, flow.service)
            return
        sess.flows.seen(flow, now)
        if len(data) > self.main.max_datagram:
            self.ledger.count(drops.OVERSIZED, svc.name, critical=svc.critical, now=now)
            return
        flow.count_tx(len(data))
        copy = None
        if flow.critical:
            # until the gateway says PATH the kernel sends on the first address (its
            # default primary): the copy goes elsewhere or nowhere
            other = best_path(sess.paths, exclude=sess.primary[0] if sess.primary else sess.source)
            port = sess.primary[1] if sess.primary else sess.port
            copy = (other, port) if other is not None and port else None
        # the endpoint's table is keyed by the gateway's flow id: that is the id on the wire
        for item in data_messages(svc_index, flow.key, flow, data, svc.name, svc.ttl, flow.critical,
                                  copy, self.abandoned, assoc_id=assoc_id):
            self._push(sess, item, now)

    def target_failed(self, assoc_id: int, flow_id: int, reason: str, now: float, n: int = 1) -> None:
        """The driver could not open or send to a flow's target, or (rcvbuf_full) the
        kernel dropped `n` of its replies at the target socket's full buffer."""
        sess = self.sessions.get(assoc_id)
        flow = sess.flows.get(flow_id) if sess is not None and sess.flows is not None else None
        svc = flow.service if flow is not None else ""
        if flow is not None:
            flow.drops += n
        self.ledger.count(reason, svc, n, critical=bool(flow and flow.critical), now=now)

    def send_failed(self, item: Outgoing, reason: str, now: float) -> None:
        if item.is_data:
            self.ledger.count(reason, item.service, critical=item.critical, now=now)

    def abandoned_message(self, assoc_id: int, msg: bytes, now: float) -> None:
        d = self.abandoned.lost(msg)
        if d is None:
            return
        sess = self.sessions.get(assoc_id)
        svc = sess.services[d.service] if sess is not None and d.service < len(sess.services) else None
        self.ledger.count(drops.TTL_EXPIRED, svc.name if svc else "",
                          critical=bool(svc and svc.critical), now=now)

    @staticmethod
    def _service_of(sess: Session, flow: Flow) -> tuple[int, Service | None]:
        for i, s in enumerate(sess.services):
            if s is not None and s.name == flow.service:
                return i, s
        return 0, None

    # -- paths --------------------------------------------------------------------------

    def path_state(self, assoc_id: int, addr: tuple, state: PathState | None, now: float) -> None:
        sess = self.sessions.get(assoc_id)
        if sess is not None and state is not None:
            sess.paths[addr[0]] = state
            self._count_after_send(sess.after_send.path(addr[0], state, now), now)
            self._changed(sess)

    def path_sample(self, assoc_id: int, addr: tuple, state: PathState, info: Any, now: float) -> None:
        sess = self.sessions.get(assoc_id)
        if sess is not None:
            sess.paths[addr[0]] = state
            sess.infos[addr[0]] = info
            self._count_after_send(sess.after_send.path(addr[0], state, now), now)
            self._changed(sess)

    def reply_streams(self, assoc_id: int) -> dict[int, str]:
        """The streams whose abandoned-after-send count the driver reads with each sample."""
        sess = self.sessions.get(assoc_id)
        return sess.reply_streams if sess is not None and sess.gateway is not None else {}

    def abandoned_sent(self, assoc_id: int, stream: int, total: int, now: float) -> None:
        """The kernel's running count of replies on `stream` abandoned after sending them
        (no send-failed event for those a FORWARD-TSN frees): `ttl_expired` once confirmed."""
        sess = self.sessions.get(assoc_id)
        if sess is not None and stream in sess.reply_streams:
            self._count_after_send(sess.after_send.total(stream, total, sess.reply_streams[stream], now), now)

    def _count_after_send(self, confirmed, now: float) -> None:
        for service, n in confirmed:
            self.ledger.count(drops.TTL_EXPIRED, service, n, now=now)

    def _changed(self, sess: Session) -> None:
        if sess.gateway is None or self.by_gateway.get(sess.gateway.name) != sess.assoc_id:
            return
        paths = []
        for addr, state in sess.paths.items():
            i = sess.infos.get(addr)
            paths.append({"address": addr, "state": str(state),
                          "srtt_ms": getattr(i, "srtt_ms", None), "rto_ms": getattr(i, "rto_ms", None),
                          "cwnd": getattr(i, "cwnd", None),
                          "primary": bool(sess.primary and sess.primary[0] == addr)})
        self._status[sess.gateway.name] = {
            "state": str(AssocState.UP), "gateway_id": sess.gateway.name, "assoc_id": sess.assoc_id,
            "paths": paths, "primary": sess.primary[0] if sess.primary else None, "reason": "",
            "auth": sess.auth}

    def flows_view(self, now: float) -> list[dict[str, Any]]:
        out = []
        for sess in self.sessions.values():
            if sess.flows is not None and sess.gateway is not None:
                for f in sess.flows.snapshot(now, key_fmt=lambda k: f"flow {k}"):
                    f["gateway_id"] = sess.gateway.name
                    out.append(f)
        return out

    # -- reload -------------------------------------------------------------------------

    def reconfigure(self, cfg: Config, now: float) -> list[str]:
        """Apply a new config in place. Only a home whose gateway section was removed,
        disabled or re-keyed, or whose services' targets changed, loses its association
        (it re-associates at once); every other home keeps its association and flows.
        Returns the gateway ids whose association was ended."""
        old_peers, old_targets = self.peers, self.targets
        self._configure(cfg)
        ended = []
        for sess in list(self.sessions.values()):
            if sess.gateway is None:
                continue
            name = sess.gateway.name
            new_peer = self.peers.get(name)
            why = None
            if new_peer is None:
                why = "gateway removed from the configuration"
            elif new_peer != old_peers.get(name):
                why = "gateway's configuration (key or enabled) changed"
            elif any(old_targets.get(n) != self.targets.get(n) for n in sess.names):
                why = "its services' targets changed"
            if why is not None:
                ended.append(name)
                self._end(sess, why, now, abort=True)
        return ended
