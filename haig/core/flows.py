"""Flow table: which UDP conversation a datagram belongs to, and its SCTP stream.

Gateway: a flow is one UDP client, keyed by what the relay chooses (e.g. (service, host,
port)). Endpoint: the same table keyed by (gateway_id, flow_id), one table per gateway.
Each flow gets a 32-bit id, unique in the table, never 0 (free for control messages), and
not reused soon: ids count up and wrap, skipping ids in use. Pass a random `first_id` on
the gateway so a restarted daemon does not reuse the ids its previous run gave the
endpoint. Flows are spread over `n_streams` SCTP streams from `first_stream`.

The table is bounded (`max_flows`: when full, `get_or_open` returns None and the caller
drops the datagram) and forgets flows idle for `idle_s` seconds (`expire(now)`, driven by
`get_timer()`). Pure: time comes in as `now`, which must not go backwards.

Counters are seen from the flow's UDP side: rx = datagrams received from the flow's UDP
peer (client on the gateway, target on the endpoint) and carried over the link; tx =
datagrams that came over the link and were sent to it.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from haig.core.dedup import COUNTER_MOD, EPOCHS, EpochDedup, epoch_seq

FLOW_ID_MAX = 0xFFFFFFFF


@dataclass(eq=False, slots=True)
class Flow:
    id: int
    key: Hashable
    stream: int
    opened: float
    last_seen: float
    service: str = ""
    critical: bool = False
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    drops: int = 0
    tx_seq: int = 0  # next counter for this flow's critical datagrams (sender side)
    epoch: int = 0  # this instance's seq epoch (set by the table: differs from the last instance's)
    dedup: EpochDedup | None = None  # receiver side, made on first use
    data: Any = field(default=None, repr=False)  # the relay's handle (e.g. its UDP socket)

    def count_rx(self, nbytes: int) -> None:
        self.rx_packets += 1
        self.rx_bytes += nbytes

    def count_tx(self, nbytes: int) -> None:
        self.tx_packets += 1
        self.tx_bytes += nbytes

    def next_seq(self) -> int:
        """(epoch, counter) as one 32-bit seq (haig.core.dedup); the counter running
        out moves to the next epoch, which the receiver sees as a fresh window."""
        seq = epoch_seq(self.epoch, self.tx_seq)
        self.tx_seq += 1
        if self.tx_seq == COUNTER_MOD:
            self.tx_seq, self.epoch = 0, (self.epoch + 1) % EPOCHS
        return seq

    def dedup_window(self, size: int = 4096) -> EpochDedup:
        if self.dedup is None:
            self.dedup = EpochDedup(size)
        return self.dedup


def format_client(key: Hashable) -> str:
    """'host:port' for a key ending in (host, port), '[v6]:port' for IPv6; str() otherwise."""
    if isinstance(key, tuple) and len(key) >= 2 and isinstance(key[-2], str) and isinstance(key[-1], int):
        host, port = key[-2], key[-1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(key)


class FlowTable:
    def __init__(
        self,
        max_flows: int,
        idle_s: float,
        n_streams: int = 10,
        first_stream: int = 0,
        first_id: int = 1,
        first_epoch: int | None = None,
    ) -> None:
        if max_flows < 1 or idle_s <= 0 or n_streams < 1 or first_stream < 0:
            raise ValueError("max_flows >= 1, idle_s > 0, n_streams >= 1, first_stream >= 0")
        if not 1 <= first_id <= FLOW_ID_MAX:
            raise ValueError("first_id must be in 1 .. 2**32-1")
        self.max_flows = max_flows
        self.idle_s = idle_s
        self.n_streams = n_streams
        self.first_stream = first_stream
        self._next_id = first_id
        # Each flow instance numbers its critical seqs in its own epoch (haig.core.dedup):
        # counting up, so a flow re-opened after it expired never reuses the epoch of
        # its previous instance (unless 256 flows were opened in between); random start,
        # so a restarted daemon does not start where the previous one did.
        self._epoch = random.randrange(EPOCHS) if first_epoch is None else first_epoch % EPOCHS
        self._by_key: dict[Hashable, Flow] = {}
        self._by_id: OrderedDict[int, Flow] = OrderedDict()  # least recently seen first
        self.opened_total = 0
        self.expired_total = 0
        self.refused = 0  # opens refused because the table was full

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Flow]:
        return iter(list(self._by_id.values()))

    @property
    def full(self) -> bool:
        return len(self._by_id) >= self.max_flows

    def get(self, key: Hashable) -> Flow | None:
        return self._by_key.get(key)

    def by_id(self, flow_id: int) -> Flow | None:
        return self._by_id.get(flow_id)

    def get_or_open(
        self,
        key: Hashable,
        now: float,
        *,
        stream: int | None = None,
        service: str = "",
        critical: bool = False,
    ) -> Flow | None:
        """The flow for `key`, touched at `now`; a new one if unknown; None if the table is full.

        `stream` pins a new flow's stream (the endpoint answers on the gateway's stream);
        service/critical only apply to a new flow."""
        flow = self._by_key.get(key)
        if flow is not None:
            self._touch(flow, now)
            return flow
        if self.full:
            self.refused += 1
            return None
        fid = self._alloc_id()
        if stream is None:
            stream = self.first_stream + fid % self.n_streams
        flow = Flow(fid, key, stream, now, now, service=service, critical=critical, epoch=self._epoch)
        self._epoch = (self._epoch + 1) % EPOCHS
        self._by_key[key] = flow
        self._by_id[fid] = flow
        self.opened_total += 1
        return flow

    def seen(self, flow: Flow, now: float) -> None:
        """`flow` (of this table, from get/by_id) carried a datagram at `now`."""
        self._touch(flow, now)

    def touch(self, flow_id: int, now: float) -> Flow | None:
        flow = self._by_id.get(flow_id)
        if flow is not None:
            self._touch(flow, now)
        return flow

    def close(self, flow_id: int) -> Flow | None:
        flow = self._by_id.pop(flow_id, None)
        if flow is not None:
            del self._by_key[flow.key]
        return flow

    def clear(self) -> list[Flow]:
        """Forget every flow (e.g. the peer's association restarted); returns them."""
        flows = list(self._by_id.values())
        self._by_id.clear()
        self._by_key.clear()
        return flows

    def expire(self, now: float) -> list[Flow]:
        """Remove and return the flows idle for idle_s or more."""
        gone = []
        while self._by_id:
            flow = next(iter(self._by_id.values()))
            if now < self._deadline(flow):
                break
            self.close(flow.id)
            gone.append(flow)
        self.expired_total += len(gone)
        return gone

    def get_timer(self) -> float | None:
        """When the least recently seen flow expires, or None when empty."""
        if not self._by_id:
            return None
        return self._deadline(next(iter(self._by_id.values())))

    def snapshot(
        self,
        now: float | None = None,
        key_fmt: Callable[[Hashable], str] = format_client,
    ) -> list[dict[str, Any]]:
        """Flows for the status model, most recently seen first."""
        out = []
        for f in reversed(self._by_id.values()):
            d = {
                "id": f.id,
                "client": key_fmt(f.key),
                "service": f.service,
                "critical": f.critical,
                "stream": f.stream,
                "opened": f.opened,
                "last_seen": f.last_seen,
                "rx_packets": f.rx_packets,
                "rx_bytes": f.rx_bytes,
                "tx_packets": f.tx_packets,
                "tx_bytes": f.tx_bytes,
                "drops": f.drops,
            }
            if now is not None:
                d["idle_s"] = max(0.0, now - f.last_seen)
            out.append(d)
        return out

    def _deadline(self, flow: Flow) -> float:
        return flow.last_seen + self.idle_s

    def _touch(self, flow: Flow, now: float) -> None:
        flow.last_seen = now
        self._by_id.move_to_end(flow.id)

    def _alloc_id(self) -> int:
        # Count up through 1 .. 2**32-1 and wrap; skip ids still in use (the table is
        # never full here, so a free one exists).
        while True:
            fid = self._next_id
            self._next_id = fid % FLOW_ID_MAX + 1
            if fid not in self._by_id:
                return fid
