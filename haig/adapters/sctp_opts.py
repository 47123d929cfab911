"""Per-association SCTP socket options the kernel has but pysctp sets wrongly or not at
all (see shared notes: pysctp never passes spp_flags, has no PF thresholds, no
UDP encapsulation, and `socket.getsockopt` cannot pass an assoc id in).

Struct layouts were checked with gcc against linux/sctp.h (Linux 6.1) and are the same
on OpenWrt's 5.15/6.6/6.12 kernels. Everything here is a thin, stateless wrapper.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
from dataclasses import dataclass

SOL_SCTP = 132
SCTP_RTOINFO = 0
SCTP_INITMSG = 2
SCTP_NODELAY = 3
SCTP_PRIMARY_ADDR = 6
SCTP_DELAYED_SACK = 16
SCTP_PEER_ADDR_PARAMS = 9
SCTP_GET_PEER_ADDR_INFO = 15
SCTP_PEER_ADDR_THLDS_V2 = 37
SCTP_EXPOSE_POTENTIALLY_FAILED_STATE = 131
SCTP_REMOTE_UDP_ENCAPS_PORT = 132
SCTP_STREAM_SCHEDULER, SCTP_STREAM_SCHEDULER_VALUE = 123, 124  # Linux >= 4.15
SCTP_SS_FCFS, SCTP_SS_PRIO, SCTP_SS_RR = 0, 1, 2
SCTP_PR_STREAM_STATUS = 116  # Linux >= 4.7 (RFC 7496 4.4)
SCTP_PR_SCTP_TTL = 0x10
# SCTP-AUTH (RFC 4895, socket API RFC 6458 8.1.20-8.3.4; Linux >= 5.1 for AUTH_SUPPORTED)
SCTP_AUTH_CHUNK, SCTP_AUTH_KEY, SCTP_AUTH_ACTIVE_KEY = 21, 23, 24
SCTP_PEER_AUTH_CHUNKS = 26
SCTP_AUTH_DEACTIVATE_KEY = 35
SCTP_AUTH_SUPPORTED = 129
CHUNK_DATA = 0

SPP_HB_ENABLE, SPP_HB_DISABLE, SPP_HB_DEMAND = 1, 2, 4
PR_SCTP_TTL = 0x10  # sinfo_flags bit selecting the timed-reliability policy

# Path states (struct sctp_paddrinfo.spinfo_state and SCTP_PEER_ADDR_CHANGE states).
PATH_STATES = {0: "inactive", 1: "pf", 2: "active", 3: "unconfirmed", 0xFFFF: "unknown"}
# Address-change notification states (spc_state).
ADDR_CHANGE = {0: "available", 1: "unreachable", 2: "removed", 3: "added",
               4: "made_prim", 5: "confirmed", 6: "potentially_failed"}

_libc = ctypes.CDLL(None, use_errno=True)


def sockaddr(addr: tuple[str, int] | None) -> bytes:
    """A struct sockaddr_storage (128 bytes) for an IPv4/IPv6 (host, port), or zeros."""
    if addr is None:
        return b"\0" * 128
    host, port = addr[0], addr[1]
    if ":" in host:
        raw = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0) + \
            socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", 0)
    else:
        # inet_pton, not inet_aton: aton takes "10.1" for 10.0.0.1 without complaint.
        raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + \
            socket.inet_pton(socket.AF_INET, host)
    return raw.ljust(128, b"\0")


def _fd(sock) -> int:
    return sock if isinstance(sock, int) else sock.fileno()


def _set(sock, opt: int, data: bytes) -> None:
    s = socket.socket(fileno=_fd(sock))
    try:
        s.setsockopt(SOL_SCTP, opt, data)
    finally:
        s.detach()


def _get(sock, opt: int, buf: bytes) -> bytes:
    """getsockopt with a pre-filled buffer (assoc id / address go in, answer comes out)."""
    cbuf = ctypes.create_string_buffer(buf, len(buf))
    ln = ctypes.c_uint32(len(buf))
    if _libc.getsockopt(_fd(sock), SOL_SCTP, opt, cbuf, ctypes.byref(ln)) != 0:
        err = ctypes.get_errno()
        # os.strerror, not libc's through ctypes: its char* came back as a C int (no
        # restype), and casting that truncated pointer crashed haig (SIGSEGV) on the
        # first getsockopt to fail, e.g. sampling a path of a dying association.
        raise OSError(err, f"getsockopt({opt}): {os.strerror(err)}")
    return cbuf.raw[: ln.value]


def set_rtoinfo(sock, assoc_id: int, initial: int, max_: int, min_: int) -> None:
    _set(sock, SCTP_RTOINFO, struct.pack("=iIII", assoc_id, initial, max_, min_))


def get_rtoinfo(sock, assoc_id: int) -> tuple[int, int, int]:
    _, ini, mx, mn = struct.unpack("=iIII", _get(sock, SCTP_RTOINFO, struct.pack("=iIII", assoc_id, 0, 0, 0)))
    return ini, mx, mn


def set_initmsg(sock, ostreams: int, instreams: int, attempts: int = 4, init_timeo_ms: int = 0) -> None:
    _set(sock, SCTP_INITMSG, struct.pack("=HHHH", ostreams, instreams, attempts, init_timeo_ms))


def set_nodelay(sock, on: bool = True) -> None:
    # Without NODELAY, Nagle can hold small datagrams until their PR-SCTP lifetime expires.
    _set(sock, SCTP_NODELAY, struct.pack("=i", 1 if on else 0))


def set_delayed_sack(sock, assoc_id: int, delay_ms: int, freq: int = 2) -> None:
    """SACK delay well below rto_min: with the kernel's 200 ms default a lone message (an
    idle path's first datagram, a control message) is SACKed only after its T3 timer
    (RTO 40 ms) fired, so the path goes PF with no loss at all — a flip-flop source."""
    _set(sock, SCTP_DELAYED_SACK, struct.pack("=iII", assoc_id, delay_ms, freq))


def get_delayed_sack(sock, assoc_id: int) -> tuple[int, int]:
    _, delay, freq = struct.unpack("=iII", _get(sock, SCTP_DELAYED_SACK, struct.pack("=iII", assoc_id, 0, 0)))
    return delay, freq


SACK_DELAY_MIN_MS = 5  # about one jiffy at HZ=250: the kernel cannot time less
SACK_DELAY_MAX_MS = 200  # the kernel's default; never delay more than it would


def sack_delay_for(rto_min_ms: int) -> int:
    """A quarter of the smallest RTO, so the peer's delayed SACK leaves three quarters of
    the T3 timer for the round trip: a late SACK alone cannot make a good path PF (at
    rto_min 40 a half would leave 20 ms, a few jiffies of scheduling under load)."""
    return max(SACK_DELAY_MIN_MS, min(SACK_DELAY_MAX_MS, rto_min_ms // 4))


def set_paddr_params(sock, assoc_id: int, addr: tuple[str, int] | None, hbinterval_ms: int,
                     pathmaxrxt: int = 0, heartbeat: bool = True) -> None:
    """Heartbeat interval and path_max_retrans for one path (addr) or the association."""
    flags = SPP_HB_ENABLE if heartbeat else SPP_HB_DISABLE
    data = struct.pack("=i128sIHIIIIB", assoc_id, sockaddr(addr), hbinterval_ms, pathmaxrxt,
                       0, 0, flags, 0, 0) + b"\0"
    _set(sock, SCTP_PEER_ADDR_PARAMS, data)


def get_paddr_params(sock, assoc_id: int, addr: tuple[str, int] | None) -> tuple[int, int]:
    buf = struct.pack("=i128sIHIIIIB", assoc_id, sockaddr(addr), 0, 0, 0, 0, 0, 0, 0) + b"\0"
    out = _get(sock, SCTP_PEER_ADDR_PARAMS, buf)
    hb, pmr = struct.unpack_from("=IH", out, 132)
    return hb, pmr


def set_thresholds(sock, assoc_id: int, addr: tuple[str, int] | None, pathmaxrxt: int,
                   pf_retrans: int, ps_retrans: int = 0xFFFF) -> None:
    """SCTP-PF thresholds (RFC 7829): a path is potentially failed after pf_retrans."""
    _set(sock, SCTP_PEER_ADDR_THLDS_V2,
         struct.pack("=i4x128sHHH2x", assoc_id, sockaddr(addr), pathmaxrxt, pf_retrans, ps_retrans))


def get_thresholds(sock, assoc_id: int, addr: tuple[str, int] | None) -> tuple[int, int, int]:
    out = _get(sock, SCTP_PEER_ADDR_THLDS_V2,
               struct.pack("=i4x128sHHH2x", assoc_id, sockaddr(addr), 0, 0, 0))
    return struct.unpack_from("=HHH", out, 136)


def expose_pf(sock, assoc_id: int, mode: int = 2) -> None:
    """2 = report POTENTIALLY_FAILED in address-change notifications (~1 RTO after loss)."""
    _set(sock, SCTP_EXPOSE_POTENTIALLY_FAILED_STATE, struct.pack("=iI", assoc_id, mode))


def set_udp_encap(sock, assoc_id: int, addr: tuple[str, int] | None, udp_port: int) -> None:
    """RFC 6951: carry this path (or all, addr None) inside UDP to udp_port; 0 = plain."""
    _set(sock, SCTP_REMOTE_UDP_ENCAPS_PORT,
         struct.pack("=i4x128sH6x", assoc_id, sockaddr(addr), socket.htons(udp_port)))


def set_stream_scheduler(sock, assoc_id: int, scheduler: int) -> None:
    """Which stream the kernel sends from next (struct sctp_assoc_value); assoc id 0 on a
    one-to-many socket = the default of associations yet to come."""
    _set(sock, SCTP_STREAM_SCHEDULER, struct.pack("=iI", assoc_id, scheduler))


def get_stream_scheduler(sock, assoc_id: int) -> int:
    return struct.unpack_from("=iI", _get(sock, SCTP_STREAM_SCHEDULER, struct.pack("=iI", assoc_id, 0)))[1]


def set_stream_priority(sock, assoc_id: int, stream: int, prio: int) -> None:
    """SCTP_SS_PRIO: a stream's priority, 0 first (struct sctp_stream_value); streams of
    one priority take turns."""
    _set(sock, SCTP_STREAM_SCHEDULER_VALUE, struct.pack("=iHH", assoc_id, stream, prio))


def get_stream_priority(sock, assoc_id: int, stream: int) -> int:
    out = _get(sock, SCTP_STREAM_SCHEDULER_VALUE, struct.pack("=iHH", assoc_id, stream, 0))
    return struct.unpack_from("=iHH", out)[2]


def set_primary(sock, assoc_id: int, addr: tuple[str, int]) -> None:
    _set(sock, SCTP_PRIMARY_ADDR, struct.pack("=i128s", assoc_id, sockaddr(addr)))


@dataclass(frozen=True)
class PathInfo:
    state: str
    cwnd: int
    srtt_ms: int
    rto_ms: int
    mtu: int


def get_path_info(sock, assoc_id: int, addr: tuple[str, int]) -> PathInfo:
    buf = struct.pack("=i128s", assoc_id, sockaddr(addr)).ljust(152, b"\0")
    out = _get(sock, SCTP_GET_PEER_ADDR_INFO, buf)
    state, cwnd, srtt, rto, mtu = struct.unpack_from("=iIIII", out, 132)
    # The kernel copies spinfo_srtt in jiffies (spinfo_rto in ms): convert with its HZ.
    hz = kernel_hz(addr[0], rto)
    srtt_ms = srtt * 1000 // hz if hz else srtt
    return PathInfo(PATH_STATES.get(state, str(state)), cwnd, srtt_ms, rto, mtu)


def get_abandoned(sock, assoc_id: int, stream: int) -> tuple[int, int]:
    """(unsent, sent): messages of `stream` the kernel abandoned by their PR-SCTP lifetime
    before and after sending them (struct sctp_prstatus, TTL policy)."""
    out = _get(sock, SCTP_PR_STREAM_STATUS, struct.pack("=iHHQQ", assoc_id, stream, SCTP_PR_SCTP_TTL, 0, 0))
    return struct.unpack_from("=iHHQQ", out)[3:5]


def get_abandoned_sent(sock, assoc_id: int, stream: int) -> int:
    """Messages of `stream` the kernel abandoned by their PR-SCTP lifetime *after* sending
    them. Those get no SCTP_SEND_FAILED_EVENT (net/sctp/outqueue.c moves them to the
    abandoned list silently); only this counter says they are gone. 0 while the stream
    has carried nothing."""
    return get_abandoned(sock, assoc_id, stream)[1]


def enable_auth(sock) -> None:
    """SCTP-AUTH on this socket only (not the global net.sctp.auth_enable, which would
    change every SCTP user of the host), with DATA chunks to be authenticated. Before
    bind/connect: the chunk list travels in INIT / INIT-ACK."""
    _set(sock, SCTP_AUTH_SUPPORTED, struct.pack("=iI", 0, 1))
    _set(sock, SCTP_AUTH_CHUNK, struct.pack("=B", CHUNK_DATA))


def add_auth_key(sock, assoc_id: int, number: int, key: bytes) -> None:
    """Add (or replace) shared key `number` of the association; accepted on receipt at once.
    EACCES when the peer does not do SCTP-AUTH."""
    _set(sock, SCTP_AUTH_KEY, struct.pack("=iHH", assoc_id, number, len(key)) + key)


def activate_auth_key(sock, assoc_id: int, number: int) -> None:
    """Send with key `number` from now on (chunks already made keep theirs)."""
    _set(sock, SCTP_AUTH_ACTIVE_KEY, struct.pack("=iH2x", assoc_id, number))


def deactivate_auth_key(sock, assoc_id: int, number: int) -> None:
    """Key `number` is no longer used to send, nor accepted on receipt (Linux >= 4.19)."""
    _set(sock, SCTP_AUTH_DEACTIVATE_KEY, struct.pack("=iH2x", assoc_id, number))


def peer_auth_chunks(sock, assoc_id: int) -> list[int]:
    """The chunk types the peer requires to be authenticated (empty: no SCTP-AUTH)."""
    raw = _get(sock, SCTP_PEER_AUTH_CHUNKS, struct.pack("=iI", assoc_id, 0) + bytes(32))
    _, n = struct.unpack_from("=iI", raw)
    return list(raw[8:8 + n])


_HZ_CANDIDATES = (100, 250, 300, 1000)
_hz: int | None = None


def kernel_hz(host: str, rto_ms: int, remaddr: str = "/proc/thread-self/net/sctp/remaddr") -> int | None:
    """The kernel's HZ (CONFIG_HZ differs between OpenWrt targets), found once by
    comparing a path's RTO in ms (socket option) with the same RTO in jiffies
    (/proc/net/sctp/remaddr: ADDR ASSOC_ID HB_ACT RTO ...) of this thread's netns."""
    global _hz
    if _hz is not None:
        return _hz
    try:
        with open(remaddr) as f:
            rows = [ln.split() for ln in f.read().splitlines()[1:]]
    except OSError:
        return None
    for r in rows:
        if len(r) > 3 and r[0] == host and r[3].isdigit() and int(r[3]) > 0 and rto_ms > 0:
            j = int(r[3])
            best = min(_HZ_CANDIDATES, key=lambda hz: abs(j * 1000 / hz - rto_ms))
            if abs(j * 1000 / best - rto_ms) <= 1000 / best:
                _hz = best
                return _hz
    return None
