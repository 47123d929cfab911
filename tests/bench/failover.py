"""The report's sweep, redone: rto_min 50/100/1000/3000 ms × loss 10/50/100 % on the main
link for 5 s, messages every 10 ms, the 3G-like fallback (200 ms, 3.5 Mbit/s).

* kernel: one multihomed SCTP association with only rto_min changed (what the report's
  socat set-up got from the sysctl; here set on the association, same effect), reliable
  and ordered like socat's stream; path changes counted from which path each message
  arrived on.
* haig: gateway and endpoint daemons with the same rto_min (rto_initial/max scaled to
  stay valid), its path policy, hold-down 5 s; switches counted from its events.

Prints a table: longest arrival gap, switches, datagrams lost. Not a test: numbers.

`--summary` instead prints the issue-12 matrix, haig (shipped RTO bounds 1000/1000/100,
hold-down 5 s) beside the socat-like kernel association at rto_min 100 (reliable, ordered,
Nagle on, as socat sends), each measure a ratio: longest gap at 100 % loss and with the
main link down, switches at 10 % loss, one-way latency on a healthy main (3 s before the
fault), the `critical` flag on/off (p99 healthy, gap at 100 % loss), the jittery-fallback
row (tests.bench.jitter) and the memory of each daemon.
`--sweep=30,40,100` runs haig at each rto_min (the rest shipped defaults) at 100 % loss
beside the socat-like kernel association at rto_min 100, one table, gaps as ratios to it.
`--healthy=SECONDS` runs haig with the shipped defaults on a healthy main (no fault) and
counts switches (must be 0) and the PF entries the policy's grace absorbed.
`--runs=N` repeats each sweep row. The shipped values come from haig.config.model.

Usage (inside the VM): python -m tests.bench failover [--quick | --summary | --sweep=A,B,.. | --healthy=S]
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import threading
import time

from haig.config.model import Main
from tests.bench import probe
from tests.testbed import sctp_probe, topology, traffic
from tests.testbed.haig_procs import Haig, Service, endpoint_config, gateway_config, paths_active
from tests.testbed.proc import rss_kib, tree
from tests.testbed.topology import FALLBACK, MAIN

RTO_MINS = (50, 100, 1000, 3000)
LOSSES = (10, 50, 100)
WINDOW = 5.0
_port = iter(range(9100, 9999))


def _timers(rto_min: int) -> tuple[int, int, int]:
    """(initial, max, min) satisfying min <= initial <= max, near the report's set-up."""
    return max(1000, rto_min), max(3000, rto_min), rto_min


def _fault(topo, fault: str | int):
    """Loss percent on the main link for WINDOW s, or "down": its gateway end down."""
    if fault == "down":
        start = topo.impair.down(MAIN)
        time.sleep(max(0.0, WINDOW - (time.monotonic() - start.effective)))
        return start, topo.impair.up(MAIN)
    return topo.impair.window(MAIN, fault, WINDOW)


def kernel_run(topo, rto_min: int, loss: int | str, pre: float = 1.0) -> dict:
    main, fb = topo.links[MAIN], topo.links[FALLBACK]
    port = next(_port)
    cli, conn, lst = sctp_probe.pair(topo.gw, topo.ep, [main.gw_addr, fb.gw_addr],
                                     [main.ep_addr, fb.ep_addr], port, rto=_timers(rto_min))
    try:
        sctp_probe.wait_paths_active(cli, [main.ep_addr, fb.ep_addr], port, timeout=30)
        res = sctp_probe.ProbeResult()
        stop = threading.Event()
        th = [threading.Thread(target=sctp_probe.receive, args=(conn, res, stop)),
              threading.Thread(target=sctp_probe.send_every, args=(cli, 0.01, stop, res))]
        for t in th:
            t.start()
        try:
            time.sleep(pre)
            start, _ = _fault(topo, loss)
            time.sleep(3.0)
        finally:
            stop.set()
            for t in th:
                t.join()
        gap, _ = res.longest_gap(after=start.asked - 0.2)
        vias = [a.via for a in res.arrivals if a.at >= start.asked - 0.2]
        switches = sum(1 for a, b in zip(vias, vias[1:], strict=False) if a != b)
        lat = [(a.at - a.sent) * 1000 for a in res.arrivals if a.sent < start.asked - 0.1 and a.seq >= 20]
        return {"gap_ms": gap * 1000, "switches": switches, "lost": res.lost() - _tail(res),
                "p50_ms": probe.pct(lat, 50), "p99_ms": probe.pct(lat, 99)}
    finally:
        topo.impair.clear()
        for s in (cli, conn, lst):
            s.close()


def _tail(res) -> int:
    """Messages still in flight when the run stopped are not losses."""
    got = {a.seq for a in res.arrivals}
    top = max(got) if got else -1
    return sum(1 for s in range(top + 1, res.sent))


@contextlib.contextmanager
def _haig_pair(topo, timers: tuple[int, int, int], *, critical: bool = False, hold_down: int = 5):
    """Endpoint and gateway daemons, dsl primary with both paths active: (gw, ep, svc_port)."""
    port, svc_port = next(_port), next(_port)
    ini, mx, mn = timers
    svcs = [Service("bench", f"{topo.gw_lan_addr}:{svc_port}", f"{topo.server_addr}:{svc_port}", ttl=3000,
                    critical=critical)]
    main = {"rto_initial": ini, "rto_max": mx, "rto_min": mn, "api_listen": f"127.0.0.1:{port}"}
    ep = Haig(topo.ep, endpoint_config(topo, port, svcs, main=main), "ep",
              api=f"http://127.0.0.1:{port}").start()
    gw = Haig(topo.gw, gateway_config(topo, port, svcs, main={**main, "hold_down": hold_down}), "gw",
              api=f"http://127.0.0.1:{port}").start()
    try:
        gw.wait_for(lambda s: paths_active(s) and s["primary"] == "dsl", 300, "ready")
        yield gw, ep, svc_port
    finally:
        gw.stop()
        ep.stop()
        topo.impair.clear()


def _switch_events(gw, seq0: int) -> list[dict]:
    return [e for e in gw.events() if e["seq"] > seq0 and e["kind"] in ("failover", "failback")]


def _datagrams(topo, svc_port: int, during):
    """Datagrams every 10 ms client -> server while `during()` runs: (record, sent, its result)."""
    sink = traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, svc_port))).start()
    cli = traffic.udp_in(topo.client)
    snd = traffic.Sender(cli, (topo.gw_lan_addr, svc_port), interval=0.01).start()
    try:
        out = during()
    finally:
        sent = snd.stop()
        time.sleep(1.0)
        rec = sink.stop()
        cli.close()
    rec.sent = sent.sent
    return rec, sent, out


def haig_run(topo, rto_min: int, loss: int | str, *, pre: float = 1.0, critical: bool = False,
             timers: tuple[int, int, int] | None = None) -> dict:
    with _haig_pair(topo, timers or _timers(rto_min), critical=critical) as (gw, ep, svc_port):
        seq0 = gw.status()["last_event_seq"]

        def fault():
            time.sleep(pre)
            rss = {"gateway": rss_kib(tree(gw.proc.pid)), "endpoint": rss_kib(tree(ep.proc.pid))}
            start, _ = _fault(topo, loss)
            time.sleep(3.0)
            return rss, start

        rec, sent, (rss, start) = _datagrams(topo, svc_port, fault)
        gap, _ = rec.longest_gap(start.asked - 0.2)
        sw = _switch_events(gw, seq0)
        lost = rec.lost()  # the sink ran 1 s past the last send: nothing is in flight
        lat = [(t - sent.send_times[q]) * 1000 for q, t in zip(rec.seqs, rec.times, strict=True)
               if q >= 20 and sent.send_times[q] < start.asked - 0.1]
        return {"gap_ms": gap * 1000, "switches": len(sw), "lost": lost, "rss_kib": rss,
                "p50_ms": probe.pct(lat, 50), "p99_ms": probe.pct(lat, 99)}


def haig_healthy(topo, seconds: float) -> dict:
    """Shipped defaults, no fault: switches (spurious failovers) and PF entries on dsl."""
    with _haig_pair(topo, SHIPPED, hold_down=Main().hold_down) as (gw, _, svc_port):
        seq0 = gw.status()["last_event_seq"]
        rec, sent, _ = _datagrams(topo, svc_port, lambda: time.sleep(seconds))
        events = [e for e in gw.events() if e["seq"] > seq0]
        sw = [e for e in events if e["kind"] in ("failover", "failback")]
        pf = [e for e in events if e["kind"] == "path_state" and e["new"] == "pf"]
        lat = [(t - sent.send_times[q]) * 1000 for q, t in zip(rec.seqs, rec.times, strict=True) if q >= 20]
        gap, _ = rec.longest_gap(rec.times[0]) if rec.times else (float("nan"), 0.0)
        return {"seconds": seconds, "switches": len(sw), "pf_entries": len(pf),
                "pf_by_path": {n: sum(1 for e in pf if e["subject"] == n) for n in ("dsl", "lte")},
                "switch_reasons": [e["reason"] for e in sw], "sent": sent.sent, "lost": rec.lost(),
                "gap_ms": gap * 1000, "p50_ms": probe.pct(lat, 50), "p99_ms": probe.pct(lat, 99)}


SHIPPED = (Main().rto_initial, Main().rto_max, Main().rto_min)  # haig's defaults, from the model
BASELINE_RTO_MIN = 100  # the report's socat relay at its best setting


def _opt(argv: list[str], name: str) -> str | None:
    for a in argv:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def sweep(rto_mins: list[int], runs: int) -> list[dict]:
    """haig at each rto_min (100 % loss, shipped otherwise) beside the socat-like kernel."""
    topo = topology.build()
    rows = []
    try:
        for i in range(runs):
            k = kernel_run(topo, BASELINE_RTO_MIN, 100, pre=3.0)
            rows.append({"who": "kernel", "rto_min": BASELINE_RTO_MIN, "run": i, **k})
            print(f"run {i}: socat-like kernel rto_min {BASELINE_RTO_MIN}: {k}", flush=True)
            for rto in rto_mins:
                h = haig_run(topo, rto, 100, pre=3.0, timers=(SHIPPED[0], SHIPPED[1], rto))
                rows.append({"who": "haig", "rto_min": rto, "run": i, "base_gap_ms": k["gap_ms"], **h})
                print(f"run {i}: haig rto_min {rto}: {h}", flush=True)
    finally:
        topo.teardown()
    return rows


def render_sweep(rows: list[dict]) -> str:
    out = [f"| who | rto_min | runs | longest gap, 100 % loss (each run) | median | / kernel rto_min "
           f"{BASELINE_RTO_MIN} | switches | lost | p50 / p99 healthy |",
           "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["who"], r["rto_min"]), []).append(r)
    base = statistics.median(r["gap_ms"] for r in groups.get(("kernel", BASELINE_RTO_MIN), [])) \
        if ("kernel", BASELINE_RTO_MIN) in groups else None
    for (who, rto), rs in groups.items():
        gaps = [r["gap_ms"] for r in rs]
        med = statistics.median(gaps)
        shipped = " (shipped)" if who == "haig" and rto == SHIPPED[2] else ""
        ratio = f"{med / base:.2f}" if base else "–"
        out.append(f"| {who} | {rto} ms{shipped} | {len(rs)} | {', '.join(f'{g:.0f}' for g in gaps)} ms "
                   f"| {med:.0f} ms | {ratio} | {sum(r['switches'] for r in rs)} | {sum(r['lost'] for r in rs)} "
                   f"| {statistics.median(r['p50_ms'] for r in rs):.1f} / "
                   f"{statistics.median(r['p99_ms'] for r in rs):.1f} ms |")
    return "\n".join(out)


def summary(quick: bool) -> tuple[list[dict], dict]:
    """The issue-12 matrix: haig beside the socat-like kernel association, as ratios."""
    from tests.bench import jitter

    topo = topology.build()
    res: dict = {}
    try:
        for fault in (100, "down", 10):
            res[f"kernel {fault}"] = kernel_run(topo, 100, fault, pre=3.0)
            res[f"haig {fault}"] = haig_run(topo, 100, fault, pre=3.0, timers=SHIPPED)
            print(fault, res[f"kernel {fault}"], res[f"haig {fault}"], flush=True)
        res["haig critical 100"] = haig_run(topo, 100, 100, pre=3.0, critical=True, timers=SHIPPED)
        print("critical", res["haig critical 100"], flush=True)
        jitter.jitter_fallback(topo)
        secs = 10.0 if quick else 30.0
        res["jitter kernel"] = jitter.kernel_row(topo, "ordered", secs)
        res["jitter haig"] = jitter.haig_row(topo, "main-dead", secs)
        print("jitter", res["jitter kernel"], res["jitter haig"], flush=True)
    finally:
        topo.teardown()
    return measures(res), res


def measures(res: dict) -> list[dict]:
    """The matrix as rows {id, label, haig, kernel, unit} (docs table: tests.bench.doc_table)."""
    k, h, hc = res["kernel 100"], res["haig 100"], res["haig critical 100"]
    jk, jh = res["jitter kernel"], res["jitter haig"]
    rss = h["rss_kib"]

    def m(id_, label, hv, kv=None, unit="ms"):
        return {"id": id_, "label": label, "haig": hv, "kernel": kv, "unit": unit}

    return [
        m("gap_loss100", "longest gap, 100 % loss", h["gap_ms"], k["gap_ms"]),
        m("gap_down", "longest gap, link down", res["haig down"]["gap_ms"], res["kernel down"]["gap_ms"]),
        m("switches_loss10", "switches at 10 % loss", res["haig 10"]["switches"], res["kernel 10"]["switches"], ""),
        m("p50_healthy", "p50 one-way latency, healthy main", h["p50_ms"], k["p50_ms"]),
        m("p99_healthy", "p99 one-way latency, healthy main", h["p99_ms"], k["p99_ms"]),
        m("critical_p99", "critical on: p99 latency, healthy main (kernel column: haig critical off)",
          hc["p99_ms"], h["p99_ms"]),
        m("critical_gap", "critical on: longest gap, 100 % loss (kernel column: haig critical off)",
          hc["gap_ms"], h["gap_ms"]),
        m("jitter_switches", f"jitter (fallback 200 ± 40 ms 25 %, main dead {jh['seconds']:.0f} s): switches",
          jh["switches"], None, ""),
        m("jitter_pf", "jitter: PF entries of the fallback path", jh["pf_entries"], jk["pf_entries"], ""),
        m("jitter_p50", "jitter: p50 latency on the fallback", jh["p50_ms"], jk["p50_ms"]),
        m("jitter_worst", "jitter: worst latency (alarm)", jh["max_ms"], jk["max_ms"]),
        m("jitter_reordered", "jitter: reordered arrivals (kernel: ordered stream)", jh["reordered"],
          jk["reordered"], ""),
        m("rss_gateway", "RSS, gateway daemon", rss["gateway"] / 1024, None, "MiB"),
        m("rss_endpoint", "RSS, endpoint daemon", rss["endpoint"] / 1024, None, "MiB"),
    ]


def render(rows: list[dict], previous: dict | None = None) -> str:
    """Markdown: haig now, haig before (previous figures), the kernel, the ratio."""
    prev = previous or {}

    def f(v, unit):
        if v is None or v != v:
            return "–"
        if isinstance(v, str):
            return v
        return f"{v:.0f}" if unit != "MiB" and (abs(v) >= 10 or unit == "") else f"{v:.1f}"

    out = ["| measure | haig | haig before | socat-like kernel, rto_min 100 | haig / kernel |",
           "|---|---|---|---|---|"]
    for r in rows:
        u = f" {r['unit']}" if r["unit"] else ""
        kv, hv = r["kernel"], r["haig"]
        ratio = f"{hv / kv:.2f}" if isinstance(kv, int | float) and kv and isinstance(hv, int | float) else "–"
        before = prev.get(r["id"])
        out.append(f"| {r['label']} | {f(hv, r['unit'])}{u} | {f(before, r['unit'])}"
                   f"{u if isinstance(before, int | float) else ''} | {f(kv, r['unit'])}"
                   f"{u if kv is not None else ''} | {ratio} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[2:] if argv is None else argv
    quick = "--quick" in argv
    if (healthy := _opt(argv, "healthy")) is not None:
        topo = topology.build()
        try:
            res = haig_healthy(topo, float(healthy))
        finally:
            topo.teardown()
        print(f"\nhealthy main, shipped defaults (rto {SHIPPED[0]}/{SHIPPED[1]}/{SHIPPED[2]} ms, "
              f"hold-down {Main().hold_down} s), {res['seconds']:.0f} s, datagrams every 10 ms: "
              f"switches {res['switches']} (must be 0), PF entries {res['pf_by_path']}, "
              f"lost {res['lost']} of {res['sent']}, longest gap {res['gap_ms']:.0f} ms, "
              f"p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms")
        for why in res["switch_reasons"]:
            print("  switch:", why)
        probe.save("failover_healthy", [res], stamp=time.time())
        return 0 if res["switches"] == 0 else 1
    if (values := _opt(argv, "sweep")) is not None:
        rows = sweep([int(v) for v in values.split(",") if v], int(_opt(argv, "runs") or 1))
        text = render_sweep(rows)
        print()
        print(text)
        probe.save("failover_sweep", rows, table=text, stamp=time.time())
        return 0
    if "--summary" in argv:
        rows, res = summary(quick)
        text = render(rows)
        print()
        print(text)
        probe.save("failover_summary", rows, raw=res, table=text, stamp=time.time())
        return 0
    rtos = (100, 1000) if quick else RTO_MINS
    losses = (100,) if quick else LOSSES
    topo = topology.build()
    rows = []
    try:
        for rto in rtos:
            for loss in losses:
                k = kernel_run(topo, rto, loss)
                h = haig_run(topo, rto, loss)
                rows.append((rto, loss, k, h))
                print(f"rto_min {rto:>4} ms, loss {loss:>3} %: kernel gap {k['gap_ms']:6.0f} ms "
                      f"switches {k['switches']:>2} lost {k['lost']:>3} | haig gap {h['gap_ms']:6.0f} ms "
                      f"switches {h['switches']:>2} lost {h['lost']:>3}", flush=True)
    finally:
        topo.teardown()
    print("\n| rto_min | loss | kernel longest gap | kernel switches | kernel lost "
          "| haig longest gap | haig switches | haig lost |")
    print("|---|---|---|---|---|---|---|---|")
    for rto, loss, k, h in rows:
        print(f"| {rto} ms | {loss} % | {k['gap_ms']:.0f} ms | {k['switches']} | {k['lost']} "
              f"| {h['gap_ms']:.0f} ms | {h['switches']} | {h['lost']} |")
    hg = [h["gap_ms"] for _, loss, _, h in rows if loss == 100]
    kg = [k["gap_ms"] for _, loss, k, _ in rows if loss == 100]
    if hg and kg:
        print(f"\nmedian longest gap at 100 % loss: kernel {statistics.median(kg):.0f} ms, "
              f"haig {statistics.median(hg):.0f} ms, ratio {statistics.median(hg) / statistics.median(kg):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
