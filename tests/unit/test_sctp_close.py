"""A deliberate close read to its end (haig.relay.sctp_close), on the host: a fake socket
that serves real notification bytes, a fake loop whose timer the test fires. And the
gateway core's side: late messages from the closing association."""

from __future__ import annotations

import socket
import struct

import pytest

from haig.adapters import sctp_io
from haig.core import drops, wire
from haig.core.states import AssocState
from haig.relay import sctp_close, sctp_driver
from tests.unit.relay_bench import CLIENT, Bench, endpoint_config, gateway_config

PEER = ("198.51.100.1", 8888)


def assoc_change(state: int) -> bytes:
    return struct.pack("=HHIHHHHi", sctp_io.SCTP_ASSOC_CHANGE, 0, 20, state, 0, 1, 1, 1)


def send_failed(data: bytes, sent: bool = True) -> bytes:
    flags = sctp_io.SCTP_DATA_SENT if sent else 0
    head = struct.pack("=HHII", sctp_io.SCTP_SEND_FAILED_EVENT, flags, 32 + len(data), 0)
    return head + struct.pack("=HHIIi", 0, 0, 0, 0, 1) + struct.pack("=i", 1) + data


COMM_LOST, SHUTDOWN_COMP = 1, 3


class FakeSock:
    def __init__(self, shutdown_error: int | None = None) -> None:
        self.queue: list = []  # recvmsg results; "eof" or an errno int
        self.shutdowns: list[int] = []
        self.sent: list[tuple] = []
        self.shutdown_error = shutdown_error

    def fileno(self) -> int:
        return 7

    def setblocking(self, flag: bool) -> None:
        pass

    def shutdown(self, how: int) -> None:
        self.shutdowns.append(how)
        if self.shutdown_error is not None:
            raise OSError(self.shutdown_error, "not connected")

    def recvmsg(self, bufsize, ancsize):
        if not self.queue:
            raise BlockingIOError
        got = self.queue.pop(0)
        if got == "eof":
            return b"", [], 0, None
        if isinstance(got, int):
            raise OSError(got, "gone")
        kind, data = got
        if kind == "note":
            return data, [], sctp_io.MSG_NOTIFICATION | socket.MSG_EOR, None
        return data, [], socket.MSG_EOR, PEER

    def sendmsg(self, bufs, anc, *args):
        self.sent.append((bufs, anc))
        return 0


class Status:
    unackdata, penddata = 3, 2


class FakeWrapper:
    def __init__(self, sock: FakeSock, status=Status) -> None:
        self._sock, self.status, self.closed = sock, status, 0

    def sock(self) -> FakeSock:
        return self._sock

    def get_status(self):
        if self.status is None:
            raise OSError("gone")
        return self.status()

    def close(self) -> None:
        self.closed += 1


class Handle:
    def __init__(self, when: float, fn) -> None:
        self.when, self.fn, self.cancelled = when, fn, False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    def __init__(self) -> None:
        self.readers: dict = {}
        self.writers: dict = {}
        self.timers: list[Handle] = []
        self.soon: list = []

    def add_reader(self, fd, fn) -> None:
        self.readers[fd] = fn

    def remove_reader(self, fd) -> None:
        self.readers.pop(fd, None)

    def add_writer(self, fd, fn) -> None:
        self.writers[fd] = fn

    def remove_writer(self, fd) -> None:
        self.writers.pop(fd, None)

    def call_later(self, delay, fn) -> Handle:
        h = Handle(delay, fn)
        self.timers.append(h)
        return h

    def call_soon(self, fn) -> None:
        self.soon.append(fn)

    def run_soon(self) -> None:
        while self.soon:
            self.soon.pop(0)()

    def readable(self) -> None:
        for fn in list(self.readers.values()):
            fn()

    def fire_timers(self) -> None:
        for h in list(self.timers):
            if not h.cancelled:
                h.fn()


class Closing:
    """A driver on the fake socket, then closed deliberately; records what the role got."""

    def __init__(self, monkeypatch, sock: FakeSock, status=Status) -> None:
        self.loop = FakeLoop()
        monkeypatch.setattr("asyncio.get_running_loop", lambda: self.loop)
        self.sock, self.wrapper = sock, FakeWrapper(sock, status)
        self.items: list = []
        self.lost: list[int] = []
        self.done = 0
        self.live: list = []
        self.driver = sctp_driver.SctpDriver(self.wrapper, self.live.append, lambda: None, lambda *a: None)

    def close(self) -> sctp_close.ClosingAssociation:
        return sctp_close.ClosingAssociation(self.driver, self.items.append, self.lost.append,
                                             self._done, timeout=5.0)

    def _done(self) -> None:
        self.done += 1


def test_shutdown_is_read_to_shutdown_complete_and_nothing_is_counted_lost(monkeypatch):
    c = Closing(monkeypatch, FakeSock())
    c.sock.queue = [("data", b"late reply"), ("note", send_failed(b"given up"))]
    closing = c.close()
    assert c.sock.shutdowns == [socket.SHUT_WR]  # SHUTDOWN asked for, the socket kept
    assert c.driver.closed and c.loop.readers[7] == closing.readable  # the driver reads no more
    c.loop.run_soon()
    assert [type(i) for i in c.items] == [sctp_driver.Received, sctp_driver.Abandoned]
    assert c.items[1].data == b"given up"
    assert not closing.closed and c.done == 0  # the kernel is still delivering: wait
    c.sock.queue = [("note", assoc_change(SHUTDOWN_COMP)), "eof"]
    c.loop.readable()
    assert closing.closed and c.done == 1 and c.wrapper.closed == 1
    assert closing.outcome == "shutdown_comp"  # graceful: its in-doubt abandonments get confirmed
    assert c.lost == [] and not c.loop.readers and all(h.cancelled for h in c.loop.timers)
    assert c.live == []  # none of it went to the role's live handler


def test_comm_lost_then_its_send_failed_events_are_all_read(monkeypatch):
    c = Closing(monkeypatch, FakeSock(), status=None)
    closing = c.close()
    c.sock.queue = [("note", assoc_change(COMM_LOST)), ("note", send_failed(b"a", sent=False)),
                    ("note", send_failed(b"b"))]
    c.loop.readable()
    assert [i.data for i in c.items] == [b"a", b"b"]
    assert closing.closed and c.done == 1 and c.lost == [] and closing.outcome == "comm_lost"


def test_already_gone_reads_what_is_queued_and_ends_at_would_block(monkeypatch):
    import errno
    c = Closing(monkeypatch, FakeSock(shutdown_error=errno.ENOTCONN), status=None)
    c.sock.queue = [("note", send_failed(b"x"))]
    closing = c.close()
    c.loop.run_soon()
    assert [i.data for i in c.items] == [b"x"] and closing.closed and c.done == 1
    assert closing.outcome is None  # not graceful: the teardown's own events counted it


@pytest.mark.parametrize("end", ["eof", 104])  # EOF, ECONNRESET
def test_eof_or_a_receive_error_ends_the_read(monkeypatch, end):
    c = Closing(monkeypatch, FakeSock())
    closing = c.close()
    c.sock.queue = [end]
    c.loop.readable()
    assert closing.closed and c.done == 1 and c.lost == []


def test_time_out_counts_what_the_kernel_still_holds_then_aborts(monkeypatch):
    c = Closing(monkeypatch, FakeSock())
    closing = c.close()
    c.loop.run_soon()
    assert not closing.closed
    c.sock.queue = [("note", send_failed(b"expired meanwhile"))]
    c.loop.fire_timers()
    assert [i.data for i in c.items] == [b"expired meanwhile"]  # queued events first
    assert c.lost == [5]  # SCTP_STATUS unacked 3 + pending 2
    (bufs, anc), = c.sock.sent  # an ABORT, then closed without reading its events
    flags = struct.unpack_from("=HHH", anc[0][2])[2]
    assert flags & sctp_io.SCTP_ABORT
    assert closing.closed and c.done == 1 and c.wrapper.closed == 1


def test_role_stop_closes_a_closing_association_once(monkeypatch):
    c = Closing(monkeypatch, FakeSock())
    closing = c.close()
    closing.close()
    closing.close()
    c.loop.fire_timers()
    assert c.done == 1 and c.wrapper.closed == 1 and c.lost == []


# -- the gateway core: late messages --------------------------------------------------------


def _re_associating() -> tuple[Bench, int]:
    b = Bench(gw_cfg=gateway_config(), ep_cfg=endpoint_config())
    b.run_until(0.0)
    b.client_sends(b"q")
    flow = next(iter(b.gw.flows)).id
    b.gw.association_lost("uplink dsl: local address changed", b.now)
    return b, flow


def test_late_reply_before_the_new_association_is_admitted_is_delivered():
    b, flow = _re_associating()
    b.gw.next_action()  # the Disconnect (the driver closes gracefully)
    b.gw.late_message(wire.encode_data(0, flow, b"late"), b.now)
    assert [(d.client, d.payload) for d in b.gw.datagrams_to_deliver()] == [(CLIENT, b"late")]
    assert b.drops(b.gw) == {}


def test_late_reply_after_the_new_association_is_admitted_is_counted_not_delivered():
    b, flow = _re_associating()
    b.run_until(b.now + 1.0)
    assert b.gw.state is AssocState.UP
    got = len(b.delivered_to_clients)
    b.gw.late_message(wire.encode_data(0, flow, b"late"), b.now)
    assert b.gw.datagrams_to_deliver() == [] and len(b.delivered_to_clients) == got
    assert b.drops(b.gw) == {(drops.ASSOC_LOST, "telemetry"): 1}
