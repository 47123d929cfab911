"""A jittery fallback (LTE-like: netem 200 ms ± 40 ms, 25 % correlated, 3.5 Mbit/s) with
the main line dead: where does the time go, and does jitter pass for failure?

Kernel-level rows (tests.bench.probe, no daemon; one association, main at 100 % loss):
* ordered    — reliable and ordered, what the report's socat relay sends;
* unordered  — haig's choice: unordered PR-SCTP (TTL 1 s), pf_retrans 0;
* pf1        — the same with pf_retrans 1 on the fallback (what SetPathThresholds asks
               for when the RTO is too close to the RTT jitter).
Columns: one-way latency p50/p99/max, reordered first arrivals, lost, PF entries of the
fallback path, T3 retransmissions, smallest cwnd seen on the fallback.

haig rows (the daemons, shipped defaults but hold-down; telemetry every 10 ms):
* main dead — main at 100 % loss the whole run: switches, PF events on lte, p50, worst;
* recover   — (not with --quick) main fails for 10 s and recovers with a 30 s hold-down
              while lte jitters: switches must be exactly failover + one failback after it.
Usage (in the VM): python -m tests.bench jitter [--quick]
"""

from __future__ import annotations

import sys
import time

from haig.adapters import sctp_io
from tests.bench import probe
from tests.testbed import topology, traffic
from tests.testbed.faults import LTE_JITTER
from tests.testbed.haig_procs import Haig, Service, endpoint_config, gateway_config, paths_active
from tests.testbed.topology import FALLBACK, MAIN

JITTER = LTE_JITTER
_port = iter(range(9400, 9499))


def jitter_fallback(topo) -> None:
    topo.impair.shape_fallback(JITTER)


def kernel_row(topo, name: str, seconds: float) -> dict:
    a = probe.haig_like(topo, next(_port), fb_pf_retrans=1 if name == "pf1" else 0)
    if name == "ordered":
        def send(seq, m):
            sctp_io.send(a.cli, m, unordered=False, ttl_ms=0)
    else:
        send = probe.send_plain(a)
    rec = probe.Recorder([a.conn]).start()
    snd = probe.Sender(send).start()
    watch = None
    try:
        topo.impair.loss(MAIN, 100)
        time.sleep(3.0)  # failover to the fallback is done
        watch = probe.StateWatch(a, FALLBACK).start()
        s0, t0 = probe.snmp(topo.gw), time.monotonic()
        time.sleep(seconds)
        t1, s1 = time.monotonic(), probe.snmp(topo.gw)
    finally:
        sent = snd.stop()
        time.sleep(2.0)
        arrivals = rec.stop()
        if watch:
            watch.stop()
        topo.impair.clear()
        a.close()
    lat = probe.latencies_ms(arrivals, t0, t1)
    d = probe.snmp_diff(s0, s1)
    return {"row": name, "p50_ms": probe.pct(lat, 50), "p99_ms": probe.pct(lat, 99),
            "max_ms": max(lat, default=float("nan")), "reordered": probe.reordered(
                [x for x in arrivals if t0 <= x.sent < t1]),
            "lost": probe.lost(arrivals, sent), "pf_entries": watch.pf_entries if watch else None,
            "t3": d.get("SctpT3Retransmits"), "fast_rtx": d.get("SctpFastRetransmits"),
            "min_cwnd": watch.min_cwnd if watch else None, "fb": watch.summary() if watch else None,
            "seconds": seconds, "sender_late_max_ms": snd.late_max * 1000}


def haig_row(topo, name: str, seconds: float) -> dict:
    port, svc_port = next(_port), next(_port)
    hold = 30 if name == "recover" else 5
    svcs = [Service("telemetry", f"{topo.gw_lan_addr}:{svc_port}", f"{topo.server_addr}:{svc_port}")]
    api = {"api_listen": f"127.0.0.1:{port}"}
    ep = Haig(topo.ep, endpoint_config(topo, port, svcs, main=api), "ep", api=f"http://127.0.0.1:{port}").start()
    gw = Haig(topo.gw, gateway_config(topo, port, svcs, main={**api, "hold_down": hold}), "gw",
              api=f"http://127.0.0.1:{port}").start()
    try:
        try:
            gw.wait_for(lambda s: paths_active(s) and s["primary"] == "dsl", 300, "ready")
        except TimeoutError:
            print(f"endpoint log:\n{ep.log()[-2000:]}", flush=True)
            raise
        seq0 = gw.status()["last_event_seq"]
        sink = traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, svc_port))).start()
        cli = traffic.udp_in(topo.client)
        snd = traffic.Sender(cli, (topo.gw_lan_addr, svc_port), interval=0.01).start()
        try:
            time.sleep(1.0)
            topo.impair.loss(MAIN, 100)
            t0 = time.monotonic() + 3.0
            s0 = probe.snmp(topo.gw)
            if name == "recover":
                time.sleep(10.0)
                topo.impair.loss(MAIN, 0)
                time.sleep(hold + 8.0)
            else:
                time.sleep(3.0 + seconds)
            t1 = time.monotonic()
            s1 = probe.snmp(topo.gw)
        finally:
            sent = snd.stop()
            time.sleep(1.5)
            rec = sink.stop()
            cli.close()
            topo.impair.clear()
        evs = [e for e in gw.events() if e["seq"] > seq0]
        st = gw.status()
    finally:
        gw.stop()
        ep.stop()
    lat = [(t - sent.send_times[s]) * 1000 for s, t in zip(rec.seqs, rec.times, strict=True)
           if t0 <= sent.send_times[s] < t1]
    top, reord, late = -1, 0, []
    for s, t in zip(rec.seqs, rec.times, strict=True):
        if t >= t0:
            if s < top:
                reord += 1
                late.append((t - sent.send_times[s]) * 1000)
            top = max(top, s)
    switches = [e for e in evs if e["kind"] in ("failover", "failback")]
    lte_pf = [e for e in evs if e["kind"] == "path_state" and e["subject"] == "lte" and e["new"] == "pf"]
    lte = next((u for u in st.get("uplinks", []) if u.get("name") == "lte"), {})
    return {"row": f"haig {name}", "p50_ms": probe.pct(lat, 50), "p99_ms": probe.pct(lat, 99),
            "max_ms": max(lat, default=float("nan")), "reordered": reord, "lost": sent.sent - len(set(rec.seqs)),
            "pf_entries": len(lte_pf), "switches": len(switches),
            "switch_reasons": [f"{e['kind']} {e['old']}->{e['new']}: {e['reason']}" for e in switches],
            "lte_srtt_ms": lte.get("srtt_ms"), "lte_rto_ms": lte.get("rto_ms"), "seconds": t1 - t0,
            "t3": probe.snmp_diff(s0, s1).get("SctpT3Retransmits"), "gw_snmp": probe.snmp_diff(s0, s1),
            "reordered_p50_ms": probe.pct(late, 50)}


def table(rows: list[dict]) -> str:
    out = ["| row | p50 ms | p99 ms | worst ms | reordered | lost | PF entries (fallback) "
           "| T3 rtx | min cwnd | switches |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['row']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} | {r['reordered']} "
                   f"| {r['lost']} | {r['pf_entries']} | {r.get('t3', '–')} | {r.get('min_cwnd', '–')} "
                   f"| {r.get('switches', '–')} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    only = [a[len("--rows="):] for a in argv if a.startswith("--rows=")]
    rows_wanted = only[0].split(",") if only else (
        ["ordered", "unordered", "pf1", "main-dead"] + ([] if quick else ["recover"]))
    seconds = 10.0 if quick else 30.0
    topo = topology.build()
    rows = []
    try:
        jitter_fallback(topo)
        for name in rows_wanted:
            r = haig_row(topo, name, seconds) if name in ("main-dead", "recover") else kernel_row(topo, name, seconds)
            rows.append(r)
            print({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
    finally:
        topo.teardown()
    print()
    print(table(rows))
    probe.save("jitter", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
