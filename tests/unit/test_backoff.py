"""Reconnect back-off: doubles from the first wait, capped low while a link is up,
higher when every uplink is down, jittered, reset after success."""

import pytest

from haig.core.backoff import Backoff


def _no_jitter(lo: float, hi: float) -> float:
    return (lo + hi) / 2


def test_schedule_doubles_and_caps_low_while_links_are_up():
    b = Backoff(first=0.5, cap=30, cap_links_up=2, rand=_no_jitter)
    assert [b.next_delay(links_up=True) for _ in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert b.failures == 5


def test_without_links_the_wait_grows_to_the_cap_and_reset_starts_over():
    b = Backoff(first=0.5, cap=30, cap_links_up=2, rand=_no_jitter)
    delays = [b.next_delay(links_up=False) for _ in range(8)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert b.next_delay(links_up=True) == 2  # links back: short again at once
    b.reset()
    assert b.next_delay(links_up=False) == 0.5 and b.failures == 1


def test_jitter_stays_within_its_fraction():
    b = Backoff(first=1, cap=8, cap_links_up=8, jitter=0.2)
    for _ in range(50):
        b.reset()
        assert 0.8 <= b.next_delay(links_up=True) <= 1.2


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        Backoff(first=3, cap=30, cap_links_up=2)
