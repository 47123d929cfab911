"""The gateway's UDP listener counts what the kernel dropped at its full receive buffer
(SO_RXQ_OVFL): a real UDP socket on loopback, filled while nobody reads it."""

from __future__ import annotations

import asyncio
import socket

from haig.core import drops
from haig.relay.gateway import _Listener


class _Core:
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.dropped: list[tuple[str, int, int]] = []

    def receive_datagram(self, index, addr, data, now) -> None:
        self.got.append(data)

    def drop(self, reason, index, now, n=1) -> None:
        self.dropped.append((reason, index, n))


class _Clock:
    def mono(self) -> float:
        return 0.0


class _Gw:
    def __init__(self) -> None:
        self.core, self.clock = _Core(), _Clock()

    def guard(self, fn, *args) -> None:
        fn(*args)


def test_kernel_drops_at_a_full_receive_buffer_are_counted_against_the_service():
    async def run() -> tuple[_Core, int, _Listener]:
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel doubles it; still small
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        gw = _Gw()
        lst = _Listener(gw, 3, "test", rx)  # type: ignore[arg-type]
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = 200
        for i in range(sent):  # the loop does not run meanwhile: the buffer overflows
            tx.sendto(b"%04d" % i + b"x" * 1000, rx.getsockname())
        await asyncio.sleep(0.05)  # the reader runs
        tx.sendto(b"last", rx.getsockname())  # the count comes with a datagram read after the drops
        await asyncio.sleep(0.05)
        tx.close()
        lst.close()
        return gw.core, sent + 1, lst

    core, sent, lst = asyncio.run(run())
    counted = sum(n for reason, index, n in core.dropped if reason == drops.RCVBUF_FULL and index == 3)
    assert counted > 0, "the buffer did not overflow: the test shows nothing"
    assert len(core.got) + counted == sent  # every datagram either read or counted
    assert lst.dropped == counted


class _EpCore:
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.failed: list[tuple[int, int, str, int]] = []

    def receive_from_target(self, assoc_id, flow_id, data, now) -> None:
        self.got.append(data)

    def target_failed(self, assoc_id, flow_id, reason, now, n=1) -> None:
        self.failed.append((assoc_id, flow_id, reason, n))


def test_replies_the_kernel_drops_at_a_target_socket_are_counted_against_the_flow():
    """The endpoint's side: a server's replies dropped at the flow's full target socket."""
    from haig.core.status import StatusModel
    from haig.relay.common import count_overflows
    from haig.relay.endpoint import Endpoint
    from tests.unit.relay_bench import endpoint_config

    async def run() -> tuple[_EpCore, int]:
        e = Endpoint(endpoint_config(), StatusModel())
        e.core = core = _EpCore()  # type: ignore[assignment]
        e.after_batch = lambda: None  # type: ignore[method-assign]
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        count_overflows(rx)
        key = (5, 9)
        asyncio.get_running_loop().add_reader(rx.fileno(), e._from_target, rx, key)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = 200
        for i in range(sent):
            tx.sendto(b"%04d" % i + b"y" * 1000, rx.getsockname())
        await asyncio.sleep(0.05)
        tx.sendto(b"last", rx.getsockname())
        await asyncio.sleep(0.05)
        asyncio.get_running_loop().remove_reader(rx.fileno())
        tx.close()
        rx.close()
        return core, sent + 1

    core, sent = asyncio.run(run())
    counted = sum(n for aid, fid, reason, n in core.failed if reason == drops.RCVBUF_FULL and (aid, fid) == (5, 9))
    assert counted > 0, "the buffer did not overflow: the test shows nothing"
    assert len(core.got) + counted == sent
