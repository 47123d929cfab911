"""Minimal SCTP sender/receiver for testing the test bed itself and for the baseline
(kernel SCTP with defaults, what the report's socat relay got): sequence-numbered
messages at a fixed interval, arrival times and carrying path recorded."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import sctp

from haig.adapters import sctp_opts

HDR = struct.Struct("!Id")  # seq, send time (monotonic)


@dataclass
class Arrival:
    seq: int
    sent: float
    at: float
    via: str


@dataclass
class ProbeResult:
    arrivals: list[Arrival] = field(default_factory=list)
    sent: int = 0

    def longest_gap(self, after: float = 0.0) -> tuple[float, float]:
        """(gap seconds, time the gap started) among arrivals after `after`."""
        times = [a.at for a in self.arrivals if a.at >= after]
        best, start = 0.0, 0.0
        for a, b in zip(times, times[1:], strict=False):
            if b - a > best:
                best, start = b - a, a
        return best, start

    def lost(self) -> int:
        return self.sent - len({a.seq for a in self.arrivals})

    def duplicates(self) -> int:
        return len(self.arrivals) - len({a.seq for a in self.arrivals})


def wait_paths_active(sock: sctp.sctpsocket, addrs: list[str], port: int, timeout: float = 10) -> None:
    """The peer must have CONFIRMED every path (heartbeat acked) before a fault, or the
    first failover stalls ~2 s (notes)."""
    deadline = time.monotonic() + timeout
    while True:
        states = {}
        for a in addrs:
            try:
                states[a] = sctp_opts.get_path_info(sock, 0, (a, port)).state
            except OSError:
                states[a] = None
        if all(s == "active" for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"paths not all ACTIVE after {timeout}s: {states}")
        time.sleep(0.1)


def receive(sock: sctp.sctpsocket, result: ProbeResult, stop: threading.Event) -> None:
    while not stop.is_set():
        r, _, _ = select.select([sock], [], [], 0.1)
        if not r:
            continue
        try:
            fromaddr, flags, msg, notif = sock.sctp_recv(65536)
        except BlockingIOError:
            continue
        if not msg or len(msg) < HDR.size:
            continue
        seq, sent = HDR.unpack_from(msg)
        result.arrivals.append(Arrival(seq, sent, time.monotonic(), fromaddr[0] if fromaddr else "?"))


def send_every(sock: sctp.sctpsocket, interval: float, stop: threading.Event, result: ProbeResult,
               payload: int = 64) -> None:
    seq = 0
    nxt = time.monotonic()
    pad = b"\0" * max(0, payload - HDR.size)
    while not stop.is_set():
        sock.sctp_send(HDR.pack(seq, time.monotonic()) + pad)
        result.sent += 1
        seq += 1
        nxt += interval
        time.sleep(max(0.0, nxt - time.monotonic()))


def pair(gw_ns, ep_ns, gw_addrs: list[str], ep_addrs: list[str], port: int,
         rto: tuple[int, int, int] | None = None, auth: bool = False):
    """A one-to-one association gw → ep, multihomed on both ends. Returns (client, server
    conn, listener). `auth`: both sockets offer SCTP-AUTH for DATA, as haig's do."""
    with ep_ns.enter():
        lst = sctp.sctpsocket_tcp(socket.AF_INET)
        if auth:
            sctp_opts.enable_auth(lst)
        lst.bindx([(a, port) for a in ep_addrs])
        lst.listen(5)
    with gw_ns.enter():
        cli = sctp.sctpsocket_tcp(socket.AF_INET)
        if auth:
            sctp_opts.enable_auth(cli)
        cli.bindx([(a, 0) for a in gw_addrs])
        if rto:
            sctp_opts.set_rtoinfo(cli, 0, *rto)  # initial, max, min
        cli.connectx([(a, port) for a in ep_addrs])
    conn, _ = lst.accept()
    conn.setblocking(False)
    return cli, conn, lst
