"""LinkWatcher: netlink link/route/address events → uplink up/down, on the asyncio loop.

One socket joined to the multicast groups receives events; a second socket does the
dumps (requests and events on one socket interleave badly). The event socket is bound
*before* the dump so nothing falls between dump and subscription. When the kernel
drops events (ENOBUFS: our receive buffer overflowed) the view can no longer be
trusted: the watcher reopens both sockets and dumps again (a resync) instead of dying.

Two netlink back ends, chosen at run time (`api="auto"`):

* pyroute2 >= 0.9: `AsyncIPRoute` on the daemon's loop;
* pyroute2 0.7 (what every OpenWrt release's packages feed ships, no asyncio API): the
  synchronous `IPRoute` in one reader thread that waits on the socket with a short
  select() timeout (so stop() never hangs on a blocked recv) and hands messages to the
  loop with call_soon_threadsafe. The tracker stays on the loop either way.

The device of an uplink may be learnt at run time (netifd's l3_device for an uplink
that names only an interface): `set_device(uplink, device)` re-evaluates at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import select
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .facts import AF_INET, Fact, fact_from_msg, facts_from_msgs
from .pyroute2_slim import async_iproute_class, iproute_class, popns, pushns
from .tracker import Change, LinkTracker, UplinkState

log = logging.getLogger(__name__)

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE

OnChange = Callable[[str, bool, str], None]


class Resync(Exception):
    """The event stream lost messages: dump again."""


def _is_overrun(exc: BaseException) -> bool:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    return code == errno.ENOBUFS


class LinkWatcher:
    def __init__(
        self,
        uplinks: Sequence[Any],
        *,
        netns: str | None = None,
        rcvbuf: int = 1 << 20,
        retry_delay: float = 1.0,
        api: str = "auto",
    ) -> None:
        if api not in ("auto", "async", "sync"):
            raise ValueError(f"api must be auto, async or sync, not {api!r}")
        self.uplinks = list(uplinks)
        self.netns = netns
        self.rcvbuf = rcvbuf
        self.retry_delay = retry_delay
        self.api = api
        self.tracker = LinkTracker(self.uplinks)
        self.resyncs = 0  # times the view was rebuilt after lost events (observability, tests)
        self.errors = 0  # other failures (socket could not be opened...), retried after retry_delay
        self._stopping = False  # one-shot: stop() before run() makes run() return at once
        self._pending_resync = False
        self._events: Any = None
        self._on_change: OnChange | None = None
        self._ready = asyncio.Event()
        self._reader_stop: threading.Event | None = None  # the sync reader thread's stop flag

    # -- public ----------------------------------------------------------------------

    async def run(self, on_change: OnChange) -> None:
        """Watch until stop(). on_change(uplink, up, reason) is called for the initial
        state of every uplink and then for each change (from the event loop's thread)."""
        if self.api == "auto":
            self.api = "async" if has_async_api() else "sync"
        log.info("netlink watcher: pyroute2 %s API", self.api)
        self._on_change = on_change
        while not self._stopping:
            try:
                await (self._session() if self.api == "async" else self._session_sync())
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self._stopping:
                    break
                if _is_overrun(e) or isinstance(e, Resync) or self._pending_resync:
                    self._pending_resync = False
                    self.resyncs += 1
                    log.warning("netlink events lost (%s): resynchronising", e)
                    continue
                log.error("netlink watcher failed (%s); reopening in %.1fs", e, self.retry_delay)
                self.errors += 1
                await asyncio.sleep(self.retry_delay)
            finally:
                self._close()

    def stop(self) -> None:
        self._stopping = True
        self._close()

    def set_device(self, uplink: str, device: str) -> None:
        """Watch `uplink` on `device` from now on (netifd resolved it); emits the change."""
        if not any(u.name == uplink for u in self.uplinks):
            return
        self.uplinks = [dataclasses.replace(u, device=device) if u.name == uplink else u for u in self.uplinks]
        self._emit(self.tracker.set_device(uplink, device))

    def current(self) -> dict[str, tuple[bool, str, str]]:
        """uplink -> (up, reason, local_address); local_address "" when unknown."""
        return {n: (s.up, s.reason, s.local_address) for n, s in self.tracker.states().items()}

    def states(self) -> dict[str, UplinkState]:
        return self.tracker.states()

    async def wait_ready(self) -> None:
        """Until the first dump has been processed (initial states known)."""
        await self._ready.wait()

    def request_resync(self) -> None:
        """Drop the current sockets and dump again (what an overrun triggers)."""
        if self._events is not None:
            self._pending_resync = True
            self._close()

    # -- internals -------------------------------------------------------------------

    async def _session(self) -> None:
        AsyncIPRoute = async_iproute_class()  # noqa: N806 (a class)
        kw = {"netns": self.netns} if self.netns else {}
        self._events = events = AsyncIPRoute(rcvbuf=self.rcvbuf, **kw)
        await events.bind(GROUPS)
        async with AsyncIPRoute(**kw) as req:
            msgs = [m async for m in await req.link("dump")]
            msgs += [m async for m in await req.addr("dump", family=AF_INET)]
            msgs += [m async for m in await req.route("dump", family=AF_INET)]
        self._emit(self.tracker.load(facts_from_msgs(msgs)))
        self._ready.set()
        while not self._stopping:
            got = False
            async for msg in events.get():
                got = True
                fact = fact_from_msg(msg)
                if fact is not None:
                    self._handle(fact)
            if self._pending_resync:
                self._pending_resync = False
                raise Resync("requested")
            if not got and not self._stopping:
                # the socket was closed under us (terminator): start over
                raise Resync("event socket closed")

    async def _session_sync(self) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        stop = self._reader_stop = threading.Event()
        self._events = stop  # a session is open (request_resync checks it)

        def post(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(inbox.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass

        reader = threading.Thread(
            target=_sync_reader, args=(self.netns, self.rcvbuf, stop, post), name="haig-netlink", daemon=True
        )
        reader.start()
        try:
            while True:
                kind, payload = await inbox.get()
                if kind == "dump":
                    self._emit(self.tracker.load(facts_from_msgs(payload)))
                    self._ready.set()
                elif kind == "msgs":
                    for msg in payload:
                        fact = fact_from_msg(msg)
                        if fact is not None:
                            self._handle(fact)
                elif kind == "error":
                    raise payload
                else:  # "end": the reader stopped (stop() or request_resync())
                    if self._pending_resync:
                        self._pending_resync = False
                        raise Resync("requested")
                    if not self._stopping:
                        raise Resync("event socket closed")
                    return
        finally:
            stop.set()
            await asyncio.to_thread(reader.join, 5.0)

    def _handle(self, fact: Fact) -> None:
        self._emit(self.tracker.apply(fact))

    def _emit(self, changes: list[Change]) -> None:
        for c in changes:
            log.info("uplink %s %s: %s", c.uplink, "up" if c.up else "down", c.reason)
            if self._on_change is not None:
                try:
                    self._on_change(c.uplink, c.up, c.reason)
                except Exception:  # a consumer bug must not stop link watching
                    log.exception("on_change callback failed")

    def _close(self) -> None:
        events, self._events = self._events, None
        if isinstance(events, threading.Event):  # the sync reader closes its own sockets
            events.set()
        elif events is not None:
            try:
                events.close()
            except Exception as e:
                log.debug("closing netlink socket: %s", e)


def has_async_api() -> bool:
    try:
        return async_iproute_class() is not None  # None: pyroute2 0.7 (OpenWrt's packages feed)
    except ImportError:
        return False


def _open_ipr(netns: str | None, **kw: Any) -> Any:
    """A synchronous IPRoute in `netns`: the socket is created inside the namespace (by
    this thread, which enters and leaves it), so it needs neither 0.9's IPRoute(netns=)
    nor 0.7's NetNS proxy process."""
    IPRoute = iproute_class()  # noqa: N806 (a class)
    if not netns:
        return IPRoute(**kw)
    pushns(netns)
    try:
        return IPRoute(**kw)
    finally:
        popns()


def _sync_reader(netns: str | None, rcvbuf: int, stop: threading.Event, post: Callable[[tuple], None]) -> None:
    """Reader thread of the sync back end: subscribe, dump, then forward events."""
    events = req = None
    try:
        events = _open_ipr(netns, rcvbuf=rcvbuf)
        events.bind(GROUPS)  # before the dump: nothing falls in between
        req = _open_ipr(netns)
        msgs = list(req.link("dump"))
        msgs += list(req.addr("dump", family=AF_INET))
        msgs += list(req.route("dump", family=AF_INET))
        req.close()
        req = None
        post(("dump", msgs))
        fd = events.fileno()
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.25)
            if ready:
                post(("msgs", list(events.get())))
    except Exception as e:
        if not stop.is_set():
            post(("error", e))
    finally:
        for sock in (req, events):
            if sock is not None:
                try:
                    sock.close()
                except Exception as e:
                    log.debug("closing netlink socket: %s", e)
        post(("end", None))
