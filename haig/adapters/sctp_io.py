"""SCTP message I/O with raw sendmsg/recvmsg on the socket pysctp made.

Why not pysctp's sctp_send/sctp_recv: it always attaches an SNDRCV cmsg without an
assoc id (no addressing by association on one-to-many sockets), swaps the ppid, and its
recv ignores timeouts. The ancillary structs are small and fixed (linux/sctp.h):

  SCTP_SNDRCV cmsg (type 1), struct sctp_sndrcvinfo, 32 bytes:
      stream u16, ssn u16, flags u16, (pad), ppid u32, context u32, timetolive u32,
      tsn u32, cumtsn u32, assoc_id i32
  SCTP_RCVINFO cmsg (type 3), struct sctp_rcvinfo, 28 bytes (after SCTP_RECVRCVINFO=1):
      sid u16, ssn u16, flags u16, (pad), ppid u32, tsn u32, cumtsn u32, context u32, assoc_id i32

Notification parsing is pure (bytes in, dataclass out) and unit-tested on the host.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from haig.adapters.sctp_opts import ADDR_CHANGE, SOL_SCTP, _set

SCTP_SNDRCV, SCTP_RCVINFO = 1, 3
SCTP_RECVRCVINFO = 32
SCTP_EVENT = 127
MSG_NOTIFICATION = 0x8000

# sinfo_flags
SCTP_UNORDERED, SCTP_ADDR_OVER, SCTP_ABORT, SCTP_EOF = 1, 2, 4, 0x200
SCTP_PR_SCTP_TTL = 0x10

# notification types
SCTP_ASSOC_CHANGE, SCTP_PEER_ADDR_CHANGE, SCTP_SEND_FAILED, SCTP_REMOTE_ERROR = 0x8001, 0x8002, 0x8003, 0x8004
SCTP_SHUTDOWN_EVENT, SCTP_PARTIAL_DELIVERY_EVENT, SCTP_ADAPTATION_INDICATION = 0x8005, 0x8006, 0x8007
SCTP_AUTHENTICATION_EVENT, SCTP_SENDER_DRY_EVENT = 0x8008, 0x8009
SCTP_STREAM_RESET_EVENT, SCTP_ASSOC_RESET_EVENT, SCTP_STREAM_CHANGE_EVENT = 0x800A, 0x800B, 0x800C
SCTP_SEND_FAILED_EVENT = 0x800D
SCTP_DATA_SENT = 1  # ssf_flags: the message had been transmitted (else SCTP_DATA_UNSENT, 0)
# Where each notification struct keeps its assoc id: not always right after the 8-byte
# header (remote error has an error code first, send-failed a whole sndinfo/sndrcvinfo).
_ASSOC_ID_AT = {
    SCTP_SEND_FAILED: 44, SCTP_REMOTE_ERROR: 12, SCTP_SHUTDOWN_EVENT: 8,
    SCTP_PARTIAL_DELIVERY_EVENT: 12, SCTP_ADAPTATION_INDICATION: 12,
    SCTP_AUTHENTICATION_EVENT: 16, SCTP_SENDER_DRY_EVENT: 8, SCTP_STREAM_RESET_EVENT: 8,
    SCTP_ASSOC_RESET_EVENT: 8, SCTP_STREAM_CHANGE_EVENT: 8, SCTP_SEND_FAILED_EVENT: 28,
}
ASSOC_STATES = {0: "comm_up", 1: "comm_lost", 2: "restart", 3: "shutdown_comp", 4: "cant_str_assoc"}

_SNDRCV = struct.Struct("=HHH2xIIIIIi")
_MSG_EOR = int(socket.MSG_EOR)  # a plain int: the IntFlag's `&` costs a µs per message
_RCVINFO = struct.Struct("=HHH2xIIIIi")


def subscribe(sock, events=(SCTP_ASSOC_CHANGE, SCTP_PEER_ADDR_CHANGE, SCTP_SHUTDOWN_EVENT,
                            SCTP_SEND_FAILED_EVENT, SCTP_REMOTE_ERROR)) -> None:
    for ev in events:
        _set(sock, SCTP_EVENT, struct.pack("=iHB1x", 0, ev, 1))
    _set(sock, SCTP_RECVRCVINFO, struct.pack("=i", 1))


def send(sock: socket.socket, data: bytes, *, stream: int = 0, unordered: bool = True,
         ttl_ms: int = 0, assoc_id: int = 0, to: tuple[str, int] | None = None,
         addr_over: bool = False, abort: bool = False) -> int:
    """One SCTP message. ttl_ms > 0 = PR-SCTP timed reliability (abandoned when too old).
    `to` with addr_over forces the path (critical duplicates, PATH messages)."""
    flags = (SCTP_UNORDERED if unordered else 0) | (SCTP_PR_SCTP_TTL if ttl_ms else 0)
    if addr_over:
        flags |= SCTP_ADDR_OVER
    if abort:
        flags |= SCTP_ABORT
    anc = ancillary(stream, flags, ttl_ms, assoc_id)
    if to is not None:
        return sock.sendmsg([data], anc, 0, to)
    return sock.sendmsg([data], anc)


def ancillary(stream: int, flags: int, ttl_ms: int, assoc_id: int) -> list:
    """The SNDRCV cmsg list for sendmsg, built once per combination."""
    key = (stream, flags, ttl_ms, assoc_id)
    anc = _ANC.get(key)
    if anc is None:
        if len(_ANC) >= _ANC_MAX:
            _ANC.clear()
        anc = _ANC[key] = [(SOL_SCTP, SCTP_SNDRCV, _SNDRCV.pack(stream, 0, flags, 0, 0, ttl_ms, 0, 0, assoc_id))]
    return anc


# The ancillary data of a send depends on a few values only (stream, flags, lifetime,
# association): built once per combination, not per message.
_ANC: dict[tuple[int, int, int, int], list] = {}
_ANC_MAX = 4096


@dataclass(slots=True)  # not frozen: one per datagram, and frozen init costs 3x
class Received:
    data: bytes
    addr: tuple | None  # peer transport address the chunk arrived from (the path)
    assoc_id: int
    stream: int
    eor: bool


@dataclass(frozen=True)
class AssocChange:
    state: str
    error: int
    assoc_id: int


@dataclass(frozen=True)
class PeerAddrChange:
    addr: tuple[str, int]
    state: str  # ADDR_CHANGE names: available, unreachable, potentially_failed, ...
    error: int
    assoc_id: int


@dataclass(frozen=True)
class OtherNotification:
    type: int
    assoc_id: int  # 0 for a type whose layout this module does not know


@dataclass(frozen=True)
class SendFailed:
    """SCTP_SEND_FAILED_EVENT: a message SCTP gave up on (PR-SCTP lifetime over, or
    still unsent when the association ended); `data` is what it carried."""
    error: int
    sent: bool  # SCTP_DATA_SENT: it had been on the wire at least once
    assoc_id: int
    data: bytes


Notification = AssocChange | PeerAddrChange | SendFailed | OtherNotification


def parse_sockaddr(raw: bytes) -> tuple[str, int]:
    """(host, port) of a struct sockaddr_in/in6 (or sockaddr_storage); ("?", 0) for
    another family. ValueError when the bytes are too short for their family."""
    if len(raw) < 2:
        raise ValueError("sockaddr too short")
    fam = struct.unpack_from("=H", raw)[0]
    if fam in (socket.AF_INET, socket.AF_INET6) and len(raw) < (8 if fam == socket.AF_INET else 24):
        raise ValueError("sockaddr too short for its family")
    if fam == socket.AF_INET:
        port = struct.unpack_from("!H", raw, 2)[0]
        return socket.inet_ntoa(raw[4:8]), port
    if fam == socket.AF_INET6:
        port = struct.unpack_from("!H", raw, 2)[0]
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    return ("?", 0)


def parse_notification(buf: bytes) -> Notification:
    """One notification (linux/sctp.h union sctp_notification). ValueError when the
    bytes are shorter than the struct their type names: a truncated notification is
    never read at the wrong offsets."""
    if len(buf) < 8:
        raise ValueError("notification too short")
    typ, _flags, _length = struct.unpack_from("=HHI", buf)
    if typ == SCTP_ASSOC_CHANGE:
        if len(buf) < 20:
            raise ValueError("assoc change notification truncated")
        state, err = struct.unpack_from("=HH", buf, 8)
        assoc = struct.unpack_from("=i", buf, 16)[0]
        return AssocChange(ASSOC_STATES.get(state, str(state)), err, assoc)
    if typ == SCTP_PEER_ADDR_CHANGE:
        if len(buf) < 148:
            raise ValueError("peer address change notification truncated")
        addr = parse_sockaddr(buf[8:136])
        state, err, assoc = struct.unpack_from("=iii", buf, 136)
        return PeerAddrChange(addr, ADDR_CHANGE.get(state, str(state)), err, assoc)
    if typ == SCTP_SEND_FAILED_EVENT:
        if len(buf) < 32:
            raise ValueError("send failed event truncated")
        (err,) = struct.unpack_from("=I", buf, 8)
        (assoc,) = struct.unpack_from("=i", buf, 28)
        return SendFailed(err, bool(_flags & SCTP_DATA_SENT), assoc, bytes(buf[32:_length or len(buf)]))
    at = _ASSOC_ID_AT.get(typ)
    if at is None:
        return OtherNotification(typ, 0)
    if len(buf) < at + 4:
        raise ValueError(f"notification {typ:#x} truncated")
    return OtherNotification(typ, struct.unpack_from("=i", buf, at)[0])


def receive(sock: socket.socket, bufsize: int = 65536 + 64) -> Received | Notification | None:
    """One message or notification; None when nothing is ready (non-blocking socket)."""
    try:
        data, anc, flags, addr = sock.recvmsg(bufsize, 256)
    except BlockingIOError:
        return None
    if flags & MSG_NOTIFICATION:
        try:
            return parse_notification(data)
        except ValueError:
            # Cut short (MSG_EOR missing): nothing in it can be trusted; type 0 is no
            # notification, so callers ignore it, and the socket keeps being read.
            return OtherNotification(0, 0)
    assoc_id, stream = 0, 0
    for level, typ, cdata in anc:
        if level == SOL_SCTP and typ == SCTP_RCVINFO and len(cdata) >= _RCVINFO.size:
            stream, _, _, _, _, _, _, assoc_id = _RCVINFO.unpack_from(cdata)
    peer = addr[:2] if isinstance(addr, tuple) and addr else None
    return Received(data, peer, assoc_id, stream, bool(flags & _MSG_EOR))
