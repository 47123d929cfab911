"""Duplicate suppression for critical datagrams.

A critical datagram travels on two paths with the same (flow_id, seq); the receiver keeps
one `DedupWindow` per flow and delivers only the first copy. `seq` is a 32-bit serial
number that wraps (RFC 1982 arithmetic): "newer" means ahead by less than 2**31.

The window remembers the highest seq seen and a bitmap of the `size` seqs below it.
A seq older than the window is refused: its twin was delivered long ago or it is too
late to matter. So a sender that restarts its numbering must do it with a new flow (the
relay drops a flow's window with the flow, and all of a gateway's flows when its
association restarts); otherwise its first 2**31 seqs could look old.

`EpochDedup` makes that hold whatever the other side does: a critical seq carries the
sender's flow *epoch* in its top 8 bits (a fresh random epoch for every flow instance
the sender opens, e.g. after a re-association or after it expired the flow) and a
24-bit counter below. The receiver keeps one window per recent epoch, so a restarted
numbering starts a new window instead of looking old; a copy still in flight from the
previous instance meets its own (kept) window.
"""

from __future__ import annotations

from collections import OrderedDict

SEQ_BITS = 32
SEQ_MOD = 1 << SEQ_BITS
SEQ_HALF = 1 << (SEQ_BITS - 1)


def seq_next(seq: int) -> int:
    """The seq after `seq`, wrapping at 2**32."""
    return (seq + 1) % SEQ_MOD


def seq_newer(a: int, b: int) -> bool:
    """RFC 1982: a is after b (undefined at exactly 2**31 apart: treated as not newer)."""
    return 0 < (a - b) % SEQ_MOD < SEQ_HALF


class DedupWindow:
    __slots__ = ("size", "_top", "_bits", "_mask", "accepted", "duplicates", "too_old")

    def __init__(self, size: int = 4096) -> None:
        if not 1 <= size < SEQ_HALF:
            raise ValueError("size must be in 1 .. 2**31-1")
        self.size = size
        self._mask = (1 << size) - 1
        self.accepted = 0
        self.duplicates = 0
        self.too_old = 0
        self.reset()

    def reset(self) -> None:
        self._top: int | None = None  # highest seq accepted
        self._bits = 0  # bit i set: seq top - i was accepted (i < size)

    @property
    def highest(self) -> int | None:
        return self._top

    def accept(self, seq: int) -> bool:
        """True the first time `seq` is seen; False for a duplicate or a seq older than the window."""
        if not 0 <= seq < SEQ_MOD:
            raise ValueError(f"seq {seq} is not a 32-bit unsigned integer")
        if self._top is None:
            self._top, self._bits = seq, 1
            return self._ok()
        ahead = (seq - self._top) % SEQ_MOD
        if 0 < ahead < SEQ_HALF:
            self._bits = ((self._bits << ahead) | 1) & self._mask if ahead < self.size else 1
            self._top = seq
            return self._ok()
        behind = (self._top - seq) % SEQ_MOD  # 0 (same as top) .. 2**31
        if behind >= self.size:
            self.too_old += 1
            return False
        bit = 1 << behind
        if self._bits & bit:
            self.duplicates += 1
            return False
        self._bits |= bit
        return self._ok()

    def _ok(self) -> bool:
        self.accepted += 1
        return True


EPOCH_SHIFT = 24
COUNTER_MOD = 1 << EPOCH_SHIFT
EPOCHS = 256
EPOCHS_KEPT = 2  # windows per flow: the current sender instance and the one before


def epoch_seq(epoch: int, counter: int) -> int:
    return (epoch % EPOCHS) << EPOCH_SHIFT | counter % COUNTER_MOD


class EpochDedup:
    """Per-flow duplicate suppression over (epoch, counter) seqs; see the module doc."""

    __slots__ = ("size", "_windows")

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._windows: OrderedDict[int, DedupWindow] = OrderedDict()

    def accept(self, seq: int) -> bool:
        if not 0 <= seq < SEQ_MOD:
            raise ValueError(f"seq {seq} is not a 32-bit unsigned integer")
        epoch = seq >> EPOCH_SHIFT
        w = self._windows.get(epoch)
        if w is None:
            w = self._windows[epoch] = DedupWindow(self.size)
            while len(self._windows) > EPOCHS_KEPT:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(epoch)
        return w.accept(seq & (COUNTER_MOD - 1))

    def reset(self) -> None:
        self._windows.clear()

    @property
    def duplicates(self) -> int:
        return sum(w.duplicates for w in self._windows.values())
