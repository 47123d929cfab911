"""The relay's whole per-datagram path on the host, no kernel SCTP needed (numbers, not a
test): the real Gateway and Endpoint role drivers with their real SctpDriver, cores,
status model and UDP target sockets, but the SCTP socket pair faked in memory (what one
side's sendmsg sends, the other's recvmsg returns, with the ancillary data the kernel
would give). A datagram goes: gateway listener → GatewayLink → OutQueue → sendmsg →
recvmsg → EndpointCore → UDP send to a target on loopback; replies the other way.

Prints CPU µs per datagram each way (process time, so a busy host only adds noise; median of rounds) and, with --profile, the top
functions by own time (cProfile).

Usage: python -m tests.bench datapath [--profile] [--n=N]
"""

from __future__ import annotations

import asyncio
import collections
import cProfile
import io
import pstats
import socket
import statistics
import struct
import sys
import time

from haig.adapters import sctp_io
from haig.config.model import Config, Main, Peer, Service, Uplink
from haig.core.status import StatusModel
from haig.relay.endpoint import Endpoint
from haig.relay.gateway import Gateway, _Listener
from haig.relay.sctp_driver import SctpDriver

KEY = "k" * 24
PORT = 8888
DSL_EP, LTE_EP = "198.51.100.1", "198.51.100.2"
PAYLOAD = bytes(1200)  # an OpenVPN-sized datagram
ASSOC = 7


class FakeSctp:
    """A non-blocking SCTP socket as the driver sees it: sendmsg hands the message to the
    peer's inbox; recvmsg returns (data, ancillary, flags, addr) like the kernel."""

    def __init__(self, assoc_id: int, from_addr: tuple[str, int]) -> None:
        self._pair = socket.socketpair()  # a real fd for add_reader (never readable)
        self.inbox: collections.deque = collections.deque()
        self.peer: FakeSctp | None = None
        self.assoc_id, self.from_addr = assoc_id, from_addr
        self.sent = 0

    def fileno(self) -> int:
        return self._pair[0].fileno()

    def setblocking(self, _flag: bool) -> None:
        pass

    def sendmsg(self, buffers, anc=(), flags=0, to=None) -> int:
        data = b"".join(buffers)
        stream = struct.unpack_from("=H", anc[0][2])[0] if anc else 0
        self.peer.inbox.append((data, stream))
        self.sent += 1
        return len(data)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0):
        if not self.inbox:
            raise BlockingIOError
        data, stream = self.inbox.popleft()
        info = sctp_io._RCVINFO.pack(stream, 0, 0, 0, 0, 0, 0, self.assoc_id)
        return data, [(sctp_io.SOL_SCTP, sctp_io.SCTP_RCVINFO, info)], int(socket.MSG_EOR), self.from_addr

    def close(self) -> None:
        for s in self._pair:
            s.close()


class FakeWrapper:
    def __init__(self, sock: FakeSctp) -> None:
        self._sock = sock

    def sock(self) -> FakeSctp:
        return self._sock

    def close(self) -> None:
        self._sock.close()


def configs(target: tuple[str, int]) -> tuple[Config, Config]:
    svcs = (Service("openvpn", listen="127.0.0.1:1194", target=f"{target[0]}:{target[1]}", ttl=1000),)
    gw = Config(main=Main(role="gateway", gateway_id="home1", key=KEY, port=PORT, max_datagram=1500),
                uplinks=(Uplink("dsl", device="dsl0", metric=1, endpoint_address=DSL_EP, local_address="192.0.2.1"),
                         Uplink("lte", device="lte0", metric=2, endpoint_address=LTE_EP,
                                local_address="203.0.113.1")),
                services=svcs)
    ep = Config(main=Main(role="endpoint", port=PORT, bind=(DSL_EP, LTE_EP), max_datagram=1500),
                services=svcs, peers=(Peer("home1", KEY),))
    return gw, ep


class Pair:
    """A gateway and an endpoint, admitted to each other over the fake socket pair."""

    def __init__(self) -> None:
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the service's target
        self.sink.bind(("127.0.0.1", 0))
        self.sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sink.setblocking(False)
        gw_cfg, ep_cfg = configs(self.sink.getsockname())
        self.gw = Gateway(gw_cfg, StatusModel(), link_watch=False, pin_routes=False)
        self.ep = Endpoint(ep_cfg, StatusModel())
        self.gsock, self.esock = FakeSctp(0, (DSL_EP, PORT)), FakeSctp(ASSOC, ("192.0.2.1", 40000))
        self.gsock.peer, self.esock.peer = self.esock, self.gsock
        for role, s in ((self.gw, self.gsock), (self.ep, self.esock)):
            role._start_driver()
            role.sctp = SctpDriver(FakeWrapper(s), role._on_item_batched, lambda r=role: r.guard(lambda: None),
                                   role._send_failed, getattr(role, "_sent", None))
        self.ep._resolved["openvpn"] = self.sink.getsockname()
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where replies go
        self.client.bind(("127.0.0.1", 0))
        self.client.setblocking(False)
        self.gw.listeners.append(listener(self.gw))
        self.listener = self.gw.listeners[0]
        self.listen_addr = self.listener.sock.getsockname()
        self.gw._do = lambda a: None  # connect, sample, primary: the kernel's part (faked)
        self.ep._do = lambda a: None
        now = self.gw.clock.mono()
        self.gw.guard(self.gw.core.handle_timer, now)
        self.gw.guard(self.gw.core.connected, now)
        self.ep.guard(self.ep.core.association_up, ASSOC, now, "192.0.2.1")
        for _ in range(4):  # CHALLENGE, HELLO, WELCOME, PATH
            self.gw.sctp._readable()
            self.ep.sctp._readable()
        assert self.gw.core.admitted, self.gw.core.reason

    def upstream(self, n: int) -> None:
        """n datagrams client → target, read by the endpoint in the driver's batches."""
        gw_read, ep_read = self.gw.sctp._readable, self.ep.sctp._readable
        to, send = self.listen_addr, self.client.sendto
        for i in range(n):
            send(PAYLOAD, to)
            if i % 16 == 15:
                udp_read(self.listener)
                ep_read()
                _drain(self.sink)
        udp_read(self.listener)
        ep_read()
        gw_read()  # nothing from the endpoint: keeps the pumps honest
        _drain(self.sink)

    def downstream(self, n: int) -> None:
        """n replies target → client (through the endpoint's target socket)."""
        s = next(iter(self.ep._targets.values()))
        key = next(iter(self.ep._targets))
        addr = s.getsockname()
        for i in range(n):
            self.sink.sendto(PAYLOAD, addr)
            if i % 16 == 15:
                self.ep._from_target(s, key)
                self.gw.sctp._readable()
                _drain(self.client)
        self.ep._from_target(s, key)
        self.gw.sctp._readable()
        _drain(self.client)


def listener(gw: Gateway):
    """The gateway's UDP listener for service 0 on a free loopback port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.setblocking(False)
    try:  # this branch's listener owns its socket
        return _Listener(gw, 0, "127.0.0.1:1194", s)
    except TypeError:  # before: an asyncio DatagramProtocol fed by hand
        lst = _Listener(gw, 0, "127.0.0.1:1194")
        lst.sock = s
        lst.connection_made(_Transport(s))
        return lst


def udp_read(lst) -> None:
    if hasattr(lst, "_readable"):
        lst._readable()
        return
    try:
        while True:
            data, addr = lst.sock.recvfrom(65535)
            lst.datagram_received(data, addr)
    except BlockingIOError:
        pass


class _Transport:
    """The bits of asyncio's datagram transport the gateway used for replies."""

    def __init__(self, s: socket.socket) -> None:
        self.s = s

    def sendto(self, data: bytes, addr) -> None:
        self.s.sendto(data, addr)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _drain(s: socket.socket) -> int:
    n = 0
    try:
        while True:
            s.recv(65536)
            n += 1
    except BlockingIOError:
        return n


def measure(pair: Pair, n: int, rounds: int = 7) -> dict[str, float]:
    up, down = [], []
    pair.upstream(64)  # warm up: the flow and the target socket exist
    for _ in range(rounds):
        t0 = time.process_time()
        pair.upstream(n)
        up.append((time.process_time() - t0) / n * 1e6)
        t0 = time.process_time()
        pair.downstream(n)
        down.append((time.process_time() - t0) / n * 1e6)
    return {"up_us": statistics.median(up), "down_us": statistics.median(down)}


async def _run(profile: bool, n: int) -> int:
    pair = Pair()
    res = measure(pair, n)
    drops = pair.gw.status.snapshot(0)["drops"], pair.ep.status.snapshot(0)["drops"]
    lost = {k: v for d in drops for k, v in d.items() if v}
    print(f"datapath (host, fake SCTP, 1200 B, Python {sys.version.split()[0]}): "
          f"gateway→endpoint {res['up_us']:.1f} µs/datagram, endpoint→gateway {res['down_us']:.1f} µs/datagram "
          f"(median of 7 rounds of {n}); drops {lost or 'none'}")
    if profile:
        for name, fn in (("gateway→endpoint", pair.upstream), ("endpoint→gateway", pair.downstream)):
            prof = cProfile.Profile()
            prof.enable()
            fn(n)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(22)
            print(f"-- {name}, {n} datagrams, by own time --")
            print(out.getvalue().split("\n", 6)[-1])
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = argv or []
    n = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--n=")), 2000)
    return asyncio.run(_run("--profile" in argv, n))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
