"""Can several endpoint processes share one SCTP port with SO_REUSEPORT? (prints facts;
not a test). Run in the VM: `./dev bench reuseport`.

The endpoint serves every home on one one-to-many SCTP socket. Whether the kernel
spreads new associations over several such sockets bound to the same addresses and
port (one per process) decides how one host grows past one process: one port for all,
or one port per process with homes assigned to ports by config. Checked here on the
guest's loopback, in a namespace of its own:

1. a second one-to-many socket on the same addresses and port, without and with
   SO_REUSEPORT on both (does the bind succeed?);
2. with it: M client associations (one-to-one sockets, each its own source port):
   which socket gets each association's COMM_UP and data, and does the reply get back;
3. one of the sockets closes: what its associations see, and where new ones go.
"""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys
import time

import sctp

from haig.adapters import sctp_io, sctp_opts

ADDRS = ("127.0.0.1", "127.0.0.2")  # both listeners bind both (the kernel wants equal sets)
PORT = 8870
M = 40


def listener(reuse: bool) -> sctp.sctpsocket_udp:
    w = sctp.sctpsocket_udp(socket.AF_INET)
    raw = w.sock()
    if reuse:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sctp_opts.set_initmsg(raw, 4, 4)
    sctp_io.subscribe(raw)
    w.bindx([(a, PORT) for a in ADDRS])
    w.listen(64)
    raw.setblocking(False)
    return w


def client() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    sctp_opts.set_initmsg(s, 4, 4)
    sctp_io.subscribe(s, events=(sctp_io.SCTP_ASSOC_CHANGE,))
    s.settimeout(5)
    s.connect((ADDRS[0], PORT))
    s.setblocking(False)
    return s


def pump(listeners: list, seconds: float, up: dict, got: dict) -> None:
    """Read every listener for `seconds`: COMM_UPs and messages (echoed back) per socket."""
    sel = selectors.DefaultSelector()
    for i, w in enumerate(listeners):
        sel.register(w.sock(), selectors.EVENT_READ, i)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(0.05):
            i, raw = key.data, key.fileobj
            while (item := sctp_io.receive(raw)) is not None:
                if isinstance(item, sctp_io.AssocChange) and item.state == "comm_up":
                    up[i] = up.get(i, 0) + 1
                elif isinstance(item, sctp_io.Received) and item.data:
                    got[i] = got.get(i, 0) + 1
                    sctp_io.send(raw, item.data, assoc_id=item.assoc_id, unordered=False)
    sel.close()


def replies(clients: list[socket.socket], seconds: float) -> tuple[int, int]:
    """(data replies, associations ended) seen by the clients within `seconds`."""
    n = ended = 0
    end = time.monotonic() + seconds
    pending = set(range(len(clients)))
    while pending and time.monotonic() < end:
        for k in list(pending):
            try:
                item = sctp_io.receive(clients[k])
            except OSError:
                ended += 1
                pending.discard(k)
                continue
            if isinstance(item, sctp_io.Received):
                if item.data:
                    n += 1
                else:
                    ended += 1
                pending.discard(k)
            elif isinstance(item, sctp_io.AssocChange) and item.state in ("comm_lost", "shutdown_comp"):
                ended += 1
                pending.discard(k)
        time.sleep(0.01)
    return n, ended


def run() -> int:
    subprocess.run(["ip", "addr", "add", f"{ADDRS[1]}/8", "dev", "lo"], check=False, capture_output=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    print(f"kernel {subprocess.run(['uname', '-r'], capture_output=True, text=True).stdout.strip()}")
    # 1. the second bind
    a = listener(False)
    try:
        b = listener(False)
        print("1. without SO_REUSEPORT: a second one-to-many socket on the same port binds (unexpected)")
        b.close()
    except OSError as e:
        print(f"1. without SO_REUSEPORT: the second bind fails: {e}")
    a.close()
    try:
        ls = [listener(True), listener(True)]
    except OSError as e:
        print(f"1. with SO_REUSEPORT on both: the second bind fails too: {e}")
        return 0
    print("1. with SO_REUSEPORT on both: both bind and listen")
    # 2. associations and data spread over them?
    up: dict[int, int] = {}
    got: dict[int, int] = {}
    clients = []
    for _ in range(M):
        clients.append(client())
        pump(ls, 0.02, up, got)
    for k, c in enumerate(clients):
        sctp_io.send(c, b"hello %d" % k, unordered=False)
    pump(ls, 1.0, up, got)
    n, _ = replies(clients, 3.0)
    print(f"2. {M} associations: COMM_UP per socket {dict(sorted(up.items()))}, data per socket"
          f" {dict(sorted(got.items()))}, replies back at the clients {n}/{M}")
    # 3. one socket closes
    ls[0].close()
    first = up.get(0, 0)
    n, ended = replies(clients, 3.0)
    print(f"3. socket 0 closed: {ended} client association(s) ended (socket 0 had {first})")
    later = [client() for _ in range(10)]
    up2: dict[int, int] = {}
    pump(ls[1:], 1.0, up2, {})
    print(f"   10 new associations afterwards: COMM_UP at the remaining socket {up2.get(0, 0)}/10")
    for c in clients + later:
        c.close()
    ls[1].close()
    return 0


def main() -> int:
    # a namespace of its own: the loopback addresses and port touch nothing else
    if "--in-netns" not in sys.argv:
        name = "haig-reuseport"
        subprocess.run(["ip", "netns", "add", name], check=True)
        try:
            return subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m", "tests.bench.reuseport",
                                   "--in-netns"]).returncode
        finally:
            subprocess.run(["ip", "netns", "del", name], check=False)
    return run()


if __name__ == "__main__":
    sys.exit(main())
