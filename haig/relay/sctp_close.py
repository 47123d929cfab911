"""A deliberate close of a one-to-one SCTP association, read to its end.

Closing a socket discards what the kernel still holds without a word, and pysctp's close
(a SHUTDOWN of an orphaned socket) leaves nobody to hear whether it was delivered. So a
deliberate close (a re-association from a new address, haig giving up on a dead one)
takes the socket over from its SctpDriver instead:

* SHUTDOWN is asked for (shutdown(SHUT_WR)): the kernel first delivers what it holds,
  then ends the association (SHUTDOWN_COMPLETE) once the peer has acknowledged it all;
* the socket stays on the loop and is read to the end: messages still arriving from the
  peer, and each SCTP_SEND_FAILED_EVENT (a message the kernel gave up on), go to the
  role, which delivers or counts them;
* it ends at SHUTDOWN_COMPLETE / COMM_LOST (plus the events queued with it) or EOF; if
  the kernel has not finished within `timeout`, what SCTP_STATUS still shows (unacked +
  pending) is handed to `on_lost` and the association is aborted (an ABORT's own
  send-failed events are not read: they are those same messages, counted once).

Never blocking: nothing here waits, the loop calls back. The new association comes up
meanwhile (the role has already forgotten this one: make-before-break).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

from haig.adapters import sctp_io
from haig.relay.sctp_driver import READ_BATCH, Item, Received, SctpDriver, translate

log = logging.getLogger("haig.sctp")

CLOSE_TIMEOUT = 5.0  # s beyond rto_max for the kernel to deliver what it holds and shut down
_ENDED = ("shutdown_comp", "comm_lost", "cant_str_assoc")  # the association is gone


class ClosingAssociation:
    """Takes `driver`'s socket over (the driver is closed for the role) and reads it to
    its end. `on_item` gets messages and events; `on_lost(n)` the number the kernel
    still held at the time-out; `on_done()` runs once when the socket is closed."""

    def __init__(self, driver: SctpDriver, on_item: Callable[[Item], None],
                 on_lost: Callable[[int], None], on_done: Callable[[], None],
                 timeout: float = CLOSE_TIMEOUT, after_batch: Callable[[], None] | None = None) -> None:
        self._wrapper, self.sock, self._loop = driver.hand_over()
        self._on_item, self._on_lost, self._on_done = on_item, on_lost, on_done
        self._after_batch = after_batch
        self.ended = False  # the kernel reported the association gone: read what is queued
        self.outcome: str | None = None  # how: "shutdown_comp" (graceful), "comm_lost"... or None
        self.closed = False
        self.lost = 0
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:  # already gone (COMM_LOST, ABORT): only queued events are left
            log.debug("shutdown: %s", e)
            self.ended = True
        self._loop.add_reader(self.sock.fileno(), self.readable)
        self._deadline = self._loop.call_later(timeout, self.time_out)
        self._loop.call_soon(self.readable)  # what is queued already (level-triggered anyway)

    def readable(self) -> None:
        if self.closed:
            return
        for _ in range(READ_BATCH):
            try:
                got = sctp_io.receive(self.sock)
            except OSError as e:  # nothing more to read (ENOTCONN, ECONNRESET...)
                log.debug("closing association: %s", e)
                self._finish()
                break
            if got is None:
                if self.ended:
                    self._finish()
                break
            if isinstance(got, Received) and not got.data:
                self._finish()  # EOF: the receive queue is empty and will stay so
                break
            if isinstance(got, sctp_io.AssocChange) and got.state in _ENDED:
                self.ended = True
                self.outcome = self.outcome or got.state
                continue
            item = got if isinstance(got, Received) else translate(got)
            if item is not None:
                self._on_item(item)
        if self._after_batch is not None:
            self._after_batch()

    def time_out(self) -> None:
        """The kernel did not finish in time: take what is queued, count what it still
        holds, abort."""
        if self.closed:
            return
        self.readable()
        if self.closed:
            return
        self.lost = held_by_kernel(self._wrapper)
        if self.lost:
            log.warning("closing association: %d message(s) still in the kernel after the time-out: lost",
                        self.lost)
            self._on_lost(self.lost)
        with contextlib.suppress(OSError):
            sctp_io.send(self.sock, b"", abort=True, unordered=False)
        self._finish()

    def close(self) -> None:
        """The role stops: give up on reading (what is left is the kernel's, as at exit)."""
        self._finish()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._deadline.cancel()
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.sock.fileno())
        with contextlib.suppress(Exception):
            self._wrapper.close()
        self._on_done()


def held_by_kernel(wrapper: Any) -> int:
    """Messages the kernel still holds for a one-to-one association: unsent plus sent but
    unacknowledged (SCTP_STATUS); 0 when the association is already gone."""
    try:
        st = wrapper.get_status()
    except Exception:  # gone (COMM_LOST freed it) or not one-to-one
        return 0
    return max(0, int(getattr(st, "unackdata", 0))) + max(0, int(getattr(st, "penddata", 0)))
