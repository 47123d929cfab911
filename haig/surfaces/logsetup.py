"""Logging for a service: the systemd journal with structured fields when it is there,
plain stderr lines otherwise (procd's logread on the router, a terminal, a test).

With python3-systemd installed (Debian: `apt install python3-systemd`; optional) and
stderr connected to the journal (systemd sets JOURNAL_STREAM), records go through
`systemd.journal.JournalHandler`, so an alerting system can select on fields instead
of parsing text:

    journalctl -u haig HAIG_EVENT_KIND=failover -o json
    journalctl -u haig HAIG_GATEWAY_ID=home_00042

Fields: HAIG_ROLE and (gateway role) HAIG_GATEWAY_ID on every record; on event records
(`extra=event_fields(ev)`) HAIG_EVENT_KIND, HAIG_SUBJECT, HAIG_OLD, HAIG_NEW,
HAIG_EVENT_SEQ, and HAIG_GATEWAY_ID = the home an endpoint event is about. Every value
goes through logsafe.safe(): a peer-chosen id cannot forge a field or a line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from haig.surfaces.logsafe import safe

PLAIN_FORMAT = "%(name)s: %(levelname)s: %(message)s"


class SafeMessages(logging.Filter):
    """Make each record's final message one printable line (args may hold peer text).
    Installed on the handler, so every logger of the process gets it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string: log what we have rather than nothing
            msg = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = safe(msg, 2000), None
        return True


class Fields(logging.Filter):
    """Add the daemon's identity fields to every record (keeps the record's own)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self.fields = {k: safe(v) for k, v in fields.items() if v}

    def filter(self, record: logging.LogRecord) -> bool:
        for k, v in self.fields.items():
            if not hasattr(record, k):
                setattr(record, k, v)
        return True


def event_fields(ev: Any, role: str | None = None) -> dict[str, str]:
    """`extra=` for logging one event (an Event or its dict) with journal fields."""
    d = ev if isinstance(ev, dict) else ev.to_dict()
    out = {
        "HAIG_EVENT_KIND": safe(d.get("kind") or ""),
        "HAIG_SUBJECT": safe(d.get("subject") or ""),
        "HAIG_OLD": safe(d.get("old") or ""),
        "HAIG_NEW": safe(d.get("new") or ""),
    }
    if d.get("seq"):
        out["HAIG_EVENT_SEQ"] = str(d["seq"])
    if role == "endpoint" and d.get("kind") in ("assoc", "failover", "failback", "path_state", "drop"):
        out["HAIG_GATEWAY_ID"] = out["HAIG_SUBJECT"]
    return out


def _journal_handler() -> logging.Handler | None:
    """A JournalHandler when python3-systemd is importable and stderr is the journal."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return None
    try:
        st = os.fstat(sys.stderr.fileno())
        dev, ino = (int(x) for x in stream.split(":"))
        if (st.st_dev, st.st_ino) != (dev, ino):
            return None  # stderr was redirected elsewhere
    except (OSError, ValueError, AttributeError):
        return None
    try:
        from systemd.journal import JournalHandler  # type: ignore[import-not-found]
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER="haig")


def setup_logging(level: str, role: str | None = None, gateway_id: str | None = None,
                  *, timestamps: bool | None = None) -> str:
    """Configure the root logger once for the daemon; returns "journal" or "stderr".

    The daemon calls `setup_logging(cfg.main.log_level, cfg.main.role, cfg.main.gateway_id)`.
    Timestamps on stderr only off the router and off the journal (both stamp lines)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = _journal_handler()
    kind = "journal" if handler is not None else "stderr"
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        if timestamps is None:
            timestamps = bool(os.environ.get("HAIG_LOG_TIMESTAMPS"))
        handler.setFormatter(logging.Formatter(("%(asctime)s " if timestamps else "") + PLAIN_FORMAT))
    handler.addFilter(SafeMessages())
    handler.addFilter(Fields({"HAIG_ROLE": role or "", "HAIG_GATEWAY_ID": gateway_id or ""}))
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    return kind
