"""Peer-supplied text made safe for logs and terminals.

A gateway id, a REFUSED reason or a service name arrives from the network. Logged raw,
a newline in it forges a whole log line ("...\\nhaig: gateway home-1 admitted"), and an
escape sequence (ESC [ ... , OSC 52 clipboard writes, a bare CR overwriting the line)
reaches the terminal of whoever runs `haig events` or `logread -f`.

`safe(text)` keeps printable text as it is and makes everything else visible instead:
C0/C1 controls and DEL become `\\xNN` / `\\uNNNN`, the backslash itself is doubled so an
escaped form can never be mistaken for one the peer typed, Unicode format characters
(bidi overrides such as U+202E, zero-width joiners) and separators other than the space
are escaped too (they reorder or hide what a person reads). The result is cut to `limit`
characters with a visible marker, so a 64 KiB "name" cannot flood a line.
"""

from __future__ import annotations

DEFAULT_LIMIT = 200
ELLIPSIS = "…"
_SAFE_ASCII = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"\\"}


def _escape(ch: str) -> str:
    c = ord(ch)
    if 0xDC80 <= c <= 0xDCFF:  # an undecodable byte (surrogateescape): show the byte
        return f"\\x{c - 0xDC00:02x}"
    if c <= 0xFF:
        return f"\\x{c:02x}"
    if c <= 0xFFFF:
        return f"\\u{c:04x}"
    return f"\\U{c:08x}"


def _visible(ch: str) -> bool:
    if ch in _SAFE_ASCII:
        return True
    if ch == "\\" or ord(ch) < 0xA0:  # C0, DEL, C1
        return False
    # str.isprintable() is False exactly for Cc control, Cf format (bidi, zero-width),
    # Cs surrogate, Co private use, Cn unassigned, Zl/Zp separators and Zs but the space;
    # and it needs no unicodedata module (python3-codecs on OpenWrt).
    return ch.isprintable()


def safe(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """`text` (str, bytes or anything str() accepts) as one printable line of at most
    `limit` characters of output (plus an ellipsis when cut)."""
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8", errors="surrogateescape")
    elif not isinstance(text, str):
        text = str(text)
    out: list[str] = []
    n = 0
    for ch in text:
        piece = ch if _visible(ch) else ("\\\\" if ch == "\\" else _escape(ch))
        if n + len(piece) > limit:
            out.append(ELLIPSIS)
            break
        out.append(piece)
        n += len(piece)
    return "".join(out)


def safe_fields(d: dict, keys: tuple[str, ...] = ("subject", "reason", "old", "new", "gateway_id"),
                limit: int = DEFAULT_LIMIT) -> dict:
    """A copy of an event/status dict with the peer-suppliable string fields made safe
    (for the CLI's `haig events` / `haig status` printers)."""
    return {k: (safe(v, limit) if k in keys and isinstance(v, str) else v) for k, v in d.items()}
