"""The fault matrix (issue 9): every lifecycle fault of tests/testbed/faults.py against
the haig of this checkout, with telemetry, alarms and an echo running; one row each.

    ./dev matrix [--quick] [--rows=name,name]

(inside the VM: `python -m tests.bench matrix ...`). Writes the table to
artifacts/reliability.md (the guest can write only artifacts/; ./dev matrix copies it
to docs/reliability.md) and prints it. A row that fails is a row with its numbers.
Exit status 1 when any row failed.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.testbed import faults, nat, topology

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "artifacts" / "reliability.md"

HEADER = ("| fault | verdict | ECG gap s | echo back s | lost: ECG / alarm / echo (receiver) "
          "| counted by haig | events | tracebacks | exits | notes |")
SEP = "|" + "---|" * 10
QUICK_NOTE = (" With `--quick` the long faults are shortened (titles give the full form): endpoint "
              "away 10 s, both uplinks down 10 s and 30 s, flapping 20 s, loss windows 15 s, main down "
              "30 s under jitter, soak 1 min.")


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def row_line(r: faults.Result) -> str:
    problems = r.problems()
    verdict = "FAIL: " + "; ".join(problems) if problems else "ok"
    notes = list(r.notes)
    notes += [f"{k} {v:.1f}" for k, v in r.timings.items() if k not in ("row_s", "uncountable")]
    if "uncountable" in r.timings:
        notes.append(f"≤{r.timings['uncountable']:.0f} sent to no gateway")
    lost = f"{r.ecg_lost}/{r.ecg_sent} · {r.alarm_lost}/{r.alarm_sent} · {r.echo_lost}/{r.echo_sent}"
    cells = [faults.FAULTS[r.name].title, verdict, _f(r.gap_s), _f(r.back_s), lost,
             str(r.counted), str(r.events), str(r.tracebacks), str(r.exits),
             "; ".join(notes) or ""]
    return "| " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in cells) + " |"


def _commit() -> str:
    host = REPO / "artifacts" / "matrix-commit.txt"  # written by ./dev matrix on the host
    if host.exists() and host.read_text().strip():
        return host.read_text().strip()[:80]
    try:
        out = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out[:80] + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def render(results: list[faults.Result], argv: list[str], started: float, commit: str = "") -> str:
    cmd = "./dev matrix" + "".join(f" {a}" for a in argv)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    failed = [r for r in results if not r.ok]
    lines = [
        "# Reliability: the fault matrix",
        "",
        f"Made by `{cmd}` on {when} against `{commit or _commit()}`, in the test-bed VM (TCG emulation, "
        f"{(time.monotonic() - started) / 60:.0f} min). {len(results) - len(failed)} of "
        f"{len(results)} rows ok.",
        "",
        "Traffic during every row: ECG telemetry (one 100-byte datagram every 20 ms, ttl 1 s), "
        "a critical alarm service (one a second, ttl 5 s, sent on two paths), and an echo "
        "pinged every 100 ms. *ECG gap*: the longest time without an ECG datagram at the "
        "server from the fault on. *echo back*: from the end of the fault (links up, "
        "endpoint started, address replaced...) to the first echo reply. *lost*: what the "
        "receivers did not get (lost/sent). *counted by haig*: drops in both daemons' "
        "status over the row (all instances). *exits*: daemon exits nobody asked for (each "
        "one a procd respawn). A row is ok when haig recovered, every lost datagram was "
        "counted (tolerance: 5, the emulator's last UDP hop), and there were no exits and "
        "no tracebacks." + (QUICK_NOTE if "--quick" in argv else ""),
        "",
        HEADER,
        SEP,
        *[row_line(r) for r in results],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = list(faults.FAULTS)
    for a in argv:
        if a.startswith("--rows="):
            names = [n for n in a.split("=", 1)[1].split(",") if n]
    unknown = [n for n in names if n not in faults.FAULTS]
    if unknown:
        print(f"unknown rows {unknown}; known: {', '.join(faults.FAULTS)}")
        return 2
    started = time.monotonic()
    commit = _commit()  # what runs: the tree as it was at the start
    results: list[faults.Result] = []
    topo = None
    try:
        for name in names:
            print(f"-- {name}: {faults.FAULTS[name].title}", flush=True)
            if faults.FAULTS[name].nat:
                bed = nat.build()
                try:
                    r = faults.run_fault(name, bed.topo, quick, carrier=bed.carrier)
                finally:
                    bed.teardown()
            else:
                if topo is None:
                    topo = topology.build()
                r = faults.run_fault(name, topo, quick)
            results.append(r)
            print(row_line(r), flush=True)
            if not r.ok:
                for d, tail in getattr(r, "logs", {}).items():
                    print(f"   --- {d} log tail ---\n{tail}", flush=True)
            OUT.parent.mkdir(exist_ok=True)
            OUT.write_text(render(results, argv, started, commit))  # partial table survives a crash
    finally:
        if topo is not None:
            topo.teardown()
    text = render(results, argv, started, commit)
    OUT.write_text(text)
    print(text)
    os.sync()
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
