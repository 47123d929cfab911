"""Where does haig's CPU go per datagram? Both daemons relay a UDP stream (1200 B every
2 ms, the size of OpenVPN's packets) while py-spy samples them (and strace counts their
syscalls in a second window); prints CPU per datagram, syscalls per datagram, memory per
daemon, and the top functions by own time and by inclusive time.

Usage (in the VM): python -m tests.bench profile [--quick]
Needs py-spy (pip install py-spy) and strace; a missing tool is reported and skipped.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.bench import probe
from tests.testbed import topology, traffic
from tests.testbed.haig_procs import Haig, Service, endpoint_config, gateway_config, paths_active
from tests.testbed.proc import cpu_seconds, rss_kib, tree

PORT, SVC = 9550, 9551
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^:]*):?(?P<line>\d*)\)$")


def _pyspy() -> str | None:
    return shutil.which("py-spy") or (str(Path(sys.executable).parent / "py-spy")
                                      if (Path(sys.executable).parent / "py-spy").exists() else None)


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    f = m["file"]
    f = f.split("site-packages/")[-1] if "site-packages/" in f else "/".join(f.split("/")[-2:])
    return f"{m['fn']} ({f})"


def collapsed_top(path: Path, n: int = 18) -> tuple[int, list, list]:
    """(samples, top own-time frames, top inclusive frames) of a py-spy raw profile."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += c
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    return total, own.most_common(n), incl.most_common(n)


def strace_counts(pid: int, seconds: float) -> dict[str, int]:
    """Syscall counts of a process (all threads) over `seconds` (strace -c)."""
    if not shutil.which("strace"):
        return {}
    out = subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-c", "-f", "-p", str(pid)],
                         capture_output=True, text=True).stderr
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1].isalpha() and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
    return counts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    seconds = 8.0 if "--quick" in argv else 20.0
    topo = topology.build()
    tmp = Path(tempfile.mkdtemp(prefix="haig-profile-"))
    rows: dict = {}
    try:
        svc = [Service("vpn", f"{topo.gw_lan_addr}:{SVC}", f"{topo.server_addr}:{SVC}")]
        ep = Haig(topo.ep, endpoint_config(topo, PORT, svc), "ep").start()
        gw = Haig(topo.gw, gateway_config(topo, PORT, svc, main={"log_level": "warning"}), "gw").start()
        try:
            gw.wait_for(paths_active, 300, "association up with both paths active")
            rows["rss_idle_kib"] = {d.name: rss_kib(tree(d.proc.pid)) for d in (gw, ep)}
            sink = traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, SVC))).start()
            cli = traffic.udp_in(topo.client)
            snd = traffic.Sender(cli, (topo.gw_lan_addr, SVC), interval=0.002, size=1200).start()
            time.sleep(2.0)
            spy = _pyspy()
            pids = {d.name: d.proc.pid for d in (gw, ep)}
            cpu0 = {n: cpu_seconds(tree(p)) for n, p in pids.items()}
            n0, t0 = len(sink.rec.seqs), time.monotonic()
            time.sleep(seconds)
            cpu1 = {n: cpu_seconds(tree(p)) for n, p in pids.items()}
            n1, t1 = len(sink.rec.seqs), time.monotonic()
            relayed = n1 - n0
            rows["unprofiled"] = {"datagrams": relayed, "per_s": relayed / (t1 - t0),
                                  "cpu_us_per_dgram": {n: (cpu1[n] - cpu0[n]) / max(1, relayed) * 1e6 for n in pids}}
            # Syscalls per datagram (strace slows the process: its own window).
            n0 = len(sink.rec.seqs)
            sc = {n: {} for n in pids}
            def run_strace(name, pid):
                sc[name] = strace_counts(pid, min(6.0, seconds))

            threads = [threading.Thread(target=run_strace, args=(n, p)) for n, p in pids.items()]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            relayed_s = len(sink.rec.seqs) - n0
            rows["syscalls_per_dgram"] = {n: {k: round(v / max(1, relayed_s), 2) for k, v in
                                              sorted(c.items(), key=lambda kv: -kv[1])[:8]} for n, c in sc.items()}
            rows["strace_datagrams"] = relayed_s
            # py-spy, both daemons at once.
            prof = {}
            if spy:
                n0 = len(sink.rec.seqs)
                procs = {n: subprocess.Popen([spy, "record", "-p", str(p), "-d", str(int(seconds)), "-r", "200",
                                              "--nonblocking", "-f", "raw", "-o", str(tmp / f"{n}.txt")],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                         for n, p in pids.items()}
                for n, pr in procs.items():
                    _, err = pr.communicate(timeout=seconds + 60)
                    if pr.returncode:
                        print(f"py-spy {n}: exit {pr.returncode}: {err.decode()[-400:]}")
                rows["pyspy_datagrams"] = len(sink.rec.seqs) - n0
                for n in pids:
                    f = tmp / f"{n}.txt"
                    if f.exists():
                        prof[n] = collapsed_top(f)
            else:
                print("py-spy not found: pip install py-spy into the venv")
            rows["rss_loaded_kib"] = {d.name: rss_kib(tree(d.proc.pid)) for d in (gw, ep)}
            sent = snd.stop()
            time.sleep(1.0)
            rec = sink.stop()
            cli.close()
            rows["lost"] = sent.sent - len(set(rec.seqs))
            rows["sent"] = sent.sent
            rows["drops"] = {d.name: {k: v for k, v in d.status()["drops"].items() if v} for d in (gw, ep)}
        finally:
            gw.stop()
            ep.stop()
    finally:
        topo.teardown()
    u = rows.get("unprofiled", {})
    print(f"\nrelayed {u.get('datagrams')} datagrams of 1200 B in {seconds:.0f} s ({u.get('per_s', 0):.0f}/s); "
          f"sent {rows.get('sent')}, lost {rows.get('lost')}, drops {rows.get('drops')}")
    for n, v in u.get("cpu_us_per_dgram", {}).items():
        print(f"  {n}: CPU {v:.0f} µs per datagram; RSS idle {rows['rss_idle_kib'][n] / 1024:.1f} MiB, "
              f"loaded {rows['rss_loaded_kib'][n] / 1024:.1f} MiB")
    print(f"syscalls per datagram ({rows.get('strace_datagrams')} datagrams under strace):")
    for n, c in rows.get("syscalls_per_dgram", {}).items():
        print(f"  {n}: {c}")
    for n, (total, own, incl) in prof.items():
        print(f"\n{n}: {total} samples over {rows.get('pyspy_datagrams')} datagrams")
        print("  own time:")
        for f, c in own:
            print(f"    {100 * c / total:5.1f} %  {f}")
        print("  inclusive:")
        for f, c in incl:
            print(f"    {100 * c / total:5.1f} %  {f}")
        rows[f"pyspy_{n}"] = {"samples": total, "own": own, "inclusive": incl}
    probe.save("profile", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
