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

CONTROL_STREAM = 0  # control messages: reliable and ordered on stream 0


@dataclass(frozen=True, slots=True)
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
    """Messages waiting for the socket. DATA beyond `limit` is dropped (queue_full);
    control messages are few and always kept. A critical datagram finding the queue
    full evicts the oldest queued non-critical one instead (that one is counted as
    queue_full); only a queue of nothing but critical DATA drops a critical one."""

    def __init__(self, limit: int, ledger: DropLedger) -> None:
        self.limit, self.ledger = limit, ledger
        self._q: deque[Outgoing] = deque()
        self.evicted = 0  # non-critical datagrams dropped to make room for critical ones

    def __len__(self) -> int:
        return len(self._q)

    def __iter__(self) -> Iterator[Outgoing]:
        return iter(self._q)

    def push(self, item: Outgoing, now: float) -> bool:
        if item.is_data and len(self._q) >= self.limit:
            victim = self._evictable() if item.critical else None
            if victim is None:
                self.ledger.count(drops.QUEUE_FULL, item.service, critical=item.critical, now=now)
                return False
            lost = self._q[victim]
            del self._q[victim]
            self.evicted += 1
            self.ledger.count(drops.QUEUE_FULL, lost.service, now=now)
        self._q.append(item)
        return True

    def _evictable(self) -> int | None:
        """Index of the oldest non-critical DATA message (O(n), only when full)."""
        for i, it in enumerate(self._q):
            if it.is_data and not it.critical:
                return i
        return None

    def peek(self) -> Outgoing | None:
        return self._q[0] if self._q else None

    def pop(self) -> Outgoing:
        return self._q.popleft()

    def lose_all(self, now: float, reason: str = drops.ASSOC_LOST) -> int:
        """The association is gone: every queued DATA message is a lost datagram."""
        n = 0
        for item in self._q:
            if item.is_data:
                n += 1
                self.ledger.count(reason, item.service, critical=item.critical, now=now)
        self._q.clear()
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
