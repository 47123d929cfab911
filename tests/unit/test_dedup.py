"""DedupWindow: first copy in, second copy out, across reordering and 32-bit wrap."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haig.core.dedup import SEQ_MOD, DedupWindow, seq_newer, seq_next


def test_first_copy_accepted_second_refused():
    w = DedupWindow(16)
    assert w.accept(5) is True
    assert w.accept(5) is False
    assert w.accept(6) is True
    assert w.accept(6) is False
    assert (w.accepted, w.duplicates, w.too_old) == (2, 2, 0)


def test_reordered_copies_from_two_paths():
    # Fast path delivers 0..9 in order, slow path the same seqs later and out of order.
    w = DedupWindow(64)
    fast = list(range(10))
    slow = [3, 0, 9, 1, 2, 8, 4, 7, 5, 6]
    assert [w.accept(s) for s in fast] == [True] * 10
    assert [w.accept(s) for s in slow] == [False] * 10


def test_late_first_copy_inside_window_is_accepted_once():
    w = DedupWindow(8)
    assert w.accept(10)
    assert w.accept(7)  # older, never seen
    assert not w.accept(7)
    assert w.accept(3)  # 10 - 3 = 7 < 8: still inside
    assert not w.accept(2)  # 8 behind: outside the window
    assert w.too_old == 1


def test_big_jump_forward_clears_the_window():
    w = DedupWindow(8)
    for s in range(5):
        w.accept(s)
    assert w.accept(1000)
    assert not w.accept(4)  # too old now
    assert w.accept(999)
    assert w.highest == 1000


def test_wraparound():
    w = DedupWindow(32)
    top = SEQ_MOD - 1
    seqs = [top - 3, top - 2, top - 1, top, 0, 1, 2]
    assert [w.accept(s) for s in seqs] == [True] * 7
    assert w.highest == 2
    assert [w.accept(s) for s in seqs] == [False] * 7  # both sides of the wrap remembered
    assert w.accept(top - 4)  # just before, still in the window, across the wrap


def test_half_space_apart_counts_as_old():
    w = DedupWindow(16)
    w.accept(0)
    assert not w.accept(SEQ_MOD // 2)  # RFC 1982 undefined: refused, not a reset
    assert w.highest == 0


def test_serial_helpers():
    assert seq_next(SEQ_MOD - 1) == 0
    assert seq_newer(0, SEQ_MOD - 1) and not seq_newer(SEQ_MOD - 1, 0)
    assert not seq_newer(5, 5)


def test_bad_arguments():
    with pytest.raises(ValueError):
        DedupWindow(0)
    with pytest.raises(ValueError):
        DedupWindow(8).accept(SEQ_MOD)
    with pytest.raises(ValueError):
        DedupWindow(8).accept(-1)


def test_reset_forgets():
    w = DedupWindow(8)
    w.accept(100)
    w.reset()
    assert w.highest is None
    assert w.accept(100) and not w.accept(100)


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, SEQ_MOD - 1),
    n=st.integers(1, 300),
    jitter=st.integers(0, 40),
    seed=st.integers(0, 2**16),
)
def test_two_reordered_copies_deliver_each_seq_exactly_once(start, n, jitter, seed):
    """Every seq sent twice, with reordering smaller than the window: exactly one passes."""
    rng = random.Random(seed)
    seqs = [(start + i) % SEQ_MOD for i in range(n)]
    arrivals = [(i + rng.uniform(0, jitter), s) for i, s in enumerate(seqs)]
    arrivals += [(i + rng.uniform(0, jitter), s) for i, s in enumerate(seqs)]
    arrivals.sort()
    w = DedupWindow(128)
    delivered = [s for _, s in arrivals if w.accept(s)]
    assert sorted(delivered) == sorted(seqs)
    assert w.duplicates == n and w.too_old == 0


def test_epoch_dedup_a_restarted_numbering_is_a_new_window_not_old():
    from haig.core.dedup import EpochDedup, epoch_seq

    d = EpochDedup(64)
    assert all(d.accept(epoch_seq(7, c)) for c in range(5000))
    # the sender re-opened the flow (re-association, or it expired the flow): new epoch
    assert d.accept(epoch_seq(9, 0)) and not d.accept(epoch_seq(9, 0))
    # a copy from the previous instance still in flight meets its own window
    assert not d.accept(epoch_seq(7, 4999)) and d.accept(epoch_seq(9, 1))
    assert d.duplicates == 2
    # a third instance evicts the oldest window
    assert d.accept(epoch_seq(3, 0)) and d.accept(epoch_seq(7, 4999))
