"""Render the report benchmark's raw data (artifacts/report/raw.json, written in the VM by
tests/bench/report.py) into docs/report/: the results table (markdown, medians with the
spread over repeats) and, per loss rate, figures like the report's Figures 5–7.

Runs on the host (matplotlib, Agg backend; a dev dependency only):
    python -m tests.bench.report_render [raw.json ...] [--out DIR]   (several: pooled)
"""

from __future__ import annotations

import gzip
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.bench import report_metrics as rm

ROOT = Path(__file__).resolve().parents[2]
STYLE = {"plain": ("0.45", "--", 1.6), "socat50": ("#9ecae1", "-", 1.3), "socat100": ("#4292c6", "-", 1.3),
         "socat1000": ("#08519c", "-", 1.3), "socat3000": ("#08306b", ":", 1.6), "haig": ("#d62728", "-", 2.4)}
ORDER = ["plain", "socat50", "socat100", "socat1000", "socat3000", "haig"]
COLUMNS = [  # (header, metric, digits, text for "no value")
    ("failover gap ms", "gap_ms", 0, "–"), ("TCP stall s", "tcp_stall_s", 1, "–"),
    ("path switches", "switches", 0, "–"), ("back on main s after fault", "back_on_main_s", 1, "no"),
    ("telemetry lost", "ecg_lost", 0, "–"), ("alarms lost", "alarm_lost", 0, "–"),
    ("alarm worst ms", "alarm_worst_ms", 0, "–"), ("TCP Mbit/s before", "mbps_before", 2, "–"),
    ("TCP Mbit/s during fault", "mbps_fault", 2, "–"), ("TCP Mbit/s after recovery", "mbps_after", 2, "–")]


def _key(lab: str) -> int:
    return ORDER.index(lab) if lab in ORDER else len(ORDER)


def group(doc: dict) -> dict[tuple[str, int], list[tuple[dict, dict]]]:
    cells: dict[tuple[str, int], list[tuple[dict, dict]]] = defaultdict(list)
    for raw in doc["runs"]:
        m = rm.metrics(raw)
        cells[(m["label"], m["loss"])].append((raw, m))
    return cells


HEADLINE = ("gap_ms", "switches", "back_on_main_s", "ecg_lost", "alarm_lost", "alarm_worst_ms",
            "mbps_fault", "mbps_after")


def table(cells, columns=None, losses=None) -> str:
    cols = [c for c in COLUMNS if columns is None or c[1] in columns]
    head = "| loss | relay | runs | " + " | ".join(c[0] for c in cols) + " |"
    lines = [head, "|" + "---|" * (3 + len(cols))]
    for (lab, loss) in sorted(cells, key=lambda k: (k[1], _key(k[0]))):
        if losses is not None and loss not in losses:
            continue
        ms = [m for _, m in cells[(lab, loss)]]
        vals = [rm.cell([m[key] for m in ms], nd, none) for _, key, nd, none in cols]
        lines.append(f"| {loss} % | {lab} | {len(ms)} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def representative(runs: list[tuple[dict, dict]]) -> dict:
    """The run whose failover gap is the median one (repeats are plotted as one line)."""
    med = statistics.median_low([m["gap_ms"] for _, m in runs])
    return next(raw for raw, m in runs if m["gap_ms"] == med)


def _series(raw: dict):
    srv = rm.receiver_intervals(raw)
    t = [iv[1] for iv in srv]
    cum, acc = [], 0
    for iv in srv:
        acc += iv[2]
        cum.append(acc / 1e6)
    # 1 s sliding window over the 0.2 s intervals: single intervals are too bursty under
    # emulation to read (the cumulative panel keeps the fine detail).
    rate = []
    for i in range(len(srv)):
        w = srv[max(0, i - 4):i + 1]
        rate.append(sum(iv[2] for iv in w) * 8 / max(1e-9, w[-1][1] - w[0][0]) / 1e6)
    cli = raw.get("iperf", {}).get("client", [])
    rtt = [(iv[1], iv[4] / 1000) for iv in cli if iv[4]]
    return t, cum, rate, rtt


def _shade(ax, raw: dict) -> None:
    f = raw["fault"]
    ax.axvspan(f["start_asked"], f["end"], color="#f4a582", alpha=0.35, lw=0,
               label=f"main link losing {raw['loss']} %" if raw["loss"] else "fault window (0 % loss)")


def figure_per_loss(cells, loss: int, out: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 9.5), sharex=True)
    labs = sorted((lab for lab, lo in cells if lo == loss), key=_key)
    shaded = False
    for lab in labs:
        raw = representative(cells[(lab, loss)])
        t, cum, rate, rtt = _series(raw)
        if not shaded:
            for ax in axes:
                _shade(ax, raw)
            shaded = True
        c, ls, lw = STYLE.get(lab, ("k", "-", 1))
        axes[0].plot(t, cum, color=c, ls=ls, lw=lw, label=rm.pretty(lab))
        axes[1].plot(t, rate, color=c, ls=ls, lw=lw, label=rm.pretty(lab))
        if rtt:
            axes[2].plot([x for x, _ in rtt], [y for _, y in rtt], color=c, ls=ls, lw=lw, label=rm.pretty(lab))
    axes[0].set_ylabel("bytes acknowledged (MB, cumulative)")
    axes[1].set_ylabel("throughput (Mbit/s, 1 s window)")
    axes[2].set_ylabel("sender's TCP RTT (ms)")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("time since iperf3 start (s)")
    axes[2].set_xlim(0, raw["timing"]["seconds"] + 2)  # the receiver may report a straggling tail
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"iperf3 TCP through OpenVPN, main link losing {loss} % during the shaded window\n"
                 "(receiver's bytes = acknowledged; the median-gap run of each relay)", fontsize=10)
    fig.tight_layout()
    p = out / f"loss{loss:03d}.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def figure_zoom(cells, losses: list[int], out: Path) -> Path | None:
    """The report's Figure 7: bytes acknowledged around the start of the failure."""
    import matplotlib.pyplot as plt

    losses = [lo for lo in losses if lo > 0]
    if not losses:
        return None
    fig, axes = plt.subplots(1, len(losses), figsize=(4.6 * len(losses), 4.2), squeeze=False)
    for ax, loss in zip(axes[0], losses, strict=True):
        labs = sorted((lab for lab, lo in cells if lo == loss and lab != "plain"), key=_key)
        for i, lab in enumerate(labs):
            raw = representative(cells[(lab, loss)])
            if i == 0:
                _shade(ax, raw)
            t, cum, _, _ = _series(raw)
            f = raw["fault"]
            sel = [(x, y) for x, y in zip(t, cum, strict=True) if f["start_asked"] - 2 <= x <= f["end"] + 5]
            if sel:
                y0 = sel[0][1]
                c, ls, lw = STYLE.get(lab, ("k", "-", 1))
                ax.plot([x for x, _ in sel], [y - y0 for _, y in sel], color=c, ls=ls, lw=lw, label=rm.pretty(lab))
        ax.set_title(f"{loss} % loss", fontsize=10)
        ax.set_xlabel("time since iperf3 start (s)")
        ax.set_ylabel("MB acknowledged since 2 s before the fault")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    p = out / "fault_start.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def _short(s: str | None, words: int) -> str:
    return " ".join((s or "?").split()[:words])


def _host_commit() -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def render(doc: dict, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    cells = group(doc)
    losses = sorted({lo for _, lo in cells})
    figs = [figure_per_loss(cells, lo, out) for lo in losses]
    zoom = figure_zoom(cells, losses, out)
    v = doc["versions"]
    tm = doc["timing"]
    h = doc.get("haig_options", {})
    lines = [
        "# Results: the report's evaluation, socat against haig (generated)",
        "",
        "Generated by `python -m tests.bench.report_render` from the raw data of",
        f"`{doc['command']}` (run of {doc['date']}, {doc.get('elapsed_s', '?')} s in the VM;",
        f"{'**quick subset**, ' if doc.get('quick') else ''}{doc['repeat']} repeat(s) asked, the runs "
        "each cell got are in its `runs` column: a sweep stopped early has fewer). "
        "What the columns mean and how they are measured: `tests/bench/report_metrics.py`; "
        "the discussion: [README.md](README.md).",
        "",
        f"Each run: iperf3 TCP through OpenVPN for {tm['seconds']} s, the main link losing the given "
        f"rate from {tm['fault_at']:g} s to {tm['fault_at'] + tm['fault_for']:g} s; ECG-rate telemetry "
        "(48 B every 20 ms) and an alarm every second alongside. Cells: median (min–max) over the repeats.",
        "",
        f"Versions: kernel {v.get('kernel')}, haig {v.get('haig_commit', '?')} "
        f"(rendered at {_host_commit()}), {_short(v.get('socat'), 3)}, {_short(v.get('openvpn'), 2)}, "
        f"{_short(v.get('iperf3'), 2)}, "
        f"Python {v.get('python')}, {v.get('cpus')} vCPUs under TCG software emulation.",
        "",
        f"haig options (shipped defaults): {json.dumps(h.get('main', {}))}, uplinks "
        f"{json.dumps(h.get('uplink', {}))}, fallback metered; services openvpn (ttl 1000 ms), "
        "ecg (ttl 1000 ms), alarm (critical, ttl 5000 ms).",
        "",
        table(cells),
        "",
    ]
    if doc.get("failed"):
        lines += ["Runs that failed (not in the table):", ""]
        lines += [f"* {f['kind']} rto_min {f['rto_min']} loss {f['loss']} %: `{f['error'][:300]}`" for f in doc["failed"]]
        lines.append("")
    lines += ["## Figures", ""]
    for lo, p in zip(losses, figs, strict=True):
        lines += [f"### {lo} % loss", "", f"![{lo} % loss]({p.name})", ""]
    if zoom:
        lines += ["### Around the start of the failure (the report's Figure 7)", "", f"![fault start]({zoom.name})", ""]
    text = "\n".join(lines)
    (out / "results.md").write_text(text)
    (out / "table.md").write_text(table(cells) + "\n")
    (out / "headline.md").write_text(table(cells, HEADLINE, (100,)) + "\n")
    return text


def merge(docs: list[dict]) -> dict:
    """Several raw files (e.g. a subset re-run) as one: runs and failures pooled, the
    first file's metadata, every command listed."""
    doc = dict(docs[0])
    doc["runs"] = [r for d in docs for r in d["runs"]]
    doc["failed"] = [f for d in docs for f in d.get("failed", [])]
    if len(docs) > 1:
        doc["command"] = " ; ".join(d["command"] for d in docs)
        doc["date"] = " / ".join(d["date"] for d in docs)
        doc["elapsed_s"] = sum(d.get("elapsed_s", 0) for d in docs)
    return doc


def main(argv: list[str]) -> int:
    out = ROOT / "docs" / "report"
    if "--out" in argv:
        i = argv.index("--out")
        out = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    raws = [Path(a) for a in argv] or [ROOT / "artifacts" / "report" / "raw.json"]
    doc = merge([json.loads(gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_text())
                 for p in raws])
    if not doc.get("runs"):
        print(f"no runs in {', '.join(map(str, raws))}", file=sys.stderr)
        return 1
    print(render(doc, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
