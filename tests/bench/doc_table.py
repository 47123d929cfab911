"""Regenerate the summary table of docs/benchmarks.md from the last `failover --summary`
run, with the previously published haig figures beside the new ones (on the host):

    python -m tests.testbed.run_in_vm python -m tests.bench failover --summary
    python -m tests.bench.doc_table            # reads artifacts/bench/failover_summary.json

docs/benchmarks-summary.json keeps what the table shows: the published run's values and
the ones before them. A new run (another stamp) moves the published values to "before";
running this twice on the same run changes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.bench.failover import render

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "benchmarks.md"
STATE = REPO / "docs" / "benchmarks-summary.json"
BEGIN, END = "<!-- summary table: python -m tests.bench.doc_table -->", "<!-- end of summary table -->"


def update(doc: str, table: str) -> str:
    if BEGIN not in doc:
        raise SystemExit(f"{DOC}: marker {BEGIN!r} missing")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else REPO / "artifacts" / "bench" / "failover_summary.json"
    run = json.loads(src.read_text())
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    if state.get("stamp") != run.get("stamp"):
        state = {"stamp": run.get("stamp"), "previous": state.get("values", state.get("previous", {})),
                 "rows": run["rows"], "values": {r["id"]: r["haig"] for r in run["rows"]}}
    table = render(state["rows"], state["previous"])
    DOC.write_text(update(DOC.read_text(), table))
    STATE.write_text(json.dumps(state, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
