"""NetifdWatcher: OpenWrt's netifd → each uplink's device, local address and up/down, live.

An uplink names a logical interface (`wan`); its Linux device (`pppoe-wan`), address
and next hop change at every PPPoE reconnect or LTE re-attach. netifd announces:

* the `network.interface` ubus event `{"action": "ifup"|"ifdown", "interface": ...}`
  (interface up/down only), and
* the `interface.update` / `interface.down` notifications of the `network.interface`
  object, carrying the full status (also address-only changes: a DHCP lease with a new
  address, a new IPv6 prefix).

The watcher listens to both, re-queries `network.interface.<name> status` after a bare
event, polls every `poll_s` as a safety net (a lost notification, a `ubus` without
`subscribe`), and calls `on_facts(uplink, up=..., local_address=..., reason=...)` —
the gateway's `on_uplink_facts` — only when an uplink's facts change. When the device
changes and the uplink has no `device` configured, `on_device(uplink, device)` is
called first (the netlink LinkWatcher then watches that device).

The ubus side is a thin backend (`UbusCliBackend`: the `ubus` command-line tool of
every OpenWrt image, in subprocesses, so it never shares python-ubus' one global,
thread-bound connection with the ubus surface). Tests drive a fake backend.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from haig.core.netifd_facts import (
    FactsDiff,
    UplinkFacts,
    endpoint_family,
    event_interface,
    facts_from_status,
    status_in_notification,
)

log = logging.getLogger(__name__)

EVENT = "network.interface"  # the event name and the notifying object's name
UBUS_STATUS_NOT_FOUND = 4  # `ubus call` exit status for an object that does not exist

OnFacts = Callable[..., None]  # (uplink, *, up, local_address, reason) -> None
OnDevice = Callable[[str, str], None]


class NetifdUnavailable(Exception):
    """ubusd or netifd cannot be asked right now (restarting, not running)."""


class EventStream(Protocol):
    async def next(self) -> tuple[str, dict[str, Any]] | None:
        """The next (event or notification name, data); None once the stream is lost."""
        ...

    def close(self) -> None: ...


class NetifdBackend(Protocol):
    async def status(self, interface: str) -> dict[str, Any] | None:
        """`network.interface.<name> status`; None when netifd has no such interface.
        Raises NetifdUnavailable when it cannot be asked."""
        ...

    async def subscribe(self) -> EventStream:
        """Start receiving netifd's events (before the first status query, so a change
        between query and subscription is not missed)."""
        ...


class NetifdWatcher:
    def __init__(
        self,
        uplinks: Sequence[Any],
        on_facts: OnFacts,
        *,
        backend: NetifdBackend | None = None,
        on_device: OnDevice | None = None,
        poll_s: float = 30.0,
        retry_s: float = 1.0,
        retry_max_s: float = 30.0,
    ) -> None:
        # interface -> [(uplink name, endpoint family, device configured?)]
        self._by_iface: dict[str, list[tuple[str, int, bool]]] = {}
        for u in uplinks:
            if u.interface:
                entry = (u.name, endpoint_family(u.endpoint_address), bool(u.device))
                self._by_iface.setdefault(u.interface, []).append(entry)
        self.on_facts = on_facts
        self.on_device = on_device
        self.backend = backend or UbusCliBackend()
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.diff = FactsDiff()
        self.errors = 0  # times netifd/ubusd could not be reached (then retried with back-off)
        self.resyncs = 0  # event stream lost and re-subscribed
        self._devices: dict[str, str] = {}  # uplink -> device last told to on_device
        self._stopping = False
        self._stream: EventStream | None = None
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()

    # -- public ----------------------------------------------------------------------

    @property
    def interfaces(self) -> list[str]:
        return list(self._by_iface)

    def facts(self) -> dict[str, UplinkFacts]:
        """uplink -> last facts known."""
        out = {}
        for entries in self._by_iface.values():
            for name, _, _ in entries:
                f = self.diff.get(name)
                if f is not None:
                    out[name] = f
        return out

    async def wait_ready(self) -> None:
        """Until every interface was queried once."""
        await self._ready.wait()

    def stop(self) -> None:
        self._stopping = True
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    async def run(self) -> None:
        """Watch until stop(). Never raises for ubus trouble: it backs off and retries."""
        if not self._by_iface:
            self._ready.set()
            return
        if not getattr(self.backend, "available", lambda: True)():
            log.info("netifd: no `ubus` command (not OpenWrt): uplinks are not resolved through netifd")
            self._ready.set()
            return
        delay = self.retry_s
        while not self._stopping:
            poller: asyncio.Task | None = None
            try:
                self._stream = stream = await self.backend.subscribe()
                await self.refresh_all()
                self._ready.set()
                delay = self.retry_s  # reached netifd: the next loss starts the back-off anew
                poller = asyncio.create_task(self._poll())
                while (item := await stream.next()) is not None:
                    await self.handle(*item)
                if not self._stopping:
                    self.resyncs += 1
                    log.warning("netifd: ubus event stream lost; re-subscribing")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # ubusd restarting, `ubus` missing, a netifd oddity
                if self._stopping:
                    break
                self.errors += 1
                log.warning("netifd: %s; retrying in %.0f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
            finally:
                if poller is not None:
                    poller.cancel()
                stream, self._stream = self._stream, None
                if stream is not None:
                    stream.close()

    # -- one step (tests call these directly) -----------------------------------------

    async def handle(self, event: str, data: dict[str, Any]) -> None:
        iface = event_interface(event, data)
        if iface not in self._by_iface:
            return
        status = status_in_notification(event, data)
        if status is not None:
            self._deliver(iface, status)
        else:
            await self.refresh(iface)

    async def refresh(self, iface: str) -> None:
        async with self._lock:  # one query at a time: answers are applied in order
            self._deliver(iface, await self.backend.status(iface))

    async def refresh_all(self) -> None:
        for iface in self._by_iface:
            await self.refresh(iface)

    # -- internals -------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.refresh_all()
            except NetifdUnavailable as e:
                log.debug("netifd poll: %s", e)

    def _deliver(self, iface: str, status: dict[str, Any] | None) -> None:
        for name, family, device_configured in self._by_iface[iface]:
            facts = facts_from_status(iface, status, family)
            if not self.diff.update(name, facts):
                continue
            if (
                facts.device
                and not device_configured
                and self._devices.get(name) != facts.device
                and self.on_device is not None
            ):
                self._devices[name] = facts.device
                self._call(self.on_device, name, facts.device)
            log.info("uplink %s: %s", name, facts.reason)
            self._call(
                self.on_facts, name, up=facts.up, local_address=facts.local_address, reason=facts.reason
            )

    @staticmethod
    def _call(fn: Callable[..., None], *args: Any, **kw: Any) -> None:
        try:
            fn(*args, **kw)
        except Exception:  # a consumer bug must not stop watching netifd
            log.exception("netifd watcher callback failed")


# ---------------------------------------------------------------- ubus CLI backend


class UbusCliBackend:
    """netifd over the `ubus` tool: `ubus call`, `ubus listen` and `ubus subscribe`."""

    def __init__(self, ubus: str = "ubus", timeout_s: int = 5) -> None:
        self.ubus = ubus
        self.timeout_s = timeout_s

    def available(self) -> bool:
        return shutil.which(self.ubus) is not None

    def _argv(self, *args: str) -> list[str]:
        exe = shutil.which(self.ubus)
        if exe is None:
            raise NetifdUnavailable(f"no `{self.ubus}` command (not OpenWrt?)")
        return [exe, "-t", str(self.timeout_s), *args]

    async def status(self, interface: str) -> dict[str, Any] | None:
        argv = self._argv("call", f"{EVENT}.{interface}", "status")
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode == UBUS_STATUS_NOT_FOUND:
            return None
        if proc.returncode != 0:
            raise NetifdUnavailable(
                f"ubus call {EVENT}.{interface} status: {err.decode(errors='replace').strip() or proc.returncode}"
            )
        try:
            data = json.loads(out or b"{}")
        except ValueError as e:
            raise NetifdUnavailable(f"ubus call {EVENT}.{interface} status: not JSON ({e})") from e
        return data if isinstance(data, dict) else None

    async def subscribe(self) -> EventStream:
        # `listen` gets the ifup/ifdown events; `subscribe` the object's notifications
        # (absent from old ubus builds: then polling covers address-only changes).
        listen = await self._spawn("listen", EVENT)
        try:
            notify = await self._spawn("subscribe", EVENT)
        except OSError:
            notify = None
        return _CliStream(listen, notify)

    async def _spawn(self, *args: str) -> asyncio.subprocess.Process:
        exe = shutil.which(self.ubus)
        if exe is None:
            raise NetifdUnavailable(f"no `{self.ubus}` command (not OpenWrt?)")
        return await asyncio.create_subprocess_exec(
            exe, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )


def parse_cli_line(line: bytes | str) -> tuple[str, dict[str, Any]] | None:
    """One line of `ubus listen`/`ubus subscribe`: `{ "<name>": {...} }`."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or len(obj) != 1:
        return None
    ((name, data),) = obj.items()
    return (name, data) if isinstance(data, dict) else None


class _CliStream:
    def __init__(self, listen: asyncio.subprocess.Process, notify: asyncio.subprocess.Process | None) -> None:
        self.procs = [p for p in (listen, notify) if p is not None]
        self.queue: asyncio.Queue = asyncio.Queue()
        self.readers = [asyncio.ensure_future(self._read(p, p is listen)) for p in self.procs]

    async def _read(self, proc: asyncio.subprocess.Process, essential: bool) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            item = parse_cli_line(line)
            if item is not None:
                self.queue.put_nowait(item)
        if essential:  # `ubus listen` ended: ubusd is gone
            self.queue.put_nowait(None)
        else:
            log.info("netifd: `ubus subscribe` unavailable or ended; polling covers updates")

    async def next(self) -> tuple[str, dict[str, Any]] | None:
        return await self.queue.get()

    def close(self) -> None:
        for r in self.readers:
            r.cancel()
        for p in self.procs:
            if p.returncode is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
                asyncio.ensure_future(p.wait())  # reap it: no zombie per lost stream
