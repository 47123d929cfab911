"""Memory benchmark (prints numbers; not a test): resident memory per role and
configuration, against the router budget (gateway daemon <= 25 MiB RSS).

Two measures:

* import RSS (host or VM, no SCTP needed): a fresh interpreter imports what each
  role loads and prints its VmRSS, next to an empty interpreter (the baseline every
  Python process pays). Also the biggest imports (python -X importtime) of the
  gateway with the API off.
* running RSS (VM only: needs kernel SCTP): the real daemons on the test-bed topology,
  gateway with the API off and on, endpoint; RSS after the association is up (API on)
  or after a settle time (API off: nothing to poll but the log).

    python -m tests.bench memory [--import-only] [--pyroute2=DIR] [--runs=N]   # host
    ./dev bench memory [--running-only]                                        # in the VM

--pyroute2=DIR puts another pyroute2 first on the path (e.g. 0.7.x, what OpenWrt's
feed ships) for the import measure. Budget: see docs/openwrt.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BUDGET_MIB = 25.0
REPO = Path(__file__).resolve().parents[2]

_PRINT_RSS = (
    "import sys\n"
    "rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1]\n"
    "print(rss, len(sys.modules), int('flask' in sys.modules), int('pyroute2' in sys.modules))\n"
)

# What each role loads at run time (the daemon imports lazily by role and option);
# the netlink socket classes as the LinkWatcher loads them (pyroute2_slim).
NETLINK = "import haig.adapters.netlink.pyroute2_slim as p; p.iproute_class(); p.async_iproute_class()"
GATEWAY = ["import haig.daemon", "import haig.relay.gateway", "import haig.adapters.netlink",
           "import haig.adapters.netifd", "import haig.surfaces.ubus_adapter", NETLINK]
ROLES: dict[str, list[str]] = {
    "python (empty)": [],
    "cli (haig status)": ["import haig.cli", "import haig.surfaces.cli"],
    "gateway, API off": GATEWAY,
    "gateway, API on": [*GATEWAY, "import haig.surfaces.api"],
    "gateway, full pyroute2": [*GATEWAY, "import pyroute2; pyroute2.IPRoute"],  # `from pyroute2 import IPRoute`
    "endpoint, API on": ["import haig.daemon", "import haig.relay.endpoint", "import haig.surfaces.api"],
}


def _env(pyroute2_dir: str | None) -> dict[str, str]:
    path = [str(REPO)] + ([pyroute2_dir] if pyroute2_dir else [])
    if pyroute2_dir:
        path.reverse()
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), PYTHONDONTWRITEBYTECODE="1")


# /usr/bin/haig blocks ssl and _hashlib for `haig run` (asyncio would load libssl and
# hashlib libcrypto, ~5 MiB, though the daemon never speaks TLS; the feed's pyroute2
# pulls in all of python3, python3-openssl included). "router" = as the wrapper runs it.
ROUTER_PRELUDE = (
    "import sys, importlib.util\n"
    "sys.modules['ssl'] = None\n"
    "if any(importlib.util.find_spec(m) for m in ('_sha2', '_sha256')):\n"
    "    sys.modules['_hashlib'] = None\n"
)  # what files/usr/bin/haig does for `haig run`


def import_rss(statements: list[str], pyroute2_dir: str | None = None, router: bool = True) -> dict:
    code = (ROUTER_PRELUDE if router else "") + "".join(f"{s}\n" for s in statements) + _PRINT_RSS
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(pyroute2_dir), timeout=120, cwd="/")
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else str(res.returncode)}
    rss, nmods, flask, pyroute2 = (int(x) for x in res.stdout.split())
    return {"rss_kib": rss, "modules": nmods, "flask": bool(flask), "pyroute2": bool(pyroute2)}


RUNS = 3


def median_import_rss(modules: list[str], pyroute2_dir: str | None, router: bool, runs: int | None = None) -> dict:
    runs = runs or RUNS
    samples = [import_rss(modules, pyroute2_dir, router) for _ in range(runs)]
    ok = [s for s in samples if "error" not in s]
    if not ok:
        return samples[0]
    out = dict(ok[0])
    out["rss_kib"] = sorted(s["rss_kib"] for s in ok)[len(ok) // 2]
    return out


def importtime(statements: list[str], top: int = 12, pyroute2_dir: str | None = None) -> list[tuple[int, str]]:
    """(cumulative µs, top-level package) of the costliest first-level imports."""
    code = ROUTER_PRELUDE + "".join(f"{s}\n" for s in statements)
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, env=_env(pyroute2_dir), timeout=120, cwd="/")
    per_pkg: dict[str, int] = {}
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:  # imported directly by the statements above or by haig
            pkg = m.group(3).split(".")[0]
            per_pkg[pkg] = per_pkg.get(pkg, 0) + int(m.group(1))
    return sorted(((us, pkg) for pkg, us in per_pkg.items()), reverse=True)[:top]


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def print_import_table(pyroute2_dir: str | None) -> dict:
    version = subprocess.run([sys.executable, "-c", "import pyroute2, importlib.metadata as m;"
                              "print(getattr(pyroute2, '__version__', None) or m.version('pyroute2'))"],
                             capture_output=True, text=True, env=_env(pyroute2_dir)).stdout.strip()
    print(f"-- import RSS (Python {sys.version.split()[0]}, pyroute2 {version}; median of {RUNS})")
    print("   router: as /usr/bin/haig runs the daemon (ssl, _hashlib blocked); host: plain python")
    print(f"{'role / configuration':24} {'router MiB':>10} {'over empty':>11} {'modules':>8} {'host MiB':>9}  flask")
    base = None
    results = {}
    for role, mods in ROLES.items():
        r = median_import_rss(mods, pyroute2_dir, router=True)
        h = median_import_rss(mods, pyroute2_dir, router=False)
        r["host_rss_kib"] = h.get("rss_kib")
        results[role] = r
        if "error" in r:
            print(f"{role:24} {'error':>10}  {r['error'][:90]}")
            continue
        if base is None:
            base = r["rss_kib"]
        print(f"{role:24} {_mib(r['rss_kib']):>10} {_mib(r['rss_kib'] - base):>11} {r['modules']:>8} "
              f"{_mib(h.get('rss_kib')):>9}  {'yes' if r['flask'] else 'no'}")
    gw = results.get("gateway, API off", {})
    if "rss_kib" in gw:
        print(f"gateway API off: {gw['rss_kib'] / 1024:.1f} MiB of the {BUDGET_MIB:.0f} MiB budget "
              f"({gw['rss_kib'] / 1024 / BUDGET_MIB:.0%}) before any running state")
    print("-- costliest imports, gateway API off (cumulative ms, first-level packages)")
    for us, pkg in importtime(ROLES["gateway, API off"], pyroute2_dir=pyroute2_dir):
        print(f"  {us / 1000:8.1f}  {pkg}")
    return results


# ------------------------------------------------------------------ running (VM)


def running_rss(settle_s: float = 30.0) -> dict:
    """RSS of the running daemons: the gateway with the API on first (its association is
    awaited through the API), then with it off (no API to ask: measured after the time
    the first one needed plus a margin, and only if it is still alive)."""
    from tests.testbed import topology
    from tests.testbed.haig_procs import (
        Haig,
        Service,
        endpoint_config,
        gateway_config,
        paths_active,
    )
    from tests.testbed.proc import rss_kib

    out: dict[str, float | str | None] = {}
    topo = topology.build()
    svc = [Service("echo", f"{topo.gw_lan_addr}:7001", f"{topo.server_addr}:7000")]
    ep = Haig(topo.ep, endpoint_config(topo, 8888, svc), "ep").start()
    try:
        took = settle_s
        for api in ("on", "off"):
            main = {"log_level": "warning", "api_listen": "127.0.0.1:8990" if api == "on" else "0"}
            gw = Haig(topo.gw, gateway_config(topo, 8888, svc, main=main), "gw").start()
            try:
                t0 = time.monotonic()
                if api == "on":
                    gw.wait_for(paths_active, 180, "association up with both paths active")
                    took = time.monotonic() - t0
                    out["endpoint, API on"] = rss_kib([ep.proc.pid])
                else:
                    time.sleep(took + 10)
                    if gw.proc.poll() is not None:
                        raise RuntimeError(f"gateway exited: {gw.log()[-2000:]}")
                time.sleep(2)
                out[f"gateway, API {api}"] = rss_kib([gw.proc.pid])
            except Exception as e:  # one failed configuration must not hide the others
                out[f"gateway, API {api}"] = f"failed: {str(e)[:200]}"
            finally:
                gw.stop()
    finally:
        ep.stop()
        topo.teardown()
    return out


def _has_sctp() -> bool:
    import socket

    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132).close()
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    global RUNS
    argv = argv or []
    pyroute2_dir = next((a.split("=", 1)[1] for a in argv if a.startswith("--pyroute2=")), None)
    RUNS = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--runs=")), RUNS))
    report: dict = {}
    if "--running-only" not in argv:
        report["import"] = print_import_table(pyroute2_dir)
    if "--import-only" in argv or not _has_sctp():
        print("-- running RSS: skipped (needs kernel SCTP: run in the VM with ./dev bench memory)")
    else:
        print("-- running RSS (daemons on the test-bed topology, association up)")
        run = running_rss()
        report["running"] = run
        print("   (python -m haig as the test bed starts it: plain python, ssl loaded, the dev venv's pyroute2)")
        for role, kib in run.items():
            if isinstance(kib, str):
                print(f"{role:24} {kib}")
                continue
            verdict = "" if not role.startswith("gateway, API off") else \
                f"  budget {BUDGET_MIB:.0f} MiB: {'ok' if kib and kib / 1024 <= BUDGET_MIB else 'OVER'}"
            print(f"{role:24} {_mib(kib):>8} MiB{verdict}")
    art = REPO / "artifacts/bench"
    if art.is_dir() and os.access(art, os.W_OK):
        (art / "memory.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
