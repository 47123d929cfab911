"""The endpoint's per-datagram Python cost, natively on this machine (prints numbers;
not a test; no kernel SCTP needed): the real `Endpoint._on_message` (gateway → target,
UDP send included) and `Endpoint._from_target` (target → gateway, with the SCTP send
replaced by a counter) driven with ECG-sized datagrams for N homes, plus a cProfile
of where the time goes. Complements `scale` (which runs in the emulator, where Python
is 10-30x slower and the CPU shared): it says what one real core would carry.

Run: `python -m tests.bench.endpoint_cpu [--homes=1000] [--profile]`
"""

from __future__ import annotations

import asyncio
import cProfile
import io
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
from haig.core.flows import FlowTable
from haig.core.status import StatusModel
from haig.relay import endpoint as ep_mod
from haig.relay.common import N_STREAMS
from haig.relay.endpoint import Endpoint, Session
from tests.bench.scale import endpoint_conf
from tests.testbed.loadgen import PAYLOAD, home_id
from tests.testbed.topology import MAIN

RATE = 10


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
    e = Endpoint(cfg, StatusModel())
    e._resolved = {"ecg": ("127.0.0.1", port), "alarm": ("127.0.0.1", port)}
    sent_sctp = []
    ep_mod.sctp_io.send = lambda sock, data, **kw: sent_sctp.append(len(data)) or len(data)  # no SCTP here
    e.sock = SimpleNamespace()
    for i in range(homes):
        peer = e.peers[home_id(i)]
        s = Session(i + 1, os.urandom(16), 0.0, gateway=peer,
                    services=[e.targets["ecg"], e.targets["alarm"]],
                    flows=FlowTable(cfg.main.max_flows, cfg.main.flow_idle, n_streams=N_STREAMS))
        e.sessions[i + 1] = s
        e.by_gateway[peer.name] = i + 1
    n_msgs = int(homes * RATE * seconds_of_traffic)
    body = PAYLOAD.pack(0, 0, 0).ljust(200, b"\0")
    msgs = []
    for k in range(n_msgs):
        i = k % homes
        alarm = (k // homes) % 100 == 99
        data = wire.encode_data(1 if alarm else 0, 2 if alarm else 1, body, seq=k,
                                flags=wire.FLAG_CRITICAL if alarm else 0)
        msgs.append(sctp_io.Received(data, ("10.202.0.1", 8850), i + 1, 1, True))
    prof = cProfile.Profile() if profile else None
    # gateway → target
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for r in msgs:
        e._on_message(r)
    up_cpu = time.process_time() - t_cpu
    # target → gateway: drain the replies the sink would send back, through _from_target
    got = 0
    flows = [(sess, f) for sess in e.sessions.values() for f in sess.flows._by_id.values()]
    t2 = time.process_time()
    per_flow = max(1, n_msgs // max(1, len(flows)))
    for sess, f in flows:
        # echo: make the target answer on this flow's own socket, then let the endpoint read it
        peer_addr = f.data.getsockname()
        for _ in range(per_flow):
            try:
                sink.sendto(body, peer_addr)
            except BlockingIOError:
                break
        e._from_target(f.data, sess.assoc_id, f.key, 1 if f.critical else 0)
        got += 1
    down_cpu = time.process_time() - t2
    if prof:
        prof.disable()
    wall = time.perf_counter() - t_wall
    fds = len(os.listdir("/proc/self/fd"))
    out = {
        "homes": homes, "datagrams_up": n_msgs, "datagrams_down": len(sent_sctp),
        "us_per_datagram_up": round(up_cpu / n_msgs * 1e6, 1),
        "us_per_datagram_down": round(down_cpu / max(1, len(sent_sctp)) * 1e6, 1),
        "wall_s": round(wall, 2), "flow_sockets": sum(1 for _, f in flows if f.data is not None),
        "fds_in_process": fds, "rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "drops": {k: v for k, v in e.status.snapshot(0)["drops"].items() if v},
    }
    for _, f in flows:
        if f.data is not None:
            asyncio.get_running_loop().remove_reader(f.data.fileno())
            f.data.close()
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
