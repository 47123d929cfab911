"""Relay benchmark (prints numbers; not a test): haig against the report's socat relay
and against plain routed UDP, one after the other on the same test-bed topology in the
same VM run, so only ratios matter (software emulation makes absolute figures slow).

For each relay:
* latency: round-trip times of small UDP datagrams (64 bytes every 20 ms) from the
  client namespace to an echo server in the server namespace;
* throughput: iperf3 TCP through a real OpenVPN tunnel (UDP) carried by the relay —
  the report's own workload — median of a few runs;
* cost: CPU time of the relay's processes per MB carried, and their resident memory.

Relays:
* plain — no relay: client → gw → main link → ep → server, routed;
* socat — the report's Listings 1–2: `socat UDP-LISTEN:p,fork SCTP:ep:q` on the gateway,
  `socat SCTP-LISTEN:q,fork UDP:server:p` on the endpoint (one SCTP association per
  UDP client, reliable and ordered);
* haig — the gateway and endpoint daemons with the test bed's usual config.

Run inside the VM: `python -m tests.testbed.run_in_vm python -m tests.bench.relay [plain|socat|haig...]`
(default: all three, which the ratios need).
Figures are also written to artifacts/bench/relay.json when that directory is writable.
"""

from __future__ import annotations

import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from haig.core.events import FAILBACK, FAILOVER
from tests.testbed import iperf, openvpn, topology, traffic
from tests.testbed.haig_procs import Haig, Service, endpoint_config, gateway_config, paths_active
from tests.testbed.proc import Proc, cpu_seconds, rss_kib, tree
from tests.testbed.topology import MAIN, Topology

ECHO, VPN = 7400, 1194  # on the server
SCTP_PORT = 8850  # haig; socat uses the next ones
PINGS, INTERVAL, WARMUP = 500, 0.02, 20
IPERF_RUNS, IPERF_SECONDS = 3, 4


@dataclass
class Relay:
    name: str
    echo_to: tuple[str, int]  # where the client sends its echo requests
    vpn_to: tuple[str, int]  # where the OpenVPN client points
    stop: Callable[[], None]
    pids: Callable[[], list[int]] | None  # the relay's processes now; None: no relay process
    switches: Callable[[], int] | None = None  # path changes so far (haig's events)
    drops: Callable[[], dict] | None = None  # datagrams the relay says it dropped, by reason


@dataclass
class Result:
    name: str
    rtt_ms: list[float] = field(default_factory=list)
    lost: int = 0
    lost_seqs: tuple[int, int] | None = None  # first and last lost echo
    corrupted: int = 0
    relay_drops: dict | None = None
    mbps: list[float] = field(default_factory=list)
    cpu_ms_per_mb: float | None = None
    rss_kib: int | None = None
    path_switches: int | None = None
    first_echo_s: float | None = None

    def row(self) -> dict:
        r = sorted(self.rtt_ms)
        return {
            "relay": self.name,
            "rtt_median_ms": statistics.median(r) if r else None,
            "rtt_p95_ms": r[min(len(r) - 1, int(0.95 * len(r)))] if r else None,
            "echo_lost": self.lost,
            "echo_samples": len(r),
            "first_echo_s": None if self.first_echo_s is None else round(self.first_echo_s, 2),
            "echo_lost_range": self.lost_seqs,
            "echo_corrupted": self.corrupted,
            "relay_drops": self.relay_drops,
            "tcp_mbps_median": statistics.median(self.mbps) if self.mbps else None,
            "tcp_mbps_runs": [round(x, 2) for x in self.mbps],
            "cpu_ms_per_mb": self.cpu_ms_per_mb,
            "rss_kib": self.rss_kib,
            "path_switches": self.path_switches,
        }


# -- relays -------------------------------------------------------------------------


def plain(topo: Topology) -> Relay:
    main = topo.links[MAIN]
    topo.gw.run(f"ip route add 10.2.0.0/24 via {main.ep_addr} dev {main.gw_dev}")
    topo.ep.run(f"ip route add 10.1.0.0/24 via {main.gw_addr} dev {main.ep_dev}")

    def stop() -> None:
        topo.gw.run("ip route del 10.2.0.0/24", check=False)
        topo.ep.run("ip route del 10.1.0.0/24", check=False)

    return Relay("plain", (topo.server_addr, ECHO), (topo.server_addr, VPN), stop, None)


def socat_pair(topo: Topology, gw_port: int, sctp_port: int, target_port: int) -> list[Proc]:
    """The report's Listings 1–2 for one service: a UDP listener on the gateway's LAN
    address relaying to SCTP on the endpoint's main address, and back to UDP there."""
    ep_addr = topo.links[MAIN].ep_addr
    return [Proc(topo.ep, ["socat", f"SCTP-LISTEN:{sctp_port},fork,reuseaddr",
                           f"UDP:{topo.server_addr}:{target_port}"], f"socat-ep-{sctp_port}").start(),
            Proc(topo.gw, ["socat", f"UDP-LISTEN:{gw_port},fork,bind={topo.gw_lan_addr}",
                           f"SCTP:{ep_addr}:{sctp_port}"], f"socat-gw-{gw_port}").start()]


def socat(topo: Topology) -> Relay:
    """Listings 1 and 2 of the report, once for the echo service and once for OpenVPN."""
    procs = []
    for i, (gw_port, target) in enumerate([(ECHO + 1, ECHO), (VPN + 1, VPN)]):
        procs += socat_pair(topo, gw_port, SCTP_PORT + 1 + i, target)
    time.sleep(1.0)
    for p in procs:
        if not p.alive():
            raise RuntimeError(f"{p.name} exited:\n{p.log()}")

    def stop() -> None:
        for p in procs:
            p.stop()

    return Relay("socat", (topo.gw_lan_addr, ECHO + 1), (topo.gw_lan_addr, VPN + 1), stop,
                 lambda: [pid for p in procs for pid in p.pids()])


def haig(topo: Topology) -> Relay:
    gw_echo, gw_vpn = ECHO + 2, VPN + 2
    svc = [Service("echo", f"{topo.gw_lan_addr}:{gw_echo}", f"{topo.server_addr}:{ECHO}"),
           Service("openvpn", f"{topo.gw_lan_addr}:{gw_vpn}", f"{topo.server_addr}:{VPN}")]
    ep = Haig(topo.ep, endpoint_config(topo, SCTP_PORT, svc), "ep").start()
    gw = Haig(topo.gw, gateway_config(topo, SCTP_PORT, svc, main={"log_level": "warning"}), "gw").start()
    procs = [ep, gw]

    def stop() -> None:
        for p in procs:
            p.stop()

    try:
        gw.wait_for(paths_active, 120, "association up with both paths active")
    except BaseException:
        stop()
        raise
    return Relay("haig", (topo.gw_lan_addr, gw_echo), (topo.gw_lan_addr, gw_vpn), stop,
                 lambda: [pid for p in procs if p.proc and p.proc.poll() is None for pid in tree(p.proc.pid)],
                 lambda: sum(1 for e in gw.events() if e["kind"] in (FAILOVER, FAILBACK)),
                 lambda: {f"{p.name}:{k}": v for p in procs for k, v in p.status()["drops"].items() if v})


# -- measurements -------------------------------------------------------------------


def prime(sock, dest: tuple[str, int], timeout: float = 30) -> float | None:
    """Send until the first echo comes back; seconds it took (None: never). socat forks a
    child and opens an SCTP association per new UDP client; haig opens a flow in its
    standing association: this is that start-up, kept out of the RTT figures."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        sock.sendto(b"prime", dest)
        r, _, _ = select.select([sock], [], [], 0.2)
        if r:
            took = time.monotonic() - t0
            time.sleep(0.5)  # late answers to earlier primes
            while select.select([sock], [], [], 0)[0]:
                sock.recv(65535)
            return took
    return None


def measure_latency(topo: Topology, relay: Relay, res: Result) -> None:
    sock = traffic.udp_in(topo.client)
    res.first_echo_s = prime(sock, relay.echo_to)
    back = traffic.Sink(sock).start()
    sender = traffic.Sender(sock, relay.echo_to, interval=INTERVAL, size=64).start()
    time.sleep((PINGS + WARMUP) * INTERVAL)
    sent = sender.stop()
    time.sleep(1.0)
    got = back.stop()
    for seq, t in zip(got.seqs, got.times, strict=True):
        if seq >= WARMUP:
            res.rtt_ms.append((t - sent.send_times[seq]) * 1000)
    seen = set(got.seqs)
    lost = [s for s in range(WARMUP, sent.sent) if s not in seen]
    res.lost, res.corrupted = len(lost), got.corrupted
    res.lost_seqs = (lost[0], lost[-1]) if lost else None


def measure_throughput(topo: Topology, relay: Relay, res: Result, certs: openvpn.Certs) -> None:
    srv = openvpn.server(topo.server, certs, topo.server_addr, VPN, name=f"ovpn-server-{relay.name}")
    cli = openvpn.client(topo.client, certs, relay.vpn_to[0], relay.vpn_to[1],
                         name=f"ovpn-client-{relay.name}")
    try:
        openvpn.wait_tunnel(topo.client, openvpn.TUN_SERVER, 90, (srv, cli))
        pids = relay.pids() if relay.pids else []
        cpu0 = cpu_seconds(pids)
        total = 0
        for _ in range(IPERF_RUNS):
            rep = iperf.tcp(topo.client, topo.server, openvpn.TUN_SERVER, seconds=IPERF_SECONDS)
            res.mbps.append(rep["mbps"])
            total += rep["bytes"]
        if relay.pids:
            pids = relay.pids()  # socat forked its children by now
            res.cpu_ms_per_mb = round((cpu_seconds(pids) - cpu0) * 1000 / (total / 1e6), 1)
            res.rss_kib = rss_kib(pids)
    finally:
        cli.stop()
        srv.stop()


def run_one(topo: Topology, make, certs: openvpn.Certs) -> Result:
    relay = make(topo)
    res = Result(relay.name)
    try:
        print(f"-- {relay.name}: latency ({PINGS} echoes every {INTERVAL * 1000:.0f} ms)", flush=True)
        measure_latency(topo, relay, res)
        print(f"-- {relay.name}: throughput ({IPERF_RUNS} x {IPERF_SECONDS} s iperf3 TCP "
              f"through OpenVPN)", flush=True)
        measure_throughput(topo, relay, res, certs)
        if relay.switches:
            # Spurious path switches (none was provoked) put samples on the 200 ms fallback.
            res.path_switches = relay.switches()
        if relay.drops:
            res.relay_drops = relay.drops()
    finally:
        relay.stop()
    print(f"   {json.dumps(res.row())}", flush=True)
    return res


# -- report -------------------------------------------------------------------------


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def _fmt(v, nd=1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def report(rows: dict[str, dict]) -> str:
    lines = ["| relay | first echo s | RTT median ms | RTT p95 ms | echo lost | TCP Mbit/s (median) "
             "| CPU ms/MB | RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        rss = None if r["rss_kib"] is None else r["rss_kib"] / 1024
        lines.append(f"| {r['relay']} | {_fmt(r['first_echo_s'], 2)} | {_fmt(r['rtt_median_ms'], 2)} | {_fmt(r['rtt_p95_ms'], 2)} "
                     f"| {r['echo_lost']}/{r['echo_samples'] + r['echo_lost']} "
                     f"| {_fmt(r['tcp_mbps_median'], 2)} | {_fmt(r['cpu_ms_per_mb'])} | {_fmt(rss)} |")
    h, s, p = rows.get("haig"), rows.get("socat"), rows.get("plain")
    if h and h.get("path_switches") is not None:
        lines.append(f"\nhaig path switches during its run (none provoked): {h['path_switches']}")
    if h and s and p:
        lines += ["", "| ratio | RTT median | RTT p95 | TCP throughput | CPU per MB | RSS |",
                  "|---|---|---|---|---|---|"]
        for other in (s, p):
            lines.append(
                f"| haig / {other['relay']} | {_ratio(h['rtt_median_ms'], other['rtt_median_ms'])} "
                f"| {_ratio(h['rtt_p95_ms'], other['rtt_p95_ms'])} "
                f"| {_ratio(h['tcp_mbps_median'], other['tcp_mbps_median'])} "
                f"| {_ratio(h['cpu_ms_per_mb'], other['cpu_ms_per_mb'])} "
                f"| {_ratio(h['rss_kib'], other['rss_kib'])} |")
        for other in (s, h):
            lines.append(f"\nadded RTT over plain routing, {other['relay']}: median "
                         f"{other['rtt_median_ms'] - p['rtt_median_ms']:+.2f} ms, p95 "
                         f"{other['rtt_p95_ms'] - p['rtt_p95_ms']:+.2f} ms")
    return "\n".join(lines)


def _versions() -> dict:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    return {"kernel": platform.release(), "python": platform.python_version(),
            "openvpn": first_line(["openvpn", "--version"]), "socat": first_line(["socat", "-V"])[:60],
            "iperf3": first_line(["iperf3", "--version"]), "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("HAIG_IN_VM") != "1":
        print("run inside the test-bed VM: python -m tests.testbed.run_in_vm python -m tests.bench.relay",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    topo = topology.build()
    echo = traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, ECHO)), echo=True).start()
    rows: dict[str, dict] = {}
    try:
        certs = openvpn.make_certs()
        which = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
        for make in (plain, socat, haig):
            if which and make.__name__ not in which:
                continue
            res = run_one(topo, make, certs)
            rows[res.name] = res.row()
    finally:
        echo.stop()
        topo.teardown()
    text = report(rows)
    print()
    print(text)
    print(f"\n(total {time.monotonic() - t0:.0f} s; {json.dumps(_versions())})")
    out = Path(__file__).resolve().parents[2] / "artifacts" / "bench"
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "relay.json").write_text(json.dumps({"rows": rows, "versions": _versions(),
                                                    "table": text}, indent=2))
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
