"""LinkWatcher's pyroute2-0.7 back end (sync IPRoute in a reader thread) against a fake
IPRoute fed with recorded messages: dump, events, a lost socket, set_device, stop.

The same path runs against the real kernel in test_netlink_host.py when pyroute2 0.7 is
on the path (`PYTHONPATH=<0.7 site> pytest tests/unit/test_netlink_host.py`)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from haig.adapters.netlink import watcher as watcher_mod
from haig.adapters.netlink.watcher import GROUPS, LinkWatcher
from haig.config.model import Uplink

REC = json.loads((Path(__file__).parent / "test_netlink_messages.json").read_text())
BOUND = 5.0


class FakeIPRoute:
    """pyroute2 0.7's sync IPRoute as the reader uses it: dumps, bind, fileno, get."""

    opened: list[FakeIPRoute] = []

    def __init__(self, **kw) -> None:
        self.kw = kw
        self.groups = None
        self.pending: list[list] = []
        self.closed = False
        self.r, self.w = socket.socketpair()  # readable when an event batch waits
        FakeIPRoute.opened.append(self)

    def bind(self, groups):
        self.groups = groups

    def link(self, cmd):
        return [m for m in REC["dump"] if m["event"] == "RTM_NEWLINK"]

    def addr(self, cmd, family):
        return [m for m in REC["dump"] if m["event"] == "RTM_NEWADDR"]

    def route(self, cmd, family):
        return [m for m in REC["dump"] if m["event"] == "RTM_NEWROUTE"]

    def fileno(self):
        return self.r.fileno()

    def push(self, msgs):
        self.pending.append(msgs)
        self.w.send(b"x")

    def get(self):
        self.r.recv(1)
        return tuple(self.pending.pop(0))

    def close(self):
        self.closed = True
        self.r.close()
        self.w.close()


@pytest.fixture
def fake_ipr(monkeypatch):
    FakeIPRoute.opened = []
    monkeypatch.setattr(watcher_mod, "_open_ipr", lambda netns, **kw: FakeIPRoute(**kw))
    return FakeIPRoute


async def until(cond):
    for _ in range(int(BOUND / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_sync_reader_dumps_follows_events_and_stops(fake_ipr):
    async def main():
        seen = []
        w = LinkWatcher([Uplink(name="wan", device="tapa")], api="sync", rcvbuf=4096)
        task = asyncio.create_task(w.run(lambda *c: seen.append(c)))
        await asyncio.wait_for(w.wait_ready(), BOUND)
        events = fake_ipr.opened[0]
        assert events.groups == GROUPS and events.kw == {"rcvbuf": 4096}
        assert fake_ipr.opened[1].closed  # the dump socket is not kept
        assert seen == [("wan", True, "tapa up, local address 10.1.0.2")]
        events.push(REC["carrier_lost"])
        await until(lambda: len(seen) == 2)
        assert seen[1] == ("wan", False, "carrier lost on tapa")
        w.stop()
        await asyncio.wait_for(task, BOUND)
        assert events.closed

    asyncio.run(main())


def test_sync_reader_error_reopens_and_set_device_reevaluates(fake_ipr):
    async def main():
        seen = []
        w = LinkWatcher([Uplink(name="dsl", interface="wan")], api="sync", retry_delay=0.01)
        task = asyncio.create_task(w.run(lambda *c: seen.append(c)))
        await asyncio.wait_for(w.wait_ready(), BOUND)
        assert seen == [("dsl", False, "device wan missing")]
        w.set_device("dsl", "tapa")  # what the netifd watcher does on l3_device
        assert seen[-1] == ("dsl", True, "tapa up, local address 10.1.0.2")
        first = fake_ipr.opened[0]
        first.get = lambda: (_ for _ in ()).throw(OSError(9, "socket went away"))
        first.w.send(b"x")
        await until(lambda: len(fake_ipr.opened) >= 4)  # reopened: events + dump again
        assert w.errors == 1 and first.closed
        w.stop()
        await asyncio.wait_for(task, BOUND)
        assert w.uplinks[0].device == "tapa"

    asyncio.run(main())


def test_slim_pyroute2_loads_the_socket_classes_without_the_whole_package():
    code = (
        "import sys\n"
        "from haig.adapters.netlink import pyroute2_slim as p\n"
        "ipr = p.iproute_class()\n"
        "n = len([m for m in sys.modules if m.startswith('pyroute2')])\n"
        "assert 'pyroute2.ndb.main' not in sys.modules and 'pyroute2.ipset' not in sys.modules, n\n"
        "import pyroute2\n"
        "full = pyroute2.IPRoute  # someone wanting the full package gets it, same class\n"
        "assert full is ipr and 'pyroute2.ndb.main' in sys.modules\n"
        "from pyroute2 import NDB  # noqa\n"
        "print(n)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) < 120  # the full package is ~160 modules


def test_slim_pyroute2_unblocks_ssl_for_a_pyroute2_that_needs_it():
    # /usr/bin/haig blocks ssl for the daemon; pyroute2 0.9 imports it at load time
    code = (
        "import sys\n"
        "sys.modules['ssl'] = None\n"
        "from haig.adapters.netlink import pyroute2_slim as p\n"
        "assert p.iproute_class() is not None\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
