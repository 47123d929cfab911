"""Interface byte counters of test-bed namespaces, sampled in a thread.

Which uplink carries the traffic is read from the gateway's own devices (bytes sent on
main0 vs fb0), the same way for every relay (socat's kernel SCTP, haig): no relay has
to report it. netem drops packets before the device, so a lossy link's lost packets are
not counted as sent. A thread entering a namespace reads that namespace's
/proc/thread-self/net/dev (/proc/self/net would show the process's own).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.testbed.netns import Netns


def read_dev(ns: Netns) -> dict[str, tuple[int, int]]:
    """{device: (rx_bytes, tx_bytes)} in `ns`."""
    with ns.enter(), open("/proc/thread-self/net/dev") as f:
        lines = f.read().splitlines()[2:]
    out = {}
    for line in lines:
        name, _, rest = line.partition(":")
        cols = rest.split()
        out[name.strip()] = (int(cols[0]), int(cols[8]))
    return out


@dataclass
class Sampler:
    """Every `interval` s: (time.monotonic(), tx bytes of each watched (ns, device))."""

    watch: list[tuple[Netns, str]]
    interval: float = 0.1
    samples: list[tuple[float, list[int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._t.start()
        return self

    def _run(self) -> None:
        nss = {id(ns): ns for ns, _ in self.watch}
        while not self._stop.is_set():
            t = time.monotonic()
            devs = {k: read_dev(ns) for k, ns in nss.items()}
            self.samples.append((t, [devs[id(ns)].get(d, (0, 0))[1] for ns, d in self.watch]))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def stop(self) -> list[tuple[float, list[int]]]:
        self._stop.set()
        self._t.join()
        return self.samples
