"""iperf3 between two test-bed namespaces (through whatever lies between: a routed
path, an OpenVPN tunnel over haig or socat)."""

from __future__ import annotations

import json
import subprocess
import time

from tests.testbed.netns import Netns
from tests.testbed.proc import Proc


def tcp(client_ns: Netns, server_ns: Netns, addr: str, seconds: float = 3,
               port: int = 5201, extra: tuple[str, ...] = (), on_start=None,
               server_extra: tuple[str, ...] = ()) -> dict:
    """One iperf3 TCP run (client → server at `addr`); returns iperf3's --json report,
    with `bytes` and `mbps` (received) added on top. `extra`: more client options
    (e.g. `-i 0.2 --get-server-output`), `server_extra` the server's (`-J` to get its
    intervals as JSON); `on_start()` is called just before the client
    starts, so a caller can time impairments against the run."""
    srv = Proc(server_ns, ["iperf3", "-s", "-1", "-B", addr, "-p", str(port), *server_extra], "iperf3-server").start()
    try:
        deadline = time.monotonic() + 15
        while f":{port}" not in server_ns.run(f"ss -Hltn sport = :{port}", check=False).stdout:
            if time.monotonic() > deadline or not srv.alive():
                raise RuntimeError(f"iperf3 server not listening:\n{srv.log()[-2000:]}")
            time.sleep(0.2)
        argv = ["ip", "netns", "exec", client_ns.name, "iperf3", "-c", addr, "-p", str(port),
                "-t", str(seconds), "--connect-timeout", "5000", "--json", *extra]
        if on_start is not None:
            on_start()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        try:
            rep = json.loads(r.stdout)
        except ValueError as e:
            raise RuntimeError(f"iperf3 gave no report ({r.returncode}): {r.stdout[-1500:]}"
                               f"{r.stderr[-500:]}") from e
        if "error" in rep:
            raise RuntimeError(f"iperf3: {rep['error']}")
        recv = rep["end"]["sum_received"]
        rep["bytes"] = int(recv["bytes"])
        rep["mbps"] = recv["bits_per_second"] / 1e6
        return rep
    finally:
        srv.stop()
