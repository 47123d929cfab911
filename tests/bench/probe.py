"""Kernel-level probes for the benchmarks: one (or two) multihomed SCTP associations set
up like haig's gateway (one-to-one socket, NODELAY, SACK delay below rto_min, RTO bounds,
per-path PF thresholds and heartbeats), messages sent with haig/adapters/sctp_io exactly
as the relay does (unordered PR-SCTP, copies with SCTP_ADDR_OVER), arrivals recorded with
the path they came on. No haig daemon: what the kernel does with haig's choices.
"""

from __future__ import annotations

import contextlib
import json
import select
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from haig.adapters import sctp_io, sctp_mib, sctp_opts
from tests.testbed import sctp_probe
from tests.testbed.sctp_probe import HDR, Arrival
from tests.testbed.topology import FALLBACK, MAIN, Topology

PAYLOAD = 200  # bytes per message, like the test bed's telemetry sender


@dataclass
class Assoc:
    cli: object
    conn: object
    lst: object
    port: int
    topo: Topology

    def addr(self, link: str) -> tuple[str, int]:
        return (self.topo.links[link].ep_addr, self.port)

    def close(self) -> None:
        for s in (self.cli, self.conn, self.lst):
            with contextlib.suppress(OSError):
                s.close()

    def info(self, link: str) -> sctp_opts.PathInfo | None:
        try:
            return sctp_opts.get_path_info(self.cli, 0, self.addr(link))
        except OSError:
            return None


def haig_like(topo: Topology, port: int, *, rto: tuple[int, int, int] = (1000, 1000, 100),
              pf_retrans: int = 0, path_max_retrans: int = 3, hb_ms: int = 500,
              primary: str = MAIN, fb_pf_retrans: int | None = None) -> Assoc:
    main, fb = topo.links[MAIN], topo.links[FALLBACK]
    cli, conn, lst = sctp_probe.pair(topo.gw, topo.ep, [main.gw_addr, fb.gw_addr],
                                     [main.ep_addr, fb.ep_addr], port, rto=rto)
    a = Assoc(cli, conn, lst, port, topo)
    sack = sctp_opts.sack_delay_for(rto[2])
    sctp_opts.set_nodelay(cli)
    sctp_opts.set_nodelay(conn)
    for s in (cli, conn):
        sctp_opts.set_delayed_sack(s, 0, sack)
    for link in (MAIN, FALLBACK):
        pf = fb_pf_retrans if (link == FALLBACK and fb_pf_retrans is not None) else pf_retrans
        sctp_opts.set_thresholds(cli, 0, a.addr(link), path_max_retrans, pf)
        sctp_opts.set_paddr_params(cli, 0, a.addr(link), hb_ms, path_max_retrans)
    sctp_probe.wait_paths_active(cli, [main.ep_addr, fb.ep_addr], port, timeout=60)
    if primary != MAIN:
        sctp_opts.set_primary(cli, 0, a.addr(primary))
    return a


class _Loop:
    """A daemon thread running `_run` until `stop()`."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._t.start()
        return self

    def _run(self) -> None:
        raise NotImplementedError

    def halt(self) -> None:
        self._stop.set()
        self._t.join()


class Recorder(_Loop):
    """Arrivals on any number of receiving sockets (one thread, select)."""

    def __init__(self, socks: list) -> None:
        super().__init__()
        self.socks = socks
        self.arrivals: list[Arrival] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self.socks, [], [], 0.1)
            now = time.monotonic()
            for s in ready:
                while True:
                    try:
                        r = sctp_io.receive(s)
                    except OSError:
                        r = None
                    if r is None:
                        break
                    if isinstance(r, sctp_io.Received) and len(r.data) >= HDR.size:
                        seq, sent = HDR.unpack_from(r.data)
                        self.arrivals.append(Arrival(seq, sent, now, r.addr[0] if r.addr else "?"))

    def stop(self) -> list[Arrival]:
        self.halt()
        return self.arrivals


class Sender(_Loop):
    """Calls send(seq, message) every `interval` s in a thread."""

    def __init__(self, send: Callable[[int, bytes], None], interval: float = 0.01) -> None:
        super().__init__()
        self.send, self.interval = send, interval
        self.sent = 0
        self.errors = 0
        self.late_max = 0.0  # worst lateness of a send against its schedule: VM stalls

    def _run(self) -> None:
        pad = b"\0" * (PAYLOAD - HDR.size)
        nxt = time.monotonic()
        while not self._stop.is_set():
            self.late_max = max(self.late_max, time.monotonic() - nxt)
            try:
                self.send(self.sent, HDR.pack(self.sent, time.monotonic()) + pad)
            except OSError:
                self.errors += 1
            self.sent += 1
            nxt += self.interval
            time.sleep(max(0.0, nxt - time.monotonic()))

    def stop(self) -> int:
        self.halt()
        return self.sent


class StateWatch(_Loop):
    """Polls one path's state every `every` s; counts transitions into PF."""

    def __init__(self, a: Assoc, link: str, every: float = 0.02) -> None:
        super().__init__()
        self.a, self.link, self.every = a, link, every
        self.pf_entries = 0
        self.states: list[tuple[float, str]] = []
        self.min_cwnd: int | None = None
        self.cwnds: list[int] = []
        self.rtos: list[int] = []
        self.srtts: list[int] = []

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            i = self.a.info(self.link)
            if i is not None:
                if i.state != last:
                    self.states.append((time.monotonic(), i.state))
                    if i.state == "pf":
                        self.pf_entries += 1
                    last = i.state
                self.min_cwnd = i.cwnd if self.min_cwnd is None else min(self.min_cwnd, i.cwnd)
                self.cwnds.append(i.cwnd)
                self.rtos.append(i.rto_ms)
                self.srtts.append(i.srtt_ms)
            time.sleep(self.every)

    def stop(self) -> StateWatch:
        self.halt()
        return self

    def summary(self) -> dict:
        med = statistics.median
        return {"cwnd_median": med(self.cwnds) if self.cwnds else None, "min_cwnd": self.min_cwnd,
                "rto_median": med(self.rtos) if self.rtos else None,
                "srtt_median": med(self.srtts) if self.srtts else None, "pf_entries": self.pf_entries}


def snmp(ns) -> dict[str, int]:
    """/proc/net/sctp/snmp of a namespace (retransmission counters and friends)."""
    with ns.enter(), open("/proc/thread-self/net/sctp/snmp") as f:
        return sctp_mib.parse(f.read())


def snmp_diff(before: dict[str, int], after: dict[str, int], keys=("SctpT3Retransmits", "SctpPmtudRetransmits",
                                                                   "SctpFastRetransmits", "SctpOutSCTPPacks")) -> dict:
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if k in after}


# ------------------------------------------------------------------ statistics


def first_arrivals(arrivals: list[Arrival]) -> dict[int, Arrival]:
    out: dict[int, Arrival] = {}
    for a in arrivals:
        if a.seq not in out:
            out[a.seq] = a
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if q < 100 else max(values)


def latencies_ms(arrivals: list[Arrival], since: float = 0.0, until: float = float("inf"),
                 via: str | None = None) -> list[float]:
    """One-way latency of each message's first arrival sent in [since, until)."""
    return [(a.at - a.sent) * 1000 for a in first_arrivals(arrivals).values()
            if since <= a.sent < until and (via is None or a.via == via)]


def longest_gap_ms(arrivals: list[Arrival], start: float, end: float) -> float:
    return longest_gap(arrivals, start, end)[0]


def longest_gap(arrivals: list[Arrival], start: float, end: float) -> tuple[float, float]:
    """(longest gap ms between first arrivals in [start, end], its start - `start` in ms)."""
    ts = sorted(a.at for a in first_arrivals(arrivals).values() if start <= a.at <= end)
    ts = [start, *ts, end]
    gap, at = max((b - a, a) for a, b in zip(ts, ts[1:], strict=False))
    return gap * 1000, (at - start) * 1000


def reordered(arrivals: list[Arrival], since: float = 0.0) -> int:
    """First arrivals whose sequence number is below one already seen."""
    top, n = -1, 0
    for a in sorted(first_arrivals(arrivals).values(), key=lambda a: a.at):
        if a.at < since:
            continue
        if a.seq < top:
            n += 1
        top = max(top, a.seq)
    return n


def lost(arrivals: list[Arrival], sent: int, tail: int = 0) -> int:
    return max(0, sent - tail - len(first_arrivals(arrivals)))


def fmt(v: float) -> str:
    return "–" if v != v else f"{v:.0f}"


def send_plain(a: Assoc, ttl: int = 1000) -> Callable[[int, bytes], None]:
    return lambda seq, m: sctp_io.send(a.cli, m, ttl_ms=ttl)


def save(name: str, rows, **extra) -> None:
    """artifacts/bench/<name>.json when writable (the docs table is made from these)."""
    out = Path(__file__).resolve().parents[2] / "artifacts" / "bench"
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps({"rows": rows, **extra}, indent=2, default=str))
    except OSError:
        pass
