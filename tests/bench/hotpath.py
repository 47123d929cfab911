"""Per-datagram costs of haig's relay hot path, step by step, beside a cheaper way to do
the same step (runs on the host or in the VM; no SCTP needed). Numbers, not a test:
the best of 5 timeit rounds per step, µs per call, and the ratio.

Usage: python -m tests.bench hotpath   (or python -m tests.bench.hotpath)
"""

from __future__ import annotations

import socket
import sys
import timeit
from types import SimpleNamespace

from haig.adapters import sctp_io
from haig.core import wire
from haig.core.flows import FlowTable
from haig.core.status import StatusModel

PAYLOAD = bytes(1200)


def _best_us(fn, number: int = 20000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def cases() -> list[tuple[str, object, str, object]]:
    """(step, today's way, alternative, the alternative's way)."""
    msg = wire.encode_data(0, 7, PAYLOAD, 3, 0)
    hdr = wire._DATA  # the header struct the encoder uses
    cached_cmsg = [(sctp_io.SOL_SCTP, sctp_io.SCTP_SNDRCV, sctp_io._SNDRCV.pack(1, 0, 1 | 0x10, 0, 0, 1000, 0, 0, 0))]
    status = StatusModel()
    status.set_uplinks([SimpleNamespace(name="dsl", interface="", device="d", metric=1, metered=False,
                                        udp_encap=False, local_address="", endpoint_address="")])

    traffic: dict[str, list[int]] = {}

    def count_gateway() -> None:  # haig.relay.gateway.Gateway._sent
        t = traffic.get("dsl") or traffic.setdefault("dsl", [0, 0, 0, 0])
        t[2] += 1200
        t[3] += 1

    flows = FlowTable(256, 60.0, n_streams=10)
    key = (0, ("10.1.0.2", 40000))
    flows.get_or_open(key, 0.0, service="vpn")
    by_key = {key: flows.get_or_open(key, 0.0, service="vpn")}
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.setblocking(False)

    def drain() -> None:
        try:
            while True:
                b.recv(65536)
        except BlockingIOError:
            pass

    def send_concat() -> None:
        a.sendmsg([wire.encode_data(0, 7, PAYLOAD, 3, 0)])
        drain()

    def send_gather() -> None:
        a.sendmsg([hdr.pack(wire.VERSION, wire.DATA, 0, 0, 7, 3), PAYLOAD])
        drain()

    mv = memoryview(msg)
    return [
        ("build DATA message", lambda: wire.encode_data(0, 7, PAYLOAD, 3, 0),
         "header only (payload passed to sendmsg as 2nd buffer)", lambda: hdr.pack(wire.VERSION, wire.DATA, 0, 0, 7, 3)),
        ("SNDRCV cmsg (sctp_io.ancillary: cached per stream, flags, ttl, assoc)",
         lambda: sctp_io.ancillary(1, 1 | 0x10, 1000, 0),
         "prebuilt list held by the caller", lambda: cached_cmsg),
        ("uplink counters (the gateway's plain ints, fed to the status model once per pump)", count_gateway,
         "status.count_uplink per message (lock, f-string keys: before 2026-12-02)",
         lambda: status.count_uplink("dsl", "tx", 1200)),
        ("flows.get_or_open (known flow)", lambda: flows.get_or_open(key, 1.0, service="vpn"),
         "dict lookup, touch every N datagrams", lambda: by_key.get(key)),
        ("decode DATA (payload copied)", lambda: wire.decode_data(msg),
         "header unpack + memoryview slice", lambda: (hdr.unpack_from(msg), mv[wire.DATA_HEADER:])),
        ("sendmsg, one datagram, concatenated", send_concat, "sendmsg, header + payload gathered", send_gather),
    ]


def main(argv: list[str] | None = None) -> int:
    rows = []
    for step, today, alt_name, alt in cases():
        t, u = _best_us(today), _best_us(alt)
        rows.append((step, t, alt_name, u))
    print("| step | today µs | alternative | alternative µs | today / alternative |")
    print("|---|---|---|---|---|")
    for step, t, alt_name, u in rows:
        print(f"| {step} | {t:.2f} | {alt_name} | {u:.2f} | {t / u:.1f} |")
    print(f"\nsum of the steps: today {sum(r[1] for r in rows):.2f} µs, "
          f"alternatives {sum(r[3] for r in rows):.2f} µs per datagram (Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
