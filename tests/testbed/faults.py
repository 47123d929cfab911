"""Lifecycle faults of a real home, played against real haig daemons in the test bed.

One `Bed` = an endpoint and a gateway daemon (fresh configs, fresh SCTP port) with
three services running through them the whole time:

* `ecg`   telemetry: sequence-numbered datagrams, client -> server, at ECG rate
          (one every 20 ms: a 250 Hz ECG packed 5 samples a datagram), ttl 1000 ms;
* `alarm` a critical service: one sequence-numbered datagram a second, ttl 5000 ms;
* `echo`  a client pinging an echo server every 100 ms (the "is it back?" signal).

The harness plays procd: a daemon that exits without being asked to is counted and
respawned after procd's respawn timeout (5 s, files/etc/init.d/haig). A status poller
follows each daemon instance, so counters survive a respawn in the totals.

Each fault in FAULTS is a function `(bed, quick) -> None` that does its thing and
stamps `bed.fault_at` / `bed.restored_at`; `run_fault` wraps it and returns a
`Result` with what the receivers saw next to what haig counted. A fault that finds
haig broken still returns its numbers (the matrix reports it; the VM tests assert).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.testbed import nat, proc, traffic
from tests.testbed.haig_procs import (
    KEY,
    UPLINK,
    Haig,
    Service,
    assoc_up,
    endpoint_config,
    gateway_config,
    relayed,
)
from tests.testbed.topology import FALLBACK, MAIN, Topology

ECG_INTERVAL = 0.02
ALARM_INTERVAL = 1.0
ECHO_INTERVAL = 0.1
PROCD_RESPAWN_S = 5.0  # procd_set_param respawn 3600 *5* 0
HOLD_DOWN = 3  # haig_procs' gateway default
DRAIN_S = 6.0  # after the senders stop: longest ttl (alarm, 5 s) + a margin
PORTS = {"ecg": 7301, "alarm": 7302, "echo": 7303}
TRACEBACK = "Traceback (most recent call last)"
_sctp_port = iter(range(9100, 9999))


def services(topo: Topology) -> list[Service]:
    return [relayed(topo, "ecg", PORTS["ecg"], ttl=1000),
            relayed(topo, "alarm", PORTS["alarm"], ttl=5000, critical=True),
            relayed(topo, "echo", PORTS["echo"], ttl=1000)]


def drop_total(drops: dict) -> int:
    """All drops in a status `drops` object ({reason: n}; the split by service is a
    separate `drops_by_service`, the same drops again)."""
    return sum(v for v in drops.values() if isinstance(v, int))


@dataclass
class Instance:
    """One process of one daemon (a respawn makes a new one)."""

    pid: int
    log_path: str
    # Each Bed starts fresh daemons and no traffic flows before the row starts it, so a
    # process's counters from 0 are the row's: drops before its first poll count too.
    last_drops: int = 0
    last_by_service: dict[str, int] = field(default_factory=dict)
    events: int = 0
    exited: int | None = None


class Daemon:
    """A haig daemon supervised like procd does: counts and respawns unasked exits."""

    def __init__(self, haig: Haig) -> None:
        self.haig = haig
        self.instances: list[Instance] = []
        self.exits = 0  # exits nobody asked for
        self.exit_codes: list[int] = []
        self._asked = False
        self._respawn_at: float | None = None

    @property
    def name(self) -> str:
        return self.haig.name

    def start(self) -> Daemon:
        self.haig.start()
        assert self.haig.proc is not None
        self.instances.append(Instance(self.haig.proc.pid, str(self.haig.log_path)))
        self._asked = False
        return self

    @property
    def current(self) -> Instance:
        return self.instances[-1]

    def alive(self) -> bool:
        return self.haig.proc is not None and self.haig.proc.poll() is None

    def stop(self) -> None:
        self._asked = True
        self.haig.stop()

    def kill(self) -> None:
        self._asked = True
        if self.alive():
            self.haig.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            self.haig.proc.wait()  # type: ignore[union-attr]

    def rewrite(self, config: str) -> None:
        """New config file content (read at the next start or SIGHUP)."""
        self.haig.config = config
        if self.haig.path is not None:
            self.haig.path.write_text(config)

    def supervise(self, now: float) -> None:
        if self.haig.proc is None or self.alive() or self._asked:
            return  # not started yet, running, or stopped on purpose
        if self._respawn_at is None:
            self.exits += 1
            self.exit_codes.append(self.haig.proc.returncode)  # type: ignore[union-attr]
            self.current.exited = self.haig.proc.returncode  # type: ignore[union-attr]
            self._respawn_at = now + PROCD_RESPAWN_S
        elif now >= self._respawn_at:
            self._respawn_at = None
            self.start()

    def poll_status(self) -> dict | None:
        if not self.alive():
            return None
        try:
            st = self.haig.status()
        except (RuntimeError, ValueError):
            return None
        inst = self.current
        d = drop_total(st.get("drops", {}))
        by_svc = {svc: drop_total(r) for svc, r in st.get("drops_by_service", {}).items()}
        inst.last_drops, inst.last_by_service = d, by_svc
        return st

    def counted(self) -> int:
        """Drops this daemon counted over all its instances."""
        return sum(i.last_drops for i in self.instances)

    def counted_by_service(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in self.instances:
            for svc, n in i.last_by_service.items():
                out[svc] = out.get(svc, 0) + n
        return out

    def tracebacks(self) -> int:
        n = 0
        for i in self.instances:
            try:
                with open(i.log_path, errors="replace") as f:
                    n += f.read().count(TRACEBACK)
            except OSError:
                pass
        return n

    def log_tail(self, n: int = 2500) -> str:
        """The end of each instance's log: an instance that exited shows why."""
        out = []
        for i in self.instances:
            try:
                with open(i.log_path, errors="replace") as f:
                    text = f.read()[-n:]
            except OSError:
                text = ""
            head = f"[pid {i.pid}" + (f", exited {i.exited}]" if i.exited is not None else "]")
            out.append(f"{head}\n{text}")
        return "\n".join(out)


@dataclass
class Result:
    name: str
    error: str = ""
    gap_s: float | None = None  # longest ECG gap from the fault to the end
    back_s: float | None = None  # restore -> first echo reply (or fault -> first, if no restore)
    ecg_sent: int = 0
    ecg_lost: int = 0
    alarm_sent: int = 0
    alarm_lost: int = 0
    alarm_dups: int = 0
    echo_sent: int = 0
    echo_lost: int = 0
    counted: int = 0  # haig's drops (both daemons, all instances)
    events: int = 0
    tracebacks: int = 0
    exits: int = 0  # daemon exits nobody asked for (= procd respawns)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems()

    @property
    def observed_lost(self) -> int:
        return self.ecg_lost + self.alarm_lost + self.echo_lost

    def problems(self) -> list[str]:
        """What makes this row a failure (empty = recovered, nothing lost silently)."""
        out = []
        if self.error:
            out.append(self.error)
        if self.exits:
            out.append(f"{self.exits} daemon exit(s)")
        if self.tracebacks:
            out.append(f"{self.tracebacks} traceback(s) in the logs")
        if self.back_s is None:
            out.append("echo never came back")
        if self.observed_lost > self.counted + lost_tolerance(self):
            out.append(f"{self.observed_lost - self.counted} datagrams lost uncounted")
        if self.alarm_dups:
            out.append(f"{self.alarm_dups} duplicate alarms")
        return out


UDP_ERRORS = ("RcvbufErrors", "SndbufErrors", "InErrors")


def udp_errors(ns) -> dict[str, int]:
    """The namespace's UDP error counters (/proc/net/snmp is per netns): where datagrams
    the receivers miss were dropped by a kernel (a full socket buffer: its owner was too
    slow, which under TCG contention can be the harness's own sinks)."""
    out = ns.run("cat /proc/net/snmp", check=False).stdout
    rows = [ln.split()[1:] for ln in out.splitlines() if ln.startswith("Udp:")]
    if len(rows) < 2:
        return {}
    both = dict(zip(rows[0], rows[1], strict=False))
    return {k: int(both.get(k, 0)) for k in UDP_ERRORS}


def lost_tolerance(r: Result) -> int:
    """Losses haig cannot see, allowed on top of what it counted: the last UDP hop in the
    emulator (a handful seen per run: tests/vm/test_relay.py) and datagrams sent to a
    gateway that was not running (killed by the row itself: nobody to count them)."""
    return 5 + r.timings.get("uncountable", 0)


class Bed:
    """Daemons + traffic for one fault. Use as a context manager."""

    def __init__(self, topo: Topology, *, gw_uplinks: dict | None = None,
                 start_endpoint: bool = True, hold_down: int = HOLD_DOWN) -> None:
        self.topo = topo
        self.port = next(_sctp_port)
        self.svcs = services(topo)
        self.gw_uplinks = gw_uplinks
        self.hold_down = hold_down
        self.ep = Daemon(Haig(topo.ep, self.ep_config(), "ep"))
        self.gw = Daemon(Haig(topo.gw, self.gw_config(), "gw"))
        self.start_endpoint = start_endpoint
        self.fault_at: float | None = None
        self.restored_at: float | None = None
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.events0: dict[str, float] = {}

    def ep_config(self, gateways: dict[str, str] | None = None) -> str:
        return endpoint_config(self.topo, self.port, self.svcs, gateways=gateways)

    def gw_config(self, **kw) -> str:
        return gateway_config(self.topo, self.port, self.svcs, uplinks=self.gw_uplinks,
                              main={"hold_down": self.hold_down}, **kw)

    @property
    def daemons(self) -> list[Daemon]:
        return [self.ep, self.gw]

    # -- set-up ------------------------------------------------------------------

    def __enter__(self) -> Bed:
        t = self.topo
        self.echo_srv = traffic.Sink(traffic.udp_in(t.server, (t.server_addr, PORTS["echo"])),
                                     echo=True).start()
        self.ecg_rx = traffic.Sink(traffic.udp_in(t.server, (t.server_addr, PORTS["ecg"]))).start()
        self.alarm_rx = traffic.Sink(traffic.udp_in(t.server, (t.server_addr, PORTS["alarm"]))).start()
        try:
            if self.start_endpoint:  # up before the gateway: its absence is a row of its own
                self.ep.start()
                self.wait_listening(self.ep)
            self.gw.start()
        except BaseException:
            self.__exit__()  # no daemon left behind holding the next row's ports
            raise
        th = threading.Thread(target=self._supervise, daemon=True)
        th.start()
        self._threads.append(th)
        return self

    def wait_up(self, timeout: float = 300) -> None:  # start-up alone took 66 s under contention
        self.gw.haig.wait_for(assoc_up, timeout, "association up")

    def _udp_errors(self) -> dict[str, dict[str, int]]:
        t = self.topo
        return {name: udp_errors(ns) for name, ns in
                (("gw", t.gw), ("ep", t.ep), ("client", t.client), ("server", t.server))}

    def start_traffic(self) -> None:
        t = self.topo
        self.udp0 = self._udp_errors()
        self.ecg_tx = traffic.Sender(traffic.udp_in(t.client), (t.gw_lan_addr, PORTS["ecg"]),
                                     interval=ECG_INTERVAL, size=100, seed=1).start()
        self.alarm_tx = traffic.Sender(traffic.udp_in(t.client), (t.gw_lan_addr, PORTS["alarm"]),
                                       interval=ALARM_INTERVAL, size=64, seed=2).start()
        sock = traffic.udp_in(t.client)
        self.echo_rx = traffic.Sink(sock).start()
        self.echo_tx = traffic.Sender(sock, (t.gw_lan_addr, PORTS["echo"]),
                                      interval=ECHO_INTERVAL, size=64, seed=3).start()

    def _supervise(self) -> None:
        n = 0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                for d in self.daemons:
                    d.supervise(now)
                if n % 5 == 0:  # the status poll costs an API round trip: once a second
                    for d in self.daemons:
                        d.poll_status()
            except Exception:  # a harness bug must not silently stop procd's job
                traceback.print_exc()
            n += 1
            self._stop.wait(0.2)

    def wait_listening(self, d: Daemon, timeout: float = 300) -> float:
        """Wait until `d` has its sockets bound (gateway: the services' UDP ports;
        endpoint: its SCTP port), as `ss` in its namespace shows them; returns when."""
        ports = [PORTS[s.name] for s in self.svcs] if d is self.gw else [self.port]
        flag = "-u" if d is self.gw else "-S"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = d.haig.ns.run(f"ss -H -l -n {flag}", check=False).stdout
            if all(f":{p} " in out or out.rstrip().endswith(f":{p}") for p in ports):
                return time.monotonic()
            time.sleep(0.2)
        raise TimeoutError(f"{d.name}: sockets {ports} not bound in {timeout:.0f} s\n{d.log_tail()}")

    def wait_echo(self, after: float, timeout: float = 60) -> float | None:
        """Seconds from `after` to the first echo reply after it, waiting up to timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.echo_rx.rec.first_after(after)
            if t is not None:
                return t - after
            time.sleep(0.1)
        return None

    def wait_status(self, d: Daemon, pred: Callable[[dict], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = d.poll_status()
            if st is not None and pred(st):
                return True
            time.sleep(0.3)
        return False

    # -- the result ----------------------------------------------------------------

    def finish(self, name: str) -> Result:
        r = Result(name, notes=self.notes, timings=self.timings)
        ref = self.restored_at or self.fault_at
        if ref is not None:
            r.back_s = self.wait_echo(ref, timeout=60)
        stopped = time.monotonic()
        for tx in (self.ecg_tx, self.alarm_tx, self.echo_tx):
            tx.stop()
        time.sleep(DRAIN_S)
        for d in self.daemons:  # final counters, after the drain
            d.poll_status()
        ecg, alarm = self.ecg_rx.rec, self.alarm_rx.rec
        if self.fault_at is not None:
            # up to the senders' stop: an ECG that never came back is one long gap
            r.gap_s, _ = ecg.longest_gap(self.fault_at, stopped)
        r.ecg_sent, r.ecg_lost = self.ecg_tx.rec.sent, self.ecg_tx.rec.sent - len(set(ecg.seqs))
        r.alarm_sent, r.alarm_lost = self.alarm_tx.rec.sent, self.alarm_tx.rec.sent - len(set(alarm.seqs))
        r.alarm_dups = alarm.duplicates()
        r.echo_sent = self.echo_tx.rec.sent
        r.echo_lost = r.echo_sent - len(set(self.echo_rx.rec.seqs))
        r.counted = sum(d.counted() for d in self.daemons)
        if hasattr(self, "udp0"):  # kernel UDP drops during the row, per namespace
            now = self._udp_errors()
            diff = {ns: {k: v - self.udp0.get(ns, {}).get(k, 0) for k, v in c.items()} for ns, c in now.items()}
            dropped = [f"{ns} {k} {v}" for ns, c in diff.items() for k, v in c.items() if v]
            if dropped:
                r.notes.append("kernel UDP drops: " + ", ".join(dropped))
        by_svc: dict[str, int] = {}
        for d in self.daemons:
            for svc, n in d.counted_by_service().items():
                by_svc[svc] = by_svc.get(svc, 0) + n
        if by_svc:  # haig splits its drops by service: set them beside each receiver
            r.notes.append("counted ECG/alarm/echo " + "/".join(
                str(by_svc.get(svc, 0)) for svc in ("ecg", "alarm", "echo")))
        for d in self.daemons:
            try:
                evs = d.haig.events() if d.alive() else []
            except (RuntimeError, ValueError):
                evs = []
            r.events += sum(1 for e in evs if e.get("t", 0) >= self.events0.get(d.name, 0))
        r.tracebacks = sum(d.tracebacks() for d in self.daemons)
        r.exits = sum(d.exits for d in self.daemons)
        r.notes += [f"{d.name} exited (status {c})" for d in self.daemons for c in d.exit_codes]
        return r

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for th in self._threads:
            th.join()
        for tx in ("ecg_tx", "alarm_tx", "echo_tx"):
            if hasattr(self, tx):
                getattr(self, tx).stop()
        for d in reversed(self.daemons):
            d.stop()
        for s in ("echo_srv", "ecg_rx", "alarm_rx", "echo_rx"):
            if hasattr(self, s):
                try:
                    getattr(self, s).stop()
                except OSError:
                    pass


def _dur(quick: bool, full: float, short: float) -> float:
    return short if quick else full


def _settle(bed: Bed, seconds: float = 3.0) -> None:
    """Traffic flowing through an association before the fault."""
    bed.wait_up()
    bed.wait_listening(bed.gw)
    bed.start_traffic()
    bed.wait_echo(time.monotonic(), 30)
    time.sleep(seconds)
    bed.events0 = {d.name: time.time() for d in bed.daemons}


def _uplink(st: dict, name: str) -> dict:
    return next((u for u in st.get("uplinks", []) if u.get("name") == name), {})


def _on_main(st: dict) -> bool:
    return st.get("primary") == UPLINK[MAIN] and assoc_up(st)


# ------------------------------------------------------------------------- faults


def endpoint_unreachable_at_start(bed: Bed, quick: bool) -> None:
    """The router boots first: the endpoint answers only 20 s (quick: 10 s) later."""
    bed.events0 = {d.name: time.time() for d in bed.daemons}
    bed.wait_listening(bed.gw)  # datagrams sent before then reach nobody, not haig
    bed.start_traffic()
    bed.fault_at = time.monotonic()
    time.sleep(_dur(quick, 20, 10))
    bed.ep.start()
    bed.restored_at = bed.wait_listening(bed.ep)  # the endpoint is back (its start-up apart)


# The only traffic in doubt: what was inside a daemon killed by SIGKILL (read from one
# socket, not yet written to the next; its loop lag under TCG). Nobody is left to count
# it, and the peer's kernel abandons messages sent to it once (they may have arrived).
KILL_WINDOW = 0.2  # s


def _in_flight(window: float = KILL_WINDOW) -> int:
    """Every sender's datagrams in `window` s (+3): an upper bound of what is in doubt."""
    return int(window / ECG_INTERVAL + window / ECHO_INTERVAL + window / ALARM_INTERVAL) + 3


def _endpoint_restart(bed: Bed, quick: bool, kill: bool) -> None:
    _settle(bed)
    bed.fault_at = time.monotonic()
    bed.ep.kill() if kill else bed.ep.stop()
    if kill:
        # What was inside the killed process at that instant (read from SCTP but not yet
        # relayed, replies on their way to its UDP sockets) and messages its peer's kernel
        # abandons after sending them once (they may have arrived): nobody can tell, either
        # way. Bounded by KILL_WINDOW of every sender's traffic.
        bed.timings["uncountable"] = _in_flight()
    time.sleep(2.0)
    t = time.monotonic()
    bed.ep.start()
    bed.restored_at = bed.wait_listening(bed.ep)  # echo back is counted from here
    bed.timings["endpoint_startup_s"] = bed.restored_at - t


def endpoint_restart(bed: Bed, quick: bool) -> None:
    _endpoint_restart(bed, quick, kill=False)


def endpoint_sigkill(bed: Bed, quick: bool) -> None:
    _endpoint_restart(bed, quick, kill=True)


def gateway_sigkill(bed: Bed, quick: bool) -> None:
    """SIGKILL, then procd starts it again (here at once). Datagrams sent while no
    gateway runs are refused by the kernel (ICMP port unreachable): nobody can count them."""
    _settle(bed)
    bed.fault_at = time.monotonic()
    bed.gw.kill()
    bed.gw.start()
    bed.restored_at = bed.wait_listening(bed.gw)
    # Everything sent from the kill until the new gateway listens: the ECG, echo and
    # alarm senders' rates times the dead time (an upper bound of what nobody counts).
    dead = bed.restored_at - bed.fault_at
    bed.timings["uncountable"] = int(dead / ECG_INTERVAL + dead / ECHO_INTERVAL + dead / ALARM_INTERVAL) + 3
    bed.notes.append(f"gateway down {dead:.1f} s (its start-up)")


def _both_down(bed: Bed, seconds: float) -> None:
    _settle(bed)
    imp = bed.topo.impair
    bed.fault_at = imp.down(MAIN).asked
    imp.down(FALLBACK)
    time.sleep(seconds)
    imp.up(MAIN)
    bed.restored_at = imp.up(FALLBACK).effective


def both_down_20s(bed: Bed, quick: bool) -> None:
    _both_down(bed, _dur(quick, 20, 10))


def both_down_3min(bed: Bed, quick: bool) -> None:
    _both_down(bed, _dur(quick, 180, 30))


def main_down_up(bed: Bed, quick: bool) -> None:
    _settle(bed)
    imp = bed.topo.impair
    bed.fault_at = imp.down(MAIN).asked
    time.sleep(10)
    bed.restored_at = imp.up(MAIN).effective
    back = bed.wait_status(bed.gw, _on_main, HOLD_DOWN + 30)
    bed.timings["failback_s"] = time.monotonic() - bed.restored_at
    if not back:
        bed.notes.append("traffic not back on main")
    _count_switches(bed)


def _count_switches(bed: Bed) -> int | None:
    try:
        evs = bed.gw.haig.events()
    except (RuntimeError, ValueError):
        return None
    t0 = bed.events0.get("gw", 0)
    n = sum(1 for e in evs if e.get("t", 0) >= t0 and e.get("kind") in ("failover", "failback"))
    bed.notes.append(f"{n} switches (failover/failback)")
    return n


LTE_JITTER = "delay 200ms 40ms 25% rate 3500kbit limit 10000"  # as tests/bench/jitter.py


def jittery_fallback(bed: Bed, quick: bool) -> None:
    """Main down for minutes while the LTE-like fallback jitters (netem 200 ms ± 40 ms,
    25 % correlated): jitter must not pass for failure. Exactly one failover and one
    failback, else the row fails (a PF-driven switch while the fallback carries)."""
    imp = bed.topo.impair
    imp.shape_fallback(LTE_JITTER)
    try:
        _settle(bed)
        bed.fault_at = imp.down(MAIN).asked
        time.sleep(_dur(quick, 180, 30))
        bed.restored_at = imp.up(MAIN).effective
        back = bed.wait_status(bed.gw, _on_main, HOLD_DOWN + 30)
        bed.timings["failback_s"] = time.monotonic() - bed.restored_at
        if not back:
            bed.notes.append("traffic not back on main")
    finally:
        imp.shape_fallback(None)
    n = _count_switches(bed)
    if n is not None and n > 2:
        raise AssertionError(f"{n} switches: jitter on the fallback passed for failure")


def main_flapping(bed: Bed, quick: bool) -> None:
    _settle(bed)
    imp = bed.topo.impair
    secs = _dur(quick, 60, 20)
    bed.fault_at = time.monotonic()
    imp.flap(MAIN, 1.0, int(secs / 2))
    bed.restored_at = time.monotonic()
    bed.wait_status(bed.gw, _on_main, HOLD_DOWN + 30)
    bed.timings["failback_s"] = time.monotonic() - bed.restored_at
    _count_switches(bed)


def bursty_loss(bed: Bed, quick: bool) -> None:
    """Gilbert–Elliott on main: p 5 % into the bad state, r 30 % out, 70 % loss in it."""
    _settle(bed)
    imp = bed.topo.impair
    bed.fault_at = imp.netem(MAIN, "loss gemodel 5% 30% 70% 0.1%").asked
    time.sleep(_dur(quick, 30, 15))
    bed.restored_at = imp.loss(MAIN, 0).effective


def _one_way(bed: Bed, quick: bool, side: str) -> None:
    _settle(bed)
    imp = bed.topo.impair
    bed.fault_at = imp.netem(MAIN, "loss 30%", side=side).asked
    time.sleep(_dur(quick, 30, 15))
    bed.restored_at = imp.loss(MAIN, 0).effective


def loss_upstream(bed: Bed, quick: bool) -> None:
    """30 % loss gateway -> endpoint only."""
    _one_way(bed, quick, "gw")


def loss_downstream(bed: Bed, quick: bool) -> None:
    """30 % loss endpoint -> gateway only."""
    _one_way(bed, quick, "ep")


def fallback_down_then_main(bed: Bed, quick: bool) -> None:
    """The fallback dies (and comes back) unnoticed while main carries everything; then
    main fails: the fallback must have been re-validated and take over."""
    _settle(bed)
    imp = bed.topo.impair
    imp.down(FALLBACK)
    time.sleep(10)
    imp.up(FALLBACK)
    time.sleep(5)
    bed.fault_at = imp.loss(MAIN, 100).asked
    moved = bed.wait_status(bed.gw, lambda s: s.get("primary") == UPLINK[FALLBACK], 30)
    bed.timings["failover_s"] = time.monotonic() - bed.fault_at
    if not moved:
        bed.notes.append("never moved to the fallback")
    time.sleep(5)
    bed.restored_at = imp.loss(MAIN, 0).effective


NO_LOCAL = {MAIN: {"local_address": ""}, FALLBACK: {"local_address": ""}}


def _replace_address(bed: Bed, link: str, new: str) -> tuple[str, str]:
    lk = bed.topo.links[link]
    old = lk.gw_addr
    # The old lease goes, then the new one comes (DHCP/PPPoE order). Adding first would
    # make the new address a secondary that the kernel deletes with the primary
    # (promote_secondaries is off by default): the link would be left with no address.
    bed.topo.gw.run(f"ip addr del {old}/{lk.prefix} dev {lk.gw_dev}")
    bed.topo.gw.run(f"ip addr add {new}/{lk.prefix} dev {lk.gw_dev}")
    return old, new


def _restore_address(bed: Bed, link: str, old: str, new: str) -> None:
    lk = bed.topo.links[link]
    bed.topo.gw.run(f"ip addr del {new}/{lk.prefix} dev {lk.gw_dev}", check=False)
    bed.topo.gw.run(f"ip addr add {old}/{lk.prefix} dev {lk.gw_dev}", check=False)


def main_address_replaced(bed: Bed, quick: bool) -> None:
    """A new DHCP/PPPoE lease on main: traffic back on main within hold-down + a few s."""
    _settle(bed)
    bed.fault_at = time.monotonic()
    # No allowance for messages in flight: the re-association reads the old association
    # to its SHUTDOWN_COMPLETE (haig/relay/sctp_close.py), so what it still held is either
    # delivered or counted; counted must equal observed.
    old, new = _replace_address(bed, MAIN, "10.202.0.7")
    try:
        bed.restored_at = time.monotonic()
        ok = bed.wait_status(bed.gw, lambda s: _on_main(s) and
                             _uplink(s, UPLINK[MAIN]).get("state") == "active", HOLD_DOWN + 40)
        bed.timings["back_on_main_s"] = time.monotonic() - bed.restored_at
        if not ok:
            bed.notes.append("not back on main")
        time.sleep(3)
    finally:
        bed.after = lambda: _restore_address(bed, MAIN, old, new)  # type: ignore[attr-defined]


def _onto_fallback(bed: Bed) -> None:
    """Traffic flowing, then main down: the fault that follows hits the fallback."""
    _settle(bed)
    bed.topo.impair.down(MAIN)
    if not bed.wait_status(bed.gw, lambda s: s.get("primary") == UPLINK[FALLBACK], 30):
        bed.notes.append("never moved to the fallback")
    time.sleep(2)
    bed.fault_at = time.monotonic()


def fallback_address_replaced(bed: Bed, quick: bool) -> None:
    """Main down, the fallback carries traffic, and its address changes."""
    _onto_fallback(bed)
    old, new = _replace_address(bed, FALLBACK, "10.203.0.7")
    bed.after = lambda: _restore_address(bed, FALLBACK, old, new)  # type: ignore[attr-defined]
    bed.restored_at = time.monotonic()
    time.sleep(_dur(quick, 20, 10))
    bed.topo.impair.up(MAIN)


def nat_port_change(bed: Bed, quick: bool) -> None:
    """The carrier NAT in front of the UDP-encapsulated fallback maps it to another
    external port (conntrack flushed, new port range) while the fallback carries traffic."""
    _onto_fallback(bed)
    nat.change_external_port(bed.carrier)  # type: ignore[attr-defined]
    bed.restored_at = time.monotonic()
    time.sleep(_dur(quick, 20, 10))
    bed.topo.impair.up(MAIN)


def _reload(bed: Bed, d: Daemon, config: str, what: str) -> None:
    _settle(bed)
    good = d.haig.config
    bed.fault_at = time.monotonic()
    d.rewrite(config)
    if d.alive():
        d.haig.hup()
    time.sleep(5)
    st = d.poll_status()
    if st is not None:
        cfg = st.get("config", {})
        bed.notes.append(f"config.ok {cfg.get('ok')}")
    bed.restored_at = time.monotonic()
    d.rewrite(good)  # what the next respawn (if any) reads


def reload_broken(bed: Bed, quick: bool) -> None:
    _reload(bed, bed.gw, bed.gw.haig.config.replace("option port", "option port '1x' #", 1), "broken")


def reload_unbindable(bed: Bed, quick: bool) -> None:
    cfg = bed.gw.haig.config + "config service 'extra'\n\toption listen '10.9.9.9:7399'\n\n"
    _reload(bed, bed.gw, cfg, "unbindable")


def endpoint_reload_add_home(bed: Bed, quick: bool) -> None:
    _reload(bed, bed.ep, bed.ep_config({"home1": KEY, "home2": KEY + "2"}), "add home")


def soak(bed: Bed, quick: bool) -> None:
    """ECG rate for 10 min (quick: 1 min), RSS and open fds sampled."""
    _settle(bed)
    bed.fault_at = time.monotonic()
    secs = _dur(quick, 600, 60)
    samples: dict[str, list[tuple[int, int]]] = {d.name: [] for d in bed.daemons}
    end = time.monotonic() + secs
    while time.monotonic() < end:
        for d in bed.daemons:
            if d.alive():
                pid = d.current.pid
                try:
                    fds = len(os.listdir(f"/proc/{pid}/fd"))
                except OSError:
                    fds = -1
                samples[d.name].append((proc.rss_kib([pid]), fds))
        time.sleep(min(10.0, secs / 10))
    for name, s in samples.items():
        if s:
            bed.notes.append(f"{name} RSS {s[0][0] / 1024:.1f}->{s[-1][0] / 1024:.1f} MiB, "
                             f"fds {s[0][1]}->{s[-1][1]}")
            bed.timings[f"{name}_rss_growth_kib"] = s[-1][0] - s[0][0]
            bed.timings[f"{name}_fd_growth"] = s[-1][1] - s[0][1]


@dataclass(frozen=True)
class Fault:
    fn: Callable[[Bed, bool], None]
    title: str
    bed: dict = field(default_factory=dict)  # Bed keyword arguments
    nat: bool = False  # needs the carrier-NAT topology


FAULTS: dict[str, Fault] = {
    "unreachable_at_start": Fault(endpoint_unreachable_at_start, "endpoint unreachable at gateway start",
                                  {"start_endpoint": False}),
    "endpoint_restart": Fault(endpoint_restart, "endpoint restart (graceful)"),
    "endpoint_sigkill": Fault(endpoint_sigkill, "endpoint restart (SIGKILL)"),
    "gateway_sigkill": Fault(gateway_sigkill, "gateway SIGKILL + respawn"),
    "both_down_20s": Fault(both_down_20s, "both uplinks down 20 s"),
    "both_down_3min": Fault(both_down_3min, "both uplinks down 3 min"),
    "main_down_up": Fault(main_down_up, "main down 10 s, then up"),
    "main_flapping": Fault(main_flapping, "main flapping every 1 s for 60 s"),
    "bursty_loss": Fault(bursty_loss, "bursty loss on main (Gilbert-Elliott)"),
    "loss_upstream": Fault(loss_upstream, "30 % loss gateway->endpoint only"),
    "loss_downstream": Fault(loss_downstream, "30 % loss endpoint->gateway only"),
    "fallback_then_main": Fault(fallback_down_then_main, "fallback down/up while on main, then main fails"),
    "jittery_fallback": Fault(jittery_fallback, "main down 3 min, LTE-like jitter on the fallback"),
    "main_address": Fault(main_address_replaced, "main uplink's address replaced", {"gw_uplinks": NO_LOCAL}),
    "fallback_address": Fault(fallback_address_replaced, "fallback's address replaced while carrying",
                              {"gw_uplinks": NO_LOCAL}),
    "nat_port": Fault(nat_port_change, "NAT before UDP-encap fallback changes its port",
                      {"gw_uplinks": {FALLBACK: {"udp_encap": 1}}}, nat=True),
    "reload_broken": Fault(reload_broken, "gateway reload with a broken config"),
    "reload_unbindable": Fault(reload_unbindable, "gateway reload with an unbindable config"),
    "endpoint_add_home": Fault(endpoint_reload_add_home, "endpoint reload adding a home"),
    "soak": Fault(soak, "soak at ECG rate (10 min)"),
}


def run_fault(name: str, topo: Topology, quick: bool = False, carrier=None) -> Result:
    """Run one fault on a fresh pair of daemons; never raises (a broken row is a result)."""
    f = FAULTS[name]
    t0 = time.monotonic()
    try:
        with Bed(topo, **f.bed) as bed:
            bed.carrier = carrier  # type: ignore[attr-defined]
            try:
                f.fn(bed, quick)
                r = bed.finish(name)
            except Exception as e:  # the row failed: keep whatever numbers there are
                traceback.print_exc()
                error = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
                if hasattr(bed, "ecg_tx"):  # traffic ran: what the receivers saw still counts
                    r = bed.finish(name)
                else:
                    r = Result(name, notes=bed.notes, timings=bed.timings)
                    r.exits = sum(d.exits for d in bed.daemons)
                    r.tracebacks = sum(d.tracebacks() for d in bed.daemons)
                r.error = error
            finally:
                after = getattr(bed, "after", None)
                if after is not None:
                    after()
                topo.impair.clear()
            r.logs = {d.name: d.log_tail() for d in bed.daemons}  # type: ignore[attr-defined]
    except Exception as e:
        traceback.print_exc()
        r = Result(name, error=f"set-up: {type(e).__name__}: {str(e)[:200]}")
    r.timings["row_s"] = time.monotonic() - t0
    return r
