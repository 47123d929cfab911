"""The fault matrix's bookkeeping (the VM runs the faults; this checks how a row is judged
and rendered on the host)."""

from tests.bench import matrix
from tests.testbed import faults


def _row(**kw) -> faults.Result:
    base = dict(back_s=1.0, gap_s=2.0, ecg_sent=100, ecg_lost=10, counted=10)
    base.update(kw)
    return faults.Result("main_down_up", **base)


def test_drop_total_sums_the_flat_reasons():
    assert faults.drop_total({"queue_full": 2, "ttl_expired": 3, "oversized": 0}) == 5
    assert faults.drop_total({}) == 0


def test_a_recovered_row_with_everything_counted_is_ok():
    assert _row().problems() == []
    assert _row(counted=6).problems() == []  # within the 5 the last UDP hop may lose


def test_uncounted_loss_exits_and_tracebacks_fail_a_row():
    assert _row(counted=0).problems() == ["10 datagrams lost uncounted"]
    assert _row(exits=1).problems() == ["1 daemon exit(s)"]
    assert _row(tracebacks=2).problems() == ["2 traceback(s) in the logs"]
    assert _row(back_s=None).problems() == ["echo never came back"]


def test_what_nobody_could_count_is_tolerated():
    r = _row(counted=0, timings={"uncountable": 7})
    assert r.problems() == []


def test_row_line_shows_the_numbers_and_the_verdict():
    ok = matrix.row_line(_row(notes=["3 switches"], timings={"failback_s": 4.25, "row_s": 60}))
    assert ok.startswith("| main down 10 s, then up | ok | 2.0 | 1.0 | 10/100 · 0/0 · 0/0 | 10 |")
    assert "3 switches; failback_s 4.2" in ok and "row_s" not in ok
    bad = matrix.row_line(_row(counted=0, error="TimeoutError: x | y"))
    assert "FAIL: TimeoutError: x / y; 10 datagrams lost uncounted" in bad
    assert bad.count("|") == 11  # a pipe in an error must not add a column


def test_every_fault_has_a_title_and_the_table_renders():
    assert all(f.title for f in faults.FAULTS.values())
    text = matrix.render([_row()], ["--quick"], 0.0)
    assert "`./dev matrix --quick`" in text and matrix.HEADER in text
