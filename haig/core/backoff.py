"""Reconnect back-off as a pure schedule: exponential, jittered, capped.

Two caps on purpose: while some uplink has its link and a local address the peer may
come back any second (endpoint restart, a carrier outage ending), so the wait stays
short (`cap_links_up`); with every uplink down there is nothing to gain from trying
often and the wait may grow to `cap`. Link-up and address events shortcut the wait
altogether (the driver wakes up early), so a long wait never delays a returning link.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BACKOFF_FIRST = 0.5  # s: first retry after a failure
BACKOFF_CAP = 30.0  # s: longest wait while no uplink is usable
BACKOFF_CAP_LINKS_UP = 2.0  # s: longest wait while an uplink is up (peer may return any time)
BACKOFF_JITTER = 0.2  # +/- fraction, so many homes do not retry in lock step


class Backoff:
    def __init__(self, first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP,
                 cap_links_up: float = BACKOFF_CAP_LINKS_UP, jitter: float = BACKOFF_JITTER,
                 rand: Callable[[float, float], float] = random.uniform) -> None:
        if not 0 < first <= cap_links_up <= cap or not 0 <= jitter < 1:
            raise ValueError("0 < first <= cap_links_up <= cap and 0 <= jitter < 1")
        self.first, self.cap, self.cap_links_up, self.jitter = first, cap, cap_links_up, jitter
        self._rand = rand
        self._next = first
        self.failures = 0  # consecutive failures since the last reset()

    def reset(self) -> None:
        """After a success (an admitted association): the next failure retries soon."""
        self._next = self.first
        self.failures = 0

    def next_delay(self, links_up: bool) -> float:
        """The wait before the next attempt after one more failure."""
        self.failures += 1
        base = min(self._next, self.cap_links_up if links_up else self.cap)
        self._next = min(self.cap, self._next * 2)
        return base * self._rand(1 - self.jitter, 1 + self.jitter)
