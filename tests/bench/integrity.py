"""Integrity after admission (prints numbers; not a test): what would a MAC per
message cost, and can the kernel do SCTP-AUTH (RFC 4895) with a per-association key?

1. Python MACs per message of 200 B (ECG) and 1400 B (a full datagram): HMAC-SHA256
   (hmac.new, and the one-shot hmac.digest), keyed BLAKE2s-128 and BLAKE2b-128, plus
   the verify side (compare_digest) — microseconds per message, median of runs.
2. (With kernel SCTP, i.e. in the VM) SCTP-AUTH on loopback in a fresh netns:
   net.sctp.auth_enable as found; SCTP_AUTH_SUPPORTED per socket with the global
   sysctl left off; SCTP_AUTH_CHUNK(DATA); a key per association (SCTP_AUTH_KEY +
   SCTP_AUTH_ACTIVE_KEY on the assoc id the endpoint learnt); that DATA arrives with
   matching keys and does not with different ones; and the CPU cost of 20,000 messages
   with and without AUTH (5,000 in the VM).

Run: `./dev bench integrity` (the MAC part also runs on the host:
`python -m tests.bench.integrity --host-only`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import select
import socket
import statistics
import sys
import time
from pathlib import Path

KEY = os.urandom(32)


def _per_msg_us(fn, msg: bytes, n: int = 20000, runs: int = 5) -> float:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(n):
            fn(msg)
        out.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(out)


def mac_costs(n: int = 20000, runs: int = 5) -> list[tuple[str, int, float]]:
    algos = {
        "hmac.new sha256": lambda m: hmac.new(KEY, m, hashlib.sha256).digest(),
        "hmac.digest sha256": lambda m: hmac.digest(KEY, m, "sha256"),
        "blake2s-128 keyed": lambda m: hashlib.blake2s(m, key=KEY, digest_size=16).digest(),
        "blake2b-128 keyed": lambda m: hashlib.blake2b(m, key=KEY, digest_size=16).digest(),
    }
    tag = hmac.digest(KEY, b"x" * 200, "sha256")
    algos["verify: digest + compare_digest"] = lambda m: hmac.compare_digest(hmac.digest(KEY, m, "sha256"), tag)
    algos["(baseline) bytes concat + slice"] = lambda m: (m + tag)[:-32]
    rows = []
    for size in (200, 1400):
        msg = os.urandom(size)
        for name, fn in algos.items():
            rows.append((name, size, _per_msg_us(fn, msg, n, runs)))
    return rows


# -- SCTP-AUTH ---------------------------------------------------------------------


def _auth_socket(kind: int) -> socket.socket:
    from haig.adapters import sctp_opts

    s = socket.socket(socket.AF_INET, kind, socket.IPPROTO_SCTP)
    sctp_opts.enable_auth(s)  # what haig's sockets do (haig.relay.sctp_driver.tune_socket)
    return s


def _install_key(s: socket.socket, assoc_id: int, number: int, key: bytes) -> None:
    from haig.adapters import sctp_opts

    sctp_opts.add_auth_key(s, assoc_id, number, key)
    sctp_opts.activate_auth_key(s, assoc_id, number)


def _assoc_id_on_server(srv: socket.socket, timeout: float = 5.0) -> int:
    from haig.adapters import sctp_io

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        select.select([srv], [], [], 0.2)
        item = sctp_io.receive(srv)
        if isinstance(item, sctp_io.AssocChange) and item.state == "comm_up":
            return item.assoc_id
    raise TimeoutError("no COMM_UP on the server socket")


def _recv_data(srv: socket.socket, timeout: float) -> bytes | None:
    from haig.adapters import sctp_io

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        select.select([srv], [], [], 0.1)
        item = sctp_io.receive(srv)
        if isinstance(item, sctp_io.Received):
            return item.data
    return None


def _pair(port: int, server_key: bytes, client_key: bytes):
    from haig.adapters import sctp_io

    srv = _auth_socket(socket.SOCK_SEQPACKET)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    sctp_io.subscribe(srv)
    srv.setblocking(False)
    cli = _auth_socket(socket.SOCK_STREAM)
    cli.connect(("127.0.0.1", port))
    aid = _assoc_id_on_server(srv)
    # the admission exchange would happen here (over the null key), then both ends
    # install the key derived from it for this association only
    _install_key(srv, aid, 1, server_key)
    _install_key(cli, 0, 1, client_key)
    return srv, cli, aid


def sctp_auth_probe() -> dict:
    out: dict = {}
    p = Path("/proc/sys/net/sctp/auth_enable")
    out["net.sctp.auth_enable"] = p.read_text().strip() if p.exists() else "absent"
    try:
        srv, cli, aid = _pair(9411, KEY, KEY)
    except OSError as e:
        out["per_socket_auth"] = f"failed: {e}"
        return out
    out["per_socket_auth"] = ("ok: SCTP_AUTH_SUPPORTED + SCTP_AUTH_CHUNK(DATA) per socket, "
                              "SCTP_AUTH_KEY/ACTIVE_KEY on the server's assoc id, sysctl untouched")
    try:
        from haig.adapters import sctp_opts

        out["peer_auth_chunks"] = sctp_opts.peer_auth_chunks(srv, aid)
    except OSError as e:
        out["peer_auth_chunks"] = f"failed: {e}"
    cli.send(b"hello-authenticated")
    got = _recv_data(srv, 3.0)
    out["matching_keys_delivered"] = got == b"hello-authenticated"
    # cost: 20,000 x 200 B with AUTH on this association
    out["auth_cpu_us_per_msg"] = _cpu_per_msg(cli, srv)
    cli.close()
    srv.close()
    srv, cli, aid = _pair(9412, KEY, os.urandom(32))
    cli.send(b"forged")
    out["different_keys_delivered"] = _recv_data(srv, 2.0) is not None
    cli.close()
    srv.close()
    plain_srv = socket.socket(socket.AF_INET, socket.SOCK_SEQPACKET, socket.IPPROTO_SCTP)
    plain_srv.bind(("127.0.0.1", 9413))
    plain_srv.listen(8)
    plain_srv.setblocking(False)
    plain_cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    plain_cli.connect(("127.0.0.1", 9413))
    time.sleep(0.3)
    out["plain_cpu_us_per_msg"] = _cpu_per_msg(plain_cli, plain_srv)
    plain_cli.close()
    plain_srv.close()
    return out


def _cpu_per_msg(cli: socket.socket, srv: socket.socket, n: int = 5000) -> float:
    """CPU (user+sys of this process, which runs both ends and the loopback softirq)
    per 200 B message sent and received."""
    msg = os.urandom(200)
    got = 0
    t = os.times()
    cli.setblocking(False)
    sent = 0
    while got < n:
        while sent < n and sent - got < 200:
            try:
                cli.send(msg)
                sent += 1
            except BlockingIOError:
                break
        select.select([srv], [], [], 0.5)
        while True:
            try:
                srv.recvmsg(4096, 256)
                got += 1
            except BlockingIOError:
                break
    e = os.times()
    return round(((e.user - t.user) + (e.system - t.system)) / n * 1e6, 2)


def main(argv: list[str]) -> int:
    print(f"python {sys.version.split()[0]}, {os.uname().release}")
    in_vm = Path("/proc/sys/net/sctp").exists() and "--host-only" not in argv
    print(f"{'MAC':34} {'size':>5} {'us/msg':>8}")
    # Under emulation (the VM) Python is 10-30x slower: fewer rounds, same medians.
    for name, size, us in mac_costs(*((2000, 3) if in_vm else (20000, 5))):
        print(f"{name:34} {size:>5} {us:8.2f}", flush=True)
    if "--host-only" in argv or not Path("/proc/sys/net/sctp").exists():
        print("SCTP-AUTH probe skipped (no kernel SCTP here; run it in the VM)")
        return 0
    import subprocess

    ns = f"auth{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        from tests.testbed.netns import Netns

        with Netns(ns).enter():
            res = sctp_auth_probe()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    print("SCTP-AUTH:")
    for k, v in res.items():
        print(f"  {k}: {v}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
