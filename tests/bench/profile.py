"""Where does haig's CPU go per datagram? Both daemons relay a UDP stream (1200 B every
2 ms, the size of OpenVPN's packets, gateway → endpoint).

Phase 1, plain daemons: CPU per datagram of each, syscalls per datagram (strace -c on a
window), memory per daemon idle and loaded. Phase 2, fresh daemons under cProfile (the
same load): call counts per datagram (exact: allocations of dataclasses, struct packs,
status bookkeeping, syscalls wrapped by Python) and the top functions by own time.
cProfile slows the process (~2x): read its times as shares, phase 1 for absolute CPU.
The profile covers the daemon's whole life: with few datagrams (a starved VM) start-up
(imports) dominates it; the call counts of the per-datagram functions stay exact.

Usage (in the VM): python -m tests.bench profile [--quick]
"""

from __future__ import annotations

import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

from tests.bench import probe
from tests.testbed import topology, traffic
from tests.testbed.haig_procs import Haig, Service, endpoint_config, gateway_config, paths_active
from tests.testbed.proc import cpu_seconds, rss_kib, tree

PORT, SVC = 9550, 9551


def strace_counts(pid: int, seconds: float) -> dict[str, int]:
    """Syscall counts of a process (all threads) over `seconds` (strace -c)."""
    if not shutil.which("strace"):
        return {}
    out = subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-c", "-f", "-p", str(pid)],
                         capture_output=True, text=True).stderr
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1].isidentifier() and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
    return counts


class Load:
    """Daemons up, the UDP stream flowing into the gateway, the sink counting."""

    def __init__(self, topo, tmp: Path, profiled: bool) -> None:
        self.topo, self.tmp, self.profiled = topo, tmp, profiled
        svc = [Service("vpn", f"{topo.gw_lan_addr}:{SVC}", f"{topo.server_addr}:{SVC}")]
        self.ep = self._haig(topo.ep, endpoint_config(topo, PORT, svc), "ep")
        self.gw = self._haig(topo.gw, gateway_config(topo, PORT, svc, main={"log_level": "warning"}), "gw")
        self.sink = self.snd = self.cli = None

    def _haig(self, ns, conf: str, name: str) -> Haig:
        h = Haig(ns, conf, name)
        if not self.profiled:
            return h.start()
        # Start `python -m cProfile -o <file> -m haig run ...`: a wrapper as the interpreter.
        wrapper = self.tmp / "python-cprofile"
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m cProfile -o "$HAIG_PROFILE_OUT" "$@"\n')
        wrapper.chmod(0o755)
        h.extra_env = {"HAIG_PROFILE_OUT": str(self.tmp / f"{name}.prof")}
        with mock.patch.object(sys, "executable", str(wrapper)):
            return h.start()

    def start(self) -> Load:
        self.gw.wait_for(paths_active, 300, "association up with both paths active")
        self.sink = traffic.Sink(traffic.udp_in(self.topo.server, (self.topo.server_addr, SVC))).start()
        self.cli = traffic.udp_in(self.topo.client)
        self.snd = traffic.Sender(self.cli, (self.topo.gw_lan_addr, SVC), interval=0.002, size=1200).start()
        time.sleep(2.0)
        return self

    @property
    def relayed(self) -> int:
        return len(self.sink.rec.seqs) if self.sink else 0

    def stop(self) -> dict:
        out = {}
        if self.snd:
            out["sent"] = self.snd.stop().sent
            time.sleep(1.0)
            out["lost"] = out["sent"] - len(set(self.sink.stop().seqs))
            self.cli.close()
        for d in (self.gw, self.ep):
            d.stop()
        return out

    def daemons(self) -> dict[str, int]:
        return {"gateway": self.gw.proc.pid, "endpoint": self.ep.proc.pid}


def plain_phase(topo, tmp: Path, seconds: float) -> dict:
    load = Load(topo, tmp, profiled=False)
    row: dict = {}
    try:
        pids = load.daemons()
        load.start()
        row["rss_idle_kib"] = {n: rss_kib(tree(p)) for n, p in pids.items()}
        cpu0 = {n: cpu_seconds(tree(p)) for n, p in pids.items()}
        n0, t0 = load.relayed, time.monotonic()
        time.sleep(seconds)
        cpu1 = {n: cpu_seconds(tree(p)) for n, p in pids.items()}
        relayed, dt = load.relayed - n0, time.monotonic() - t0
        row.update(datagrams=relayed, per_s=relayed / dt,
                   cpu_us_per_dgram={n: (cpu1[n] - cpu0[n]) / max(1, relayed) * 1e6 for n in pids},
                   cpu_share={n: (cpu1[n] - cpu0[n]) / dt for n in pids})
        sc: dict[str, dict] = {}
        n0 = load.relayed
        ths = [threading.Thread(target=lambda n=n, p=p: sc.__setitem__(n, strace_counts(p, min(6.0, seconds))))
               for n, p in pids.items()]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        n = max(1, load.relayed - n0)
        row["strace_datagrams"] = n
        row["syscalls_per_dgram"] = {d: {k: round(v / n, 2) for k, v in sorted(c.items(), key=lambda kv: -kv[1])[:8]}
                                     for d, c in sc.items()}
        row["rss_loaded_kib"] = {n: rss_kib(tree(p)) for n, p in pids.items()}
    finally:
        row.update(load.stop())
    return row


def profiled_phase(topo, tmp: Path, seconds: float, top: int = 22) -> dict:
    load = Load(topo, tmp, profiled=True)
    row: dict = {}
    try:
        load.start()
        n0 = load.relayed
        time.sleep(seconds)
        row["datagrams"] = load.relayed  # the profile covers the whole run, start-up included
        row["window_datagrams"] = load.relayed - n0
    finally:
        row.update(load.stop())
    n = max(1, row["datagrams"])
    for name in ("gw", "ep"):
        f = tmp / f"{name}.prof"
        if not f.exists():
            row[name] = "no profile written (did the daemon exit on SIGTERM?)"
            continue
        st = pstats.Stats(str(f))
        items = []
        for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():
            short = "/".join(file.split(os.sep)[-2:])
            items.append({"fn": f"{fn} ({short}:{line})", "calls_per_dgram": nc / n, "tottime_s": tt, "cumtime_s": ct})
        total = sum(i["tottime_s"] for i in items) or 1.0
        own = sorted(items, key=lambda i: -i["tottime_s"])[:top]
        busy = sorted((i for i in items if i["calls_per_dgram"] >= 0.5), key=lambda i: -i["calls_per_dgram"])[:top]
        row[name] = {"total_s": total, "own": [{**i, "share": i["tottime_s"] / total} for i in own],
                     "calls": busy}
    return row


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    seconds = 8.0 if "--quick" in argv else 20.0
    tmp = Path(tempfile.mkdtemp(prefix="haig-profile-"))
    topo = topology.build()
    try:
        plain = plain_phase(topo, tmp, seconds)
        prof = profiled_phase(topo, tmp, seconds)
    finally:
        topo.teardown()
    print(f"\nplain daemons: {plain.get('datagrams')} datagrams of 1200 B relayed in {seconds:.0f} s "
          f"({plain.get('per_s', 0):.0f}/s; sent {plain.get('sent')}, lost {plain.get('lost')})")
    for n, v in plain.get("cpu_us_per_dgram", {}).items():
        print(f"  {n}: CPU {v:.0f} µs per datagram ({100 * plain['cpu_share'][n]:.0f} % of a CPU); RSS idle "
              f"{plain['rss_idle_kib'][n] / 1024:.1f} MiB, loaded {plain['rss_loaded_kib'][n] / 1024:.1f} MiB")
    print(f"syscalls per datagram ({plain.get('strace_datagrams')} datagrams under strace):")
    for n, c in plain.get("syscalls_per_dgram", {}).items():
        print(f"  {n}: {c or 'no counts (strace -c printed no summary here)'}")
    for name in ("gw", "ep"):
        r = prof.get(name)
        if not isinstance(r, dict):
            print(f"\n{name}: {r}")
            continue
        print(f"\n{name} under cProfile ({prof['datagrams']} datagrams; {r['total_s']:.1f} s of own time in all):")
        print("  own time:")
        for i in r["own"]:
            print(f"    {100 * i['share']:5.1f} %  {i['calls_per_dgram']:6.2f}/dgram  {i['fn']}")
        print("  calls per datagram:")
        for i in r["calls"]:
            print(f"    {i['calls_per_dgram']:6.2f}  {i['fn']}")
    probe.save("profile", {"plain": plain, "profiled": prof})
    return 0


if __name__ == "__main__":
    sys.exit(main())
