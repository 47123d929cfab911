"""haig's message format inside SCTP: one SCTP message = one UDP datagram plus a 12-byte
header, or one control message. Pure encode/decode; malformed input raises WireError.

Admission (no clocks needed: routers without an RTC boot in 1970):
  endpoint → CHALLENGE(nonce_e)                  on association COMM_UP
  gateway  → HELLO(id, nonce_g, services, mac)   mac = HMAC-SHA256(key, "hello"|nonce_e|id|nonce_g|services)
  endpoint → WELCOME(accepted services, mac)     mac = HMAC-SHA256(key, "welcome"|nonce_g|nonce_e|accepted)
           or REFUSED(reason) and ABORT
Both ends prove they know the key; a replayed HELLO fails against a fresh challenge. After
admission the association itself (verification tags) binds messages to the gateway.

Other messages:
  DATA   ver type flags svc flow_id seq | payload    (flags: CRITICAL = seq is deduplicated)
  PATH   the gateway's chosen primary: sent over that path, the endpoint makes the address
         it arrived from its primary for this association (works through NAT too)
  CLOSE  flow_id: the gateway forgot the flow (idle), the endpoint frees its UDP socket
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

VERSION = 1
CHALLENGE, HELLO, WELCOME, REFUSED, DATA, PATH, CLOSE = 1, 2, 3, 4, 5, 6, 7
FLAG_CRITICAL = 0x01
FLAG_COPY = 0x02  # the second copy of a critical datagram (sent on the other path)

_HDR = struct.Struct("!BB")
_DATA = struct.Struct("!BBBBII")
DATA_HEADER = _DATA.size
NONCE = 16
MAC = 32


class WireError(ValueError):
    """A message that cannot be decoded (counted as malformed, never fatal)."""


@dataclass(slots=True)  # not frozen: one per datagram, and frozen init costs 3x
class Data:
    flags: int
    service: int
    flow_id: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class Hello:
    gateway_id: str
    nonce: bytes
    services: tuple[str, ...]
    mac: bytes


@dataclass(frozen=True)
class Welcome:
    accepted: tuple[bool, ...]
    mac: bytes


def msg_type(msg: bytes) -> int:
    if len(msg) < 2:
        raise WireError("message shorter than its header")
    ver, typ = _HDR.unpack_from(msg)
    if ver != VERSION:
        raise WireError(f"unknown version {ver}")
    return typ


def _expect(msg: bytes, typ: int, min_len: int = 2) -> None:
    """Each decoder checks its own header: a caller that skipped msg_type (or a bug that
    routes a message to the wrong decoder) gets WireError, never a misread message."""
    if len(msg) < min_len:
        raise WireError("message truncated")
    if msg_type(msg) != typ:
        raise WireError(f"not a message of type {typ}")


# --- data -----------------------------------------------------------------------------

def encode_data(service: int, flow_id: int, payload: bytes, seq: int = 0, flags: int = 0) -> bytes:
    try:
        return _DATA.pack(VERSION, DATA, flags, service, flow_id, seq) + payload
    except struct.error as e:  # a field out of range is the caller's bug: say which kind
        raise ValueError(f"data header field out of range: {e}") from e


def decode_data(msg: bytes) -> Data:
    # the per-datagram decoder: one unpack checks version and type too (same errors as _expect)
    if len(msg) < DATA_HEADER:
        _expect(msg, DATA, DATA_HEADER)
    ver, typ, flags, svc, flow_id, seq = _DATA.unpack_from(msg)
    if ver != VERSION or typ != DATA:
        _expect(msg, DATA, DATA_HEADER)
    return Data(flags, svc, flow_id, seq, msg[DATA_HEADER:] if type(msg) is bytes else bytes(msg[DATA_HEADER:]))


def encode_path() -> bytes:
    return _HDR.pack(VERSION, PATH)


def decode_path(msg: bytes) -> None:
    """PATH carries nothing but its arrival path; anything after the header is malformed."""
    _expect(msg, PATH)
    if len(msg) != 2:
        raise WireError("bad PATH length")


def encode_close(flow_id: int) -> bytes:
    if not 0 <= flow_id <= 0xFFFFFFFF:
        raise ValueError("flow id out of range")
    return _HDR.pack(VERSION, CLOSE) + struct.pack("!I", flow_id)


def decode_close(msg: bytes) -> int:
    _expect(msg, CLOSE)
    if len(msg) != 6:
        raise WireError("bad CLOSE length")
    return struct.unpack_from("!I", msg, 2)[0]


# --- admission ------------------------------------------------------------------------

def _str(s: str) -> bytes:
    b = s.encode()
    if len(b) > 255:
        raise ValueError("name longer than 255 bytes")
    return bytes([len(b)]) + b


class _Reader:
    def __init__(self, msg: bytes, pos: int) -> None:
        self.msg, self.pos = msg, pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.msg):
            raise WireError("message truncated")
        out = self.msg[self.pos:self.pos + n]
        self.pos += n
        return bytes(out)

    def byte(self) -> int:
        return self.take(1)[0]

    def string(self) -> str:
        try:
            return self.take(self.byte()).decode()
        except UnicodeDecodeError as e:
            raise WireError("name is not UTF-8") from e

    def end(self) -> None:
        if self.pos != len(self.msg):
            raise WireError("trailing bytes")


def _nonce(nonce: bytes) -> bytes:
    # A nonce of another length would make the MAC input ambiguous and the message undecodable.
    if len(nonce) != NONCE:
        raise ValueError(f"nonce must be {NONCE} bytes")
    return bytes(nonce)


def encode_challenge(nonce: bytes) -> bytes:
    return _HDR.pack(VERSION, CHALLENGE) + _nonce(nonce)


def decode_challenge(msg: bytes) -> bytes:
    _expect(msg, CHALLENGE)
    r = _Reader(msg, 2)
    nonce = r.take(NONCE)
    r.end()
    return nonce


def _hello_body(gateway_id: str, nonce: bytes, services: tuple[str, ...]) -> bytes:
    return _str(gateway_id) + nonce + bytes([len(services)]) + b"".join(_str(s) for s in services)


def hello_mac(key: str, challenge: bytes, gateway_id: str, nonce: bytes, services: tuple[str, ...]) -> bytes:
    return hmac.new(key.encode(), b"hello" + challenge + _hello_body(gateway_id, nonce, services),
                    hashlib.sha256).digest()


def encode_hello(key: str, challenge: bytes, gateway_id: str, nonce: bytes, services: tuple[str, ...]) -> bytes:
    if len(services) > 255:
        raise ValueError("at most 255 services")
    _nonce(challenge)
    _nonce(nonce)
    return (_HDR.pack(VERSION, HELLO) + _hello_body(gateway_id, nonce, services)
            + hello_mac(key, challenge, gateway_id, nonce, services))


def decode_hello(msg: bytes) -> Hello:
    _expect(msg, HELLO)
    r = _Reader(msg, 2)
    gw = r.string()
    nonce = r.take(NONCE)
    services = tuple(r.string() for _ in range(r.byte()))
    mac = r.take(MAC)
    r.end()
    return Hello(gw, nonce, services, mac)


def hello_ok(key: str, challenge: bytes, hello: Hello) -> bool:
    want = hello_mac(key, challenge, hello.gateway_id, hello.nonce, hello.services)
    return hmac.compare_digest(want, hello.mac)


def welcome_mac(key: str, hello_nonce: bytes, challenge: bytes, accepted: tuple[bool, ...]) -> bytes:
    return hmac.new(key.encode(), b"welcome" + hello_nonce + challenge + bytes(accepted), hashlib.sha256).digest()


def encode_welcome(key: str, hello_nonce: bytes, challenge: bytes, accepted: tuple[bool, ...]) -> bytes:
    if len(accepted) > 255:
        raise ValueError("at most 255 services")
    return (_HDR.pack(VERSION, WELCOME) + bytes([len(accepted)]) + bytes(accepted)
            + welcome_mac(key, hello_nonce, challenge, accepted))


def decode_welcome(msg: bytes) -> Welcome:
    _expect(msg, WELCOME)
    r = _Reader(msg, 2)
    flags = r.take(r.byte())
    # Only 0/1: the MAC covers the normalised booleans, so any other byte would be a
    # second encoding of the same WELCOME that still verifies.
    if any(b > 1 for b in flags):
        raise WireError("accepted flag is neither 0 nor 1")
    accepted = tuple(bool(b) for b in flags)
    mac = r.take(MAC)
    r.end()
    return Welcome(accepted, mac)


def welcome_ok(key: str, hello_nonce: bytes, challenge: bytes, w: Welcome) -> bool:
    return hmac.compare_digest(welcome_mac(key, hello_nonce, challenge, w.accepted), w.mac)


AUTH_KEY_INFO = b"haig sctp-auth v1"


def auth_key(key: str, challenge: bytes, hello_nonce: bytes) -> bytes:
    """The association's SCTP-AUTH key (32 bytes): HKDF-SHA256 (RFC 5869) of the shared key,
    salted with both admission nonces, so every association has its own and none is
    stored. Two HMACs: the stdlib has no HKDF, and pulling in a crypto library for that
    would cost a router megabytes."""
    prk = hmac.new(_nonce(challenge) + _nonce(hello_nonce), key.encode(), hashlib.sha256).digest()
    return hmac.new(prk, AUTH_KEY_INFO + b"\x01", hashlib.sha256).digest()


REASON_MAX = 200


def encode_refused(reason: str) -> bytes:
    # Cut on a character boundary so a long non-ASCII reason still decodes cleanly.
    raw = reason.encode()[:REASON_MAX].decode(errors="ignore").encode()
    return _HDR.pack(VERSION, REFUSED) + raw


def decode_refused(msg: bytes) -> str:
    """The reason is for people to read: undecodable bytes are replaced, not refused."""
    _expect(msg, REFUSED)
    if len(msg) > 2 + REASON_MAX:
        raise WireError("REFUSED reason too long")
    return bytes(msg[2:]).decode(errors="replace")
