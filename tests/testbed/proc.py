"""Background programs in the test bed's namespaces (OpenVPN, socat, iperf3): started
with `ip netns exec` (which execs, so the Popen pid is the program's own), output kept
in a log, stopped by PID together with the children they forked (socat's `fork`).
Also what the benchmark reads about any process tree: RSS and CPU time from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.netns import Netns

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2:].split()


def descendants(pid: int) -> list[int]:
    """pid's children, grandchildren... (alive now), parents before children."""
    parent_of: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = _stat_fields(int(d))
            if f is not None:
                parent_of[int(d)] = int(f[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent_of.items() if pp in frontier]
        out += kids
        frontier = kids
    return out


def tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system time the processes used so far (threads included)."""
    total = 0
    for pid in pids:
        f = _stat_fields(pid)
        if f is not None:
            total += int(f[11]) + int(f[12])  # utime, stime (fields 14, 15 of stat)
    return total / _TICK


@dataclass
class Proc:
    ns: Netns
    argv: list[str]
    name: str
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self) -> Proc:
        d = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.log_path = d / "out.log"
        with open(self.log_path, "wb") as out:
            self.proc = self.ns.popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def pids(self) -> list[int]:
        return tree(self.pid) if self.alive() else []

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the program and everything it forked, SIGKILL what lingers."""
        if self.proc is None:
            return
        pids = self.pids()
        for pid in reversed(pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.monotonic() + timeout
        for pid in pids[1:]:  # forked children are not ours to wait(): poll /proc
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
