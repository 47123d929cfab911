"""logsafe.safe(): peer-supplied text can neither forge log lines nor drive a terminal."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from haig.surfaces.logsafe import ELLIPSIS, safe, safe_fields


def test_plain_ids_are_unchanged():
    for s in ("home-0042", "Klinik Süd 3", "家-7", "a b.c_d:e/f"):
        assert safe(s) == s


def test_newline_cannot_forge_a_log_line(caplog):
    evil = "home-1\nhaig.endpoint WARNING: gateway home-2 admitted"
    with caplog.at_level(logging.WARNING):
        logging.getLogger("t").warning("refused gateway %s", safe(evil))
    assert len(caplog.text.strip().splitlines()) == 1
    assert "\\x0a" in caplog.text


def test_escape_sequences_and_cr_are_made_visible():
    out = safe("\x1b]52;c;ZXZpbA==\x07\x1b[2J\rok\x7f\x9b")
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out and "\x9b" not in out
    assert out.startswith("\\x1b]52;c;") and out.endswith("ok\\x7f\\x9b")


def test_bidi_override_and_zero_width_are_escaped():
    assert safe("abc\u202edcba") == "abc\\u202edcba"
    assert safe("ad\u200bmin") == "ad\\u200bmin"
    assert safe("a\u2028b") == "a\\u2028b"


def test_backslash_is_doubled_so_escapes_are_unambiguous():
    assert safe("a\\x0ab") == "a\\\\x0ab"
    assert safe("a\nb") != safe("a\\x0ab")


def test_bytes_and_other_types():
    assert safe(b"gw\xff\n") == "gw\\xff\\x0a"
    assert safe(42) == "42"


def test_long_text_is_cut_with_a_marker():
    out = safe("x" * 10_000, limit=50)
    assert out == "x" * 50 + ELLIPSIS
    # an escape is never cut in half
    out = safe("a" * 48 + "\n", limit=50)
    assert out == "a" * 48 + ELLIPSIS


def test_safe_fields_only_touches_text_fields():
    ev = {"seq": 3, "subject": "h\x1b[31m", "reason": "ok", "t": 1.5}
    assert safe_fields(ev) == {"seq": 3, "subject": "h\\x1b[31m", "reason": "ok", "t": 1.5}


@given(st.text(max_size=300))
def test_output_is_always_one_printable_line(s):
    out = safe(s)
    assert out.isprintable() or all(ch.isprintable() or ch == " " for ch in out)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out
    assert len(out) <= 201


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="\\"),
               max_size=100))
def test_printable_ascii_is_identity(s):
    assert safe(s) == s
