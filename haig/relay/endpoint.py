"""Endpoint role (at the hospital): one one-to-many SCTP socket serving many gateways.

Wiring only: every decision is haig.core.endpoint_session.EndpointCore's. This module
owns the SCTP socket (through the shared driver) and one UDP socket per flow towards
the service's target, so replies go back to the right client of the right home.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from typing import Any

import sctp

from haig.adapters import sctp_mib, sctp_opts
from haig.config.model import Config
from haig.config.validate import parse_hostport
from haig.core import drops
from haig.core.endpoint_session import (
    N_STREAMS,
    Abort,
    AuthKey,
    CloseTarget,
    Delivery,
    EndpointCore,
    FollowPath,
    SamplePaths,
    Tune,
)
from haig.core.status import StatusModel
from haig.relay import fd_budget, sctp_driver
from haig.relay.common import (
    OVFL_SPACE,
    Clock,
    count_overflows,
    ensure_udp_encap_port,
    family_of,
    grow_rcvbuf,
    overflow_total,
    udp_socket,
)
from haig.relay.role import RoleDriver
from haig.relay.sctp_driver import AssocGone, AssocUp, Received, SctpDriver

log = logging.getLogger("haig.endpoint")

LISTEN_BACKLOG = 128
# The one SCTP socket's receive buffer is shared by every home. The default (~208 KiB,
# net.core.rmem_default) filled at 100 ECG homes in the test bed whenever the loop was
# busy: the kernel then discarded whole packets (SctpInPktDiscards: its backlog is
# bounded by the buffer) and the gateways' PR-SCTP abandoned the data. 4 MiB is ~20,000
# ECG datagrams, i.e. 2 s of 1,000 homes.
SCTP_RCVBUF = 4 << 20
DEFAULT_HB_MS = 1000  # heartbeat on every path towards a gateway, so an idle dead one is noticed
TARGET_READ_BATCH = 64  # datagrams read from one target socket per wake-up
FLOWS_STATUS_INTERVAL = 1.0  # s between flow-list snapshots for the status model ...
FLOWS_PER_STATUS_SECOND = 1000  # ... stretched so building it costs O(1,000 flows) a second


class Endpoint(RoleDriver):
    def __init__(self, cfg: Config, status: StatusModel, *, clock: Clock | None = None) -> None:
        super().__init__(status, clock or Clock())
        self.cfg, self.main = cfg, cfg.main
        self.core = EndpointCore(cfg, self.clock.mono())
        self.sctp: SctpDriver | None = None
        self._wrapper: Any = None  # pysctp's socket object (owns the fd)
        self._targets: dict[tuple[int, int], socket.socket] = {}  # (assoc, gateway flow) -> UDP
        self._overflows: dict[tuple[int, int], int] = {}  # the kernel's drop count per target socket
        self._resolved: dict[str, tuple[str, int]] = {}
        self._next_flows = 0.0
        self._pump_queued = False  # a pump is queued behind the target sockets' callbacks
        self.rcvbuf = 0  # the SCTP socket's receive buffer as the kernel reports it (bytes)

    # -- life cycle ---------------------------------------------------------------------

    def bind(self) -> None:
        """Make and bind the SCTP socket (synchronous: a reload binds before it stops the
        old relay, and gives up cleanly if this raises)."""
        m = self.main
        wrapper = sctp.sctpsocket_udp(family_of(m.bind[0]))
        try:
            # assoc id 0 on a one-to-many socket = defaults for associations yet to come;
            # every association is tuned again on COMM_UP.
            sctp_driver.tune_socket(wrapper.sock(), m, N_STREAMS)
            # before listen: an association's receive window is sized from it at its start
            self.rcvbuf = set_sctp_rcvbuf(wrapper.sock(), SCTP_RCVBUF)
            wrapper.bindx([(a, m.port) for a in m.bind])
            wrapper.listen(LISTEN_BACKLOG)
        except BaseException:
            wrapper.close()
            raise
        self._wrapper = wrapper

    async def prepare(self, old: Endpoint | None = None) -> None:
        """Bind before the old relay stops (a reload gives up cleanly if this raises)."""
        self.bind()

    def adopt(self) -> None:
        """Nothing to take over: a new socket means new addresses (same addresses are
        reconfigured in place, see `same_socket`)."""

    def same_socket(self, cfg: Config) -> bool:
        """Whether `cfg` can run on this relay's socket (then reload = reconfigure)."""
        a, b = self.main, cfg.main
        return (a.bind, a.port, a.udp_port, a.role) == (b.bind, b.port, b.udp_port, b.role) and self.sctp is not None

    async def run(self) -> None:
        self._start_driver()
        limit = fd_budget.raise_nofile()
        self.core.fd_budget = fd_budget.flow_budget(limit)
        log.info("open-file limit %d: at most %d target sockets (flows)", limit, self.core.fd_budget)
        try:
            self.status.set_uplinks([])
            for s in self.core.targets.values():
                self._resolved[s.name] = await _resolve(s.target)
            ensure_udp_encap_port(self.main.udp_port)  # NATed gateways arrive over UDP
            if self._wrapper is None:
                self.bind()
            self.sctp = SctpDriver(self._wrapper, self._on_item_batched, self.after_batch,
                                   self._send_failed)
            log.info("endpoint listening on %s port %d for %d gateway(s)",
                     ", ".join(self.main.bind), self.main.port, len(self.core.peers))
            await self._serve()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if not self._begin_stop():
            return
        for key in list(self._targets):
            self._close_target(*key)
        if self.sctp is not None:
            self.sctp.close()
            self.sctp = None
        elif self._wrapper is not None:
            with contextlib.suppress(Exception):
                self._wrapper.close()

    async def reconfigure(self, cfg: Config) -> list[str]:
        """Peers, keys and targets changed (nothing that needs a new socket): in place."""
        for s in cfg.services:
            if s.target and (s.name not in self._resolved or s.target != self.core.targets.get(s.name, s).target):
                self._resolved[s.name] = await _resolve(s.target)
        ended: list[str] = []

        def apply() -> None:
            if self.sctp is not None:  # defaults for associations still to come
                sctp_driver.tune_socket(self.sctp.sock, cfg.main, N_STREAMS)
            self.main = cfg.main
            ended.extend(self.core.reconfigure(cfg, self.clock.mono()))

        self.guard(apply)
        self.cfg = cfg
        return ended

    # -- the pump: core outputs → I/O -----------------------------------------------------

    def _pump_role(self) -> None:
        core = self.core
        while (a := core.next_action()) is not None:
            self._do(a)
        if self.sctp is not None:
            for q in core.queues():
                self.sctp.flush(q)
        for d in core.datagrams_to_deliver():
            self._deliver(d)
        for key, fields in core.status_updates().items():
            self.status.set_association(key, **fields)
        for line in core.refusals.take_details():  # already made printable by the core
            log.info("%s", line)

    def _on_timer(self) -> None:
        now = self.clock.mono()
        self.core.handle_timer(now)
        if now >= self._next_flows:
            n = self.core.flows_held
            self._next_flows = now + FLOWS_STATUS_INTERVAL * max(1.0, n / FLOWS_PER_STATUS_SECOND)
            self.status.set_flows(self.core.flows_view(now))
            self.status.set_admission(self.core.refusals.totals, self.core.shed, self.core.pending)
            self.status.set_sctp_socket(self.rcvbuf, 2 * SCTP_RCVBUF, _kernel_counters())

    def _do(self, a: Any) -> None:
        if self.sctp is None:
            return
        sock = self.sctp.sock
        if isinstance(a, Tune):
            try:
                sctp_driver.tune_association(sock, a.assoc_id, self.main)
                sctp_opts.set_paddr_params(sock, a.assoc_id, None, DEFAULT_HB_MS, 0)
            except OSError as e:
                # EINVAL: the association is already gone again (a gateway's probe of a
                # primary endpoint closes right after the handshake): nothing to tune.
                log.log(logging.DEBUG if e.errno == errno.EINVAL else logging.WARNING,
                        "association %d: cannot tune: %s", a.assoc_id, e)
            if sctp_driver.STREAM_SCHEDULER:
                sctp_driver.prioritise_streams(sock, a.assoc_id, N_STREAMS)
        elif isinstance(a, AuthKey):
            try:
                sctp_driver.install_auth_key(sock, a.assoc_id, a.key, use=True)
            except OSError as e:
                log.error("association %d: cannot install the SCTP-AUTH key: %s", a.assoc_id, e)
                self.core.auth_failed(a.assoc_id, str(e), self.clock.mono())
        elif isinstance(a, Abort):
            self.sctp.abort(a.assoc_id)
        elif isinstance(a, FollowPath):
            try:
                sctp_opts.set_primary(sock, a.assoc_id, a.addr)
                log.info("association %d: replies now via %s", a.assoc_id, a.addr[0])
            except OSError as e:
                log.warning("cannot follow the gateway's primary %s: %s", a.addr[0], e)
        elif isinstance(a, CloseTarget):
            self._close_target(a.assoc_id, a.flow_id)
        elif isinstance(a, SamplePaths):
            self._sample(a.assoc_ids)

    def _on_item(self, it: sctp_driver.Item) -> None:
        now = self.clock.mono()
        core = self.core
        if isinstance(it, Received):
            core.receive_message(it.assoc_id, it.data, it.addr, it.stream, now)
        elif isinstance(it, AssocUp):
            core.association_up(it.assoc_id, now, self._source(it.assoc_id),
                                sctp_driver.peer_authenticates(self.sctp.sock, it.assoc_id))
        elif isinstance(it, AssocGone):
            core.association_gone(it.assoc_id, it.why, now, it.graceful)
        elif isinstance(it, sctp_driver.PathChange):
            core.path_state(it.assoc_id, it.addr, it.state, now)
        elif isinstance(it, sctp_driver.Abandoned):
            core.abandoned_message(it.assoc_id, it.data, now)

    def _source(self, assoc_id: int) -> str | None:
        """The peer's first address (the per-source cap on sessions not yet admitted)."""
        try:
            addrs = self._wrapper.getpaddrs(assoc_id)
        except Exception:
            return None
        return str(addrs[0][0]) if addrs else None

    def _sample(self, assoc_ids: tuple[int, ...]) -> None:
        now = self.clock.mono()
        for aid in assoc_ids:
            try:
                addrs = [a[:2] for a in self._wrapper.getpaddrs(aid)]
            except Exception:
                continue
            for a in addrs:
                got = sctp_driver.path_info(self.sctp.sock, aid, a)
                if got is not None:
                    self.core.path_sample(aid, a, got[0], got[1], now)
            for stream in list(self.core.reply_streams(aid)):
                try:
                    n = sctp_opts.get_abandoned_sent(self.sctp.sock, aid, stream)
                except OSError:
                    break  # gone meanwhile: its teardown accounts for the rest
                self.core.abandoned_sent(aid, stream, n, now)

    # -- targets ------------------------------------------------------------------------

    def _deliver(self, d: Delivery) -> None:
        key = (d.assoc_id, d.flow_id)
        s = self._targets.get(key)
        if s is None:
            try:
                s = udp_socket(connect=self._resolved[d.service.name])
            except (OSError, KeyError) as e:
                log.warning("cannot open UDP towards %s: %s", d.service.target, e)
                out_of_fds = isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE)
                self.core.target_failed(d.assoc_id, d.flow_id,
                                        drops.FD_BUDGET if out_of_fds else drops.SEND_FAILED, self.clock.mono())
                return
            self._targets[key] = s
            count_overflows(s)  # replies the kernel drops at a full buffer get counted
            asyncio.get_running_loop().add_reader(s.fileno(), self._from_target, s, key)
        try:
            s.send(d.payload)
        except BlockingIOError:
            self.core.target_failed(d.assoc_id, d.flow_id, drops.QUEUE_FULL, self.clock.mono())
        except OSError:  # ICMP port unreachable from the target: UDP, so count it
            self.core.target_failed(d.assoc_id, d.flow_id, drops.SEND_FAILED, self.clock.mono())

    def _from_target(self, s: socket.socket, key: tuple[int, int]) -> None:
        def read() -> None:
            now = self.clock.mono()
            for _ in range(TARGET_READ_BATCH):
                try:
                    data, anc, _flags, _addr = s.recvmsg(65535, OVFL_SPACE)
                except BlockingIOError:
                    return
                except OSError:
                    return  # ICMP error from the target; nothing to relay
                if anc:
                    total, seen = overflow_total(anc), self._overflows.get(key, 0)
                    if total is not None and total > seen:
                        self.core.target_failed(key[0], key[1], drops.RCVBUF_FULL, now, total - seen)
                        self._overflows[key] = total
                self.core.receive_from_target(key[0], key[1], data, now)

        # No pump per target socket: with thousands of flows the loop wakes with many
        # ready at once; one pump after all of them (queued behind their callbacks)
        # sends what they queued. Nothing waits longer than this loop iteration.
        self._in_batch(read)
        if not self._pump_queued:
            self._pump_queued = True
            asyncio.get_running_loop().call_soon(self._queued_pump)

    def _queued_pump(self) -> None:
        self._pump_queued = False
        self.after_batch()

    def _close_target(self, assoc_id: int, flow_id: int) -> None:
        self._overflows.pop((assoc_id, flow_id), None)
        s = self._targets.pop((assoc_id, flow_id), None)
        if s is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(s.fileno())
            s.close()


def set_sctp_rcvbuf(raw: socket.socket, want: int) -> int:
    """Ask for `want` bytes of receive buffer (past net.core.rmem_max when privileged:
    SO_RCVBUFFORCE), log what the kernel granted once, warn when capped; returns it.
    Linux reports twice the size asked for (its bookkeeping overhead)."""
    grow_rcvbuf(raw, want)
    got = raw.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if got < 2 * want:
        log.warning("SCTP receive buffer %d KiB, not the %d KiB asked for: capped by net.core.rmem_max "
                    "(contrib/sysctl.d/60-haig.conf raises it); with many homes the kernel discards packets "
                    "when it is full", got // 1024, 2 * want // 1024)
    else:
        log.info("SCTP receive buffer %d KiB", got // 1024)
    return got


def _kernel_counters() -> dict[str, int] | None:
    mib = sctp_mib.read()
    return None if mib is None else {k: mib.get(k, 0) for k in sctp_mib.STATUS_KEYS}


async def _resolve(hostport: str) -> tuple[str, int]:
    host, port = parse_hostport(hostport)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    return infos[0][4][:2]
