"""LinkWatcher / RouteReconciler on veth links (the VM kernel has veth; the host has not).

A veth end loses carrier when its peer goes down: that is the test bed's "link down"
fault, so this checks the same signal the daemon acts on. Plain `ip netns`/veth, no
topology helper; one namespace pair per test, removed in `finally`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time

import pytest

from haig.adapters.netlink import TABLE_BASE, LinkWatcher, RouteReconciler
from haig.config.model import Uplink

pytestmark = pytest.mark.vm

BOUND = 30.0  # a ceiling only: TCG emulation under load is slow; latency is printed
_seq = itertools.count()


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


@pytest.fixture
def pair():
    """gw namespace with veth `up0` (10.7.0.2/24) whose peer `up0p` (10.7.0.1) is in `isp`."""
    n = f"{os.getpid()}-{next(_seq)}"
    gw, isp = f"hgw-{n}", f"hisp-{n}"
    sh("ip", "netns", "add", gw)
    sh("ip", "netns", "add", isp)
    try:
        sh(
            "ip",
            "-n",
            gw,
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            "up0p",
            "netns",
            isp,
        )
        sh("ip", "-n", gw, "addr", "add", "10.7.0.2/24", "dev", "up0")
        sh("ip", "-n", isp, "addr", "add", "10.7.0.1/24", "dev", "up0p")
        for ns, dev in ((gw, "up0"), (isp, "up0p"), (gw, "lo"), (isp, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", gw, "route", "add", "default", "via", "10.7.0.1", "dev", "up0")
        yield gw, isp
    finally:
        sh("ip", "netns", "del", gw, check=False)
        sh("ip", "netns", "del", isp, check=False)


UPLINK = Uplink(name="wan", device="up0", endpoint_address="192.0.2.10", gateway="10.7.0.1")


def test_peer_down_is_carrier_loss_and_recovery(pair):
    gw, isp = pair

    async def main():
        q: asyncio.Queue = asyncio.Queue()
        w = LinkWatcher([UPLINK], netns=gw)
        task = asyncio.create_task(w.run(lambda *c: q.put_nowait((*c, time.monotonic()))))
        assert (await asyncio.wait_for(q.get(), BOUND))[:2] == ("wan", True)
        t0 = time.monotonic()
        sh("ip", "-n", isp, "link", "set", "up0p", "down")
        uplink, up, reason, t1 = await asyncio.wait_for(q.get(), BOUND)
        print(f"veth carrier loss reported after {(t1 - t0) * 1000:.1f} ms")
        assert (uplink, up, reason) == ("wan", False, "carrier lost on up0")
        sh("ip", "-n", isp, "link", "set", "up0p", "up")
        assert (await asyncio.wait_for(q.get(), BOUND))[:2] == ("wan", True)
        w.stop()
        await asyncio.wait_for(task, BOUND)

    asyncio.run(main())


def test_pinned_path_never_leaks_to_main_table_when_uplink_goes_down(pair):
    gw, _ = pair
    rr = RouteReconciler([UPLINK], netns=gw)
    assert rr.reconcile_sync().skipped == {}
    out = sh("ip", "-n", gw, "route", "get", "192.0.2.10").stdout.split()
    assert out[:6] == ["192.0.2.10", "via", "10.7.0.1", "dev", "up0", "table"]
    assert out[6] == str(TABLE_BASE)
    sh("ip", "-n", gw, "link", "set", "up0", "down")
    assert sh("ip", "-n", gw, "route", "get", "192.0.2.10", check=False).returncode != 0
    sh("ip", "-n", gw, "link", "set", "up0", "up")
    assert len(rr.reconcile_sync().changes) == 1  # only the flushed pin comes back
    assert rr.remove_all_sync().skipped == {}
