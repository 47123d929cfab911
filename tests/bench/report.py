"""The report's evaluation (CAIA TR 151231A, Sections III-D and IV) redone in the test bed,
haig beside the report's socat relay: one run per cell, raw data to
artifacts/report/raw.json (written after every run, so a cut-short sweep keeps what it
measured); `python -m tests.bench.report_render` turns it into docs/report/.

Each run: a fresh relay, a real OpenVPN tunnel client → server through it, iperf3 TCP
inside the tunnel for 30 s (`-i 0.2 --get-server-output`: the receiver's bytes per
interval = what was acknowledged; the sender's cwnd/RTT), the main link losing
0/10/50/100 % (both ends, netem, switched through pre-started `tc -batch`
processes: tests/testbed/tc_batch.py) from 10 s to 15 s, and alongside the tunnel a telemetry
stream: ECG-rate datagrams (48 bytes every 20 ms) and an alarm every second, each
sequence-numbered and time-stamped. Which uplink carries the traffic is read from the
gateway's device counters, the same way for every relay.

Relays:
* plain — no relay, routed over the main link only (the report's Figure 5 baseline);
* socat rto_min=N — Listings 1–2 (one UDP↔SCTP pair per service), kernel defaults but
  the global net.sctp.rto_min sysctl at N ms (both namespaces), as the report swept it;
* haig — the daemons with the shipped defaults (haig.config.model, = files/etc/config/haig:
  rto 1000/100/1000, hold_down 30 s, hb 1000 ms, the fallback metered), the alarm as a
  `critical` service (ttl 5 s) as in the shipped example. Not used: udp_encap (the bed
  has no NAT).

Usage (inside the VM): python -m tests.bench.report [--quick] [--repeat N]
  [--only plain,socat100,haig] [--losses 0,100] [--raw FILE (in artifacts/report/)]
Host: ./dev report [--quick] [--repeat N]  (runs this in the VM, then renders).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from haig.config import model
from tests.bench import relay as relay_bench
from tests.bench import report_metrics
from tests.testbed import iperf, openvpn, topology, traffic
from tests.testbed.counters import Sampler
from tests.testbed.haig_procs import Haig, Service, endpoint_config, gateway_config, paths_active
from tests.testbed.proc import Proc
from tests.testbed.tc_batch import LossSwitch
from tests.testbed.topology import FALLBACK, MAIN

VPN, ECG, ALARM = 1194, 7500, 7501  # on the server
ECG_INTERVAL, ECG_SIZE = 0.02, 48  # 50 datagrams/s, ~19 kbit/s of payload (the report's ECG: 15)
ALARM_INTERVAL, ALARM_SIZE = 1.0, 64
RTO_MINS = (50, 100, 1000, 3000)
LOSSES = (100, 10, 50, 0)  # this order: a sweep cut short has the telling cells first
KERNEL_RTO_MIN = 1000  # the sysctl's default, restored after each socat run
OUT = Path(__file__).resolve().parents[2] / "artifacts" / "report"
_ports = iter(range(20000, 40000, 4))


@dataclass(frozen=True)
class Timing:
    seconds: int = 30  # iperf3 -t
    fault_at: float = 10.0
    fault_for: float = 5.0


@dataclass
class Setup:
    """A relay ready to carry the run: where the OpenVPN client and the telemetry go."""

    vpn_to: tuple[str, int]
    ecg_to: tuple[str, int]
    alarm_to: tuple[str, int]
    stop: object
    gw: Haig | None = None


def _default(cls, name: str):
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def haig_shipped_options() -> tuple[dict, dict]:
    """(main options, uplink options) at haig's shipped defaults."""
    main = {k: _default(model.Main, k) for k in ("rto_initial", "rto_min", "rto_max", "hold_down")}
    uplink = {k: _default(model.Uplink, k) for k in ("hb_interval", "path_max_retrans", "pf_retrans")}
    return main, uplink


def setup_plain(topo) -> Setup:
    r = relay_bench.plain(topo)
    s = topo.server_addr
    return Setup(r.vpn_to, (s, ECG), (s, ALARM), r.stop)


def setup_socat(topo, rto_min: int) -> Setup:
    for ns in (topo.gw, topo.ep):
        ns.sysctl("net.sctp.rto_min", rto_min)
    base = next(_ports)
    procs: list[Proc] = []
    for i, target in enumerate((VPN, ECG, ALARM)):
        procs += relay_bench.socat_pair(topo, base + i, base + i, target)

    def stop() -> None:
        for p in procs:
            p.stop()
        for ns in (topo.gw, topo.ep):
            ns.sysctl("net.sctp.rto_min", KERNEL_RTO_MIN)

    time.sleep(1.0)
    dead = [p for p in procs if not p.alive()]
    if dead:
        stop()
        raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].log()}")
    g = topo.gw_lan_addr
    return Setup((g, base), (g, base + 1), (g, base + 2), stop)


def setup_haig(topo) -> Setup:
    base = next(_ports)
    g, s = topo.gw_lan_addr, topo.server_addr
    svcs = [Service("openvpn", f"{g}:{base}", f"{s}:{VPN}", ttl=1000),
            Service("ecg", f"{g}:{base + 1}", f"{s}:{ECG}", ttl=_default(model.Service, "ttl")),
            Service("alarm", f"{g}:{base + 2}", f"{s}:{ALARM}", ttl=5000, critical=True)]
    main, uplink = haig_shipped_options()
    timers = {k: main[k] for k in ("rto_initial", "rto_min", "rto_max")}
    ep = Haig(topo.ep, endpoint_config(topo, base, svcs, main={**timers, "log_level": "warning"}), "ep").start()
    gw = Haig(topo.gw, gateway_config(topo, base, svcs, main={**main, "log_level": "warning"},
                                      uplinks={MAIN: uplink, FALLBACK: {**uplink, "metered": 1}}), "gw").start()

    def stop() -> None:
        gw.stop()
        ep.stop()

    try:
        gw.wait_for(paths_active, 180, "association up with both paths active")
        try:  # a spurious PF at start-up (CPU starvation) puts it on lte for a hold-down
            gw.wait_for(lambda st: st.get("primary") == "dsl", 60, "primary on dsl")
        except TimeoutError:
            print("   haig: primary not on dsl after 60 s; measuring from where it is", flush=True)
    except BaseException:
        stop()
        raise
    return Setup((g, base), (g, base + 1), (g, base + 2), stop, gw)


def prime(client_sock, dest: tuple[str, int], server_ns, port: int, timeout: float = 60) -> float:
    """Send until the relay delivers (socat forks a child and opens an association per
    new UDP client; haig opens a flow): kept out of the measured run."""
    t0 = time.monotonic()
    sink = traffic.Sink(traffic.udp_in(server_ns, ("0.0.0.0", port))).start()
    snd = traffic.Sender(client_sock, dest, interval=0.1, size=ECG_SIZE).start()
    try:
        while not sink.rec.seqs:
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"nothing delivered to port {port} in {timeout} s")
            time.sleep(0.1)
    finally:
        snd.stop()
        time.sleep(0.3)
        sink.stop()
    return time.monotonic() - t0


def _stream(rec_sent, rec_got, t0: float) -> dict:
    return {"sent": rec_sent.sent,
            "send_times": [round(t - t0, 4) for t in rec_sent.send_times],
            "recv": [[s, round(t - t0, 4)] for s, t in zip(rec_got.seqs, rec_got.times, strict=True)],
            "corrupted": rec_got.corrupted}


def _wait_data_start(sampler: Sampler, col: int, since: float, timeout: float = 8) -> float | None:
    """When iperf3's data began: the first sample after `since` where the client's tunnel
    device sent > 20 kB in one interval (the control exchange is far smaller)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = [x for x in list(sampler.samples) if x[0] >= since - 0.2]
        for (ta, a), (_, b) in zip(s, s[1:], strict=False):
            if b[col] - a[col] > 20_000:
                return ta
        time.sleep(0.05)
    return None


def run_cell(topo, certs, kind: str, rto_min: int | None, loss: int, timing: Timing) -> dict:
    t_setup = time.monotonic()
    su = {"plain": lambda: setup_plain(topo), "socat": lambda: setup_socat(topo, rto_min),
          "haig": lambda: setup_haig(topo)}[kind]()
    srv = cli = None
    socks = []
    try:
        srv = openvpn.server(topo.server, certs, topo.server_addr, VPN, name=f"ovpn-srv-{kind}")
        cli = openvpn.client(topo.client, certs, su.vpn_to[0], su.vpn_to[1], name=f"ovpn-cli-{kind}")
        openvpn.wait_tunnel(topo.client, openvpn.TUN_SERVER, 120, (srv, cli))
        ecg_sock, alarm_sock = traffic.udp_in(topo.client), traffic.udp_in(topo.client)
        socks = [ecg_sock, alarm_sock]
        prime(ecg_sock, su.ecg_to, topo.server, ECG)
        prime(alarm_sock, su.alarm_to, topo.server, ALARM)
        setup_s = time.monotonic() - t_setup
        st0 = su.gw.status() if su.gw else {}
        seq0, primary0 = st0.get("last_event_seq", 0), st0.get("primary")

        main, fb = topo.links[MAIN], topo.links[FALLBACK]
        switch = LossSwitch(topo)
        sampler = Sampler([(topo.gw, main.gw_dev), (topo.gw, fb.gw_dev), (topo.client, openvpn.DEV)]).start()
        ecg_sink = traffic.Sink(traffic.udp_in(topo.server, ("0.0.0.0", ECG))).start()
        alarm_sink = traffic.Sink(traffic.udp_in(topo.server, ("0.0.0.0", ALARM))).start()
        ecg = traffic.Sender(ecg_sock, su.ecg_to, interval=ECG_INTERVAL, size=ECG_SIZE).start()
        alarm = traffic.Sender(alarm_sock, su.alarm_to, interval=ALARM_INTERVAL, size=ALARM_SIZE, seed=2).start()
        time.sleep(1.0)

        launched = threading.Event()
        launch_t: list[float] = []
        result: dict = {}

        def on_start() -> None:
            launch_t.append(time.monotonic())
            launched.set()

        def run_iperf() -> None:
            try:
                result["rep"] = iperf.tcp(topo.client, topo.server, openvpn.TUN_SERVER, seconds=timing.seconds,
                                          extra=("-i", "0.2", "--get-server-output"), on_start=on_start,
                                          server_extra=("-i", "0.2", "-J"))
            except Exception as e:  # reported in the raw data, the sweep goes on
                result["error"] = repr(e)
                launched.set()

        th = threading.Thread(target=run_iperf, daemon=True)
        th.start()
        launched.wait(60)
        t0 = _wait_data_start(sampler, 2, launch_t[0]) if launch_t else None
        aligned = t0 is not None
        t0 = t0 if aligned else (launch_t[0] if launch_t else time.monotonic())
        fault = {}
        try:
            time.sleep(max(0.0, t0 + timing.fault_at - time.monotonic()))
            if loss:
                a = switch.loss(loss)
                time.sleep(max(0.0, a.asked + timing.fault_for - time.monotonic()))
                b = switch.loss(0)
                fault = {"start_asked": a.asked - t0, "start": a.effective - t0,
                         "end_asked": b.asked - t0, "end": b.effective - t0}
            else:
                fault = {"start_asked": timing.fault_at, "start": timing.fault_at,
                         "end_asked": timing.fault_at + timing.fault_for,
                         "end": timing.fault_at + timing.fault_for}
        finally:
            try:
                switch.close()
            except Exception:  # never leave the main link lossy for the next run
                topo.impair.loss(MAIN, 0)
        th.join(timing.seconds + 120)
        ecg_sent, alarm_sent = ecg.stop(), alarm.stop()
        time.sleep(2.0)  # let the last datagrams arrive (alarm ttl 5 s is longer, but rare)
        ecg_got, alarm_got = ecg_sink.stop(), alarm_sink.stop()
        samples = sampler.stop()

        raw = {"kind": kind, "rto_min": rto_min, "loss": loss, "timing": dataclasses.asdict(timing),
               "setup_s": round(setup_s, 1), "aligned": aligned, "fault": fault,
               "ecg": _stream(ecg_sent, ecg_got, t0), "alarm": _stream(alarm_sent, alarm_got, t0),
               "counters": {"devs": ["gw:main", "gw:fallback", "client:tun"],
                            "samples": [[round(t - t0, 3), *v] for t, v in samples]}}
        if "rep" in result:
            rep = result["rep"]
            raw["iperf"] = {
                "server": [[i["sum"]["start"], i["sum"]["end"], i["sum"]["bytes"]]
                           for i in rep.get("server_output_json", {}).get("intervals", [])],
                "client": [[i["sum"]["start"], i["sum"]["end"], i["sum"]["bytes"],
                            i["streams"][0].get("snd_cwnd"), i["streams"][0].get("rtt"),
                            i["sum"].get("retransmits")] for i in rep.get("intervals", [])],
                "received_bytes": rep["bytes"]}
        else:
            raw["iperf_error"] = result.get("error", "iperf3 did not finish")
        if su.gw:
            off = time.time() - time.monotonic()
            raw["haig_events"] = [{"kind": e["kind"], "t": round(e.get("t", 0) - off - t0, 3),
                                   "detail": e.get("detail", {})}
                                  for e in su.gw.events() if e["seq"] > seq0
                                  and e["kind"] in ("failover", "failback")]
            st = su.gw.status()
            raw["haig_drops"] = {k: v for k, v in st.get("drops", {}).items() if v}
            raw["haig_primary_at_start"] = primary0
        return raw
    finally:
        for s in socks:
            s.close()
        for p in (cli, srv):
            if p is not None:
                p.stop()
        su.stop()
        topo.impair.clear()


def configs(quick: bool, only: list[str] | None) -> list[tuple[str, int | None]]:
    rtos = (100, 1000) if quick else RTO_MINS
    out = [("plain", None)] + [("socat", r) for r in rtos] + [("haig", None)]
    if only:
        out = [c for c in out if report_metrics.label(*c) in only or c[0] in only]
    return out


def _versions() -> dict:
    v = relay_bench._versions()
    try:
        out = subprocess.run(["socat", "-V"], capture_output=True, text=True, timeout=20).stdout
        v["socat"] = next((ln.strip() for ln in out.splitlines() if "socat version" in ln), v["socat"])
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        root = Path(__file__).resolve().parents[2]
        v["haig_commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                                          capture_output=True, text=True, timeout=20).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        v["haig_commit"] = "?"
    return v


def _opt(argv: list[str], name: str, default: str | None = None) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("HAIG_IN_VM") != "1":
        print("run inside the test-bed VM: ./dev report [--quick] [--repeat N]", file=sys.stderr)
        return 2
    quick = "--quick" in argv
    raw_path = OUT / (_opt(argv, "--raw") or "raw.json")
    repeat = int(_opt(argv, "--repeat", "1"))
    only = (_opt(argv, "--only") or "").split(",") if _opt(argv, "--only") else None
    losses = tuple(int(x) for x in _opt(argv, "--losses").split(",")) if _opt(argv, "--losses") \
        else ((0, 100) if quick else LOSSES)
    timing = Timing(20, 6.0, 5.0) if quick else Timing()
    cells = [(k, r, loss) for _ in range(repeat) for loss in losses for k, r in configs(quick, only)]
    command = "./dev report " + " ".join(argv)
    doc = {"command": command.strip(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "quick": quick, "repeat": repeat, "timing": dataclasses.asdict(timing),
           "haig_options": dict(zip(("main", "uplink"), haig_shipped_options(), strict=True)),
           "versions": _versions(), "runs": [], "failed": []}
    OUT.mkdir(parents=True, exist_ok=True)
    t_all = time.monotonic()
    topo = topology.build()
    try:
        certs = openvpn.make_certs()
        for n, (kind, rto, loss) in enumerate(cells, 1):
            lab = report_metrics.label(kind, rto)
            t1 = time.monotonic()
            try:
                raw = run_cell(topo, certs, kind, rto, loss, timing)
                doc["runs"].append(raw)
                m = report_metrics.metrics(raw)
                print(f"[{n}/{len(cells)}] {lab:>13} loss {loss:>3} %: gap {report_metrics.fmt(m['gap_ms'])} ms, "
                      f"switches {m['switches']}, back on main {report_metrics.fmt(m['back_on_main_s'], 1)} s, "
                      f"ecg lost {m['ecg_lost']}, alarms lost {m['alarm_lost']}, "
                      f"TCP {report_metrics.fmt(m['mbps_before'], 2)}/{report_metrics.fmt(m['mbps_fault'], 2)}/"
                      f"{report_metrics.fmt(m['mbps_after'], 2)} Mbit/s "
                      f"({time.monotonic() - t1:.0f} s)", flush=True)
            except Exception as e:  # one broken cell must not lose the others
                doc["failed"].append({"kind": kind, "rto_min": rto, "loss": loss, "error": repr(e)[:2000]})
                print(f"[{n}/{len(cells)}] {lab} loss {loss} % FAILED: {e!r}"[:3000], flush=True)
            doc["elapsed_s"] = round(time.monotonic() - t_all)
            raw_path.write_text(json.dumps(doc))
    finally:
        topo.teardown()
    print(f"== report: {len(doc['runs'])} runs, {len(doc['failed'])} failed, "
          f"{time.monotonic() - t_all:.0f} s; raw data in {raw_path}", flush=True)
    return 0 if doc["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
