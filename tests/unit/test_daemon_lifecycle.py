"""Daemon lifecycle on the host with stand-in relays: a failing relay is restarted (never
the process), reloads are serialised and all-or-nothing, a SIGHUP during start-up is
remembered instead of killing haig."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from haig import daemon as daemon_mod
from haig.config.model import Config, Main, Service, Uplink
from haig.daemon import Daemon

GW = Config(main=Main(role="gateway", gateway_id="home1", key="k" * 24, api_listen=""),
            uplinks=(Uplink("dsl", device="d0", endpoint_address="198.51.100.1"),),
            services=(Service("s", listen="127.0.0.1:7000"),))


class FakeRelay:
    instances: list[FakeRelay] = []
    fail_bind = False
    fail_runs = 0

    def __init__(self, cfg: Config) -> None:
        self.cfg, self.prepared, self.adopted, self.stopped, self.ran = cfg, False, False, False, False
        FakeRelay.instances.append(self)

    async def prepare(self, old=None) -> None:
        await asyncio.sleep(0.01)  # lets two reloads interleave if they were not serialised
        if FakeRelay.fail_bind:
            raise OSError(99, "Cannot assign requested address")
        self.prepared = True

    def adopt(self) -> None:
        self.adopted = True

    async def run(self) -> None:
        self.ran = True
        if FakeRelay.fail_runs > 0:
            FakeRelay.fail_runs -= 1
            raise RuntimeError("bug in the relay")
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def daemon(monkeypatch, tmp_path):
    FakeRelay.instances, FakeRelay.fail_bind, FakeRelay.fail_runs = [], False, 0
    cfgs = {"cfg": GW}
    monkeypatch.setattr(daemon_mod, "try_reload", lambda path, cur, role=None: (cfgs["cfg"], None))
    monkeypatch.setattr(Daemon, "_make_relay", lambda self, cfg: FakeRelay(cfg))
    monkeypatch.setattr(daemon_mod, "RELAY_STABLE_S", 0.0)
    d = Daemon(str(tmp_path / "haig"), GW)
    d.cfgs = cfgs
    return d


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_a_failing_relay_is_restarted_with_an_event(daemon, monkeypatch):
    FakeRelay.fail_runs = 2

    async def go():
        daemon._loop = asyncio.get_running_loop()
        daemon._start_relay()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(FakeRelay.instances) >= 3:
                break
        await daemon._stop_relay()

    monkeypatch.setattr(daemon_mod.Backoff, "next_delay", lambda self, links_up: 0.01)
    run(go())
    assert len(FakeRelay.instances) == 3 and all(r.stopped for r in FakeRelay.instances)
    evs = [e for e in daemon.status.events_since(0) if e["new"] == "restarting"]
    assert len(evs) == 2 and "bug in the relay" in evs[0]["reason"]


def test_unbindable_reload_keeps_the_old_relay_and_says_so(daemon):
    async def go():
        daemon._start_relay()
        old = daemon.relay
        FakeRelay.fail_bind = True
        daemon.cfgs["cfg"] = Config(main=GW.main, uplinks=GW.uplinks, services=(Service("s", listen="10.9.9.9:7000"),))
        with pytest.raises(ValueError, match="cannot bind"):
            await daemon._reload()
        assert daemon.relay is old and not old.stopped and daemon.cfg is GW
        await daemon._stop_relay()

    run(go())
    snap = daemon.status.snapshot(0)
    assert snap["config"]["ok"] is False and "cannot bind" in snap["config"]["message"]
    assert any(e["new"] == "rejected" for e in daemon.status.events_since(0))


def test_overlapping_reloads_leave_exactly_one_relay(daemon):
    async def go():
        daemon._start_relay()
        daemon.cfgs["cfg"] = Config(main=GW.main, uplinks=GW.uplinks, services=(Service("s", listen="127.0.0.1:7001"),))
        await asyncio.gather(daemon._reload(), daemon._reload())
        live = [r for r in FakeRelay.instances if not r.stopped]
        assert live == [daemon.relay] and daemon.relay.adopted
        await daemon._stop_relay()

    run(go())
    assert len(FakeRelay.instances) == 2  # the second reload saw no change


def test_sighup_during_start_up_does_not_kill_haig():
    code = ("import os, signal, time, haig.cli as c; os.kill(os.getpid(), signal.SIGHUP); "
            "time.sleep(0.1); print(c.take_early_hup(), c.take_early_hup())")
    # SIGHUP at its default in the child (a run under nohup inherits SIG_IGN, which haig keeps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ), check=False,
                         preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]
