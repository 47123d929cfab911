"""What both role drivers do around their core: run inputs under a guard (a bug ends
`run()` so the daemon restarts the relay, never a half-updated core), pump the core's
outputs after each input, publish its events and drop counts, and keep its one timer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from haig.core.datapath import Outgoing
from haig.core.status import StatusModel
from haig.relay.common import Clock, publish
from haig.relay.sctp_driver import CoreTimer

log = logging.getLogger("haig")


def _nothing() -> None:
    pass


class RoleDriver:
    core: Any  # GatewayLink or EndpointCore

    def __init__(self, status: StatusModel, clock: Clock) -> None:
        self.status, self.clock = status, clock
        self._timer: CoreTimer | None = None
        self._failed: asyncio.Future | None = None
        self._stopping = False
        self._in_pump = False

    def _start_driver(self) -> None:
        self._failed = asyncio.get_running_loop().create_future()
        self._timer = CoreTimer(self.clock.mono, lambda: self.guard(self._on_timer))

    async def _serve(self) -> None:
        """Pump once, then wait: only a bug ends it (raised here; the daemon restarts us)."""
        self._pump()
        assert self._failed is not None
        await self._failed

    def _begin_stop(self) -> bool:
        """False if stopping already; else stops the timer (the role closes the rest)."""
        if self._stopping:
            return False
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        return True

    def guard(self, fn, *args) -> None:
        """Run a core input and pump its outputs (unless a pump is running: it takes them)."""
        if self._stopping:
            return
        try:
            fn(*args)
            if not self._in_pump:
                self._pump()
        except Exception as e:
            self._fail(e)

    def after_batch(self) -> None:
        """A batch of inputs was taken without pumps (`_in_batch`): pump their outputs once."""
        self.guard(_nothing)

    def _fail(self, e: Exception) -> None:
        log.exception("%s: internal error", type(self).__name__.lower())
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(e)

    def _on_item_batched(self, item: Any) -> None:
        """One SCTP message or event, without a pump: the driver pumps after its batch
        (guard() without the pump check: once per message)."""
        self._in_batch(self._on_item, item)

    def _in_batch(self, fn, *args) -> None:
        if self._stopping:
            return
        was, self._in_pump = self._in_pump, True
        try:
            fn(*args)
        except Exception as e:
            self._fail(e)
        finally:
            self._in_pump = was  # also called from inside a pump

    def _pump(self) -> None:
        self._in_pump = True
        try:
            self._pump_role()
            core = self.core
            while (ev := core.next_event()) is not None:
                publish(self.status, self.clock, ev)
            for reason, service, n in core.ledger.take():
                self.status.count_drop(reason, n, service=service or None)
            if self._timer is not None:
                self._timer.arm(core.get_timer())
        finally:
            self._in_pump = False

    def _send_failed(self, item: Outgoing, reason: str) -> None:
        self.core.send_failed(item, reason, self.clock.mono())

    # the role's part
    def _pump_role(self) -> None:
        raise NotImplementedError

    def _on_timer(self) -> None:
        raise NotImplementedError

    def _on_item(self, item: Any) -> None:
        raise NotImplementedError
