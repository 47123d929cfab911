"""Main-link loss switched without starting a process at the moment it matters.

`Impairments.loss` runs `ip netns exec … tc` per end, one after the other: on a loaded
host under TCG that took 13–28 s (measured), which smears a 5 s fault over most of a run.
Here one `tc -n <ns> -batch -` per end is started beforehand; tc executes each line as it
arrives, so a change costs a pipe write. Same netem line as `Impairments.loss`.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass

from tests.testbed.impair import Change
from tests.testbed.topology import MAIN


@dataclass
class LossSwitch:
    topo: object

    def __post_init__(self) -> None:
        lk = self.topo.links[MAIN]
        self._ends = [(self.topo.gw, lk.gw_dev), (self.topo.ep, lk.ep_dev)]
        self._log = tempfile.TemporaryFile()
        self._procs = [subprocess.Popen(["tc", "-n", ns.name, "-batch", "-"], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=self._log, text=True)
                       for ns, _ in self._ends]

    def loss(self, percent: float) -> Change:
        """Both ends at once; `effective` = when both lines were handed to tc."""
        t0 = time.monotonic()
        for p, (_, dev) in zip(self._procs, self._ends, strict=True):
            if p.poll() is not None:
                raise RuntimeError(f"tc -batch exited ({p.returncode}): {self.errors()}")
            p.stdin.write(f"qdisc change dev {dev} root netem delay 0ms limit 10000 loss {percent}%\n")
            p.stdin.flush()
        return Change(f"loss {percent}%", MAIN, t0, time.monotonic())

    def errors(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-1000:]

    def close(self) -> None:
        """EOF: tc runs what is left and exits."""
        for p in self._procs:
            if p.poll() is None:
                p.stdin.close()
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
