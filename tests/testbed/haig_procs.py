"""Run real haig daemons in the test bed's namespaces: configs written as UCI files,
processes started with `ip netns exec`, stopped by PID, their logs kept for failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.testbed.netns import Netns
from tests.testbed.topology import FALLBACK, MAIN, Topology

KEY = "testbed-shared-key-0123456789"
# Uplink (UCI section) names for the bed's links, as a router owner would call them.
UPLINK = {MAIN: "dsl", FALLBACK: "lte"}
STARTUP_S = 240.0  # most a daemon's start-up may take before wait_for's timeout starts


def _sec(kind: str, name: str, opts: dict) -> str:
    lines = [f"config {kind} '{name}'"]
    for k, v in opts.items():
        if isinstance(v, list | tuple):
            lines += [f"\tlist {k} '{x}'" for x in v]
        else:
            if isinstance(v, bool):
                v = int(v)
            lines.append(f"\toption {k} '{v}'")
    return "\n".join(lines) + "\n\n"


@dataclass
class Service:
    name: str
    listen: str  # on the gateway
    target: str  # on the endpoint
    ttl: int = 1000
    critical: bool = False


def gateway_config(topo: Topology, port: int, services: list[Service], *, gateway_id: str = "home1",
                   key: str = KEY, main: dict | None = None, uplinks: dict | None = None,
                   links: tuple[str, ...] = (MAIN, FALLBACK)) -> str:
    m = {"role": "gateway", "gateway_id": gateway_id, "key": key, "port": port,
         "rto_initial": 1000, "rto_min": 100, "rto_max": 1000, "hold_down": 3,
         "api_listen": "127.0.0.1:8990", "log_level": "info"}
    m.update(main or {})
    out = _sec("haig", "main", m)
    for i, name in enumerate(links):
        lk = topo.links[name]
        u = {"device": lk.gw_dev, "metric": i + 1, "local_address": lk.gw_addr,
             "endpoint_address": lk.ep_addr, "hb_interval": 500, "path_max_retrans": 3,
             "pf_retrans": 0}
        u.update((uplinks or {}).get(name, {}))
        out += _sec("uplink", UPLINK[name], u)
    for s in services:
        out += _sec("service", s.name, {"listen": s.listen, "ttl": s.ttl, "critical": s.critical})
    return out


def endpoint_config(topo: Topology, port: int, services: list[Service],
                    gateways: dict[str, str] | None = None, main: dict | None = None) -> str:
    m = {"role": "endpoint", "port": port, "rto_initial": 1000, "rto_min": 100, "rto_max": 1000,
         "api_listen": "127.0.0.1:8990", "log_level": "info",
         "bind": [topo.links[MAIN].ep_addr, topo.links[FALLBACK].ep_addr]}
    m.update(main or {})
    out = _sec("haig", "main", m)
    for s in services:
        out += _sec("service", s.name, {"target": s.target, "ttl": s.ttl, "critical": s.critical})
    for gw, key in (gateways or {"home1": KEY}).items():
        out += _sec("gateway", gw, {"key": key})
    return out


def _log_dir() -> str | None:
    """Where daemon logs go: HAIG_TESTBED_LOGS, else in the VM artifacts/vm/haig-logs
    (the host can read it while the suite runs), else the system's temporary directory."""
    d = os.environ.get("HAIG_TESTBED_LOGS")
    if not d and os.environ.get("HAIG_IN_VM") and Path("artifacts/vm").is_dir():
        d = "artifacts/vm/haig-logs"
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
    return d or None


@dataclass
class Haig:
    ns: Netns
    config: str
    name: str
    proc: subprocess.Popen | None = None
    path: Path | None = None
    log_path: Path | None = None
    api: str = "http://127.0.0.1:8990"
    extra_env: dict = field(default_factory=dict)

    def start(self) -> Haig:
        d = Path(tempfile.mkdtemp(prefix=f"haig-{self.name}-", dir=_log_dir()))
        self.path = d / "haig.conf"
        self.path.write_text(self.config)
        self.log_path = d / "haig.log"
        env = dict(os.environ, HAIG_LOG_TIMESTAMPS="1", **self.extra_env)
        self.proc = self.ns.popen([sys.executable, "-m", "haig", "run", "-c", str(self.path)],
                                  stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT, env=env)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def status(self) -> dict:
        return json.loads(self._get("/api/v1/status"))

    def events(self) -> list[dict]:
        return json.loads(self._get("/api/v1/events?since=0"))["events"]

    def _get(self, path: str) -> str:
        return self._request(urllib.request.Request(self.api + path))

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.api + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            return json.loads(self._request(req))
        except RuntimeError as e:
            return {"error": str(e)}

    def _request(self, req: urllib.request.Request) -> str:
        # The API listens on loopback inside the daemon's namespace: make the socket
        # there (setns on this thread) rather than starting a Python per call, which
        # costs 5-15 s under emulation.
        try:
            with self.ns.enter(), urllib.request.urlopen(req, timeout=10) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{self.name}: API {req.full_url} answered {e.code}: {e.read()[:300]!r}") from e
        except (OSError, urllib.error.URLError) as e:
            raise RuntimeError(f"{self.name}: API {req.full_url} failed: {e}") from e

    def wait_for(self, pred, timeout: float = 60, what: str = "condition") -> dict:
        """Poll the status until pred(status). `timeout` counts from when the daemon's
        API first answers: Python's start-up alone takes 10-60 s in a contended TCG VM,
        and a bound on haig's behaviour must not be spent on it (at most STARTUP_S)."""
        start = time.monotonic()
        deadline = start + STARTUP_S + timeout
        last: dict = {}
        answered = False
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                last = self.status()
                if not answered:
                    answered = True
                    deadline = min(deadline, time.monotonic() + timeout)
                if pred(last):
                    return last
            except (RuntimeError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}: {what} not reached in {timeout}s; last status "
                           f"{json.dumps(last)[:1500]}\nlog:\n{self.log()[-3000:]}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def hup(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


def relayed(topo: Topology, name: str, port: int, **kw) -> Service:
    """A service from the client LAN (gateway side) to the server behind the endpoint."""
    return Service(name, f"{topo.gw_lan_addr}:{port}", f"{topo.server_addr}:{port}", **kw)


class Started(list):
    """The daemons a test started, stopped in reverse by `stop_all` (the tests' fixture)."""

    def start(self, ns, config: str, name: str, **kw) -> Haig:
        h = Haig(ns, config, name, **kw).start()
        self.append(h)
        return h

    def endpoint(self, topo: Topology, port: int, services: list[Service], name: str = "ep", **kw) -> Haig:
        return self.start(topo.ep, endpoint_config(topo, port, services, **kw), name)

    def gateway(self, topo: Topology, port: int, services: list[Service], name: str = "gw",
                api_port: int | None = None, **kw) -> Haig:
        """`api_port`: its own API (more than one gateway in the gw namespace)."""
        if api_port is None:
            return self.start(topo.gw, gateway_config(topo, port, services, **kw), name)
        kw["main"] = {**kw.get("main", {}), "api_listen": f"127.0.0.1:{api_port}"}
        return self.start(topo.gw, gateway_config(topo, port, services, **kw), name,
                          api=f"http://127.0.0.1:{api_port}")

    def pair(self, topo: Topology, port: int, services: list[Service], **gw_kw) -> tuple[Haig, Haig]:
        """An endpoint, then a gateway for it: (gw, ep)."""
        ep = self.endpoint(topo, port, services)
        return self.gateway(topo, port, services, **gw_kw), ep

    def stop_all(self, tail: int = 4000) -> None:
        for p in reversed(self):
            p.stop()
            print(f"--- {p.name} log ---\n{p.log()[-tail:]}")  # shown by pytest for a failing test only
        self.clear()


def assoc_up(st: dict) -> bool:
    return any(a.get("state") == "up" for a in st.get("associations", []))


def paths_active(st: dict, n: int = 2) -> bool:
    return assoc_up(st) and sum(1 for u in st.get("uplinks", []) if u.get("state") == "active") >= n
