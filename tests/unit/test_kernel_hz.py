"""spinfo_srtt comes from the kernel in jiffies: haig learns HZ from /proc/net/sctp/remaddr."""

from __future__ import annotations

import pytest

from haig.adapters import sctp_opts

HEADER = "ADDR ASSOC_ID HB_ACT RTO MAX_PATH_RTX REM_ADDR_RTX START STATE\n"


@pytest.fixture(autouse=True)
def fresh():
    sctp_opts._hz = None
    yield
    sctp_opts._hz = None


@pytest.mark.parametrize(("hz", "rto_j", "rto_ms"), [(250, 201, 804), (100, 30, 300), (1000, 437, 437),
                                                     (300, 30, 100)])
def test_hz_found_from_a_path_rto(tmp_path, hz, rto_j, rto_ms):
    f = tmp_path / "remaddr"
    f.write_text(HEADER + f"10.9.9.9 1 1 77 5 0 0 2\n10.203.0.15 1 1 {rto_j} 5 0 0 2\n")
    assert sctp_opts.kernel_hz("10.203.0.15", rto_ms, str(f)) == hz


def test_unknown_when_the_path_is_not_listed(tmp_path):
    f = tmp_path / "remaddr"
    f.write_text(HEADER + "10.9.9.9 1 1 77 5 0 0 2\n")
    assert sctp_opts.kernel_hz("10.203.0.15", 804, str(f)) is None
    assert sctp_opts.kernel_hz("10.203.0.15", 804, str(tmp_path / "missing")) is None
