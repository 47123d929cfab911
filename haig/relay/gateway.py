"""Gateway role (on the router): UDP from local clients → one multihomed SCTP
association to the endpoint, and back.

Wiring only: every decision is haig.core.gateway_link.GatewayLink's. This module owns
the UDP listeners, the link watcher, the policy routes, and runs what the core asks
(connect, disconnect, sample, set primary / heartbeat) with the shared SCTP driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from typing import Any

import sctp

from haig.adapters import sctp_opts
from haig.config.model import Config
from haig.config.validate import parse_hostport
from haig.core import drops
from haig.core.datapath import Outgoing
from haig.core.gateway_link import (
    N_STREAMS,
    AuthKey,
    Connect,
    Disconnect,
    GatewayLink,
    ProbeEndpoint,
    Sample,
)
from haig.core.policy import SetHeartbeat, SetPathThresholds, SetPrimary
from haig.core.status import POLICY_FIELDS, StatusModel
from haig.relay import sctp_driver
from haig.relay.common import (
    OVFL_SPACE,
    Clock,
    count_overflows,
    ensure_udp_encap_port,
    family_of,
    grow_rcvbuf,
    overflow_total,
)
from haig.relay.role import RoleDriver
from haig.relay.sctp_close import CLOSE_TIMEOUT, ClosingAssociation
from haig.relay.sctp_driver import AssocGone, Received, SctpDriver

log = logging.getLogger("haig.gateway")

LINK_READY_TIMEOUT = 5.0  # s: wait for the link watcher's first dump before connecting
INIT_ATTEMPTS = 3  # INIT retransmissions per connect attempt (each bounded by rto_max)
CONNECT_SLACK = 5.0  # s beyond the INIT attempts before a connect is given up by haig itself
FLOWS_STATUS_INTERVAL = 1.0  # s between flow-list refreshes in the status


async def _connectx(wrapper: Any, raw: Any, peers: list[tuple[str, int]], timeout: float) -> None:
    """connectx without blocking: pysctp's holds the GIL for the whole INIT handshake (the
    daemon, API and ubus threads included would freeze for it), so the socket is made
    non-blocking first and the loop waits for it to become writable (INITMSG bounds the
    attempts; the outcome is in SO_ERROR)."""
    raw.setblocking(False)
    try:
        wrapper.connectx(peers)
        return
    except OSError as e:
        if e.errno not in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
            raise
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_writer(raw.fileno(), lambda: done.done() or done.set_result(None))
    try:
        # INITMSG ends the attempt in the kernel; the timeout only guards against a
        # wake-up that never comes (the daemon must not wait on one connect forever).
        await asyncio.wait_for(done, timeout)
    except TimeoutError:
        raise OSError(errno.ETIMEDOUT, "INIT not answered") from None
    finally:
        loop.remove_writer(raw.fileno())
    err = raw.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


def _new_socket(m: Any, peers: tuple, encap_port: int | None) -> Any:
    """A one-to-one SCTP socket tuned for an association to `peers` (the live one or a probe)."""
    wrapper = sctp.sctpsocket_tcp(family_of(peers[0][0]))
    try:
        raw = wrapper.sock()
        sctp_driver.tune_socket(raw, m, N_STREAMS, attempts=INIT_ATTEMPTS, init_timeo_ms=m.rto_max)
        if encap_port is not None:
            sctp_opts.set_udp_encap(raw, 0, None, encap_port)
    except BaseException:
        with contextlib.suppress(Exception):
            wrapper.close()
        raise
    return wrapper


async def _handshake(m: Any, wrapper: Any, peers: tuple, bind: tuple) -> None:
    wrapper.bindx([(a, 0) for a in bind])
    await _connectx(wrapper, wrapper.sock(), list(peers), (INIT_ATTEMPTS + 1) * m.rto_max / 1000 + CONNECT_SLACK)


UDP_READ_BATCH = 64  # datagrams read from one listener per wake-up, then one pump


class _Listener:
    """One service's UDP socket on the loop. Not an asyncio transport: that reads one
    datagram per loop iteration (and the gateway would pump its core after each); this
    drains up to UDP_READ_BATCH per readiness event and pumps once."""

    def __init__(self, gw: Gateway, index: int, listen: str, sock: socket.socket) -> None:
        self.gw, self.index, self.listen, self.sock = gw, index, listen, sock
        self.closed = False
        self.dropped = 0  # the kernel's running drop count at a full buffer (common.count_overflows)
        count_overflows(sock)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        self.gw.guard(self._read)

    def _read(self) -> None:
        gw, index, recvmsg = self.gw, self.index, self.sock.recvmsg
        receive, now = gw.core.receive_datagram, gw.clock.mono()
        for _ in range(UDP_READ_BATCH):
            try:
                data, anc, _flags, addr = recvmsg(65535, OVFL_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # an ICMP error for an earlier reply to a client that went away: that
                # reply is a lost datagram
                log.info("UDP error on service %d: %s", index, e)
                gw.core.drop(drops.SEND_FAILED, index, now)
                return
            if anc:
                self._overflowed(anc, now)
            receive(index, addr, data, now)

    def _overflowed(self, anc: list, now: float) -> None:
        total = overflow_total(anc)
        if total is not None and total > self.dropped:
            self.gw.core.drop(drops.RCVBUF_FULL, self.index, now, total - self.dropped)
            self.dropped = total

    def sendto(self, data: bytes, addr: Any) -> None:
        """A reply to a client: UDP, so a full socket buffer or an error loses it (counted)."""
        try:
            self.sock.sendto(data, addr)
        except OSError as e:
            log.debug("UDP send on service %d failed: %s", self.index, e)
            self.gw.core.drop(drops.QUEUE_FULL if isinstance(e, BlockingIOError) else drops.SEND_FAILED,
                              self.index, self.gw.clock.mono())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


async def _udp_listen(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A bound non-blocking UDP socket (no SO_REUSEADDR: a port in use must fail the bind)."""
    info = await loop.getaddrinfo(host, port, family=family_of(host), type=socket.SOCK_DGRAM)
    fam, _, _, _, addr = info[0]
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        grow_rcvbuf(sock)
        sock.bind(addr)
    except BaseException:
        sock.close()
        raise
    return sock


class Gateway(RoleDriver):
    def __init__(self, cfg: Config, status: StatusModel, *, clock: Clock | None = None,
                 link_watch: bool = True, pin_routes: bool = True) -> None:
        super().__init__(status, clock or Clock())
        self.cfg, self.main = cfg, cfg.main
        self.link_watch, self.pin_routes = link_watch, pin_routes
        self.core = GatewayLink(cfg, self.clock.mono())
        self.listeners: list[_Listener] = []
        self.sctp: SctpDriver | None = None
        self._connecting: asyncio.Task | None = None
        self._probing: asyncio.Task | None = None
        self._watcher: Any = None
        self._watch_task: asyncio.Task | None = None
        self._watch_ready_task: asyncio.Task | None = None
        self._watch_ready = False  # the watcher's first dump is in: its view is facts
        self._netifd: Any = None  # on OpenWrt: devices and addresses as netifd knows them
        self._netifd_task: asyncio.Task | None = None
        self._routes: Any = None
        self._assoc_version = -1
        self._planned: list[_Listener] | None = None  # listeners bound by prepare()
        self._takeover_from: Gateway | None = None
        self._next_flows = 0.0
        self._closing: set[ClosingAssociation] = set()  # old associations read to their end
        # Per-uplink traffic since the last pump, in plain ints ([rx bytes, rx messages,
        # tx bytes, tx messages]): the status model (a lock) is fed once per pump, not
        # once per message.
        self._traffic: dict[str, list[int]] = {}
        self._shown_primary: object = object()  # what the status model was last told

    @property
    def uplinks(self):
        return self.core.uplinks

    # -- life cycle ---------------------------------------------------------------------

    async def prepare(self, old: Gateway | None = None) -> None:
        """Bind every service's UDP listener before anything else runs, so a reload can
        give up cleanly: a listener whose address the running relay `old` already holds
        is taken over at `run()` (not bound twice); if any bind fails, the ones made here
        are closed and the error raised, and `old` keeps running untouched."""
        loop = asyncio.get_running_loop()
        have = {lst.listen: lst for lst in (old.listeners if old is not None else []) if not lst.closed}
        made: list[_Listener] = []
        plan: list[_Listener] = []
        try:
            for i, svc in enumerate(self.core.services):
                if svc.listen in have:
                    plan.append(have[svc.listen])
                    continue
                host, port = parse_hostport(svc.listen)
                sock = await _udp_listen(loop, host, port)
                lst = _Listener(self, i, svc.listen, sock)
                made.append(lst)
                plan.append(lst)
        except BaseException:
            for lst in made:
                lst.close()
            raise
        self._planned = plan
        self._takeover_from = old

    def adopt(self) -> None:
        """Take the prepared listeners (the daemon calls this just before it stops the
        old relay, so the old one does not close the ones taken over)."""
        old, self._takeover_from = self._takeover_from, None
        for i, lst in enumerate(self._planned or []):
            if old is not None and lst in old.listeners:
                old.listeners.remove(lst)
            lst.gw, lst.index = self, i
            self.listeners.append(lst)
            log.info("service %s: listening on %s", self.core.services[i].name, lst.listen)
        self._planned = []

    async def run(self) -> None:
        self._start_driver()
        self.status.set_uplinks(self.uplinks)
        try:
            if self._planned is None:
                await self.prepare()
            if self._planned:
                self.adopt()
            if any(u.udp_encap for u in self.uplinks):
                ensure_udp_encap_port(self.main.udp_port)
            if self.pin_routes:
                self._start_routes()
            if self.link_watch:
                await self._start_link_watch()
                await self._start_netifd()
            await self._serve()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if not self._begin_stop():
            return
        if self._netifd is not None:
            self._netifd.stop()
        for t in (self._watch_task, self._watch_ready_task, self._netifd_task, self._connecting, self._probing):
            if t is not None:
                t.cancel()
                with contextlib.suppress(BaseException):
                    await t
        if self._watcher is not None:
            self._watcher.stop()
        if self.sctp is not None:
            self.sctp.close()  # graceful: pysctp's close sends SHUTDOWN
            self.sctp = None
        for c in list(self._closing):
            c.close()
        for lst in self.listeners:
            lst.close()
        if self._routes is not None:
            with contextlib.suppress(Exception):
                self._routes.remove_all_sync()

    def _pump_role(self) -> None:
        core = self.core
        while (a := core.next_action()) is not None:
            self._do(a)
        if self.sctp is not None:
            self.sctp.flush(core.queue)
        listeners = self.listeners
        for d in core.datagrams_to_deliver():
            listeners[d.service].sendto(d.payload, d.client)
        self._flush_traffic()
        if core.policy.primary != self._shown_primary:
            self._shown_primary = core.policy.primary
            self.status.set_primary(core.policy.primary)
        if core.version != self._assoc_version:
            self._assoc_version = core.version
            self.status.set_association("endpoint", **core.association_view(),
                                        paths=core.path_views() if core.associated else [])
            self.status.set_endpoint(core.endpoint_view(self.clock.mono()))

    def _on_timer(self) -> None:
        now = self.clock.mono()
        self.core.handle_timer(now)
        if now >= self._next_flows:
            self._next_flows = now + FLOWS_STATUS_INTERVAL
            self.status.set_flows(self.core.flows.snapshot(now))
            self.status.set_endpoint(self.core.endpoint_view(now))

    def _do(self, a: Any) -> None:
        if isinstance(a, Connect):
            self._connecting = asyncio.create_task(self._connect(a))
        elif isinstance(a, ProbeEndpoint):
            self._probing = asyncio.create_task(self._probe(a))
        elif isinstance(a, Disconnect):
            log.warning("association: %s", a.reason)
            if self.sctp is not None:
                self._close_gracefully(self.sctp, a.in_doubt)
                self.sctp = None
        elif isinstance(a, Sample):
            self._sample()
        elif isinstance(a, AuthKey) and self.sctp is not None:
            try:
                sctp_driver.install_auth_key(self.sctp.sock, 0, a.key, a.use)
            except OSError as e:
                log.error("cannot install the SCTP-AUTH key: %s", e)
                self.core.auth_failed(str(e), self.clock.mono())
        elif isinstance(a, SetPrimary | SetHeartbeat | SetPathThresholds) and self.sctp is not None:
            u = self.core.by_name[a.uplink]
            addr = self.core.path_to(u)
            try:
                if isinstance(a, SetPrimary):
                    sctp_opts.set_primary(self.sctp.sock, 0, addr)
                elif isinstance(a, SetPathThresholds):
                    sctp_opts.set_thresholds(self.sctp.sock, 0, addr, a.path_max_retrans, a.pf_retrans)
                else:
                    sctp_opts.set_paddr_params(self.sctp.sock, 0, addr, a.interval_ms, u.path_max_retrans)
            except OSError as e:
                log.warning("cannot apply %s: %s", a, e)

    # -- association --------------------------------------------------------------------

    def _close_gracefully(self, drv: SctpDriver, in_doubt: tuple[tuple[str, int], ...] = ()) -> None:
        """Never silent at a deliberate close: the old association is shut down and read
        to its end (sctp_close) while the core already connects anew (make-before-break):
        its late messages are delivered or counted, each send-failed event counted, and
        what the kernel still holds at the time-out counted as lost."""
        closing: ClosingAssociation | None = None

        def done() -> None:
            self._closing.discard(closing)
            if in_doubt and closing.outcome == "shutdown_comp":  # FORWARD-TSNs acked: freed silently
                self.guard(self.core.abandoned_confirmed, in_doubt, self.clock.mono())

        closing = ClosingAssociation(
            drv, lambda it: self._in_batch(self._closing_item, it),
            lambda n: self.guard(self.core.ledger.count, drops.ASSOC_LOST, "", n=n, now=self.clock.mono()),
            done, timeout=CLOSE_TIMEOUT + self.main.rto_max / 1000, after_batch=self.after_batch)
        self._closing.add(closing)

    def _closing_item(self, it: sctp_driver.Item) -> None:
        """From an association being closed: data (late replies) and given-up messages;
        its path and association events say nothing about the current one."""
        now = self.clock.mono()
        if isinstance(it, Received):
            self.core.late_message(it.data, now)
        elif isinstance(it, sctp_driver.Abandoned):
            self.core.abandoned_message(it.data, now)

    async def _connect(self, c: Connect) -> None:
        m = self.main
        wrapper = None
        try:
            wrapper = _new_socket(m, c.peers, c.encap_port)
            await _handshake(m, wrapper, c.peers, c.bind)
            if self._stopping:
                wrapper.close()
                return
            self.sctp = SctpDriver(wrapper, self._on_item_batched, self.after_batch,
                                   self._send_failed, self._sent)
            self._tune_paths(encap_socketwide=c.encap_port is not None)
        except asyncio.CancelledError:
            if wrapper is not None:
                wrapper.close()
            raise
        except Exception as e:  # any failure, even making the socket, is retried
            if self.sctp is not None:
                self.sctp.close()
                self.sctp = None
            elif wrapper is not None:
                with contextlib.suppress(Exception):
                    wrapper.close()
            log.warning("association to %s failed: %s", ", ".join(p[0] for p in c.peers), e)
            self.guard(self.core.connect_failed, str(e), self.clock.mono())
            return
        finally:
            self._connecting = None
        auth = sctp_driver.peer_authenticates(self.sctp.sock, 0)
        log.log(logging.INFO if auth else logging.WARNING, "association up to %s (local %s)%s",
                ", ".join(p[0] for p in c.peers), ", ".join(c.bind), "" if auth else ": the endpoint does no SCTP-AUTH")
        self.guard(self.core.connected, self.clock.mono(), auth)

    async def _probe(self, p: ProbeEndpoint) -> None:
        """Does the primary endpoint answer? A handshake on a socket of its own, closed at
        once (graceful SHUTDOWN; the endpoint drops a session that never says HELLO)."""
        m = self.main
        wrapper = None
        ok, why = False, ""
        try:
            wrapper = _new_socket(m, p.peers, p.encap_port)
            await _handshake(m, wrapper, p.peers, p.bind)
            ok = True
        except asyncio.CancelledError:
            raise
        except Exception as e:
            why = str(e)
        finally:
            if wrapper is not None:
                with contextlib.suppress(Exception):
                    wrapper.close()
            self._probing = None
        log.log(logging.INFO if ok else logging.DEBUG, "probe of the primary endpoint (%s): %s",
                ", ".join(x[0] for x in p.peers), "answered" if ok else f"no answer ({why})")
        self.guard(self.core.probe_result, ok, why, self.clock.mono())

    def _tune_paths(self, encap_socketwide: bool) -> None:
        """Per-path knobs, on this association only (never the global sysctls)."""
        raw = self.sctp.sock
        sctp_opts.expose_pf(raw, 0, sctp_driver.PF_EXPOSE)
        if sctp_driver.STREAM_SCHEDULER:
            sctp_driver.prioritise_streams(raw, 0, N_STREAMS)
        for u in self.uplinks:
            addr = self.core.path_to(u)
            try:
                sctp_opts.set_thresholds(raw, 0, addr, u.path_max_retrans, u.pf_retrans)
                sctp_opts.set_paddr_params(raw, 0, addr, u.hb_interval, u.path_max_retrans)
                if encap_socketwide and not u.udp_encap:
                    sctp_opts.set_udp_encap(raw, 0, addr, 0)
            except OSError as e:
                log.warning("uplink %s: cannot tune path %s: %s", u.name, addr[0], e)

    def _on_item(self, it: sctp_driver.Item) -> None:
        now = self.clock.mono()
        if isinstance(it, Received):
            name = self.core.uplink_of(it.addr)
            if name is not None:
                self._tally(name, 0, len(it.data))
            self.core.receive_message(it.data, it.addr, now)
        elif isinstance(it, sctp_driver.PathChange):
            self.core.path_state(it.addr, it.state, now)
        elif isinstance(it, sctp_driver.Abandoned):
            self.core.abandoned_message(it.data, now)
        elif isinstance(it, AssocGone):
            self.core.association_lost(it.why, now, it.graceful)

    def _sent(self, item: Outgoing) -> None:
        name = self.core.uplink_of(item.to) if item.to is not None else self.core.policy.primary
        if name:
            self._tally(name, 2, len(item.data))

    def _tally(self, name: str, at: int, nbytes: int) -> None:
        """Count one message on uplink `name`: at 0 received, at 2 sent (bytes, messages)."""
        t = self._traffic.get(name) or self._traffic.setdefault(name, [0, 0, 0, 0])
        t[at] += nbytes
        t[at + 1] += 1

    def _flush_traffic(self) -> None:
        if not self._traffic:
            return
        for name, t in self._traffic.items():
            if t[1]:
                self.status.count_uplink(name, "rx", t[0], t[1])
            if t[3]:
                self.status.count_uplink(name, "tx", t[2], t[3])
        self._traffic.clear()

    def _sample(self) -> None:
        if self.sctp is None:
            return
        now = self.clock.mono()
        for u in self.uplinks:
            got = sctp_driver.path_info(self.sctp.sock, 0, self.core.path_to(u))
            if got is None:
                continue
            state, info = got
            self.core.path_sample(u.name, state, now, srtt_ms=info.srtt_ms, rto_ms=info.rto_ms, cwnd=info.cwnd)
            view = self.core.policy.uplink_view(u.name, now)
            self.status.update_uplink(u.name, **{k: v for k, v in view.items() if k in POLICY_FIELDS})
        # The kernel's abandoned-after-send counts (no send-failed event for those): the
        # core holds each increase until it is sure it is no teardown's (haig.core.abandonment).
        for stream in self.core.abandon_streams():
            try:
                n = sctp_opts.get_abandoned_sent(self.sctp.sock, 0, stream)
            except OSError:
                break  # a dying association: its close accounts for the rest
            self.core.abandoned_sent(stream, n, now)
        if self.core.associated:
            self.status.set_association("endpoint", **self.core.association_view(), paths=self.core.path_views())
        self._learn_addresses()

    def same_socket(self, cfg: Config) -> bool:
        """Whether a reload to `cfg` can be applied in place (policy/datapath knobs only)."""
        return cfg.main.role == "gateway" and self.core.can_reconfigure(cfg)

    async def reconfigure(self, cfg: Config) -> list[str]:
        self.guard(self.core.reconfigure, cfg, self.clock.mono())
        self.cfg, self.main = cfg, cfg.main
        return []

    def force_primary(self, uplink: str | None, duration_s: float) -> None:
        self.core.force_primary(uplink, self.clock.mono(), duration_s)
        self._pump()

    # -- link and address facts ---------------------------------------------------------

    def on_uplink_facts(self, name: str, *, up: bool, local_address: str | None, reason: str) -> None:
        """The one entry point for link/address facts (netlink LinkWatcher, netifd/ubus).
        `local_address` None = not known (keep what we have); a configured local_address
        always wins; a changed address of an uplink in use re-associates from the new one."""
        def apply() -> None:
            if self.core.uplink_facts(name, up=up, local_address=local_address, reason=reason,
                                      now=self.clock.mono()):
                addr = self.core.local.get(name)
                self.status.update_uplink(name, link_up=up, **({"local_address": addr} if addr else {}))
        self.guard(apply)

    async def _start_link_watch(self) -> None:
        try:
            from haig.adapters.netlink import LinkWatcher
        except Exception as e:  # pragma: no cover - pyroute2 missing
            log.warning("link watching disabled: %s", e)
            return
        self._watcher = LinkWatcher(self.uplinks)
        self._watch_task = asyncio.create_task(self._watch())
        # Local addresses left empty in the config come from the first dump. Until it is
        # in, the watcher's view is its empty default ("device missing"): not a fact.
        try:
            await asyncio.wait_for(self._watcher.wait_ready(), LINK_READY_TIMEOUT)
        except TimeoutError:
            log.info("link watcher: first dump not in after %.0f s; connecting meanwhile", LINK_READY_TIMEOUT)
            self._watch_ready_task = asyncio.create_task(self._when_watcher_ready())
            return
        self._watch_ready = True
        self._learn_addresses()

    async def _when_watcher_ready(self) -> None:
        await self._watcher.wait_ready()
        self._watch_ready = True
        self.guard(self._learn_addresses)

    async def _watch(self) -> None:
        try:
            await self._watcher.run(self._on_link)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("link watcher stopped: %s", e)

    async def _start_netifd(self) -> None:
        """On OpenWrt an uplink names a netifd interface ('wan'); its device (pppoe-wan,
        wwan0), addresses and their changes come from netifd over ubus. Elsewhere (no
        `ubus` tool) the watcher returns at once and netlink alone reports."""
        if not any(u.interface for u in self.uplinks):
            return
        from haig.adapters.netifd import NetifdWatcher

        self._netifd = NetifdWatcher(self.uplinks, self.on_uplink_facts, on_device=self._on_device)
        self._netifd_task = asyncio.create_task(self._netifd.run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._netifd.wait_ready(), LINK_READY_TIMEOUT)

    def _on_device(self, uplink: str, device: str) -> None:
        """netifd resolved an uplink's device (none configured): netlink and the policy
        routes follow that device from now on."""
        if self._watcher is not None:
            self._watcher.set_device(uplink, device)
        if self._routes is not None:
            self._routes.set_device(uplink, device)
            try:
                log.info("policy routes: %s", self._routes.reconcile_sync())
            except Exception as e:  # routes are an aid; the association runs without them
                log.warning("cannot install policy routes for %s on %s: %s", uplink, device, e)

    def _on_link(self, uplink: str, up: bool, reason: str) -> None:
        st = self._watcher.current().get(uplink) if self._watcher else None
        self.on_uplink_facts(uplink, up=up, local_address=(st[2] if st else None) or None, reason=reason)

    def _learn_addresses(self) -> None:
        """The watcher reports up/down changes only: a new lease on a link that stays up
        is picked up here (after the first dump, and on every sample)."""
        if self._watcher is None or not self._watch_ready:
            return
        for name, (up, reason, addr) in self._watcher.current().items():
            if name not in self.core.links or (addr and addr != self.core.local.get(name)):
                self.on_uplink_facts(name, up=up, local_address=addr or None, reason=reason)

    def _start_routes(self) -> None:
        if not any(u.gateway for u in self.uplinks):
            return  # on-link endpoint addresses: the connected routes already pin them
        try:
            from haig.adapters.netlink import RouteReconciler
            self._routes = RouteReconciler(self.uplinks)
            res = self._routes.reconcile_sync()
            log.info("policy routes: %s", res)
        except Exception as e:
            log.warning("cannot install policy routes: %s", e)
