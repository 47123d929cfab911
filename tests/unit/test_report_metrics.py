"""The report benchmark's metrics (tests/bench/report_metrics.py) on synthetic runs."""

from tests.bench import report_metrics as rm


def _samples(plan: list[tuple[float, str]], step: float = 0.1) -> list[list[float]]:
    """Counter samples: 5 kB per step on the uplink the plan names from each time on."""
    out, main, fb, t = [], 0, 0, 0.0
    while t <= plan[-1][0] + 1e-9:
        where = [w for at, w in plan if at <= t + 1e-9][-1]
        out.append([round(t, 3), main, fb])
        if where == "main":
            main += 5000
        elif where == "fallback":
            fb += 5000
        t += step
    return out


def _raw(plan, ecg_times, srv, alarm_recv=((0, 0.05),)) -> dict:
    return {"kind": "haig", "rto_min": None, "loss": 100,
            "timing": {"seconds": 30, "fault_at": 10.0, "fault_for": 5.0},
            "fault": {"start_asked": 10.0, "start": 10.2, "end_asked": 15.0, "end": 15.2},
            "ecg": {"sent": len(ecg_times) + 3, "send_times": [t - 0.01 for t in ecg_times],
                    "recv": [[i, t] for i, t in enumerate(ecg_times)] + [[0, ecg_times[0]]]},
            "alarm": {"sent": 2, "send_times": [0.0, 1.0], "recv": [list(x) for x in alarm_recv]},
            "counters": {"samples": _samples(plan)}, "iperf": {"server": srv}}


def test_failover_then_failback_measured():
    ecg = [i * 0.02 for i in range(500)] + [10.4 + i * 0.02 for i in range(980)]
    srv = [[i * 0.2, (i + 1) * 0.2, 0 if 50 <= i < 53 else 100_000] for i in range(150)]
    m = rm.metrics(_raw([(0, "main"), (10.3, "fallback"), (20.0, "main"), (30.0, "main")], ecg, srv))
    assert 390 < m["gap_ms"] < 420  # last arrival 9.98 s, next 10.4 s; counted from the fault's start
    assert m["switches"] == 2
    assert 4.0 <= m["back_on_main_s"] <= 5.5  # main again at ~20 s, fault ended at 15.2 s
    assert m["ecg_lost"] == 3  # duplicate of seq 0 counted once
    assert m["alarm_lost"] == 1 and abs(m["alarm_worst_ms"] - 50) < 1e-6
    assert abs(m["tcp_stall_s"] - 0.6) < 1e-6
    assert abs(m["mbps_before"] - 4.0) < 1e-6  # 100 kB per 0.2 s


def test_still_on_fallback_is_not_back_and_a_dead_stream_gaps_to_the_end():
    ecg = [i * 0.02 for i in range(500)]
    m = rm.metrics(_raw([(0, "main"), (10.5, "fallback"), (30.0, "fallback")], ecg, []))
    assert m["back_on_main_s"] is None and m["switches"] == 1
    assert abs(m["gap_ms"] - 20000) < 1  # nothing after the fault: the gap runs to the end
    assert m["mbps_fault"] is None and m["tcp_stall_s"] is None


def test_routed_traffic_back_when_it_resumes():
    ecg = [i * 0.02 for i in range(1500)]
    m = rm.metrics(_raw([(0, "main"), (10.0, "none"), (18.0, "main"), (30.0, "main")], ecg, []))
    assert m["switches"] == 0 and 2.0 <= m["back_on_main_s"] <= 3.5


def test_a_stall_after_the_fault_is_not_off_main():
    ecg = [i * 0.02 for i in range(1500)]
    m = rm.metrics(_raw([(0, "main"), (18.0, "none"), (20.0, "main"), (30.0, "main")], ecg, []))
    assert m["switches"] == 0 and m["back_on_main_s"] == 0.0


def test_never_left_main():
    ecg = [i * 0.02 for i in range(1500)]
    m = rm.metrics(_raw([(0, "main"), (30.0, "main")], ecg, []))
    assert m["switches"] == 0 and m["back_on_main_s"] == 0.0


def test_cell_shows_median_and_spread():
    assert rm.cell([300.0, 100.0, 200.0]) == "200 (100–300)"
    assert rm.cell([1.25]) == "1.2" or rm.cell([1.25]) == "1"  # digits default 0
    assert rm.cell([None, None], none_text="no") == "no (2×)"
    assert rm.cell([2.0, None], 1, "no") == "2.0, 1× no"
