"""What both relay roles do with datagrams, once: the bounded send queue (counted when
full or lost with the association), DATA messages with the critical copy on the other
path, the receiver's de-duplication, and what an abandoned message was.

An `Outgoing` is one SCTP message as the core wants it sent; the driver takes them
from the head of an OutQueue, and leaves them there while the socket would block.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass

from haig.core import drops, wire
from haig.core.drops import DropLedger
from haig.core.flows import Flow

# Streams by class, so the kernel's priority scheduler (SCTP_SS_PRIO) sends the way
# OutQueue does: control on stream 0, critical services' DATA on stream 1, every other
# service on a stream of its own from 2 up (shared past n_streams). Both ends use the
# same plan; the endpoint answers a flow on the stream the gateway chose for it.
CONTROL_STREAM = 0  # control messages: reliable and ordered on stream 0
CRITICAL_STREAM = 1
PRIO_CONTROL, PRIO_CRITICAL, PRIO_DATA = 0, 1, 2  # lower is sent first


def data_stream(service_index: int, critical: bool, n_streams: int) -> int:
    """The stream a service's flows use (n_streams >= 3)."""
    return CRITICAL_STREAM if critical else 2 + service_index % (n_streams - 2)


def stream_priority(stream: int) -> int:
    return PRIO_CONTROL if stream == CONTROL_STREAM else PRIO_CRITICAL if stream == CRITICAL_STREAM else PRIO_DATA


@dataclass(slots=True)  # not frozen: one per datagram, and frozen init costs 3x
class Outgoing:
    data: bytes
    stream: int = CONTROL_STREAM
    ttl_ms: int = 0  # PR-SCTP lifetime; 0 = fully reliable
    to: Hashable | None = None  # a path (peer address) to force; None = the primary
    ordered: bool = False  # control messages are sent ordered
    service: str = ""  # for DATA: the service, so a drop is counted against it
    critical: bool = False
    assoc_id: int = 0  # on the endpoint's one-to-many socket

    @property
    def is_data(self) -> bool:
        return bool(self.service)


def control(msg: bytes, to: Hashable | None = None, assoc_id: int = 0) -> Outgoing:
    return Outgoing(msg, CONTROL_STREAM, 0, to, True, assoc_id=assoc_id)


class OutQueue:
    """Messages waiting for the socket, one FIFO per service, served by class: control
    messages first (few, always kept), then critical services' DATA, then the other
    services' DATA, round robin between the services of a class (one message each), so
    a busy service never holds a quiet one back for more than a message per service.

    `limit` DATA messages per service with something queued (a service may use an idle
    one's room). When full, the datagram dropped (queue_full) is the oldest of the
    longest non-critical service queue (fq_codel's choice), so a bulk service fills and
    loses only its own share and every other service keeps at least `limit`; a datagram
    of that longest service itself is refused instead (tail drop). A critical datagram
    may push out any non-critical one; only a queue of nothing but critical DATA refuses
    a critical one."""

    def __init__(self, limit: int, ledger: DropLedger) -> None:
        self.limit, self.ledger = limit, ledger
        self._control: deque[Outgoing] = deque()
        self._by_service: dict[tuple[bool, str], deque[Outgoing]] = {}
        self._turn: tuple[deque[tuple[bool, str]], deque[tuple[bool, str]]] = (deque(), deque())  # bulk, critical
        self._data = 0  # DATA messages queued
        self.evicted = 0  # datagrams dropped to make room for another service's

    def __len__(self) -> int:
        return len(self._control) + self._data

    def __iter__(self) -> Iterator[Outgoing]:
        """Everything queued: control, then critical, then the other services' DATA."""
        yield from self._control
        for turn in reversed(self._turn):
            for key in turn:
                yield from self._by_service[key]

    def push(self, item: Outgoing, now: float) -> bool:
        if not item.is_data:
            self._control.append(item)
            return True
        key = (item.critical, item.service)
        q = self._by_service.get(key)
        active = len(self._turn[0]) + len(self._turn[1]) + (not q)
        if self._data >= self.limit * active:
            victim = self._longest(key)
            if victim is None:
                self.ledger.count(drops.QUEUE_FULL, item.service, critical=item.critical, now=now)
                return False
            self._evict(victim, now)
        if q is None:
            q = self._by_service[key] = deque()
        if not q:
            self._turn[item.critical].append(key)
        q.append(item)
        self._data += 1
        return True

    def _longest(self, key: tuple[bool, str]) -> tuple[bool, str] | None:
        """The service queue to drop from to make room for one of `key`'s; None: refuse
        the new one (it is of the longest queue itself, or nothing may be pushed out)."""
        bulk = self._turn[False]
        if not bulk:
            return None
        longest = max(bulk, key=lambda k: len(self._by_service[k]))
        if longest == key or (not key[0] and len(self._by_service[longest]) <= len(self._by_service.get(key, ()))):
            return None
        return longest

    def _evict(self, key: tuple[bool, str], now: float) -> None:
        q = self._by_service[key]
        lost = q.popleft()
        self._data -= 1
        if not q:
            self._turn[key[0]].remove(key)
        self.evicted += 1
        self.ledger.count(drops.QUEUE_FULL, lost.service, now=now)

    def _head(self) -> deque[Outgoing] | None:
        if self._control:
            return self._control
        for turn in (self._turn[True], self._turn[False]):
            if turn:
                return self._by_service[turn[0]]
        return None

    def peek(self) -> Outgoing | None:
        q = self._head()
        return q[0] if q is not None else None

    def pop(self) -> Outgoing:
        """Takes what peek() showed, and gives the next service its turn."""
        if self._control:
            return self._control.popleft()
        turn = self._turn[True] if self._turn[True] else self._turn[False]
        key = turn.popleft()
        q = self._by_service[key]
        item = q.popleft()
        self._data -= 1
        if q:
            turn.append(key)
        return item

    def lose_all(self, now: float, reason: str = drops.ASSOC_LOST) -> int:
        """The association is gone: every queued DATA message is a lost datagram."""
        n = 0
        for turn in self._turn:
            for key in turn:
                for item in self._by_service[key]:
                    n += 1
                    self.ledger.count(reason, item.service, critical=item.critical, now=now)
                self._by_service[key].clear()
            turn.clear()
        self._control.clear()
        self._data = 0
        return n


def first_copy(flow: Flow, d: wire.Data) -> bool:
    """False for the second copy of a critical datagram (already delivered)."""
    return not d.flags & wire.FLAG_CRITICAL or flow.dedup_window().accept(d.seq)


ABANDON_MEMORY = 4096  # critical seqs remembered to pair the two copies' fates


class Abandoned:
    """Messages SCTP gave up on (SCTP_SEND_FAILED_EVENT: PR-SCTP lifetime over, or unsent
    when the association ended): which of them are lost datagrams. A critical datagram
    is lost only when both its copies were abandoned (or it had no copy)."""

    def __init__(self) -> None:
        self._solo: dict[tuple[int, int], None] = {}  # critical sent without a copy
        self._half: dict[tuple[int, int], None] = {}  # one copy abandoned so far

    def solo(self, flow_id: int, seq: int) -> None:
        _remember(self._solo, (flow_id, seq))

    def lost(self, msg: bytes) -> wire.Data | None:
        """The DATA it carried if this abandonment loses a datagram, else None."""
        try:
            d = wire.decode_data(msg)
        except wire.WireError:
            return None  # control message or a later fragment: no datagram of its own
        if not d.flags & wire.FLAG_CRITICAL:
            return d
        key = (d.flow_id, d.seq)
        if self._solo.pop(key, 1) is None or self._half.pop(key, 1) is None:
            return d
        _remember(self._half, key)
        return None


def _remember(d: dict, key) -> None:
    d[key] = None
    while len(d) > ABANDON_MEMORY:
        del d[next(iter(d))]


def data_messages(svc_index: int, flow_id: int, flow: Flow, payload: bytes, service: str, ttl_ms: int,
                  critical: bool, copy_path: Hashable | None, abandoned: Abandoned,
                  assoc_id: int = 0) -> list[Outgoing]:
    """The DATA message for one datagram; for a critical service a second copy forced
    onto `copy_path` (the best other path), both with the same seq. `flow_id` is the id
    on the wire (the gateway's: the endpoint keys its flows by it); `flow` numbers seqs."""
    if not critical:
        return [Outgoing(wire.encode_data(svc_index, flow_id, payload), flow.stream, ttl_ms,
                         service=service, assoc_id=assoc_id)]
    seq = flow.next_seq()
    if copy_path is None:
        abandoned.solo(flow_id, seq)
    out = [Outgoing(wire.encode_data(svc_index, flow_id, payload, seq, wire.FLAG_CRITICAL),
                    flow.stream, ttl_ms, service=service, critical=True, assoc_id=assoc_id)]
    if copy_path is not None:
        out.append(Outgoing(wire.encode_data(svc_index, flow_id, payload, seq,
                                             wire.FLAG_CRITICAL | wire.FLAG_COPY),
                            flow.stream, ttl_ms, copy_path, service=service, critical=True,
                            assoc_id=assoc_id))
    return out
