"""The report's sweep, redone: rto_min 50/100/1000/3000 ms × loss 10/50/100 % on the main
link for 5 s, messages every 10 ms, the 3G-like fallback (200 ms, 3.5 Mbit/s).

* kernel: one multihomed SCTP association with only rto_min changed (what the report's
  socat set-up got from the sysctl; here set on the association, same effect), reliable
  and ordered like socat's stream; path changes counted from which path each message
  arrived on.
* haig: gateway and endpoint daemons with the same rto_min (rto_initial/max scaled to
  stay valid), its path policy, hold-down 5 s; switches counted from its events.

Prints a table: longest arrival gap, switches, datagrams lost. Not a test: numbers.
Usage (inside the VM): python -m tests.bench failover   [--quick]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

from tests.testbed import sctp_probe, topology, traffic
from tests.testbed.haig_procs import Haig, Service, endpoint_config, gateway_config, paths_active
from tests.testbed.topology import FALLBACK, MAIN

RTO_MINS = (50, 100, 1000, 3000)
LOSSES = (10, 50, 100)
WINDOW = 5.0
_port = iter(range(9100, 9999))


def _timers(rto_min: int) -> tuple[int, int, int]:
    """(initial, max, min) satisfying min <= initial <= max, near the report's set-up."""
    return max(1000, rto_min), max(3000, rto_min), rto_min


def kernel_run(topo, rto_min: int, loss: int) -> dict:
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
            time.sleep(1.0)
            start, _ = topo.impair.window(MAIN, loss, WINDOW)
            time.sleep(3.0)
        finally:
            stop.set()
            for t in th:
                t.join()
        gap, _ = res.longest_gap(after=start.asked - 0.2)
        vias = [a.via for a in res.arrivals if a.at >= start.asked - 0.2]
        switches = sum(1 for a, b in zip(vias, vias[1:], strict=False) if a != b)
        return {"gap_ms": gap * 1000, "switches": switches, "lost": res.lost() - _tail(res)}
    finally:
        topo.impair.clear()
        for s in (cli, conn, lst):
            s.close()


def _tail(res) -> int:
    """Messages still in flight when the run stopped are not losses."""
    got = {a.seq for a in res.arrivals}
    top = max(got) if got else -1
    return sum(1 for s in range(top + 1, res.sent))


def haig_run(topo, rto_min: int, loss: int) -> dict:
    port, svc_port = next(_port), next(_port)
    ini, mx, mn = _timers(rto_min)
    svcs = [Service("bench", f"{topo.gw_lan_addr}:{svc_port}", f"{topo.server_addr}:{svc_port}", ttl=3000)]
    timers = {"rto_initial": ini, "rto_max": mx, "rto_min": mn, "api_listen": f"127.0.0.1:{port}"}
    ep = Haig(topo.ep, endpoint_config(topo, port, svcs, main=timers), "ep",
              api=f"http://127.0.0.1:{port}").start()
    gw = Haig(topo.gw, gateway_config(topo, port, svcs, main={**timers, "hold_down": 5}), "gw",
              api=f"http://127.0.0.1:{port}").start()
    try:
        gw.wait_for(lambda s: paths_active(s) and s["primary"] == "dsl", 120, "ready")
        seq0 = gw.status()["last_event_seq"]
        sink = traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, svc_port))).start()
        cli = traffic.udp_in(topo.client)
        snd = traffic.Sender(cli, (topo.gw_lan_addr, svc_port), interval=0.01).start()
        try:
            time.sleep(1.0)
            start, _ = topo.impair.window(MAIN, loss, WINDOW)
            time.sleep(3.0)
        finally:
            sent = snd.stop()
            time.sleep(1.0)
            rec = sink.stop()
            cli.close()
        rec.sent = sent.sent
        gap, _ = rec.longest_gap(start.asked - 0.2)
        sw = [e for e in gw.events() if e["seq"] > seq0 and e["kind"] in ("failover", "failback")]
        lost = rec.lost()  # the sink ran 1 s past the last send: nothing is in flight
        return {"gap_ms": gap * 1000, "switches": len(sw), "lost": lost}
    finally:
        gw.stop()
        ep.stop()
        topo.impair.clear()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[2:] if argv is None else argv
    quick = "--quick" in argv
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
