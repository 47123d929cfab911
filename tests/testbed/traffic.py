"""UDP traffic for the test bed: sequence-numbered, checksummed datagrams sent at a fixed
interval, an echo server, and a sink recording arrival times (for failover gaps)."""

from __future__ import annotations

import hashlib
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from tests.testbed.netns import Netns

HDR = struct.Struct("!Id16s")  # seq, send time, md5 of the payload after the header


def make_datagram(seq: int, size: int, rng: random.Random) -> bytes:
    body = rng.randbytes(max(0, size - HDR.size))
    return HDR.pack(seq, time.monotonic(), hashlib.md5(body).digest()) + body


def check_datagram(data: bytes) -> tuple[int, float] | None:
    """(seq, sent) when intact, None when corrupted or truncated."""
    if len(data) < HDR.size:
        return None
    seq, sent, digest = HDR.unpack_from(data)
    if hashlib.md5(data[HDR.size:]).digest() != digest:
        return None
    return seq, sent


def udp_in(ns: Netns, bind: tuple[str, int] = ("0.0.0.0", 0)) -> socket.socket:
    with ns.enter():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(bind)
    return s


@dataclass
class Record:
    seqs: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    corrupted: int = 0
    sent: int = 0
    send_times: list[float] = field(default_factory=list)

    def longest_gap(self, start: float, end: float | None = None) -> tuple[float, float]:
        """Longest interval without an arrival within [start, end], counting from start."""
        ts = [start] + [t for t in self.times if t >= start and (end is None or t <= end)]
        if end is not None:
            ts.append(end)
        best, at = 0.0, start
        for a, b in zip(ts, ts[1:], strict=False):
            if b - a > best:
                best, at = b - a, a
        return best, at

    def lost(self) -> int:
        return self.sent - len(set(self.seqs))

    def duplicates(self) -> int:
        return len(self.seqs) - len(set(self.seqs))

    def first_after(self, t: float) -> float | None:
        return next((x for x in self.times if x > t), None)


class Sink:
    """Receives datagrams on a socket in a thread, records arrival order and times;
    optionally echoes them back (an echo server)."""

    def __init__(self, sock: socket.socket, echo: bool = False) -> None:
        self.sock, self.echo = sock, echo
        self.rec = Record()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sink:
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            data, addr = self.sock.recvfrom(65535)
            now = time.monotonic()
            if self.echo:
                self.sock.sendto(data, addr)
                continue
            ok = check_datagram(data)
            if ok is None:
                self.rec.corrupted += 1
                continue
            self.rec.seqs.append(ok[0])
            self.rec.times.append(now)

    def stop(self) -> Record:
        self._stop.set()
        self._t.join()
        self.sock.close()
        return self.rec


class Sender:
    """Sends one datagram every `interval` seconds to `dest` from a client socket."""

    def __init__(self, sock: socket.socket, dest: tuple[str, int], interval: float = 0.01,
                 size: int = 200, seed: int = 1) -> None:
        self.sock, self.dest, self.interval, self.size = sock, dest, interval, size
        self.rng = random.Random(seed)
        self.rec = Record()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sender:
        self._t.start()
        return self

    def _run(self) -> None:
        seq, nxt = 0, time.monotonic()
        while not self._stop.is_set():
            self.sock.sendto(make_datagram(seq, self.size, self.rng), self.dest)
            self.rec.send_times.append(time.monotonic())
            self.rec.sent += 1
            seq += 1
            nxt += self.interval
            time.sleep(max(0.0, nxt - time.monotonic()))

    def stop(self) -> Record:
        self._stop.set()
        self._t.join()
        return self.rec
