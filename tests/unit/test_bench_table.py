"""The docs summary table is regenerated from a benchmark run (tests.bench.doc_table):
new figures beside the previous ones, idempotent for the same run."""

from __future__ import annotations

import json

import pytest

from tests.bench import doc_table
from tests.bench.failover import measures, render

RES = {
    "kernel 100": {"gap_ms": 2166.0, "p50_ms": 33.0, "p99_ms": 40.0},
    "haig 100": {"gap_ms": 250.0, "p50_ms": 3.2, "p99_ms": 8.0, "rss_kib": {"gateway": 43008, "endpoint": 35840}},
    "kernel down": {"gap_ms": 330.0}, "haig down": {"gap_ms": 230.0},
    "kernel 10": {"switches": 4}, "haig 10": {"switches": 0},
    "haig critical 100": {"gap_ms": 210.0, "p99_ms": 9.0},
    "jitter kernel": {"pf_entries": 0, "p50_ms": 240.0, "max_ms": 400.0, "reordered": 0},
    "jitter haig": {"switches": 0, "pf_entries": 1, "p50_ms": 230.0, "max_ms": 500.0, "reordered": 3, "seconds": 30.0},
}
DOC = f"# B\n\ntext\n\n{doc_table.BEGIN}\nold table\n{doc_table.END}\n\nafter\n"


@pytest.fixture
def files(tmp_path, monkeypatch):
    doc, state = tmp_path / "benchmarks.md", tmp_path / "summary.json"
    doc.write_text(DOC)
    state.write_text(json.dumps({"stamp": "old", "values": {"gap_loss100": 310, "p50_healthy": "3–4"}}))
    monkeypatch.setattr(doc_table, "DOC", doc)
    monkeypatch.setattr(doc_table, "STATE", state)
    return doc, state, tmp_path


def _run(tmp_path, stamp: float) -> None:
    src = tmp_path / "run.json"
    src.write_text(json.dumps({"rows": measures(RES), "stamp": stamp}))
    assert doc_table.main([str(src)]) == 0


def test_render_puts_new_previous_and_kernel_figures_side_by_side_with_ratios():
    table = render(measures(RES), {"gap_loss100": 310, "p50_healthy": "3–4"})
    row = next(line for line in table.splitlines() if line.startswith("| longest gap, 100 % loss"))
    assert row == "| longest gap, 100 % loss | 250 ms | 310 ms | 2166 ms | 0.12 |"
    assert "| p50 one-way latency, healthy main | 3.2 ms | 3–4 | 33 ms | 0.10 |" in table
    assert "| RSS, gateway daemon | 42.0 MiB | – | – | – |" in table


def test_doc_table_replaces_only_the_marked_block_and_shifts_history_once(files):
    doc, state, tmp = files
    _run(tmp, 1.0)
    text = doc.read_text()
    assert text.startswith("# B\n\ntext\n") and text.endswith("\n\nafter\n") and "old table" not in text
    assert "| 250 ms | 310 ms |" in text
    once = text
    _run(tmp, 1.0)  # same run again: nothing moves
    assert doc.read_text() == once
    _run(tmp, 2.0)  # a new run: the published figures become "before"
    assert "| 250 ms | 250 ms |" in doc.read_text()
    assert json.loads(state.read_text())["previous"]["gap_loss100"] == 250.0
