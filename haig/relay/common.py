"""Pieces both relay roles share besides the SCTP driver: UDP sockets, clocks, and
publishing core events to the one status model."""

from __future__ import annotations

import dataclasses
import logging
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from haig.core.events import Event
from haig.core.status import StatusModel

log = logging.getLogger("haig")



class Clock:
    """Monotonic time for decisions, wall time for what people read."""

    def __init__(self, mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.mono, self.wall = mono, wall

    def to_wall(self, t_mono: float) -> float:
        return self.wall() - (self.mono() - t_mono)


def publish(status: StatusModel, clock: Clock, ev: Event) -> Event:
    """Stamp an event with wall time, log it (logread / journal), add it to the model."""
    ev = dataclasses.replace(ev, t=clock.to_wall(ev.t))
    level = logging.WARNING if ev.kind in ("failover", "drop") or ev.new in ("refused",) else logging.INFO
    log.log(level, "%s %s: %s -> %s (%s)", ev.kind, ev.subject, ev.old, ev.new, ev.reason)
    return status.add_event(ev)


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


UDP_RCVBUF = 1 << 20  # absorb bursts while the loop is busy (a router CPU, a TCG VM)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux: the socket's drop count with each datagram
OVFL_SPACE = socket.CMSG_SPACE(4)  # recvmsg's ancillary room for it


def count_overflows(s: socket.socket) -> None:
    """Datagrams the kernel drops at a full receive buffer (our loop too slow for a burst)
    never reach us: with SO_RXQ_OVFL each datagram read brings the socket's running drop
    count (once it is non-zero), so they can be counted (`overflow_total`)."""
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    except OSError:
        pass


def overflow_total(anc: list) -> int | None:
    """The running drop count in a recvmsg's ancillary data, or None."""
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(raw) >= 4:
            return int.from_bytes(raw[:4], sys.byteorder)
    return None


def grow_rcvbuf(s: socket.socket, size: int = UDP_RCVBUF) -> None:
    """Past net.core.rmem_max when root (SO_RCVBUFFORCE), else as far as allowed."""
    for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, size)
            return
        except OSError:
            continue


def udp_socket(bind: tuple[str, int] | None = None, connect: tuple[str, int] | None = None) -> socket.socket:
    host = (bind or connect or ("0.0.0.0", 0))[0]
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    try:
        grow_rcvbuf(s)
        if bind:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(bind)
        if connect:
            s.connect(connect)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def ensure_udp_encap_port(port: int) -> None:
    """RFC 6951 needs the kernel's UDP tunnelling socket (net.sctp.udp_port, per network
    namespace, before SCTP sockets are made). It is a listening port, not a tuning knob:
    set it only when it is off, and say so."""
    p = Path("/proc/sys/net/sctp/udp_port")
    try:
        cur = int(p.read_text().strip())
    except OSError as e:
        log.warning("cannot read %s (%s): SCTP over UDP unavailable", p, e)
        return
    if cur == 0:
        try:
            p.write_text(str(port))
        except OSError as e:  # unprivileged (the systemd unit presets it instead)
            log.warning("cannot set net.sctp.udp_port=%d (%s): gateways behind NAT (udp_encap) "
                        "cannot reach this host; set it before haig starts", port, e)
            return
        log.info("enabled SCTP over UDP on local port %d (net.sctp.udp_port)", port)
    elif cur != port:
        log.info("SCTP over UDP already on local port %d (config says %d): keeping it", cur, port)
