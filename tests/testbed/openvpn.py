"""Real OpenVPN peers (Debian's openvpn 2.6, UDP) for the test bed.

The simplest modern form that needs no CA (shared notes): TLS peer-to-peer with a
self-signed EC certificate on each side, each pinning the other's with
--peer-fingerprint. The client runs in the client namespace and is pointed at whatever
carries its UDP (haig's gateway service, a socat relay, or the server itself when
routed); the server runs in the server namespace. Tunnel: 10.8.0.1 (server) ↔ 10.8.0.2.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.netns import Netns, sh
from tests.testbed.proc import Proc

TUN_SERVER, TUN_CLIENT = "10.8.0.1", "10.8.0.2"
DEV = "hvpn0"


@dataclass(frozen=True)
class Certs:
    dir: Path
    server_fp: str
    client_fp: str


def _fingerprint(crt: Path) -> str:
    out = sh(f"openssl x509 -noout -fingerprint -sha256 -in {crt}").stdout
    return out.strip().split("=", 1)[1]


def make_certs(d: Path | None = None) -> Certs:
    """A self-signed P-256 certificate and key for each side, and their SHA-256 pins."""
    d = Path(d or tempfile.mkdtemp(prefix="ovpn-certs-"))
    d.mkdir(parents=True, exist_ok=True)
    for who in ("server", "client"):
        sh(f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           f"-days 7 -subj /CN=haig-testbed-{who} -keyout {d}/{who}.key -out {d}/{who}.crt")
    return Certs(d, _fingerprint(d / "server.crt"), _fingerprint(d / "client.crt"))


def _common(certs: Certs, who: str, peer_fp: str, local: str, remote: str) -> list[str]:
    return ["openvpn", "--dev-type", "tun", "--dev", DEV, "--proto", "udp",
            "--cert", str(certs.dir / f"{who}.crt"), "--key", str(certs.dir / f"{who}.key"),
            "--peer-fingerprint", peer_fp, "--ifconfig", local, remote,
            # haig carries datagrams unordered (PR-SCTP): reordering is expected, not an attack.
            "--mute-replay-warnings", "--verb", "3"]


def server(ns: Netns, certs: Certs, local: str, port: int = 1194, name: str = "ovpn-server") -> Proc:
    argv = _common(certs, "server", certs.client_fp, TUN_SERVER, TUN_CLIENT)
    argv += ["--tls-server", "--dh", "none", "--local", local, "--lport", str(port)]
    return Proc(ns, argv, name).start()


def client(ns: Netns, certs: Certs, remote: str, port: int, name: str = "ovpn-client") -> Proc:
    argv = _common(certs, "client", certs.server_fp, TUN_CLIENT, TUN_SERVER)
    argv += ["--tls-client", "--remote", remote, str(port), "--nobind"]
    return Proc(ns, argv, name).start()


@dataclass
class Ping:
    sent: int
    received: int
    rtts_ms: list[float]

    @property
    def avg_ms(self) -> float | None:
        return sum(self.rtts_ms) / len(self.rtts_ms) if self.rtts_ms else None


def ping(ns: Netns, addr: str, count: int, interval: float = 0.2, wait: float = 2) -> Ping:
    """ping from a namespace; never raises on loss (the caller asserts)."""
    # -W bounds each reply's wait, -w the whole run (a dead path must not hang the test).
    deadline = int(count * interval + wait + 2)
    r = ns.run(f"ping -n -c {count} -i {interval} -W {wait} -w {deadline} {addr}", check=False)
    rtts = [float(m) for m in re.findall(r"time=([\d.]+) ms", r.stdout)]
    m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
    sent, got = (int(m.group(1)), int(m.group(2))) if m else (count, len(rtts))
    return Ping(sent, got, rtts)


def wait_tunnel(ns: Netns, peer: str = TUN_SERVER, timeout: float = 60,
                procs: tuple[Proc, ...] = ()) -> float:
    """Until `peer` answers a ping through the tunnel; seconds it took. Raises with the
    peers' logs when the tunnel does not come up in time or a peer exits."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited ({p.proc.returncode}):\n{p.log()[-3000:]}")
        r = ns.run(f"ping -n -c 1 -W 1 {peer}", check=False)
        if r.returncode == 0:
            return time.monotonic() - t0
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name} ---\n{p.log()[-2500:]}" for p in procs)
    raise TimeoutError(f"OpenVPN tunnel to {peer} not up in {timeout}s\n{logs}")
