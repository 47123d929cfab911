"""What one run of the report benchmark (tests/bench/report.py) measured, from its raw
data: pure functions, times in seconds relative to the start of iperf3's data.

* gap — longest time without an ECG datagram arriving, from the fault's start to the
  end of the run (what the medical stream sees of the failover);
* tcp stall — longest stretch of 0.2 s iperf3 intervals in which the receiver got nothing;
* path switches / back on main — from the gateway's device counters in 0.5 s bins: a bin
  is on an uplink when that uplink sent >= 75 % of its bytes (>= 1000 bytes in all);
  switches are changes between such bins from 1 s before the fault to the end; back on
  main = seconds after the fault's end at which the main link carried the traffic again
  for the rest of the run (0: it never left or was back by then; None: not on main at
  the end);
* lost — datagrams sent and never delivered (duplicates counted once);
* throughput — iperf3 receiver bytes over [2 s, fault), the fault window, and
  [fault end + 2 s, end].
"""

from __future__ import annotations

import statistics

BIN, SHARE, MIN_BYTES = 0.5, 0.75, 1000


def label(kind: str, rto_min: int | None) -> str:
    return f"socat{rto_min}" if kind == "socat" else kind


def pretty(lab: str) -> str:
    return f"socat, rto_min {lab[5:]} ms" if lab.startswith("socat") else \
        {"plain": "plain routing (no relay)", "haig": "haig (shipped defaults)"}.get(lab, lab)


def fmt(v, nd: int = 0) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def longest_gap(times: list[float], start: float, end: float) -> float:
    ts = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in zip(ts, ts[1:], strict=False))


def uplink_bins(samples: list[list[float]]) -> list[tuple[float, str | None]]:
    """[(bin start, "main" | "fallback" | None)] from [t, main_tx, fallback_tx, ...] samples."""
    if len(samples) < 2:
        return []
    out: list[tuple[float, str | None]] = []
    t_bin, first = samples[0][0], samples[0]
    for s in samples[1:]:
        if s[0] - t_bin >= BIN:
            dm, df = s[1] - first[1], s[2] - first[2]
            tot = dm + df
            lab = None
            if tot >= MIN_BYTES:
                lab = "main" if dm >= SHARE * tot else "fallback" if df >= SHARE * tot else None
            out.append((t_bin, lab))
            t_bin, first = s[0], s
    return out


def path_changes(bins: list[tuple[float, str | None]], start: float, end: float, fault_end: float):
    """(switches, back on main after the fault in s or None). A bin carrying nothing
    during the fault breaks the final run on main: routed traffic that stopped then came
    back when it resumed."""
    window = [(t, lab) for t, lab in bins if start - 1 <= t <= end]
    seq = [(t, lab) for t, lab in window if lab is not None]
    switches = sum(1 for a, b in zip(seq, seq[1:], strict=False) if a[1] != b[1])
    if not seq or seq[-1][1] != "main":
        return switches, None
    # Walk back over the final run on main; bins carrying nothing count as off main only
    # inside the fault (a stall after it is CPU starvation, not a path).
    i = j = max(i for i, (_, lab) in enumerate(window) if lab == "main")
    while j > 0 and (window[j - 1][1] == "main" or (window[j - 1][1] is None and window[j - 1][0] >= fault_end)):
        j -= 1
        if window[j][1] == "main":
            i = j
    return switches, max(0.0, window[i][0] - fault_end)


def mbps(intervals: list[list[float]], a: float, b: float) -> float | None:
    sel = [iv for iv in intervals if iv[0] >= a - 1e-6 and iv[1] <= b + 1e-6]
    dur = sum(iv[1] - iv[0] for iv in sel)
    return sum(iv[2] for iv in sel) * 8 / dur / 1e6 if dur > 0 else None


def longest_stall(intervals: list[list[float]], after: float = 0.0) -> float:
    best = cur = 0.0
    for iv in intervals:
        if iv[0] < after:
            continue
        cur = cur + (iv[1] - iv[0]) if iv[2] < 1000 else 0.0
        best = max(best, cur)
    return best


def _stream(st: dict) -> tuple[int, float | None]:
    """(lost, worst one-way latency in ms) of a telemetry stream."""
    first: dict[int, float] = {}
    for seq, t in st["recv"]:
        first.setdefault(seq, t)
    sends = st["send_times"]
    worst = max(((t - sends[s]) * 1000 for s, t in first.items() if s < len(sends)), default=None)
    return st["sent"] - len(first), worst


def receiver_intervals(raw: dict) -> list[list[float]]:
    """[start, end, bytes] the iperf3 receiver counted (acknowledged data); the sender's
    bytes written when the server's report is missing (they run ahead by the buffers)."""
    ip = raw.get("iperf", {})
    return ip.get("server") or [iv[:3] for iv in ip.get("client", [])]


def metrics(raw: dict) -> dict:
    tm, f = raw["timing"], raw["fault"]
    end = float(tm["seconds"])
    fault_end_nominal = tm["fault_at"] + tm["fault_for"]
    ecg_lost, ecg_worst = _stream(raw["ecg"])
    alarm_lost, alarm_worst = _stream(raw["alarm"])
    switches, back = path_changes(uplink_bins(raw["counters"]["samples"]), f["start_asked"], end, f["end"])
    srv = receiver_intervals(raw)
    return {
        "label": label(raw["kind"], raw["rto_min"]), "loss": raw["loss"],
        "gap_ms": longest_gap([t for _, t in raw["ecg"]["recv"]], f["start_asked"], end) * 1000,
        "tcp_stall_s": longest_stall(srv, tm["fault_at"] - 1) if srv else None,
        "switches": switches, "back_on_main_s": back,
        "ecg_lost": ecg_lost, "ecg_worst_ms": ecg_worst,
        "alarm_lost": alarm_lost, "alarm_worst_ms": alarm_worst,
        "mbps_before": mbps(srv, 2.0, tm["fault_at"]),
        "mbps_fault": mbps(srv, tm["fault_at"], fault_end_nominal),
        "mbps_after": mbps(srv, fault_end_nominal + 2, end),
        "iperf_error": raw.get("iperf_error"),
    }


def summarise(values: list) -> tuple[float | None, float | None, float | None, int]:
    """(median, min, max, how many runs had no value) over the repeats of a cell."""
    got = [v for v in values if v is not None]
    if not got:
        return None, None, None, len(values)
    return statistics.median(got), min(got), max(got), len(values) - len(got)


def cell(values: list, nd: int = 0, none_text: str = "–") -> str:
    """'median (min–max)' over repeats; one run: just the value; runs without a value
    (e.g. never back on main) are counted as `none_text`."""
    med, lo, hi, none = summarise(values)
    if med is None:
        return none_text if len(values) <= 1 else f"{none_text} ({len(values)}×)"
    s = fmt(med, nd) if len(values) - none == 1 or lo == hi else f"{fmt(med, nd)} ({fmt(lo, nd)}–{fmt(hi, nd)})"
    return s + (f", {none}× {none_text}" if none else "")
