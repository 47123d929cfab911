"""LinkWatcher: netlink link/route/address events → uplink up/down, on the asyncio loop.

One socket joined to the multicast groups receives events; a second socket does the
dumps (requests and events on one socket interleave badly). The event socket is bound
*before* the dump so nothing falls between dump and subscription. When the kernel
drops events (ENOBUFS: our receive buffer overflowed) the view can no longer be
trusted: the watcher reopens both sockets and dumps again (a resync) instead of dying.
Needs pyroute2 >= 0.9 (AsyncIPRoute); the parsing and the tracker do not.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .facts import AF_INET, Fact, fact_from_msg, facts_from_msgs
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
    ) -> None:
        self.uplinks = list(uplinks)
        self.netns = netns
        self.rcvbuf = rcvbuf
        self.retry_delay = retry_delay
        self.tracker = LinkTracker(self.uplinks)
        self.resyncs = 0  # times the view was rebuilt after lost events (observability, tests)
        self.errors = 0  # other failures (socket could not be opened...), retried after retry_delay
        self._stopping = False  # one-shot: stop() before run() makes run() return at once
        self._pending_resync = False
        self._events: Any = None
        self._on_change: OnChange | None = None
        self._ready = asyncio.Event()

    # -- public ----------------------------------------------------------------------

    async def run(self, on_change: OnChange) -> None:
        """Watch until stop(). on_change(uplink, up, reason) is called for the initial
        state of every uplink and then for each change (from the event loop's thread)."""
        try:
            from pyroute2 import AsyncIPRoute  # noqa: F401
        except ImportError as e:  # pyroute2 0.7 (OpenWrt's feed today) has no asyncio API
            raise RuntimeError("LinkWatcher needs pyroute2 >= 0.9 (AsyncIPRoute)") from e
        self._on_change = on_change
        while not self._stopping:
            try:
                await self._session()
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
        from pyroute2 import AsyncIPRoute

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
        if events is not None:
            try:
                events.close()
            except Exception as e:
                log.debug("closing netlink socket: %s", e)
