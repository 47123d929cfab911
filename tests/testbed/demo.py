"""The main job, shown: a haig gateway and endpoint over two emulated uplinks (the
report's Figure 1: DSL main, 3G-like fallback with 200 ms and 3.5 Mbit/s), telemetry
datagrams every 10 ms, the main line fails, haig fails over, the line comes back, haig
returns after the hold-down. Printed as a timeline. Runs inside the test-bed VM:

    ./dev demo
"""

from __future__ import annotations

import subprocess
import sys
import time

from tests.testbed import topology, traffic
from tests.testbed.haig_procs import (
    UPLINK,
    Haig,
    Service,
    endpoint_config,
    gateway_config,
    paths_active,
)
from tests.testbed.topology import MAIN

PORT, ECG, ALARM = 8700, 7400, 7401
HOLD_DOWN = 5


def say(t0: float, text: str) -> None:
    print(f"  {time.monotonic() - t0:7.2f} s  {text}", flush=True)


def main() -> int:
    print("haig demo — building the test bed (namespaces, veth, netem)...", flush=True)
    topo = topology.build()
    svcs = [Service("ecg", f"{topo.gw_lan_addr}:{ECG}", f"{topo.server_addr}:{ECG}", ttl=1000),
            Service("alarm", f"{topo.gw_lan_addr}:{ALARM}", f"{topo.server_addr}:{ALARM}", ttl=5000,
                    critical=True)]
    ep = Haig(topo.ep, endpoint_config(topo, PORT, svcs), "endpoint").start()
    gw = Haig(topo.gw, gateway_config(topo, PORT, svcs, main={"hold_down": HOLD_DOWN}), "gateway").start()
    sinks, senders = [], []
    try:
        print("  gateway (router) uplinks: dsl 10.202.0.1 (main), lte 10.203.0.1 (200 ms, 3.5 Mbit/s)")
        gw.wait_for(lambda s: paths_active(s) and s["primary"] == UPLINK[MAIN], 120, "association up")
        t0 = time.monotonic()
        wall0 = time.time()
        say(t0, "association up, both paths confirmed; ECG every 10 ms, an alarm every 100 ms (critical: sent on both paths)")
        for port, every in ((ECG, 0.01), (ALARM, 0.1)):
            sinks.append(traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, port))).start())
            cli = traffic.udp_in(topo.client)
            senders.append(traffic.Sender(cli, (topo.gw_lan_addr, port), interval=every).start())
        time.sleep(3)
        ch = topo.impair.loss(MAIN, 100)
        say(t0, f"!! main line (dsl) fails: 100 % loss on both ends (took effect after "
                f"{(ch.effective - ch.asked) * 1000:.0f} ms)")
        time.sleep(5)
        back = topo.impair.loss(MAIN, 0)
        say(t0, "main line restored")
        gw.wait_for(lambda s: s["primary"] == UPLINK[MAIN], HOLD_DOWN + 60, "failback")
        time.sleep(1)
        recs = [s.stop() for s in senders]
        t_stop = time.monotonic()
        time.sleep(1.0)
        arrivals = [s.stop() for s in sinks]
        for r, a in zip(recs, arrivals, strict=True):
            a.sent = r.sent
        print("\nWhat haig decided (its event stream, as ubus/API/LuCI/CLI show it):")
        for e in gw.events():
            if e["kind"] in ("failover", "failback", "path_state", "link") or e["new"] == "up":
                print(f"  {e['t'] - wall0:7.2f} s  {e['kind']:<10} {e['subject']:<5} "
                      f"{e['old']} -> {e['new']}: {e['reason']}")
        print("\nWhat the hospital side received:")
        for name, a in zip(("ecg  ", "alarm"), arrivals, strict=True):
            gap, at = a.longest_gap(ch.asked - 0.2, back.asked)
            print(f"  {name} sent {a.sent}, received {len(set(a.seqs))}, lost {a.lost()}, "
                  f"duplicates {a.duplicates()}; longest gap during the failure {gap * 1000:.0f} ms "
                  f"(fallback one-way delay alone is 200 ms); last arrival {a.times[-1] - t0 if a.times else 0:.1f} s, "
                  f"traffic stopped {t_stop - t0:.1f} s")
        print(f"  endpoint drops: {ep.status()['drops']}; gateway drops: {gw.status()['drops']}")
        for ns in (topo.gw, topo.ep, topo.server):
            out = ns.run("nstat -az UdpRcvbufErrors UdpInDatagrams", check=False).stdout.split("\n")[1:]
            print(f"  {ns.name}: " + "; ".join(" ".join(x.split()[:2]) for x in out if x.strip()))
        print("\n`haig status` on the router:")
        out = topo.gw.run(f"{sys.executable} -m haig status --api http://127.0.0.1:8990", check=False)
        print(out.stdout or out.stderr)
        return 0
    finally:
        for s in senders + sinks:
            try:
                s.stop()
            except Exception:
                pass
        for p in (gw, ep):
            p.stop()
        topo.impair.clear()
        topo.teardown()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
