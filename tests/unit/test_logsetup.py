"""Service logging: journal fields when python3-systemd and the journal are there,
safe one-line messages always."""

from __future__ import annotations

import io
import logging
import os
import sys
import types

import pytest

from haig.core.events import ASSOC, Event
from haig.surfaces import logsetup


@pytest.fixture(autouse=True)
def _restore_root():
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


def test_stderr_lines_are_safe_and_single(monkeypatch):
    buf = io.StringIO()
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setattr(sys, "stderr", buf)
    assert logsetup.setup_logging("info", "endpoint", timestamps=False) == "stderr"
    logging.getLogger("haig.endpoint").warning("refused gateway %s", "evil\nhaig: forged\x1b[2J")
    out = buf.getvalue()
    assert out.count("\n") == 1 and "\x1b" not in out
    assert out.startswith("haig.endpoint: WARNING: refused gateway evil\\x0ahaig: forged\\x1b[2J")


def test_journal_handler_gets_structured_fields(monkeypatch, tmp_path):
    sent = []

    class FakeJournalHandler(logging.Handler):
        def __init__(self, **defaults):
            super().__init__()
            self.defaults = defaults

        def emit(self, record):
            sent.append({**self.defaults, **{k: v for k, v in record.__dict__.items() if k.isupper()},
                         "MESSAGE": record.getMessage()})

    mod = types.ModuleType("systemd.journal")
    mod.JournalHandler = FakeJournalHandler
    monkeypatch.setitem(sys.modules, "systemd", types.ModuleType("systemd"))
    monkeypatch.setitem(sys.modules, "systemd.journal", mod)
    f = open(tmp_path / "stderr", "w")  # noqa: SIM115
    st = os.fstat(f.fileno())
    monkeypatch.setattr(sys, "stderr", f)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert logsetup.setup_logging("info", "endpoint") == "journal"
    ev = Event(t=1.0, kind=ASSOC, subject="home_7\n", old="up", new="down", reason="x", seq=12)
    logging.getLogger("haig").warning("assoc %s", ev.subject, extra=logsetup.event_fields(ev, "endpoint"))
    f.close()
    (rec,) = sent
    assert rec["SYSLOG_IDENTIFIER"] == "haig" and rec["HAIG_ROLE"] == "endpoint"
    assert rec["HAIG_GATEWAY_ID"] == "home_7\\x0a" and rec["HAIG_EVENT_KIND"] == "assoc"
    assert rec["HAIG_EVENT_SEQ"] == "12" and rec["MESSAGE"] == "assoc home_7\\x0a"


def test_journal_not_used_when_stderr_is_elsewhere(monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert logsetup.setup_logging("info") == "stderr"
