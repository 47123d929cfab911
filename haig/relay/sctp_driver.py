"""The one SCTP driver both relay roles use: socket set-up and per-association tuning,
the bounded read batch, sends with their error → drop mapping, the write queue's
wake-up, close; and the one timer each role re-arms after every drain.

What comes off the socket is handed on in haig's neutral vocabulary: `Received`
messages, and `AssocUp` / `AssocGone` / `PathChange` / `Abandoned` events whose path
states are already haig.core.states.PathState (kernel names end here).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from haig.adapters import sctp_io, sctp_opts
from haig.config.model import Main
from haig.core import drops
from haig.core.datapath import CRITICAL_STREAM, Outgoing, OutQueue, stream_priority
from haig.core.states import FROM_ADDR_CHANGE, FROM_PATH_INFO, PathState

log = logging.getLogger("haig.sctp")

READ_BATCH = 64  # messages read per wake-up before the loop gets to run other work
PF_EXPOSE = 2  # SCTP_PF_EXPOSE_ENABLE: PF states are reported and usable as primary
Received = sctp_io.Received


@dataclass(frozen=True)
class AssocUp:
    assoc_id: int
    restart: bool  # the peer restarted it (its state is new)


@dataclass(frozen=True)
class AssocGone:
    assoc_id: int
    why: str
    graceful: bool = False  # SHUTDOWN: the kernel delivered (or skipped by FORWARD-TSN) all it held


@dataclass(frozen=True)
class PathChange:
    assoc_id: int
    addr: tuple[str, int]
    state: PathState | None  # None: a change that says nothing about health
    kernel: str  # the kernel's own name, for the log line


@dataclass(frozen=True)
class Abandoned:
    assoc_id: int
    data: bytes


Item = Received | AssocUp | AssocGone | PathChange | Abandoned

_GONE = {"comm_lost": "association lost (peer unreachable)", "shutdown_comp": "association shut down",
         "cant_str_assoc": "association could not be started"}


def translate(n: sctp_io.Notification) -> Item | None:
    """A parsed notification in haig's vocabulary; None for one haig does not act on."""
    if isinstance(n, sctp_io.AssocChange):
        if n.state in ("comm_up", "restart"):
            return AssocUp(n.assoc_id, n.state == "restart")
        if n.state in _GONE:
            return AssocGone(n.assoc_id, _GONE[n.state], n.state == "shutdown_comp")
        return None
    if isinstance(n, sctp_io.PeerAddrChange):
        return PathChange(n.assoc_id, n.addr, FROM_ADDR_CHANGE.get(n.state), n.state)
    if isinstance(n, sctp_io.SendFailed):
        return Abandoned(n.assoc_id, n.data)
    if n.type == sctp_io.SCTP_SHUTDOWN_EVENT:
        return AssocGone(n.assoc_id, "peer shut the association down", True)
    return None


def path_info(sock: socket.socket, assoc_id: int, addr: tuple[str, int]) -> tuple[PathState, sctp_opts.PathInfo] | None:
    """One path's sample with its state in haig's vocabulary; None if the kernel has no such path."""
    try:
        info = sctp_opts.get_path_info(sock, assoc_id, addr)
    except OSError:
        return None
    return FROM_PATH_INFO.get(info.state, PathState.UNKNOWN), info


def tune_socket(raw: socket.socket, m: Main, n_streams: int, **initmsg: Any) -> None:
    """Socket-wide defaults (assoc id 0: also what new associations inherit)."""
    sctp_opts.set_initmsg(raw, n_streams, n_streams, **initmsg)
    sctp_opts.set_rtoinfo(raw, 0, m.rto_initial, m.rto_max, m.rto_min)
    sctp_opts.set_delayed_sack(raw, 0, sctp_opts.sack_delay_for(m.rto_min))
    sctp_opts.set_nodelay(raw)
    sctp_io.subscribe(raw)
    try:
        sctp_opts.enable_auth(raw)
    except OSError as e:  # a kernel before 5.1: no per-socket SCTP-AUTH (peers with require_auth refuse)
        log.warning("SCTP-AUTH unavailable on this kernel: %s", e)


def peer_authenticates(raw: socket.socket, assoc_id: int) -> bool:
    """Whether the peer of the association requires DATA to be SCTP-AUTHenticated (and so
    takes part: the kernel then authenticates ours too, RFC 4895 6.2)."""
    try:
        return sctp_opts.CHUNK_DATA in sctp_opts.peer_auth_chunks(raw, assoc_id)
    except OSError:
        return False


def install_auth_key(raw: socket.socket, assoc_id: int, key: bytes, use: bool) -> None:
    """Key 1 of the association; `use`: send with it and refuse the null key 0 from now on."""
    sctp_opts.add_auth_key(raw, assoc_id, 1, key)
    if use:
        sctp_opts.activate_auth_key(raw, assoc_id, 1)
        sctp_opts.deactivate_auth_key(raw, assoc_id, 0)


# Off: with SCTP_SS_PRIO on its associations (Debian's 6.1 kernel, TCG VM) the test bed
# showed T3 timeouts on an unimpaired main path within seconds of association, and after
# 100 % loss a main path that never became active again (tests/vm/test_failover.py
# failed in 2 of 3 runs with it on, passed with it off). Until that is understood (an abandoned
# PR-SCTP chunk and the scheduler's per-stream state is the suspect), the kernel sends
# first come, first served; haig's own queue still serves control, critical, then the
# services in turn (haig.core.datapath), and each service keeps its own stream.
STREAM_SCHEDULER = False


def prioritise_streams(raw: socket.socket, assoc_id: int, n_streams: int) -> bool:
    """The kernel sends by haig's stream plan too (haig.core.datapath): SCTP_SS_PRIO,
    control stream first, then critical, then the services' streams taking turns, so a
    bulk service's messages already in the kernel do not hold an alarm or telemetry
    back. False (and FCFS stays) on a kernel without stream schedulers."""
    try:
        sctp_opts.set_stream_scheduler(raw, assoc_id, sctp_opts.SCTP_SS_PRIO)
    except OSError as e:
        log.info("association %d: no stream priorities (%s): the kernel sends first come, first served",
                 assoc_id, e)
        return False
    for sid in range(n_streams):
        try:
            sctp_opts.set_stream_priority(raw, assoc_id, sid, stream_priority(sid))
        except OSError as e:  # EINVAL past the streams the peer granted: those are all
            if sid <= CRITICAL_STREAM:
                log.info("association %d: stream %d has no priority (%s)", assoc_id, sid, e)
            break
    return True


def tune_association(raw: socket.socket, assoc_id: int, m: Main) -> None:
    """Per association, never the global sysctls: RTO bounds, SACK delay below rto_min
    (or every delayed SACK looks like a loss), PF states exposed."""
    sctp_opts.set_rtoinfo(raw, assoc_id, m.rto_initial, m.rto_max, m.rto_min)
    sctp_opts.set_delayed_sack(raw, assoc_id, sctp_opts.sack_delay_for(m.rto_min))
    sctp_opts.expose_pf(raw, assoc_id, PF_EXPOSE)


def drop_reason(e: OSError) -> str:
    """Which drop a refused send is (would-block never comes here: it is queued)."""
    if e.errno in (errno.EPIPE, errno.ENOTCONN, errno.ECONNRESET, errno.EINVAL, errno.EBADF):
        return drops.NO_ASSOCIATION
    return drops.SEND_FAILED


class SctpDriver:
    """One SCTP socket on the event loop. `on_item(item)` gets every message and event;
    `on_drained()` runs after each read batch and each write flush (the role pumps its
    core there)."""

    def __init__(self, wrapper: Any, on_item: Callable[[Item], None], on_drained: Callable[[], None],
                 on_send_failed: Callable[[Outgoing, str], None],
                 on_sent: Callable[[Outgoing], None] | None = None) -> None:
        self._wrapper = wrapper  # pysctp's object owns the fd: keep it alive
        self.sock: socket.socket = wrapper.sock()
        self.sock.setblocking(False)
        self._on_item, self._on_drained = on_item, on_drained
        self._on_send_failed, self._on_sent = on_send_failed, on_sent
        self._loop = asyncio.get_running_loop()
        self._writing: list[OutQueue] = []  # queues waiting for the socket to drain
        self._loop.add_reader(self.sock.fileno(), self._readable)
        self.closed = False

    # -- receive ------------------------------------------------------------------------

    def _readable(self) -> None:
        receive, sock, on_item = sctp_io.receive, self.sock, self._on_item
        for _ in range(READ_BATCH):
            if self.closed:
                return
            try:
                got = receive(sock)
            except OSError as e:
                on_item(AssocGone(0, f"receive failed: {e}"))
                break
            if got is None:
                break
            if type(got) is Received:
                on_item(got if got.data else AssocGone(got.assoc_id, "peer closed the association"))
            elif (item := translate(got)) is not None:
                on_item(item)
        self._on_drained()

    # -- send ---------------------------------------------------------------------------

    def flush(self, queue: OutQueue) -> None:
        """Send from the head of `queue` until it is empty or the socket would block
        (then the writer callback resumes it). A refused message is counted and dropped."""
        sendmsg, ancillary = self.sock.sendmsg, sctp_io.ancillary
        while not self.closed and (item := queue.peek()) is not None:
            # sctp_io.send's flags, inlined: once per message
            flags = (0 if item.ordered else sctp_io.SCTP_UNORDERED) | (sctp_io.SCTP_PR_SCTP_TTL if item.ttl_ms else 0)
            try:
                if item.to is None:
                    sendmsg([item.data], ancillary(item.stream, flags, item.ttl_ms, item.assoc_id))
                else:
                    sendmsg([item.data], ancillary(item.stream, flags | sctp_io.SCTP_ADDR_OVER, item.ttl_ms,
                                                   item.assoc_id), 0, item.to)
            except BlockingIOError:
                if queue not in self._writing:
                    self._writing.append(queue)
                    if len(self._writing) == 1:
                        self._loop.add_writer(self.sock.fileno(), self._writable)
                return
            except OSError as e:
                log.debug("send failed: %s", e)
                queue.pop()
                self._on_send_failed(item, drop_reason(e))
                continue
            queue.pop()
            if self._on_sent is not None:
                self._on_sent(item)

    def _writable(self) -> None:
        waiting, self._writing = self._writing, []
        with contextlib.suppress(Exception):
            self._loop.remove_writer(self.sock.fileno())
        for q in waiting:
            self.flush(q)
        self._on_drained()

    def abort(self, assoc_id: int) -> None:
        with contextlib.suppress(OSError):
            sctp_io.send(self.sock, b"", assoc_id=assoc_id, abort=True, unordered=False)

    def hand_over(self) -> tuple[Any, socket.socket, asyncio.AbstractEventLoop]:
        """Give the socket up to a deliberate close (haig.relay.sctp_close), which reads it
        to its end: off the loop for this driver, closed for the role, the fd kept open."""
        self.closed = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.sock.fileno())
        if self._writing:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(self.sock.fileno())
        self._writing = []
        return self._wrapper, self.sock, self._loop

    def close(self) -> None:
        """At stop: pysctp's close sends SHUTDOWN and the kernel finishes it on its own."""
        if self.closed:
            return
        self.hand_over()
        with contextlib.suppress(Exception):
            self._wrapper.close()


class CoreTimer:
    """The one timer a role needs: re-armed to the core's next deadline after each
    drain (loop.call_at), instead of tickers polling."""

    def __init__(self, mono: Callable[[], float], fire: Callable[[], None]) -> None:
        self._mono, self._fire = mono, fire
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def arm(self, deadline: float | None) -> None:
        # A later deadline keeps the armed (earlier) timer: it fires a little early, the
        # core finds nothing due and the pump re-arms. Re-arming on every move would
        # cost a cancelled TimerHandle per datagram (a flow's idle deadline moves with
        # each one it carries).
        if self._handle is not None and deadline is not None and self._at is not None and self._at <= deadline:
            return
        self.cancel()
        if deadline is None:
            return
        self._at = deadline
        self._handle = self._loop.call_at(self._loop.time() + max(0.0, deadline - self._mono()), self._run)

    def _run(self) -> None:
        self._handle = self._at = None
        self._fire()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._at = None
