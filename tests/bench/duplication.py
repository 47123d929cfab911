"""Where does the `critical` copy cost latency? Kernel-level probe of the designs for
duplicating datagrams on the other path (haig's choices, no daemon: tests.bench.probe).

Variants, each on a fresh haig-like association (rto 1000/1000/100, NODELAY, SACK delay
50 ms, pf_retrans 0), messages of 200 B every 10 ms on the main line:

* none     — no copy (the baseline);
* same     — what haig does today: the copy on the same association, SCTP_ADDR_OVER to
             the fallback address, same TTL (1 s);
* same-ttl — the same, but the copy with a short PR-SCTP lifetime (20 ms);
* alarms   — the copy only for one message in 50 (alarms, not the telemetry stream);
* second   — the copy on a second association whose primary is the fallback.

Each: healthy main for H s (one-way latency of every message's first arrival), then
100 % loss on the main line for W s (longest gap between first arrivals).
Usage (in the VM): python -m tests.bench duplication [--quick]
"""

from __future__ import annotations

import sys
import time

from haig.adapters import sctp_io
from tests.bench import probe
from tests.testbed import topology
from tests.testbed.topology import FALLBACK, MAIN

VARIANTS = ("none", "same", "same-ttl", "alarms", "second")
_port = iter(range(9300, 9399))


def _sender(name: str, a: probe.Assoc, b: probe.Assoc | None):
    fb = a.addr(FALLBACK)

    def send(seq: int, m: bytes) -> None:
        sctp_io.send(a.cli, m, ttl_ms=1000)
        if name == "same" or (name == "alarms" and seq % 50 == 0):
            sctp_io.send(a.cli, m, ttl_ms=1000, to=fb, addr_over=True)
        elif name == "same-ttl":
            sctp_io.send(a.cli, m, ttl_ms=20, to=fb, addr_over=True)
        elif name == "second" and b is not None:
            sctp_io.send(b.cli, m, ttl_ms=1000)

    return send


def run_variant(topo, name: str, healthy: float, window: float) -> dict:
    a = probe.haig_like(topo, next(_port))
    b = probe.haig_like(topo, next(_port), primary=FALLBACK) if name == "second" else None
    rec = probe.Recorder([a.conn] + ([b.conn] if b else [])).start()
    watch = probe.StateWatch(a, FALLBACK).start()
    snd = probe.Sender(_sender(name, a, b)).start()
    try:
        time.sleep(1.0)
        h0 = time.monotonic()
        s0 = probe.snmp(topo.gw)
        time.sleep(healthy)
        h1 = time.monotonic()
        s1 = probe.snmp(topo.gw)
        start, end = topo.impair.window(MAIN, 100, window)
        time.sleep(2.0)
    finally:
        sent = snd.stop()
        time.sleep(1.5)
        arrivals = rec.stop()
        watch.stop()
        topo.impair.clear()
        a.close()
        if b:
            b.close()
    lat = probe.latencies_ms(arrivals, h0, h1)
    main_ep = topo.links[MAIN].gw_addr  # the receiver sees the sending address
    gap, gap_at = probe.longest_gap(arrivals, start.asked, end.effective + 1.0)
    in_fault = [x for x in probe.first_arrivals(arrivals).values() if start.effective <= x.at <= end.asked]
    return {
        "variant": name,
        "p50_ms": probe.pct(lat, 50), "p99_ms": probe.pct(lat, 99), "max_ms": max(lat, default=float("nan")),
        "via_main": sum(1 for x in probe.first_arrivals(arrivals).values() if h0 <= x.sent < h1 and x.via == main_ep),
        "healthy_msgs": len(lat),
        "gap_ms": gap, "gap_at_ms": gap_at, "sender_late_max_ms": snd.late_max * 1000,
        "fault_first_via_fallback": sum(1 for x in in_fault if x.via != main_ep), "fault_first": len(in_fault),
        "lost": probe.lost(arrivals, sent),
        "fb_min_cwnd": watch.min_cwnd, "fb_pf_entries": watch.pf_entries, "fb": watch.summary(),
        "copy_p50_ms": probe.pct([(x.at - x.sent) * 1000 for x in arrivals if x.via != main_ep
                                  and h0 <= x.sent < h1], 50),
        "t3_healthy": probe.snmp_diff(s0, s1).get("SctpT3Retransmits"),
        "fast_rtx_healthy": probe.snmp_diff(s0, s1).get("SctpFastRetransmits"),
        "snmp_healthy": probe.snmp_diff(s0, s1),
    }


def table(rows: list[dict]) -> str:
    base = next((r for r in rows if r["variant"] == "none"), None)
    out = ["| copy | p50 ms healthy | p99 ms healthy | max ms healthy | p99 / none | first on main "
           "| gap at 100 % loss ms | lost | fallback min cwnd | T3 / fast retransmits (healthy) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["p99_ms"] / base["p99_ms"] if base and base["p99_ms"] else float("nan")
        out.append(f"| {r['variant']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.0f} | {ratio:.2f} "
                   f"| {r['via_main']}/{r['healthy_msgs']} | {r['gap_ms']:.0f} | {r['lost']} "
                   f"| {r['fb_min_cwnd']} | {r['t3_healthy']} / {r['fast_rtx_healthy']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    names = [a[len("--variant="):] for a in argv if a.startswith("--variant=")] or VARIANTS
    healthy, window = (5.0, 3.0) if quick else (10.0, 5.0)
    topo = topology.build()
    rows = []
    try:
        for name in names:
            r = run_variant(topo, name, healthy, window)
            rows.append(r)
            print(f"{name:>9}: p50 {r['p50_ms']:6.1f} p99 {r['p99_ms']:6.1f} max {r['max_ms']:6.0f} ms | "
                  f"gap {r['gap_ms']:5.0f} ms (at +{r['gap_at_ms']:.0f}) lost {r['lost']} | "
                  f"via fb in fault {r['fault_first_via_fallback']}/{r['fault_first']} | "
                  f"sender late <= {r['sender_late_max_ms']:.0f} ms | fb cwnd>= {r['fb_min_cwnd']} "
                  f"pf {r['fb_pf_entries']} t3 {r['t3_healthy']} fast rtx {r['fast_rtx_healthy']} | fallback {r['fb']} "
                  f"copy p50 {r['copy_p50_ms']:.0f} ms", flush=True)
    finally:
        topo.teardown()
    print()
    print(table(rows))
    probe.save("duplication", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
