"""netifd: status → uplink facts (pure), and the watcher driven by recorded netifd
replies and events through a fake ubus backend."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from haig.adapters.netifd import NetifdUnavailable, NetifdWatcher, UbusCliBackend, parse_cli_line
from haig.config.model import Uplink
from haig.core.netifd_facts import FactsDiff, endpoint_family, facts_from_status

FIX = json.loads((Path(__file__).parent.parent / "fixtures" / "netifd" / "status.json").read_text())
BOUND = 5.0


# -- pure ------------------------------------------------------------------------------


def test_pppoe_status_gives_l3_device_address_and_peer_as_next_hop():
    f = facts_from_status("wan", FIX["pppoe_up"])
    assert (f.up, f.device, f.local_address, f.nexthop) == (True, "pppoe-wan", "100.64.7.2", "10.64.64.64")
    assert f.reason == "netifd: wan (pppoe-wan) up, local address 100.64.7.2 via 10.64.64.64"


def test_lte_status_skips_the_connected_route_for_the_default_one():
    f = facts_from_status("wwan", FIX["lte_up"])
    assert (f.up, f.device, f.local_address, f.nexthop) == (True, "wwan0", "10.181.22.5", "10.181.22.6")


def test_down_pending_and_failed_interfaces_are_down_with_why():
    assert facts_from_status("wan", FIX["wan_down"]).reason == "netifd: wan down"
    f = facts_from_status("wan", FIX["pppoe_reconnecting"])
    assert (f.up, f.local_address, f.reason) == (False, None, "netifd: wan down (coming up)")
    assert facts_from_status("wan", FIX["wan_failed"]).reason == "netifd: wan down, error NO_DEVICE"
    assert facts_from_status("nope", None).reason == "netifd has no interface nope"


def test_family_follows_the_endpoint_address():
    assert endpoint_family("2001:db8::7") == 6
    assert endpoint_family("198.51.100.7") == 4
    assert endpoint_family("endpoint.example.org") == 4
    f6 = facts_from_status("wan6", FIX["wan6_up"], family=6)
    assert (f6.up, f6.local_address, f6.nexthop) == (True, "2001:db8:10::5", "fe80::1")
    # an IPv4 endpoint over an IPv6-only interface: no usable address
    f4 = facts_from_status("wan6", FIX["wan6_up"], family=4)
    assert (f4.up, f4.reason) == (False, "netifd: no IPv4 address on wan6 (pppoe-wan)")


def test_diff_reports_changes_of_substance_only():
    d = FactsDiff()
    assert d.update("wan", facts_from_status("wan", FIX["pppoe_up"]))
    assert not d.update("wan", facts_from_status("wan", dict(FIX["pppoe_up"], uptime=9999)))
    assert d.update("wan", facts_from_status("wan", FIX["pppoe_new_address"]))


# -- watcher with a fake backend ---------------------------------------------------------


class FakeStream:
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.closed = False

    async def next(self):
        return await self.queue.get()

    def close(self):
        self.closed = True
        self.queue.put_nowait(None)


class FakeNetifd:
    """netifd + ubusd as the watcher sees them: statuses by interface, one event stream
    per subscription, and switches to make ubusd unreachable."""

    def __init__(self, statuses: dict) -> None:
        self.statuses = dict(statuses)
        self.streams: list[FakeStream] = []
        self.queries: list[str] = []
        self.down = False
        self.subscribed = asyncio.Event()

    async def status(self, iface):
        self.queries.append(iface)
        if self.down:
            raise NetifdUnavailable("Failed to connect to ubus")
        return self.statuses.get(iface)

    async def subscribe(self):
        if self.down:
            raise NetifdUnavailable("Failed to connect to ubus")
        s = FakeStream()
        self.streams.append(s)
        self.subscribed.set()
        return s

    def emit(self, recorded: dict) -> None:
        ((name, data),) = recorded.items()
        self.streams[-1].queue.put_nowait((name, data))

    def lose_ubusd(self) -> None:
        self.down = True
        self.subscribed.clear()
        self.streams[-1].queue.put_nowait(None)


class Gateway:
    """Records calls exactly as Gateway.on_uplink_facts receives them."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.devices: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    def on_uplink_facts(self, name: str, *, up: bool, local_address: str | None, reason: str) -> None:
        self.calls.append((name, up, local_address, reason))
        self.changed.set()

    def set_device(self, uplink: str, device: str) -> None:
        self.devices.append((uplink, device))

    async def next_call(self, n: int | None = None) -> tuple:
        """The call after the first n (default: the next one from now)."""
        n = len(self.calls) if n is None else n
        while len(self.calls) == n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), BOUND)
        return self.calls[n]


UPLINKS = [
    Uplink(name="dsl", interface="wan", endpoint_address="203.0.113.5"),
    Uplink(name="lte", interface="wwan", endpoint_address="198.51.100.7"),
    Uplink(name="fixed", device="eth9", endpoint_address="192.0.2.1"),  # no interface: not watched
]


async def started(netifd: FakeNetifd, gw: Gateway, **kw) -> tuple[NetifdWatcher, asyncio.Task]:
    w = NetifdWatcher(UPLINKS, gw.on_uplink_facts, backend=netifd, on_device=gw.set_device, **kw)
    task = asyncio.create_task(w.run())
    await asyncio.wait_for(w.wait_ready(), BOUND)
    return w, task


async def stopped(w: NetifdWatcher, task: asyncio.Task) -> None:
    w.stop()
    await asyncio.wait_for(task, BOUND)


def test_start_reports_every_watched_uplink_with_its_resolved_device():
    async def main():
        netifd = FakeNetifd({"wan": FIX["pppoe_up"], "wwan": FIX["lte_up"]})
        gw = Gateway()
        w, task = await started(netifd, gw)
        assert w.interfaces == ["wan", "wwan"]
        assert gw.devices == [("dsl", "pppoe-wan"), ("lte", "wwan0")]
        assert [c[:3] for c in gw.calls] == [("dsl", True, "100.64.7.2"), ("lte", True, "10.181.22.5")]
        await stopped(w, task)

    asyncio.run(main())


def test_pppoe_reconnect_with_a_new_address_rebinds_only_that_uplink():
    async def main():
        netifd = FakeNetifd({"wan": FIX["pppoe_up"], "wwan": FIX["lte_up"]})
        gw = Gateway()
        w, task = await started(netifd, gw)
        gw.calls.clear()
        # the daily PPPoE reconnect: ifdown, a negotiating session, ifup with a new address
        netifd.statuses["wan"] = FIX["pppoe_reconnecting"]
        netifd.emit(FIX["events"]["ifdown"])
        assert await gw.next_call() == ("dsl", False, None, "netifd: wan down (coming up)")
        netifd.statuses["wan"] = FIX["pppoe_new_address"]
        netifd.emit(FIX["events"]["ifup"])
        assert (await gw.next_call())[:3] == ("dsl", True, "100.64.9.77")
        assert all(c[0] == "dsl" for c in gw.calls)  # lte never told anything
        assert gw.devices == [("dsl", "pppoe-wan"), ("lte", "wwan0")]  # same device: not re-sent
        await stopped(w, task)

    asyncio.run(main())


def test_lte_reattach_seen_from_the_update_notification_without_a_query():
    async def main():
        netifd = FakeNetifd({"wan": FIX["pppoe_up"], "wwan": FIX["lte_up"]})
        gw = Gateway()
        w, task = await started(netifd, gw)
        asked = len(netifd.queries)
        netifd.emit({"interface.update": dict(FIX["lte_reattached"], interface="wwan")})
        assert (await gw.next_call())[:3] == ("lte", True, "10.77.3.14")
        assert len(netifd.queries) == asked  # the notification carried the status
        # another interface's event is ignored (no query, no call)
        netifd.emit(FIX["events"]["ifdown_lan"])
        netifd.emit({"interface.update": dict(FIX["lte_reattached"], interface="wwan", uptime=9)})
        await asyncio.sleep(0.05)
        assert len(netifd.queries) == asked and len(gw.calls) == 3
        await stopped(w, task)

    asyncio.run(main())


def test_unknown_interface_is_down_and_configured_device_is_not_overridden():
    async def main():
        netifd = FakeNetifd({"wan": FIX["pppoe_up"]})
        gw = Gateway()
        ups = [Uplink(name="dsl", interface="wan", device="pppoe-wan", endpoint_address="203.0.113.5"),
               Uplink(name="lte", interface="wwan", endpoint_address="198.51.100.7")]
        w = NetifdWatcher(ups, gw.on_uplink_facts, backend=netifd, on_device=gw.set_device)
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(w.wait_ready(), BOUND)
        assert gw.devices == []
        assert gw.calls[1] == ("lte", False, None, "netifd has no interface wwan")
        await stopped(w, task)

    asyncio.run(main())


def test_lost_ubusd_backs_off_resubscribes_and_catches_up():
    async def main():
        netifd = FakeNetifd({"wan": FIX["pppoe_up"], "wwan": FIX["lte_up"]})
        gw = Gateway()
        w, task = await started(netifd, gw, retry_s=0.01, retry_max_s=0.05)
        netifd.lose_ubusd()
        await asyncio.sleep(0.1)
        assert w.resyncs == 1 and w.errors >= 1  # the stream ended, then connects failed
        # ubusd back, and the address changed while nobody was listening
        netifd.statuses["wan"] = FIX["pppoe_new_address"]
        n = len(gw.calls)
        netifd.down = False
        await asyncio.wait_for(netifd.subscribed.wait(), BOUND)
        assert (await gw.next_call(n))[:3] == ("dsl", True, "100.64.9.77")
        assert len(netifd.streams) == 2 and netifd.streams[0].closed
        await stopped(w, task)

    asyncio.run(main())


def test_poll_catches_a_change_no_event_announced():
    async def main():
        netifd = FakeNetifd({"wan": FIX["pppoe_up"], "wwan": FIX["lte_up"]})
        gw = Gateway()
        w, task = await started(netifd, gw, poll_s=0.02)
        netifd.statuses["wwan"] = FIX["lte_reattached"]
        assert (await gw.next_call())[:3] == ("lte", True, "10.77.3.14")
        await stopped(w, task)

    asyncio.run(main())


def test_a_failing_callback_does_not_stop_the_watcher():
    async def main():
        netifd = FakeNetifd({"wan": FIX["pppoe_up"]})
        seen = []

        def on_facts(name, **kw):
            seen.append(kw["local_address"])
            raise RuntimeError("consumer bug")

        w = NetifdWatcher(UPLINKS[:1], on_facts, backend=netifd)
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(w.wait_ready(), BOUND)
        netifd.statuses["wan"] = FIX["pppoe_new_address"]
        netifd.emit(FIX["events"]["ifup"])
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        assert seen == ["100.64.7.2", "100.64.9.77"]
        await stopped(w, task)

    asyncio.run(main())


# -- the `ubus` CLI backend, against a stand-in `ubus` script ------------------------------


def test_cli_lines_parse_as_ubus_prints_them():
    assert parse_cli_line('{ "network.interface": { "action": "ifup", "interface": "wan" } }\n') == (
        "network.interface", {"action": "ifup", "interface": "wan"})
    assert parse_cli_line("Command failed: Not found") is None


@pytest.fixture
def fake_ubus(tmp_path, monkeypatch):
    status = tmp_path / "wan.json"
    status.write_text(json.dumps(FIX["pppoe_up"]))
    script = tmp_path / "ubus"
    script.write_text(f"""#!/bin/sh
[ "$1" = -t ] && shift 2
case "$1 $2" in
  "call network.interface.wan") cat {status} ;;
  "call "*) echo "Command failed: Not found" >&2; exit 4 ;;
  "listen network.interface") echo '{{ "network.interface": {{ "action": "ifdown", "interface": "wan" }} }}' ;;
  "subscribe network.interface") exit 1 ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_cli_backend_queries_status_and_streams_events(fake_ubus):
    async def main():
        b = UbusCliBackend()
        assert (await b.status("wan"))["l3_device"] == "pppoe-wan"
        assert await b.status("nope") is None
        stream = await b.subscribe()
        assert await asyncio.wait_for(stream.next(), BOUND) == (
            "network.interface", {"action": "ifdown", "interface": "wan"})
        assert await asyncio.wait_for(stream.next(), BOUND) is None  # `listen` ended: ubusd gone
        stream.close()
        await asyncio.sleep(0)

    asyncio.run(main())


def test_cli_backend_without_ubus_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    async def main():
        with pytest.raises(NetifdUnavailable, match="no `ubus` command"):
            await UbusCliBackend().status("wan")
        # not OpenWrt: the watcher says so once and returns instead of retrying forever
        calls = []
        w = NetifdWatcher(UPLINKS, lambda *a, **k: calls.append(a))
        await asyncio.wait_for(w.run(), BOUND)
        assert calls == [] and w.errors == 0

    asyncio.run(main())
