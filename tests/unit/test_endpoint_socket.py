"""The endpoint's SCTP socket gets a 4-MiB receive buffer before it listens (every
home's data shares it; too small and the kernel discards packets under load), and the
size the kernel granted is read back and logged. The SCTP socket is replaced by a UDP
one (the option is the socket layer's, and the host may have no SCTP)."""

from __future__ import annotations

import logging
import socket

from haig.core.status import StatusModel
from haig.relay import endpoint
from tests.unit.relay_bench import endpoint_config


class _Wrapper:
    """pysctp's one-to-many socket, as bind() uses it; records the order of calls."""

    def __init__(self, calls: list) -> None:
        self.raw, self.calls = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), calls

    def sock(self) -> socket.socket:
        return self.raw

    def bindx(self, addrs) -> None:
        self.calls.append(("bindx", self.raw.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)))

    def listen(self, n) -> None:
        self.calls.append(("listen", self.raw.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)))

    def close(self) -> None:
        self.raw.close()


def _bind(monkeypatch) -> tuple[endpoint.Endpoint, list]:
    calls: list = []
    wrappers: list[_Wrapper] = []

    def make(family):
        wrappers.append(_Wrapper(calls))
        return wrappers[-1]

    monkeypatch.setattr(endpoint.sctp, "sctpsocket_udp", make)
    monkeypatch.setattr(endpoint.sctp_driver, "tune_socket", lambda *a, **k: None)
    e = endpoint.Endpoint(endpoint_config(), StatusModel())
    e.bind()
    return e, calls


def test_the_receive_buffer_is_set_before_listen_and_read_back(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="haig.endpoint")
    e, calls = _bind(monkeypatch)
    try:
        granted = e._wrapper.sock().getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        default = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        assert granted > default.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # it was asked for
        default.close()
        assert e.rcvbuf == granted  # what the kernel reports, not what was asked
        assert [c[0] for c in calls] == ["bindx", "listen"] and calls[-1][1] == granted
        logged = [r.getMessage() for r in caplog.records if "SCTP receive buffer" in r.getMessage()]
        assert len(logged) == 1 and f"{granted // 1024} KiB" in logged[0]
    finally:
        e._wrapper.close()


def test_a_buffer_capped_by_rmem_max_is_said_so(monkeypatch, caplog):
    """Unprivileged (no SO_RCVBUFFORCE) the kernel caps at net.core.rmem_max: a warning
    names the cap. Simulated by asking for more than it grants anyone."""
    caplog.set_level(logging.INFO, logger="haig.endpoint")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    real = s.setsockopt

    def capped(level, opt, value):  # the kernel's cap: 256 KiB whatever is asked
        if level == socket.SOL_SOCKET and opt in (socket.SO_RCVBUF, getattr(socket, "SO_RCVBUFFORCE", 33)):
            if opt != socket.SO_RCVBUF:
                raise PermissionError("not privileged")
            value = min(value, 256 << 10)
        real(level, opt, value)

    class _S:
        def __getattr__(self, k):
            return getattr(s, k)

        setsockopt = staticmethod(capped)

    got = endpoint.set_sctp_rcvbuf(_S(), endpoint.SCTP_RCVBUF)  # type: ignore[arg-type]
    s.close()
    assert got < 2 * endpoint.SCTP_RCVBUF
    warn = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warn) == 1 and "rmem_max" in warn[0].getMessage()


def test_status_and_metrics_show_the_granted_buffer_and_the_kernels_discards(monkeypatch, tmp_path):
    """What was only in the log at start is in status (and /metrics) for operators: the
    granted size, whether it is capped, and the kernel's discards, which no haig counter
    can see (the packets never reach the socket)."""
    from prometheus_client.parser import text_string_to_metric_families

    from haig.surfaces.api import create_app
    from tests.unit.surfaces_support import STATUS, assert_valid

    snmp = tmp_path / "snmp"
    snmp.write_text("SctpCurrEstab 3\nSctpInPktDiscards 1245\nSctpInDataChunkDiscards 7\nSctpT3RtxExpireds 2\n")
    monkeypatch.setattr(endpoint.sctp_mib, "SNMP_PATH", str(snmp))
    e, _ = _bind(monkeypatch)
    try:
        e.status.set_sctp_socket(256 << 10, 2 * endpoint.SCTP_RCVBUF, None)  # as if capped ...
        assert e.status.snapshot(0.0)["sctp_socket"]["capped"] is True
        e._on_timer()  # ... then the endpoint's own report replaces it
        snap = e.status.snapshot(0.0)
        assert_valid(STATUS, snap)
        sk = snap["sctp_socket"]
        assert sk["rcvbuf"] == e.rcvbuf and sk["rcvbuf_asked"] == 2 * endpoint.SCTP_RCVBUF
        assert sk["capped"] is (e.rcvbuf < 2 * endpoint.SCTP_RCVBUF)
        assert sk["kernel"] == {"SctpInPktDiscards": 1245, "SctpInDataChunkDiscards": 7, "SctpT3RtxExpireds": 2}
        fams = {f.name: f for f in text_string_to_metric_families(
            create_app(e.status).test_client().get("/metrics").data.decode())}
        assert fams["haig_sctp_rcvbuf_bytes"].samples[0].value == e.rcvbuf
        assert fams["haig_kernel_sctp_in_pkt_discards"].samples[0].value == 1245
    finally:
        e._wrapper.close()


def test_no_sctp_mib_is_null_not_an_error(tmp_path):
    assert endpoint.sctp_mib.read(str(tmp_path / "absent")) is None
    assert endpoint.sctp_mib.parse("SctpInPktDiscards 4\nnoise\nIpExt: a b\n") == {"SctpInPktDiscards": 4}
    m = StatusModel()
    assert m.snapshot(0.0)["sctp_socket"] is None  # a gateway, or before the first report
    m.set_sctp_socket(100, 200, None)
    assert m.snapshot(0.0)["sctp_socket"] == {"rcvbuf": 100, "rcvbuf_asked": 200, "capped": True, "kernel": None}
