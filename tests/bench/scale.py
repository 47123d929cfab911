"""Scale benchmark (prints numbers; not a test): one endpoint process, N homes.

For N in 10, 100, 1000 (`--n=10,100` to choose): an endpoint configured with N gateway
sections (own ids and keys), the load generator (tests/testbed/loadgen.py) in the gw
namespace admitting N associations and sending ECG-rate telemetry (10 datagrams/s of
200 B per home, an alarm every 100th) to an echo target in the server namespace, whose
answers come back through the endpoint. Measured on the endpoint process over the load
window: CPU per 1,000 relayed datagrams (both directions), CPU utilisation, RSS, open
fds, drops by reason; on the generator: p50/p99 round-trip time and replies/sent.
"added" latency = round trip at N minus the round trip of one idle-ish home (N=1).
The N where one core saturates is extrapolated from the CPU per datagram.
Each home comes from its own source address (a block HOME_SOURCES added to the gw
namespace's main uplink, routed on-link from the endpoint), as real homes do, so the
endpoint's per-source cap on pending sessions applies per home.

Accounting, per row: every datagram sent is replied, or lost with a counted reason (the
generator's kernel abandoned it, SCTP_SEND_FAILED_EVENT; the endpoint dropped it, by its
status' reason), or uncounted. `--ceiling` adds the same telemetry straight to an SCTP
echo in the endpoint namespace, no haig (`--ceiling-only`: just that): what the
generator and the emulator carry on their own.

Abuse, reproduced as numbers (`--abuse` only, or `--no-abuse` to skip):
* unauth   — M associations that never say HELLO: sessions held, endpoint RSS/CPU,
             time for a real home to be admitted meanwhile;
* unknown  — M HELLOs with unknown ids: how many of the real homes' events are still
             in the bounded history afterwards, what REFUSED says on the wire;
* flows    — one admitted home opens 1,100 flows: endpoint fds vs RLIMIT_NOFILE, what
             happens to another home's telemetry and alarms.

Run: `./dev bench scale` (inside the VM); writes artifacts/bench/scale.json when it can.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.testbed import topology
from tests.testbed.haig_procs import Haig, _sec
from tests.testbed.loadgen import account, home_id, home_key
from tests.testbed.proc import Proc, cpu_seconds, rss_kib
from tests.testbed.topology import MAIN

PORT = 8850
RAW_ECHO_PORT = 8851  # the SCTP echo in the endpoint namespace, for --ceiling (no haig)
ECHO_PORTS = (7500, 7501)
DURATION = 20.0
RATE = 10.0
HOME_SOURCES = "10.220.0.0/16"  # one address per home, on the gw namespace's main uplink


def add_home_sources(topo, n: int) -> None:
    """Give the gw namespace one address per home (10.220.0.1 ...) on its main uplink
    and the endpoint an on-link route to them (one `ip -batch` each: 1,000 addresses in
    well under a second)."""
    import ipaddress

    net = ipaddress.ip_network(HOME_SOURCES)
    dev = topo.links[MAIN].gw_dev
    batch = "".join(f"address add {net[i + 1]}/{net.prefixlen} dev {dev}\n" for i in range(n))
    subprocess.run(["ip", "-n", topo.gw.name, "-batch", "-"], input=batch, text=True, check=True)
    subprocess.run(["ip", "-n", topo.ep.name, "route", "add", HOME_SOURCES, "dev", topo.links[MAIN].ep_dev],
                   check=True)


def endpoint_conf(topo, homes: int, extra: dict | None = None) -> str:
    m = {"role": "endpoint", "port": PORT, "rto_initial": 1000, "rto_min": 100, "rto_max": 1000,
         "api_listen": "127.0.0.1:8990", "log_level": "warning", "bind": [topo.links[MAIN].ep_addr]}
    m.update(extra or {})
    out = _sec("haig", "main", m)
    out += _sec("service", "ecg", {"target": f"{topo.server_addr}:{ECHO_PORTS[0]}", "ttl": 1000})
    out += _sec("service", "alarm", {"target": f"{topo.server_addr}:{ECHO_PORTS[1]}", "ttl": 1000,
                                     "critical": True})
    for i in range(homes):
        out += _sec("gateway", home_id(i), {"key": home_key(i)})
    return out


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def nofile(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return "/".join(line.split()[3:5])
    except OSError:
        pass
    return "?"


class Sampler:
    """CPU time, open fds and RSS of the endpoint every 0.25 s, so a window can be cut
    out afterwards (fds and RSS at their peak: flows are freed when homes leave)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self.max_fds = self.max_rss = 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), cpu_seconds([self.pid])))
            self.max_fds = max(self.max_fds, fds(self.pid))
            self.max_rss = max(self.max_rss, rss_kib([self.pid]))
            time.sleep(0.25)

    def window(self, a: float, b: float) -> tuple[float, float]:
        inside = [s for s in self.samples if a <= s[0] <= b]
        if len(inside) < 2:
            return 0.0, 0.0
        return inside[-1][1] - inside[0][1], inside[-1][0] - inside[0][0]

    def stop(self) -> None:
        self._stop.set()
        self.t.join()


def loadgen(topo, *args: str, timeout: float = 600, port: int = PORT) -> dict:
    cmd = ["ip", "netns", "exec", topo.gw.name, sys.executable, "-m", "tests.testbed.loadgen",
           "--connect", f"{topo.links[MAIN].ep_addr}:{port}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"loadgen failed ({res.returncode}): {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


class LoadgenBg:
    def __init__(self, topo, *args: str) -> None:
        cmd = ["ip", "netns", "exec", topo.gw.name, sys.executable, "-m", "tests.testbed.loadgen",
               "--connect", f"{topo.links[MAIN].ep_addr}:{PORT}", *args]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self, timeout: float = 600) -> dict:
        out, err = self.p.communicate(timeout=timeout)
        if self.p.returncode != 0:
            raise RuntimeError(f"loadgen failed ({self.p.returncode}): {err[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])


def start_endpoint(topo, homes: int, name: str, extra: dict | None = None) -> Haig:
    ep = Haig(topo.ep, endpoint_conf(topo, homes, extra), name).start()
    ep.wait_for(lambda st: st.get("role") == "endpoint", timeout=120, what="endpoint API up")
    return ep


SCTP_MIB = ("SctpOutUnorderChunks", "SctpInUnorderChunks", "SctpAborteds", "SctpT3RtxExpireds",
            "SctpInPktDiscards", "SctpInDataChunkDiscards")
UDP_MIB = ("InDatagrams", "OutDatagrams", "RcvbufErrors", "SndbufErrors")


def mib(ns) -> dict[str, int]:
    """The kernel's SCTP and UDP counters in a namespace (where datagrams went)."""
    out: dict[str, int] = {}
    r = ns.run("cat /proc/net/sctp/snmp", check=False)
    for line in r.stdout.splitlines():
        k, _, v = line.partition(" ")
        if k in SCTP_MIB:
            out[k] = int(v.strip() or 0)
    udp = [ln.split() for ln in ns.run("cat /proc/net/snmp", check=False).stdout.splitlines() if ln.startswith("Udp:")]
    if len(udp) == 2:
        for k, v in zip(udp[0][1:], udp[1][1:], strict=False):
            if k in UDP_MIB:
                out[f"Udp{k}"] = int(v)
    return out


def mib_delta(topo, before: dict) -> dict:
    now = {ns: mib(getattr(topo, ns)) for ns in ("gw", "ep", "server")}
    return {ns: {k: v - before.get(ns, {}).get(k, 0) for k, v in now[ns].items()
                 if v - before.get(ns, {}).get(k, 0)} for ns in now}


def assocs_in_kernel(ns) -> int:
    r = ns.run("cat /proc/net/sctp/assocs", check=False)
    return max(0, len(r.stdout.splitlines()) - 1)


def telemetry_run(topo, n: int, procs: int, duration: float) -> dict:
    t0 = time.monotonic()
    ep = start_endpoint(topo, n, f"ep-{n}")
    print(f"  N={n}: endpoint up after {time.monotonic() - t0:.0f} s", flush=True)
    pid = ep.proc.pid
    try:
        sampler = Sampler(pid)
        mib0 = {ns: mib(getattr(topo, ns)) for ns in ("gw", "ep", "server")}
        t_start = time.monotonic()
        lg = loadgen(topo, "--homes", str(n), "--procs", str(procs), "--duration", str(duration),
                     "--rate", str(RATE), "--size", "200", "--admit-timeout", "300",
                     "--sources", HOME_SOURCES, timeout=duration + 900)
        sampler.stop()
        kernel = mib_delta(topo, mib0)
        print(f"  N={n}: {lg['admitted']} admitted in {lg['admit_s']} s ({lg.get('retries', 0)} retries)",
              flush=True)
        # where the datagrams went: the generator's sends vs the chunks its kernel put on
        # the wire (the rest PR-SCTP abandoned unsent: the generator's own backlog), the
        # endpoint's kernel received, UDP to and from the echo, and back
        print(f"  N={n}: kernel counters over the run (gw = generator, ep = endpoint, server = echo): "
              f"{json.dumps(kernel)}", flush=True)
        if lg["admitted"] < n:  # say why: the endpoint's own account
            evs = ep.events()
            kinds = {}
            for e in evs:
                kinds[f"{e['kind']}:{e['new']}"] = kinds.get(f"{e['kind']}:{e['new']}", 0) + 1
            print(f"  N={n}: endpoint events {kinds}; log tail:\n    "
                  + "\n    ".join(ep.log().strip().splitlines()[-8:]), flush=True)
        # a relay that failed and restarted mid-run would explain datagrams its kernel
        # took in but it never relayed: say so from its own log
        bad = [ln for ln in ep.log().splitlines() if "ERROR" in ln or "Traceback" in ln or "internal error" in ln]
        if bad:
            print(f"  N={n}: {len(bad)} error line(s) in the endpoint's log, first: " + " | ".join(bad[:3]),
                  flush=True)
        load_a = t_start + lg["admit_s"] + 1.0
        load_b = t_start + lg["admit_s"] + duration
        cpu, wall = sampler.window(load_a, load_b)
        # what the endpoint itself relayed (its kernel's counters: to the targets over UDP,
        # back to the homes as DATA), against its CPU over the whole run
        run_cpu, _ = sampler.window(t_start, time.monotonic())
        ep_relayed = kernel["ep"].get("UdpOutDatagrams", 0) + kernel["ep"].get("SctpOutUnorderChunks", 0)
        st = ep.status()
        ep_drops = {k: v for k, v in st["drops"].items() if v}
        acct = lg_account(lg, ep_drops)
        relayed = lg["sent"] + lg["replies"]
        per_s = relayed / duration if duration else 0
        row = {
            "homes": n, "duration_s": duration, "admitted": lg["admitted"], "admit_s": lg["admit_s"],
            "sent": lg["sent"], "replies": lg["replies"],
            "alarms": f"{lg['alarm_replies']}/{lg['alarms_sent']}",
            "send_blocked": lg["send_blocked"],
            "offered_per_s": round(n * RATE, 1), "achieved_per_s": round(lg["sent"] / duration, 1),
            "ep_cpu_util": round(cpu / wall, 3) if wall else None,
            "ep_cpu_ms_per_1000": round(1000 * cpu / (per_s * wall) * 1000, 1) if per_s and wall else None,
            "ep_relayed": ep_relayed,
            "ep_cpu_ms_per_1000_relayed": round(run_cpu / ep_relayed * 1e6, 1) if ep_relayed else None,
            "loadgen_drain_s": lg.get("drain_s"),
            "rtt_ms": lg["rtt_ms"], "loadgen_cpu_s": lg["cpu_s"], "loadgen_max_lag_ms": lg.get("max_lag_ms"),
            "ep_rss_kib": sampler.max_rss, "ep_fds": sampler.max_fds, "ep_nofile": nofile(pid),
            "ep_drops": ep_drops, "acct": acct, "dup_replies": lg["dup_replies"],
            "flows_total": st.get("flows_total"), "kernel": kernel, "retries": lg.get("retries", 0),
        }
        return row
    finally:
        ep.stop()


def lg_account(lg: dict, ep_drops: dict | None = None) -> dict:
    """The generator's result accounted for: its kernel's PR-SCTP counters (the events
    are a subset: Linux sends SEND_FAILED for unsent messages only)."""
    a = account(lg["sent"], lg["replies"], max(lg["kernel_abandoned_sent"], lg["abandoned_sent"]),
                max(lg["kernel_abandoned_unsent"], lg["abandoned_unsent"]), ep_drops)
    a["send_failed_events"] = {"sent": lg["abandoned_sent"], "unsent": lg["abandoned_unsent"]}
    return a


def ceiling_run(topo, n: int, procs: int, duration: float) -> dict:
    """The same telemetry straight to an SCTP echo in the endpoint namespace (no haig):
    what the generator and the emulator carry on their own."""
    mib0 = {ns: mib(getattr(topo, ns)) for ns in ("gw", "ep", "server")}
    lg = loadgen(topo, "--mode", "raw", "--homes", str(n), "--procs", str(procs), "--duration", str(duration),
                 "--rate", str(RATE), "--size", "200", "--admit-timeout", "300", "--sources", HOME_SOURCES,
                 timeout=duration + 900, port=RAW_ECHO_PORT)
    kernel = mib_delta(topo, mib0)
    acct = lg_account(lg)
    row = {"homes": n, "duration_s": duration, "admitted": lg["admitted"], "offered_per_s": round(n * RATE, 1),
           "achieved_per_s": round(lg["sent"] / duration, 1), "replied_per_s": round(lg["replies"] / duration, 1),
           "rtt_ms": lg["rtt_ms"], "loadgen_cpu_s": lg["cpu_s"], "loadgen_max_lag_ms": lg.get("max_lag_ms"),
           "acct": acct, "dup_replies": lg["dup_replies"], "kernel": kernel}
    print(f"  ceiling N={n}: {json.dumps(row)}", flush=True)
    return row


def print_acct(rows: list[dict], what: str) -> None:
    """Every datagram sent: replied, lost with a counted reason, or uncounted."""
    print(f"{what}: {'N':>5} {'sent':>7} {'replied':>7} {'counted':>7} {'uncounted':>9} {'repl/s':>7}"
          f" {'p50':>7} {'p99':>7}  lost by reason")
    for r in rows:
        a, rtt = r["acct"], r["rtt_ms"]
        f = lambda x: f"{x:7.1f}" if x is not None else "      -"  # noqa: E731
        print(f"{'':>{len(what)}}  {r['homes']:>5} {a['sent']:>7} {a['replied']:>7} {a['counted_lost']:>7}"
              f" {a['uncounted']:>9} {a['replied'] / r['duration_s']:7.1f} {f(rtt['p50'])} {f(rtt['p99'])}"
              f"  {a['lost_by_reason']}", flush=True)


def print_rows(rows: list[dict], base_rtt: dict | None) -> None:
    hdr = (f"{'N':>5} {'adm':>5} {'offer/s':>8} {'sent/s':>7} {'repl/sent':>10} {'alarm':>7} "
           f"{'cpu%':>5} {'ms/1k':>7} {'p50':>7} {'p99':>7} {'+p50':>6} {'+p99':>6} "
           f"{'RSS MiB':>7} {'fds':>5} {'genlag':>7}  drops")
    print(hdr)
    print("  (cpu% = endpoint CPU / wall in the load window; ms/1k = endpoint CPU per 1,000 relayed datagrams,"
          " both directions; p50/p99 = round trip ms; +p = minus N=1; genlag = the generator's worst"
          " delay behind its schedule, ms: large = the generator, not the endpoint, was the limit)")
    for r in rows:
        p50, p99 = r["rtt_ms"]["p50"], r["rtt_ms"]["p99"]
        b50 = base_rtt["p50"] if base_rtt else None
        b99 = base_rtt["p99"] if base_rtt else None
        add50 = f"{p50 - b50:6.1f}" if p50 is not None and b50 is not None else "     -"
        add99 = f"{p99 - b99:6.1f}" if p99 is not None and b99 is not None else "     -"
        fmt = lambda x: f"{x:7.1f}" if x is not None else "      -"  # noqa: E731
        print(f"{r['homes']:>5} {r['admitted']:>5} {r['offered_per_s']:>8} {r['achieved_per_s']:>7} "
              f"{r['replies']:>5}/{r['sent']:<4} {r['alarms']:>7} "
              f"{(r['ep_cpu_util'] or 0) * 100:5.0f} {fmt(r['ep_cpu_ms_per_1000'])} {fmt(p50)} {fmt(p99)} "
              f"{add50} {add99} {r['ep_rss_kib'] / 1024:7.1f} {r['ep_fds']:>5} "
              f"{r.get('loadgen_max_lag_ms') or 0:>7}  {r['ep_drops']}", flush=True)


def abuse(topo, out: dict) -> None:
    # 1. unauthenticated associations
    ep = start_endpoint(topo, 5, "ep-unauth")
    pid = ep.proc.pid
    try:
        rss0, cpu0 = rss_kib([pid]), cpu_seconds([pid])
        m = 600  # enough to show sessions without a cap; more takes minutes under emulation
        bg = LoadgenBg(topo, "--mode", "unauth", "--homes", str(m), "--first", "100",
                       "--procs", "2", "--duration", "8")
        time.sleep(6)
        held = assocs_in_kernel(topo.ep)
        legit = loadgen(topo, "--homes", "1", "--duration", "2", timeout=300)
        r = bg.result()
        st = ep.events()
        refused = sum(1 for e in st if e.get("new") == "refused")
        out["unauth"] = {"associations_opened": m, "held_until_the_end": m - r["failed"] - r["refused"],
                         "kernel_assocs_on_ep_during": held,
                         "ep_rss_growth_kib": rss_kib([pid]) - rss0, "ep_cpu_s": round(cpu_seconds([pid]) - cpu0, 2),
                         "legit_admit_s_during_flood": legit["admit_s"], "legit_admitted": legit["admitted"],
                         "refusal_events_in_history": refused, "history_len": len(st)}
        print("unauth:", json.dumps(out["unauth"]), flush=True)
    finally:
        ep.stop()
    # 2. unknown HELLOs pushing real events out of the bounded history
    ep = start_endpoint(topo, 5, "ep-unknown")
    try:
        legit = loadgen(topo, "--homes", "5", "--duration", "1", timeout=300)
        before = [e for e in ep.events() if "admitted" in (e.get("reason") or "")]
        r = loadgen(topo, "--mode", "unknown", "--homes", "300", "--first", "100", "--procs", "2",
                    "--duration", "1", timeout=600)
        evs = ep.events()
        after = [e for e in evs if "admitted" in (e.get("reason") or "")]
        reasons = sorted({(e.get("reason") or "")[-40:] for e in evs if e.get("new") == "refused"})[:3]
        out["unknown"] = {"legit_admitted": legit["admitted"], "unknown_hellos": 300, "refused": r["refused"],
                          "admission_events_before": len(before), "admission_events_after": len(after),
                          "history_len": len(evs), "sample_refusal_reasons": reasons}
        print("unknown:", json.dumps(out["unknown"]), flush=True)
    finally:
        ep.stop()
    # 3. one home's flows exhaust the endpoint's fds; another home's traffic meanwhile
    ep = start_endpoint(topo, 2, "ep-flows")
    pid = ep.proc.pid
    try:
        fd0 = fds(pid)
        bg = LoadgenBg(topo, "--mode", "flows", "--homes", "1", "--flows", "1100", "--duration", "12")
        time.sleep(8)
        victim = loadgen(topo, "--homes", "1", "--first", "1", "--duration", "12", "--rate", "10",
                         timeout=300)
        fd1 = fds(pid)
        bg.result()
        st = ep.status()
        out["flows"] = {"ep_nofile": nofile(pid), "ep_fds_before": fd0, "ep_fds_with_flood": fd1,
                        "flows_total": st.get("flows_total"),
                        "victim_sent": victim["sent"], "victim_replies": victim["replies"],
                        "victim_alarms": f"{victim['alarm_replies']}/{victim['alarms_sent']}",
                        "ep_drops": {k: v for k, v in st["drops"].items() if v}}
        print("flows:", json.dumps(out["flows"]), flush=True)
    finally:
        ep.stop()


def privilege_check(topo, out: dict) -> None:
    """The systemd unit runs the endpoint as an unprivileged user without capabilities:
    does it start and admit a home like that? Once with net.sctp.udp_port still 0 (the
    daemon then tries to set it itself), once with it set beforehand (the unit's way)."""
    import tempfile

    res = {}
    for preset in (0, 9899):
        topo.ep.sysctl("net.sctp.udp_port", preset)
        d = Path(tempfile.mkdtemp(prefix="haig-unpriv-"))
        d.chmod(0o755)
        conf = d / "haig.conf"
        conf.write_text(endpoint_conf(topo, 1))
        conf.chmod(0o644)
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", sys.executable, "-m", "haig", "run", "-c", str(conf)]
        log = d / "out.log"
        with open(log, "wb") as f:
            p = topo.ep.popen(argv, stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ))
        ep = Haig(topo.ep, "", f"unpriv-{preset}")
        ep.proc, ep.log_path = p, log
        try:
            ep.wait_for(lambda st: st.get("role") == "endpoint", timeout=90, what="API up")
            lg = loadgen(topo, "--homes", "1", "--duration", "3", timeout=300)
            res[f"udp_port_preset_{preset}"] = f"admitted {lg['admitted']}/1, replies {lg['replies']}/{lg['sent']}"
        except Exception as e:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            res[f"udp_port_preset_{preset}"] = f"failed: {str(e).splitlines()[0][:120]} | log: {' / '.join(tail)[:400]}"
        finally:
            ep.stop()
    out["unprivileged"] = res
    print("unprivileged endpoint:", json.dumps(res, indent=1), flush=True)


def main(argv: list[str]) -> int:
    ns_ = [10, 100, 1000]
    duration, procs, do_abuse, do_scale, do_ceiling = DURATION, 2, True, True, False
    for a in argv:
        if a.startswith("--n="):
            ns_ = [int(x) for x in a[4:].split(",") if x]
        elif a.startswith("--duration="):
            duration = float(a.split("=", 1)[1])
        elif a.startswith("--procs="):
            procs = int(a.split("=", 1)[1])
        elif a in ("--abuse", "--privileges"):  # only these parts (both when both given)
            do_scale = False
            do_abuse = "--abuse" in argv
        elif a == "--no-abuse":
            do_abuse = False
        elif a == "--ceiling":  # also the generator's own ceiling (no haig), each N
            do_ceiling = True
        elif a == "--ceiling-only":
            do_ceiling, do_scale, do_abuse = True, False, False
        elif a == "--raise-nofile":
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the endpoint
    print(f"kernel {os.uname().release}; cpus {os.cpu_count()}; RLIMIT_NOFILE "
          f"{resource.getrlimit(resource.RLIMIT_NOFILE)}; duration {duration:g} s; loadgen procs {procs}",
          flush=True)
    topo = topology.build()
    add_home_sources(topo, max([1, *ns_]))
    # as contrib/sysctl.d/60-haig.conf: send buffer per association, not one for the
    # whole one-to-many socket (one stalled home must not block every other's sends)
    topo.ep.sysctl("net.sctp.sndbuf_policy", 1)
    echo = Proc(topo.server, [sys.executable, "-m", "tests.testbed.loadgen", "--echo",
                              ",".join(f"0.0.0.0:{p}" for p in ECHO_PORTS)], "echo").start()
    raw_echo = Proc(topo.ep, [sys.executable, "-m", "tests.testbed.loadgen", "--sctp-echo",
                              f"{topo.links[MAIN].ep_addr}:{RAW_ECHO_PORT}"], "sctp-echo").start()
    out: dict = {"rows": []}
    try:
        time.sleep(1.0)
        if do_ceiling:
            print("\n== ceiling: the generator straight to an SCTP echo, no haig", flush=True)
            crows = []
            for n in ns_:
                try:
                    crows.append(ceiling_run(topo, n, procs, duration))
                except Exception as e:
                    print(f"ceiling N={n} failed: {e}", flush=True)
            print_acct(crows, "ceiling")
            out["ceiling"] = crows
        if do_scale:
            base = telemetry_run(topo, 1, 1, min(duration, 10.0))
            print("baseline (N=1):", json.dumps(base["rtt_ms"]), flush=True)
            out["baseline"] = base
            rows = []
            for n in ns_:
                try:
                    rows.append(telemetry_run(topo, n, procs, duration))
                except Exception as e:  # keep the other rows' numbers
                    print(f"N={n} failed: {e}", flush=True)
                print_rows(rows[-1:], base["rtt_ms"])
                if rows:
                    r = rows[-1]
                    print(f"  N={r['homes']}: the endpoint relayed {r['ep_relayed']} datagrams (its kernel's"
                          f" counters), {r['ep_cpu_ms_per_1000_relayed']} ms CPU per 1,000 of those over the"
                          f" whole run; the generator's last replies took {r['loadgen_drain_s']} s to arrive",
                          flush=True)
            print("\n== scale summary")
            print_rows(rows, base["rtt_ms"])
            print_acct(rows, "haig")
            if out.get("ceiling"):
                print_acct(out["ceiling"], "ceiling")
            out["rows"] = rows
            per = [(r["homes"], r["ep_cpu_ms_per_1000_relayed"]) for r in rows if r.get("ep_cpu_ms_per_1000_relayed")]
            if per:
                n_, cost = per[-1]  # the largest N: the per-home costs (kernel timers too) included
                # one core = 1000 ms CPU per s; a home costs 2*RATE datagrams/s
                sat_n = 1000.0 / (cost / 1000.0 * 2 * RATE)
                print(f"in this VM one core saturates at about N = {sat_n:.0f} homes ({cost:.1f} ms endpoint"
                      f" CPU per 1,000 datagrams it relayed at N = {n_}, {2 * RATE:g} datagrams/s per home)")
                out["saturation_homes"] = round(sat_n)
            # the same from the load window only (the whole run includes start-up and
            # admission, which dominate a short run)
            win = [(r["homes"], r["ep_cpu_ms_per_1000"]) for r in rows if r.get("ep_cpu_ms_per_1000")]
            if win:
                n_, cost = win[-1]
                sat_w = 1000.0 / (cost / 1000.0 * 2 * RATE)
                print(f"from the load window alone: {cost:.1f} ms per 1,000 datagrams at N = {n_},"
                      f" one core at about N = {sat_w:.0f} homes")
                out["saturation_homes_load_window"] = round(sat_w)
        if do_abuse:
            print("\n== abuse")
            abuse(topo, out)
        if "--privileges" in argv or (do_scale and do_abuse and "--no-privileges" not in argv):
            privilege_check(topo, out)
    finally:
        echo.stop()
        raw_echo.stop()
        topo.teardown()
    try:
        d = Path("artifacts/bench")
        d.mkdir(parents=True, exist_ok=True)
        (d / "scale.json").write_text(json.dumps(out, indent=1))
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
