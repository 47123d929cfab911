"""Load generator for the test bed: N homes, each one real SCTP association admitted
with its own gateway id and key, sending ECG-rate telemetry through an endpoint.

Run inside a namespace that reaches the endpoint (the bench does it in the gw netns):

    python -m tests.testbed.loadgen --connect 10.202.0.15:8850 --homes 100 --duration 20

Modes (`--mode`):
* telemetry — admit every home, then each sends `--rate` datagrams/s of `--size` bytes
  on its `ecg` flow, every 100th one on its `alarm` flow with the CRITICAL flag; the
  echo target answers each one, so the endpoint carries a reply stream too. Round-trip
  times are measured from the send time carried in the payload.
* unauth    — open N associations and never say HELLO (a scanner holding sessions).
* unknown   — open N associations and say HELLO with ids the endpoint does not know.
* flows     — admit home 0 and open `--flows` distinct flows from it (fd exhaustion).
* raw       — no haig: telemetry as above straight to an SCTP echo (`--sctp-echo`,
  which sends every message back on its association), no admission. The generator's
  and the emulator's own ceiling, to set the haig rows against.

Accounting: every datagram sent is either replied to or, when the generator's kernel
gave up on it (its PR-SCTP lifetime of 1 s ran out), counted as abandoned — never on
the wire, or after it was — from the kernel's per-stream counters read before each
close (SCTP_PR_STREAM_STATUS; SCTP_SEND_FAILED_EVENT, also counted, comes only for the
unsent ones on Linux); `account()` adds the endpoint's drops by reason and calls the
rest uncounted.

Sources: real homes come from many addresses, and the endpoint sheds more than
PENDING_PER_SOURCE unadmitted associations per source address. With `--sources CIDR`
(addresses the namespace holds, e.g. 10.220.0.0/16 added to its uplink by the bench)
home i binds its association to the CIDR's (i+1)-th address before connecting, so the
per-source cap applies per home and up to `--max-pending` are admitted at once; without
it every home shares the namespace's address and at most the per-source cap is in
admission at a time (the abuse modes open everything at once either way).

Not the bottleneck by construction: one selector over all associations per process,
telemetry paced by a 10 ms tick (1/10 of the homes send on each tick), `--procs` worker
processes splitting the homes; each reports its own CPU time so the bench can show
whether the generator kept up (offered vs achieved rate).
Prints one JSON object on stdout at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import multiprocessing as mp
import os
import resource
import selectors
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field

from haig.adapters import sctp_io, sctp_opts
from haig.core import wire
from haig.core.endpoint_session import PENDING_MAX, PENDING_PER_SOURCE
from haig.relay import sctp_driver
from haig.relay.common import grow_rcvbuf

SERVICES = ("ecg", "alarm")
ECG, ALARM = 0, 1
PAYLOAD = struct.Struct("!IIQ")  # home index, message number, send time (ns, monotonic)
TICK = 0.01
DATA_STREAMS = (1, 2)  # the ecg flow (1) and the alarm flow (2), on stream flow % 16
DRAIN_QUIET, DRAIN_MAX = 2.0, 30.0  # s: how the generator waits for the last replies


def home_id(i: int) -> str:
    return f"home_{i:05d}"


def home_key(i: int) -> str:
    return f"loadgen-key-{i:05d}-0123456789abcdef"


@dataclass
class Home:
    index: int
    sock: socket.socket
    state: str = "connecting"  # connecting → challenged → admitted | refused | failed
    nonce: bytes = b""
    auth_key: bytes = b""  # SCTP-AUTH key 1, as a gateway derives it at admission
    sent: int = 0
    next_flow: int = 3


@dataclass
class Stats:
    admitted: int = 0
    refused: int = 0
    failed: int = 0
    sent: int = 0
    alarms_sent: int = 0
    send_blocked: int = 0
    replies: int = 0
    alarm_replies: int = 0
    dup_replies: int = 0  # a (home, message) answered more than once (not in `replies`)
    abandoned_sent: int = 0  # SEND_FAILED after it had been on the wire
    abandoned_unsent: int = 0  # ... never on the wire (the generator's own backlog)
    # The kernel's own PR-SCTP counters of the same, read per association before the
    # close: a message abandoned after it was sent gets no SEND_FAILED event on Linux
    # (outqueue.c drops it silently), so only these count those.
    kernel_abandoned_sent: int = 0
    kernel_abandoned_unsent: int = 0
    seen: set = field(default_factory=set)  # (home, message number) replied to
    rtt_us: list[int] = field(default_factory=list)
    admit_s: float | None = None
    cpu_s: float = 0.0
    drain_s: float = 0.0  # how long the last replies took to arrive after the sending ended
    settled: int = 0  # homes whose admission has its answer (kept, not counted per loop)
    retries: int = 0  # admissions tried again after a refusal or a lost association
    to_retry: list = field(default_factory=list)  # homes refused/failed while admitting


def _raise_nofile(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n), hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def source_of(sources: str | None, index: int) -> str | None:
    """Home `index`'s own source address in the CIDR `sources` (None: the namespace's)."""
    if not sources:
        return None
    net = ipaddress.ip_network(sources, strict=False)
    if index + 1 >= net.num_addresses - 1:
        raise ValueError(f"--sources {sources} has no address for home {index}")
    return str(net[index + 1])


def _open(connect: tuple[str, int], source: str | None = None, blocking: bool = False) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    sctp_opts.set_initmsg(s, 16, 16)
    sctp_opts.set_nodelay(s)  # as the gateway does: no Nagle-style hold of small messages
    sctp_opts.enable_auth(s)  # and SCTP-AUTH (the endpoint's require_auth refuses a home without)
    sctp_io.subscribe(s, events=(sctp_io.SCTP_SEND_FAILED_EVENT,))  # count what the kernel abandons
    if source is not None:
        s.bind((source, 0))  # one address per home: its INIT lists only this one
    if blocking:  # raw mode: nothing to admit, sending starts once the association is up
        s.connect(connect)
        s.setblocking(False)
        return s
    s.setblocking(False)
    try:
        s.connect(connect)
    except BlockingIOError:
        pass
    return s


def account(sent: int, replied: int, abandoned_sent: int, abandoned_unsent: int,
            ep_drops: dict[str, int] | None = None) -> dict:
    """Where every datagram went: replied, or lost with a reason (the generator's
    kernel abandoned it; the endpoint dropped it, by its reason), or uncounted.
    Negative uncounted = counted twice (or drops from outside the load window)."""
    lost = {"abandoned_sent": abandoned_sent, "abandoned_unsent": abandoned_unsent}
    lost.update({f"ep_{k}": v for k, v in (ep_drops or {}).items()})
    lost = {k: v for k, v in lost.items() if v}
    counted = sum(lost.values())
    return {"sent": sent, "replied": replied, "counted_lost": counted, "lost_by_reason": lost,
            "uncounted": sent - replied - counted}


def on_send_failed(st: Stats, ev: sctp_io.SendFailed) -> None:
    """One of our messages the kernel gave up on (only DATA we sent is ours to count)."""
    try:
        if wire.msg_type(ev.data) != wire.DATA:
            return
    except wire.WireError:
        return
    if ev.sent:
        st.abandoned_sent += 1
    else:
        st.abandoned_unsent += 1


def read_abandoned(h: Home, st: Stats) -> None:
    """Add the kernel's PR-SCTP abandonment counters of home `h`'s data streams."""
    for stream in DATA_STREAMS:
        try:
            unsent, sent = sctp_opts.get_abandoned(h.sock, 0, stream)
        except OSError:
            continue
        st.kernel_abandoned_unsent += unsent
        st.kernel_abandoned_sent += sent


def on_reply(st: Stats, index: int, seq: int) -> bool:
    """Count a reply once per (home, message); False for a duplicate."""
    key = (index, seq)
    if key in st.seen:
        st.dup_replies += 1
        return False
    st.seen.add(key)
    st.replies += 1
    return True


def _set(h: Home, state: str, mode: str, st: Stats) -> None:
    was = h.state
    h.state = state
    if state in settled_states(mode) and was not in settled_states(mode):
        st.settled += 1
        if state in ("refused", "failed"):
            st.to_retry.append(h)


def settled_states(mode: str) -> tuple[str, ...]:
    """States in which a home's admission has its answer (unauth: its CHALLENGE)."""
    return ("challenged", "refused", "failed") if mode == "unauth" else ("admitted", "refused", "failed")


def _on_message(h: Home, msg: bytes, mode: str, st: Stats, now_ns: int) -> None:
    try:
        typ = wire.msg_type(msg)
    except wire.WireError:
        return
    if typ == wire.CHALLENGE and h.state == "connecting":
        challenge = wire.decode_challenge(msg)
        if mode == "unauth":
            _set(h, "challenged", mode, st)
            return
        gw = home_id(h.index) if mode != "unknown" else f"nobody-{os.getpid()}-{h.index}"
        h.nonce = os.urandom(wire.NONCE)
        hello = wire.encode_hello(home_key(h.index), challenge, gw, h.nonce, SERVICES)
        h.auth_key = wire.auth_key(home_key(h.index), challenge, h.nonce)
        sctp_driver.install_auth_key(h.sock, 0, h.auth_key, use=False)  # the gateway's order
        sctp_io.send(h.sock, hello, stream=0, unordered=False)
        _set(h, "challenged", mode, st)
    elif typ == wire.WELCOME:
        sctp_driver.install_auth_key(h.sock, 0, h.auth_key, use=True)
        _set(h, "admitted", mode, st)
        st.admitted += 1
    elif typ == wire.REFUSED:
        _set(h, "refused", mode, st)
        st.refused += 1
    elif typ == wire.DATA:
        d = wire.decode_data(msg)
        if len(d.payload) >= PAYLOAD.size:
            idx, seq, t_ns = PAYLOAD.unpack_from(d.payload)
            if not on_reply(st, idx, seq):
                return
            st.rtt_us.append((now_ns - t_ns) // 1000)
        else:
            st.replies += 1
        if d.service == ALARM:
            st.alarm_replies += 1


def _send_data(h: Home, st: Stats, service: int, flow: int, size: int, critical: bool) -> None:
    t = time.monotonic_ns()
    body = PAYLOAD.pack(h.index, h.sent, t).ljust(size, b"\x00")
    msg = wire.encode_data(service, flow, body, seq=h.sent, flags=wire.FLAG_CRITICAL if critical else 0)
    try:
        sctp_io.send(h.sock, msg, stream=flow % 16, unordered=True, ttl_ms=1000)
    except (BlockingIOError, OSError):
        st.send_blocked += 1
        return
    h.sent += 1
    st.sent += 1
    if critical:
        st.alarms_sent += 1


def worker(indices: list[int], args: argparse.Namespace, out) -> None:
    _raise_nofile(len(indices) + 64)
    st = Stats()
    sel = selectors.DefaultSelector()
    homes: dict[int, Home] = {}
    connect = (args.host, args.port)
    t0 = time.monotonic()
    cpu0 = time.process_time()
    todo = deque(indices)
    # The endpoint sheds unadmitted associations past PENDING_PER_SOURCE per source
    # address and PENDING_MAX in all: the admitted modes keep within both (shared by
    # the workers); the abuse modes (unauth, unknown) open everything at once, as an
    # attacker would.
    abuse = args.mode in ("unauth", "unknown")
    raw = args.mode == "raw"
    # With one address per home, PENDING_MAX // 8 (32) in flight keeps the endpoint
    # busy; more only stretches each one's round trip past its 3-s HELLO deadline when
    # the CPU is short (the emulator).
    cap = PENDING_MAX // 8 if args.sources else PENDING_PER_SOURCE
    max_pending = len(todo) if abuse else (args.max_pending or max(1, cap // max(1, args.procs)))
    # Admission phase: until every home has its answer (unauth: its CHALLENGE). A home
    # refused or cut off (shed, HELLO too late under load) tries again later, up to
    # --retries times, as a gateway does with its back-off; the abuse modes never do.
    admit_deadline = t0 + args.admit_timeout
    attempts: dict[int, int] = {}
    while time.monotonic() < admit_deadline:
        for h in st.to_retry:
            if abuse or attempts.get(h.index, 0) >= args.retries:
                continue
            attempts[h.index] = attempts.get(h.index, 0) + 1
            if h.state == "refused":
                st.refused -= 1
            else:
                st.failed -= 1
            st.settled -= 1
            st.retries += 1
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(h.sock)
            homes.pop(h.sock.fileno(), None)
            h.sock.close()
            todo.append(h.index)  # at the back: the others go first
        st.to_retry.clear()
        while todo and len(homes) - st.settled < max_pending:
            i = todo.popleft()
            try:
                s = _open(connect, source_of(args.sources, i), blocking=raw)
            except OSError:
                st.failed += 1
                continue
            h = Home(i, s)
            homes[s.fileno()] = h
            sel.register(s, selectors.EVENT_READ)
            if raw:  # an echo, not an endpoint: up = ready
                _set(h, "admitted", args.mode, st)
                st.admitted += 1
        _poll(sel, homes, args.mode, st, 0.05)
        if not todo and st.settled >= len(homes):
            break
    st.admit_s = time.monotonic() - t0
    st.to_retry.clear()
    # Load phase
    end = time.monotonic() + args.duration
    tick = 0
    next_tick = time.monotonic()
    admitted = [h for h in homes.values() if h.state == "admitted"]
    period = max(1, round(1 / (TICK * args.rate))) if args.rate > 0 else 0
    by_slot = [[h for h in admitted if h.index % period == k] for k in range(period)] if period else []
    flows_opened = 0
    max_lag = 0.0
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_tick:
            max_lag = max(max_lag, now - next_tick)  # > TICK: the generator itself fell behind
            if args.mode in ("telemetry", "raw") and by_slot:
                for h in by_slot[tick % period]:
                    alarm = h.sent % 100 == 99
                    _send_data(h, st, ALARM if alarm else ECG, 2 if alarm else 1, args.size, alarm)
            elif args.mode == "flows" and admitted and flows_opened < args.flows:
                h = admitted[0]
                for _ in range(min(50, args.flows - flows_opened)):  # 5,000 new flows/s at most
                    _send_data(h, st, ECG, h.next_flow, 64, False)
                    h.next_flow += 1
                    flows_opened += 1
            tick += 1
            next_tick += TICK
        _poll(sel, homes, args.mode, st, max(0.0, next_tick - time.monotonic()))
    # Drain the replies in flight before closing (a reply arriving after the close is a
    # drop the endpoint counts, no_association, which would be the generator's doing):
    # until none came for DRAIN_QUIET s — round trips are seconds under emulation —
    # and at most DRAIN_MAX s.
    t_drain = time.monotonic()
    def heard() -> int:  # replies and abandonments: both still arrive after the sending
        return st.replies + st.abandoned_sent + st.abandoned_unsent

    quiet_until, hard_end, seen = t_drain + DRAIN_QUIET, t_drain + DRAIN_MAX, heard()
    while time.monotonic() < min(quiet_until, hard_end):
        _poll(sel, homes, args.mode, st, 0.05)
        if heard() != seen:
            seen, quiet_until = heard(), time.monotonic() + DRAIN_QUIET
    st.drain_s = round(time.monotonic() - t_drain, 1)
    st.cpu_s = time.process_time() - cpu0
    for h in homes.values():
        if h.state == "admitted":
            read_abandoned(h, st)
        h.sock.close()
    d = st.__dict__.copy()
    del d["to_retry"], d["seen"]
    d["flows_opened"] = flows_opened
    d["max_lag_ms"] = round(max_lag * 1000, 1)
    out.send(d)
    out.close()


def _poll(sel: selectors.BaseSelector, homes: dict[int, Home], mode: str, st: Stats, timeout: float) -> None:
    for key, _ in sel.select(timeout):
        h = homes.get(key.fd)
        if h is None:
            continue
        for _ in range(32):
            try:
                item = sctp_io.receive(h.sock)
            except OSError:
                if h.state not in ("failed", "refused"):
                    _set(h, "failed", mode, st)
                    st.failed += 1
                sel.unregister(h.sock)
                break
            if item is None:
                break
            if isinstance(item, sctp_io.Received):
                if not item.data:  # EOF: the endpoint ended the association
                    if h.state not in ("failed", "refused"):
                        _set(h, "failed", mode, st)
                        st.failed += 1
                    sel.unregister(h.sock)
                    break
                _on_message(h, item.data, mode, st, time.monotonic_ns())
            elif isinstance(item, sctp_io.SendFailed):
                on_send_failed(st, item)


def run(args: argparse.Namespace) -> dict:
    procs = max(1, min(args.procs, args.homes))
    parts = [list(range(args.first + k, args.first + args.homes, procs)) for k in range(procs)]
    ctx = mp.get_context("fork")
    pipes, workers = [], []
    for part in parts:
        a, b = ctx.Pipe(duplex=False)
        p = ctx.Process(target=worker, args=(part, args, b))
        p.start()
        pipes.append(a)
        workers.append(p)
    results = [a.recv() for a in pipes]
    for p in workers:
        p.join()
    total: dict = {"homes": args.homes, "mode": args.mode, "procs": procs, "duration_s": args.duration}
    for k in ("admitted", "refused", "failed", "retries", "sent", "alarms_sent", "send_blocked", "replies",
              "alarm_replies", "flows_opened", "dup_replies", "abandoned_sent", "abandoned_unsent",
              "kernel_abandoned_sent", "kernel_abandoned_unsent"):
        total[k] = sum(r[k] for r in results)
    total["cpu_s"] = [round(r["cpu_s"], 2) for r in results]
    total["max_lag_ms"] = max(r["max_lag_ms"] for r in results)
    total["admit_s"] = round(max(r["admit_s"] or 0 for r in results), 2)
    total["drain_s"] = max(r["drain_s"] for r in results)
    rtt = sorted(x for r in results for x in r["rtt_us"])
    total["rtt_ms"] = {q: (rtt[min(len(rtt) - 1, int(p * len(rtt)))] / 1000 if rtt else None)
                       for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))}
    return total


def echo(binds: list[tuple[str, int]]) -> None:
    """The hospital-side target: answer every datagram to its sender (until killed)."""
    sel = selectors.DefaultSelector()
    for b in binds:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(b)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            for _ in range(64):
                try:
                    data, peer = s.recvfrom(65535)
                except BlockingIOError:
                    break
                try:
                    s.sendto(data, peer)
                except OSError:
                    pass


def sctp_echo(bind: tuple[str, int]) -> None:
    """The ceiling's far side: one one-to-many SCTP socket sending every message back on
    its association and stream (until killed). Its receive buffer is large so that it,
    not the generator, is never the limit."""
    s = socket.socket(socket.AF_INET, socket.SOCK_SEQPACKET, socket.IPPROTO_SCTP)
    grow_rcvbuf(s, 4 << 20)
    sctp_opts.set_initmsg(s, 16, 16)
    sctp_opts.set_nodelay(s)
    sctp_io.subscribe(s, events=())  # no notifications; SCTP_RCVINFO for the assoc id
    s.bind(bind)
    s.listen(1024)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    while True:
        sel.select()
        for _ in range(64):
            item = sctp_io.receive(s)
            if item is None:
                break
            if isinstance(item, sctp_io.Received) and item.data:
                with contextlib.suppress(OSError):
                    sctp_io.send(s, item.data, stream=item.stream, unordered=True, ttl_ms=1000,
                                 assoc_id=item.assoc_id)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--echo", help="run the echo target instead: host:port[,host:port...]")
    ap.add_argument("--sctp-echo", help="run an SCTP echo instead (for --mode raw): host:port")
    ap.add_argument("--connect", help="endpoint host:port")
    ap.add_argument("--homes", type=int, default=10)
    ap.add_argument("--first", type=int, default=0, help="index of the first home")
    ap.add_argument("--mode", choices=("telemetry", "unauth", "unknown", "flows", "raw"), default="telemetry")
    ap.add_argument("--rate", type=float, default=10.0, help="datagrams/s per home")
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--flows", type=int, default=1100)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--admit-timeout", type=float, default=120.0)
    ap.add_argument("--retries", type=int, default=5,
                    help="admission attempts again per home after a refusal or lost association")
    ap.add_argument("--sources", help="CIDR of source addresses, one per home (the namespace must hold them)")
    ap.add_argument("--max-pending", type=int, default=0,
                    help="associations in admission at once per worker (0: the endpoint's per-source cap"
                         " / procs; with --sources an eighth of its global cap / procs)")
    args = ap.parse_args(argv)
    if args.echo:
        echo([(h, int(p)) for h, _, p in (x.rpartition(":") for x in args.echo.split(","))])
        return 0
    if args.sctp_echo:
        h, _, p = args.sctp_echo.rpartition(":")
        sctp_echo((h, int(p)))
        return 0
    if not args.connect:
        ap.error("--connect host:port is needed (or --echo)")
    host, _, port = args.connect.rpartition(":")
    args.host, args.port = host, int(port)
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
