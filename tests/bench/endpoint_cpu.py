"""The endpoint's per-datagram Python cost, natively on this machine (prints numbers;
not a test; no kernel SCTP needed): the real `Endpoint` driver — its core, its pump after
every input (actions, queues, deliveries, status, events, drops, timer), its UDP target
sockets — with the SCTP socket replaced by a counter, for N admitted homes sending
ECG-sized datagrams (an alarm every 100th); up: one datagram per wake-up (the worst case:
one pump each). Up = a message from a home to its target (UDP send included); down = a
target's answer back to the home through the loop's reader callbacks (UDP recv and
the bench's own sendto included, SCTP send a counter), every flow answered at once.
If the cost per datagram grows with N, something per pump walks all homes.
Complements `scale` (which runs in the emulator, where Python is 10-30x slower and the
CPU shared): it says what one real core would carry.

Run: `python -m tests.bench.endpoint_cpu [--homes=1000] [--profile]`
"""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import io
import logging
import os
import pstats
import resource
import socket
import sys
import tempfile
import time
from types import SimpleNamespace

from haig.adapters import sctp_io
from haig.config.loader import load_config
from haig.core import wire
from haig.core.status import StatusModel
from haig.relay.endpoint import Endpoint
from haig.relay.sctp_driver import AssocUp
from tests.bench.scale import endpoint_conf
from tests.testbed.loadgen import PAYLOAD, SERVICES, home_id, home_key
from tests.testbed.topology import MAIN

RATE = 10
IDLE_S = 3.0


class FakeSctp:
    """Stands in for SctpDriver: every flushed message is 'sent' (counted)."""

    def __init__(self) -> None:
        # a real socket (Tune's SCTP options fail on it with OSError, which the driver
        # logs and goes on: the kernel's part is not measured here)
        self.sock, self.sent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0

    def flush(self, q) -> None:
        while q.peek() is not None:
            q.pop()
            self.sent += 1

    def abort(self, assoc_id: int) -> None:
        pass

    def close(self) -> None:
        self.sock.close()


async def run(homes: int, seconds_of_traffic: float, profile: bool) -> dict:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sink.setblocking(False)
    port = sink.getsockname()[1]
    topo = SimpleNamespace(links={MAIN: SimpleNamespace(ep_addr="127.0.0.1")}, server_addr="127.0.0.1")
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(endpoint_conf(topo, homes).replace(":7500'", f":{port}'").replace(":7501'", f":{port}'"))
    cfg = load_config(f.name, None)
    os.unlink(f.name)
    # A fake socket has no SCTP-AUTH to find at COMM_UP; the keys cost nothing per datagram
    # in Python (the kernel authenticates), so admitting without them measures the same.
    cfg = dataclasses.replace(cfg, main=dataclasses.replace(cfg.main, require_auth=False))
    logging.getLogger("haig").setLevel(logging.ERROR)  # the fake socket's "cannot tune" lines
    e = Endpoint(cfg, StatusModel())
    e._resolved = {"ecg": ("127.0.0.1", port), "alarm": ("127.0.0.1", port)}
    e._start_driver()
    e.sctp = fake = FakeSctp()
    e._wrapper = SimpleNamespace(getpaddrs=lambda aid: [])
    gw = ("10.202.0.1", 8850)
    for i in range(homes):  # admitted the real way: COMM_UP, CHALLENGE, HELLO, WELCOME
        aid = i + 1
        e.guard(e._on_item, AssocUp(aid, False))
        challenge = e.core.sessions[aid].challenge
        hello = wire.encode_hello(home_key(i), challenge, home_id(i), os.urandom(wire.NONCE), SERVICES)
        e.guard(e._on_item, sctp_io.Received(hello, gw, aid, 0, True))
    assert len(e.core.by_gateway) == homes, "not every home admitted"
    e._pump()  # arm the core's timer: the once-a-second tick (flow expiry, path samples)
    c0 = time.process_time()
    await asyncio.sleep(IDLE_S)  # admitted, no traffic: what the ticks cost
    idle_ms_per_s = (time.process_time() - c0) / IDLE_S * 1000
    n_msgs = int(homes * RATE * seconds_of_traffic)
    body = PAYLOAD.pack(0, 0, 0).ljust(200, b"\0")
    msgs = []
    for k in range(n_msgs):
        i = k % homes
        alarm = (k // homes) % 100 == 99
        data = wire.encode_data(1 if alarm else 0, 2 if alarm else 1, body, seq=k,
                                flags=wire.FLAG_CRITICAL if alarm else 0)
        msgs.append(sctp_io.Received(data, gw, i + 1, 1, True))
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    for r in msgs:  # gateway → target, one pump per datagram
        e.guard(e._on_item, r)
    up_cpu = time.process_time() - t_cpu
    sent0 = fake.sent
    # target → gateway through the real loop: the sink answers on every flow socket,
    # the loop's reader callbacks (Endpoint._from_target) read them, the pump sends
    socks = [s.getsockname() for s in e._targets.values()]
    per_flow = max(1, n_msgs // max(1, len(socks)))
    t2 = time.process_time()
    for _ in range(per_flow):
        for addr in socks:
            sink.sendto(body, addr)
        want = fake.sent + len(socks)
        for _ in range(100000):
            if fake.sent >= want:
                break
            await asyncio.sleep(0)
    down_cpu = time.process_time() - t2
    down = fake.sent - sent0
    if prof:
        prof.disable()
    wall = time.perf_counter() - t_wall
    out = {
        "homes": homes, "datagrams_up": n_msgs, "datagrams_down": down,
        "us_per_datagram_up": round(up_cpu / n_msgs * 1e6, 1),
        "us_per_datagram_down": round(down_cpu / max(1, down) * 1e6, 1),
        "idle_cpu_ms_per_s": round(idle_ms_per_s, 2), "wall_s": round(wall, 2), "flow_sockets": len(e._targets),
        "fds_in_process": len(os.listdir("/proc/self/fd")),
        "rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "drops": {k: v for k, v in e.status.snapshot(0)["drops"].items() if v},
    }
    await e.stop()
    sink.close()
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(14)
        out["profile"] = s.getvalue()
    return out


def main(argv: list[str]) -> int:
    homes = 1000
    for a in argv:
        if a.startswith("--homes="):
            homes = int(a.split("=", 1)[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"python {sys.version.split()[0]}; RLIMIT_NOFILE raised to {hard} for this run")
    for n in sorted({10, 100, homes}):
        if 2 * n + 50 > hard:
            print(f"N={n}: needs {2 * n} flow sockets, more than RLIMIT_NOFILE {hard}: skipped")
            continue
        r = asyncio.run(run(n, 2.0, profile="--profile" in argv and n == homes))
        prof = r.pop("profile", None)
        per_home = (r["us_per_datagram_up"] + r["us_per_datagram_down"]) * RATE  # us CPU per home per s
        r["homes_per_core"] = int(1e6 / per_home) if per_home else None
        print(r, flush=True)
        if prof:
            print(prof)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
