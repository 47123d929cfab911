"""Gateway role (on the router): UDP from local clients → one multihomed SCTP
association to the endpoint, and back.

The asyncio driver is thin: sockets and timers here, decisions in haig.core
(PathPolicy picks the primary, FlowTable maps clients to flows, DedupWindow drops the
second copy of critical datagrams, wire encodes messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections import deque
from typing import Any

import sctp

from haig.adapters import sctp_io, sctp_opts
from haig.config.model import Config, Service, Uplink
from haig.config.validate import parse_hostport
from haig.core import wire
from haig.core.backoff import Backoff
from haig.core.events import ASSOC, Event
from haig.core.flows import FlowTable
from haig.core.policy import PathPolicy, SetHeartbeat, SetPrimary
from haig.core.status import POLICY_FIELDS, StatusModel
from haig.relay.common import (
    N_STREAMS,
    SAMPLE_INTERVAL,
    Clock,
    cancel_tasks,
    ensure_udp_encap_port,
    family_of,
    grow_rcvbuf,
    publish,
)

log = logging.getLogger("haig.gateway")

# Kernel notification / sample states → policy states.
_ADDR_STATE = {"available": "active", "confirmed": "active", "unreachable": "unreachable",
               "potentially_failed": "pf", "removed": "removed", "added": "unconfirmed"}
_INFO_STATE = {"active": "active", "pf": "pf", "inactive": "unreachable", "unconfirmed": "unconfirmed"}

LINK_READY_TIMEOUT = 5.0  # s: wait for the link watcher's first dump before connecting


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, gw: Gateway, index: int) -> None:
        self.gw, self.index = gw, index
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.gw.from_client(self.index, data, addr)

    def error_received(self, exc: Exception) -> None:
        # asyncio drops a datagram whose sendto failed and reports it here (or an ICMP
        # error from a client that went away): count it, it is a lost datagram.
        log.info("UDP error on service %d: %s", self.index, exc)
        self.gw.status.count_drop("queue_full")


class Gateway:
    def __init__(self, cfg: Config, status: StatusModel, *, clock: Clock | None = None,
                 link_watch: bool = True, pin_routes: bool = True) -> None:
        self.cfg = cfg
        self.main = cfg.main
        self.status = status
        self.clock = clock or Clock()
        self.link_watch = link_watch
        self.pin_routes = pin_routes
        self.uplinks: list[Uplink] = list(cfg.uplinks)
        self.services: list[Service] = [s for s in cfg.services if s.listen]
        self.by_addr = {u.endpoint_address: u for u in self.uplinks}
        self.by_name = {u.name: u for u in self.uplinks}
        now = self.clock.mono()
        self.policy = PathPolicy(self.uplinks, cfg.main.hold_down, now)
        # A random first flow id: a restarted daemon must not reuse ids the endpoint knows.
        self.flows = FlowTable(cfg.main.max_flows, cfg.main.flow_idle, n_streams=N_STREAMS,
                               first_id=random.randint(1, 0x7FFFFFFF))
        self.listeners: list[_Listener] = []
        self.sock: socket.socket | None = None
        self._pysctp: Any = None  # keeps pysctp's wrapper (and so the fd) alive
        self.admitted = False
        self.accepted: tuple[bool, ...] = ()
        self._challenge: bytes | None = None
        self._nonce = b""
        self._queue: deque[bytes | tuple] = deque()
        self._writer = False
        self._lost: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._local_addrs: dict[str, str] = {u.name: u.local_address for u in self.uplinks}
        self._links: dict[str, bool] = {}  # uplink -> link up, as the watcher last said
        self._kick: asyncio.Event | None = None  # set on link up / new address: retry now
        self.backoff = Backoff()
        self._watcher: Any = None
        self._routes: Any = None
        self.refusal: str | None = None

    # -- life cycle ---------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._kick = asyncio.Event()
        self.status.set_uplinks(self.uplinks)
        for i, svc in enumerate(self.services):
            host, port = parse_hostport(svc.listen)
            lst = _Listener(self, i)
            tr, _ = await loop.create_datagram_endpoint(lambda lst=lst: lst, local_addr=(host, port),
                                                        family=family_of(host))
            grow_rcvbuf(tr.get_extra_info("socket"))
            self.listeners.append(lst)
            log.info("service %s: listening on %s", svc.name, svc.listen)
        if any(u.udp_encap for u in self.uplinks):
            ensure_udp_encap_port(self.main.udp_port)
        if self.pin_routes:
            self._start_routes()
        if self.link_watch:
            self._start_link_watch()
            if self._watcher is not None:
                # local addresses left empty in the config come from the first dump
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._watcher.wait_ready(), LINK_READY_TIMEOUT)
                self._learn_addresses()
        self._tasks.append(asyncio.create_task(self._ticker()))
        try:
            await self._associate_forever()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        await cancel_tasks(self._tasks)
        if self._watcher is not None:
            self._watcher.stop()
        self._close_assoc("haig stopping", graceful=True)
        for lst in self.listeners:
            if lst.transport:
                lst.transport.close()
        if self._routes is not None:
            with contextlib.suppress(Exception):
                self._routes.remove_all_sync()

    # -- association --------------------------------------------------------------------

    async def _associate_forever(self) -> None:
        """Never ends but on stop(): every failure is reported, backed off and retried."""
        last_error = None
        while not self._stopping:
            self.refusal = None
            self._kick.clear()
            try:
                await self._connect()
                self._lost = asyncio.Event()
                await self._lost.wait()
                if self.admitted:
                    self.backoff.reset()
                self._close_assoc("association lost")
                last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as e:  # OSError from connect, or a bug: never end the relay
                self._close_assoc(f"association failed: {e}")
                why = f"cannot associate with {self._peer_list()}: {e}"
                if not isinstance(e, OSError):
                    log.exception("gateway: unexpected failure")
                self.status.set_association("endpoint", state="connecting", reason=why, paths=[])
                if why != last_error:  # one event per distinct failure, not one per retry
                    self._publish(Event(self.clock.mono(), ASSOC, "haig", None, "connecting", why))
                    last_error = why
            if self._stopping:
                break
            # A refusal is no link problem: let its retries grow past the links-up cap.
            delay = self.backoff.next_delay(links_up=self._any_link_usable() and not self.refusal)
            log.info("association: retrying in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), delay)

    def _any_link_usable(self) -> bool:
        """Some uplink has (or may have: not watched) its link and a local address."""
        return any(self._links.get(u.name, True) and self._local_addrs.get(u.name) for u in self.uplinks)

    def _peer_list(self) -> str:
        return ", ".join(u.endpoint_address for u in self.uplinks)

    def _connect_order(self) -> list[Uplink]:
        # With a NATed path, the INIT must go over it first, or the endpoint aborts the
        # association when the NATed path shows up as out-of-the-blue (shared notes).
        return sorted(self.uplinks, key=lambda u: (not u.udp_encap, u.metric))

    async def _connect(self) -> None:
        m = self.main
        order = self._connect_order()
        locals_ = [self._local_addrs.get(u.name) for u in order]
        bind = [a for a in locals_ if a]
        if not bind:
            raise OSError("no uplink has a local address yet")
        fam = family_of(order[0].endpoint_address)
        wrapper = sctp.sctpsocket_tcp(fam)
        raw = wrapper.sock()
        try:
            sctp_opts.set_initmsg(raw, N_STREAMS, N_STREAMS, attempts=3, init_timeo_ms=m.rto_max)
            sctp_opts.set_rtoinfo(raw, 0, m.rto_initial, m.rto_max, m.rto_min)
            sctp_opts.set_delayed_sack(raw, 0, sctp_opts.sack_delay_for(m.rto_min))
            sctp_opts.set_nodelay(raw)
            sctp_io.subscribe(raw)
            encap = [u for u in order if u.udp_encap]
            if encap:
                sctp_opts.set_udp_encap(raw, 0, None, encap[0].udp_encap_port)
            wrapper.bindx([(a, 0) for a in bind])
            peers = [(u.endpoint_address, m.port) for u in order]
            loop = asyncio.get_running_loop()
            # connectx blocks for the INIT handshake (bounded by INITMSG): off the loop.
            await loop.run_in_executor(None, wrapper.connectx, peers)
        except BaseException:
            wrapper.close()
            raise
        self._pysctp, self.sock = wrapper, raw
        self._tune_paths(encap_socketwide=bool(encap))
        raw.setblocking(False)
        loop.add_reader(raw.fileno(), self._on_readable)
        self.admitted = False
        log.info("association up to %s (local %s)", self._peer_list(), ", ".join(bind))
        self.status.set_association("endpoint", state="authenticating",
                                    paths=self._path_views())
        self.policy.association(True, self.clock.mono(), "association established")
        self._drain_policy()

    def _tune_paths(self, encap_socketwide: bool) -> None:
        """Per-path knobs, on this association only (never the global sysctls)."""
        raw, m = self.sock, self.main
        sctp_opts.expose_pf(raw, 0, 2)
        for u in self.uplinks:
            addr = (u.endpoint_address, m.port)
            try:
                sctp_opts.set_thresholds(raw, 0, addr, u.path_max_retrans, u.pf_retrans)
                sctp_opts.set_paddr_params(raw, 0, addr, u.hb_interval, u.path_max_retrans)
                if encap_socketwide and not u.udp_encap:
                    sctp_opts.set_udp_encap(raw, 0, addr, 0)
            except OSError as e:
                log.warning("uplink %s: cannot tune path %s: %s", u.name, addr[0], e)

    def _close_assoc(self, why: str, graceful: bool = False) -> None:
        was = self.sock is not None
        if self.sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
                if self._writer:
                    asyncio.get_running_loop().remove_writer(self.sock.fileno())
            with contextlib.suppress(Exception):
                self._pysctp.close()
        self.sock = self._pysctp = None
        self._writer = False
        self._queue.clear()
        self.admitted = False
        self._challenge = None
        if was:
            self.policy.association(False, self.clock.mono(), why)
            self._drain_policy()
            self.status.set_association("endpoint", state="down", paths=[])

    def _lose(self, why: str) -> None:
        log.warning("association: %s", why)
        if self._lost is not None:
            self._lost.set()

    # -- SCTP receive -------------------------------------------------------------------

    def _on_readable(self) -> None:
        for _ in range(64):  # bounded batch, then let the loop breathe
            if self.sock is None:
                return
            try:
                item = sctp_io.receive(self.sock)
            except OSError as e:
                self._lose(f"receive failed: {e}")
                return
            if item is None:
                return
            if isinstance(item, sctp_io.Received):
                if not item.data:
                    self._lose("endpoint closed the association")
                    return
                self._on_message(item)
            else:
                self._on_notification(item)

    def _on_notification(self, n: sctp_io.Notification) -> None:
        now = self.clock.mono()
        if isinstance(n, sctp_io.PeerAddrChange):
            u = self.by_addr.get(n.addr[0])
            state = _ADDR_STATE.get(n.state)
            if u is not None and state is not None:
                self.policy.path_state(u.name, state, now, f"{u.name}: kernel says {n.state}")
                self._drain_policy()
        elif isinstance(n, sctp_io.AssocChange):
            if n.state in ("comm_lost", "shutdown_comp", "cant_str_assoc"):
                self._lose(f"association {n.state}")
            elif n.state == "restart":
                log.info("endpoint restarted the association")
        elif n.type == sctp_io.SCTP_SHUTDOWN_EVENT:
            self._lose("endpoint shut the association down")

    def _on_message(self, r: sctp_io.Received) -> None:
        try:
            typ = wire.msg_type(r.data)
            if typ == wire.DATA:
                self._from_endpoint(wire.decode_data(r.data), r)
            elif typ == wire.CHALLENGE:
                self._on_challenge(wire.decode_challenge(r.data))
            elif typ == wire.WELCOME:
                self._on_welcome(wire.decode_welcome(r.data))
            elif typ == wire.REFUSED:
                self.refusal = wire.decode_refused(r.data)
                self._publish(Event(self.clock.mono(), ASSOC, "haig", "authenticating", "refused",
                                    f"endpoint refused this gateway: {self.refusal}"))
                self._lose("refused by the endpoint")
            else:
                self.status.count_drop("malformed")
        except wire.WireError as e:
            log.debug("malformed message from endpoint: %s", e)
            self.status.count_drop("malformed")

    def _on_challenge(self, challenge: bytes) -> None:
        self._challenge = challenge
        self._nonce = os.urandom(wire.NONCE)
        names = tuple(s.name for s in self.services)
        self._send_raw(wire.encode_hello(self.main.key, challenge, self.main.gateway_id,
                                         self._nonce, names))

    def _on_welcome(self, w: wire.Welcome) -> None:
        if self._challenge is None or not wire.welcome_ok(self.main.key, self._nonce, self._challenge, w):
            self.refusal = "endpoint failed to prove it knows the key"
            self._publish(Event(self.clock.mono(), ASSOC, "haig", "authenticating", "refused",
                                self.refusal))
            self._lose(self.refusal)
            return
        self.admitted = True
        self.accepted = w.accepted
        for svc, ok in zip(self.services, w.accepted, strict=False):
            if not ok:
                log.warning("service %s: the endpoint has no target for it; its datagrams are dropped", svc.name)
        self._publish(Event(self.clock.mono(), ASSOC, "haig", "authenticating", "up",
                            f"admitted by the endpoint as {self.main.gateway_id}"))
        self.status.set_association("endpoint", state="up", paths=self._path_views())
        self._announce_path()

    def _from_endpoint(self, d: wire.Data, r: sctp_io.Received) -> None:
        u = self.by_addr.get(r.addr[0]) if r.addr else None
        if u is not None:
            self.status.count_uplink(u.name, "rx", len(r.data))
        flow = self.flows.by_id(d.flow_id)
        if flow is None or d.service >= len(self.listeners):
            self.status.count_drop("unknown_flow")
            return
        if d.flags & wire.FLAG_CRITICAL and not flow.dedup_window().accept(d.seq):
            return  # the other path's copy already arrived
        self.flows.touch(flow.id, self.clock.mono())
        flow.count_tx(len(d.payload))
        tr = self.listeners[d.service].transport
        if tr is not None:
            tr.sendto(d.payload, flow.key[1])

    # -- UDP → SCTP ---------------------------------------------------------------------

    def from_client(self, index: int, data: bytes, addr) -> None:
        if len(data) > self.main.max_datagram:
            self.status.count_drop("oversized")
            return
        if not self.admitted or self.sock is None:
            self.status.count_drop("no_association")
            return
        if index < len(self.accepted) and not self.accepted[index]:
            self.status.count_drop("no_association")
            return
        svc = self.services[index]
        now = self.clock.mono()
        flow = self.flows.get_or_open((index, addr), now, service=svc.name, critical=svc.critical)
        if flow is None:
            self.status.count_drop("flow_table_full")
            return
        flow.count_rx(len(data))
        if svc.critical:
            seq = flow.next_seq()
            msg = wire.encode_data(index, flow.id, data, seq, wire.FLAG_CRITICAL)
            self._send(msg, flow.stream, svc.ttl)
            other = self.by_name.get(self.policy.secondary or "")
            if other is not None:
                copy = wire.encode_data(index, flow.id, data, seq, wire.FLAG_CRITICAL | wire.FLAG_COPY)
                self._send(copy, flow.stream, svc.ttl, via=other)
        else:
            self._send(wire.encode_data(index, flow.id, data), flow.stream, svc.ttl)

    def _send(self, msg: bytes, stream: int, ttl: int, via: Uplink | None = None) -> None:
        item = (msg, stream, ttl, via)
        if self._queue:
            self._enqueue(item)
            return
        if not self._try_send(item):
            self._enqueue(item)

    def _try_send(self, item: tuple) -> bool:
        msg, stream, ttl, via = item
        to = (via.endpoint_address, self.main.port) if via is not None else None
        try:
            sctp_io.send(self.sock, msg, stream=stream, ttl_ms=ttl, to=to, addr_over=to is not None)
        except BlockingIOError:
            return False
        except OSError as e:
            self.status.count_drop("no_association")
            log.debug("send failed: %s", e)
            return True
        name = via.name if via is not None else self.policy.primary
        if name:
            self.status.count_uplink(name, "tx", len(msg))
        return True

    def _enqueue(self, item: tuple) -> None:
        if len(self._queue) >= self.main.queue:
            self.status.count_drop("queue_full")
            return
        self._queue.append(item)
        if not self._writer and self.sock is not None:
            asyncio.get_running_loop().add_writer(self.sock.fileno(), self._flush)
            self._writer = True

    def _flush(self) -> None:
        while self._queue and self.sock is not None:
            if not self._try_send(self._queue[0]):
                return
            self._queue.popleft()
        if self._writer and self.sock is not None:
            asyncio.get_running_loop().remove_writer(self.sock.fileno())
        self._writer = False

    def _send_raw(self, msg: bytes, via: Uplink | None = None) -> None:
        """Control messages: reliable, ordered on stream 0."""
        if self.sock is None:
            return
        to = (via.endpoint_address, self.main.port) if via is not None else None
        try:
            sctp_io.send(self.sock, msg, stream=0, unordered=False, to=to, addr_over=to is not None)
        except OSError as e:
            log.debug("control send failed: %s", e)

    # -- policy -------------------------------------------------------------------------

    def _drain_policy(self) -> None:
        while (a := self.policy.next_action()) is not None:
            self._apply(a)
        while (ev := self.policy.next_event()) is not None:
            self._publish(ev)
        self.status.set_primary(self.policy.primary)
        self._wake_ticker()

    def _apply(self, action: Any) -> None:
        if self.sock is None:
            return
        u = self.by_name[action.uplink]
        addr = (u.endpoint_address, self.main.port)
        try:
            if isinstance(action, SetPrimary):
                sctp_opts.set_primary(self.sock, 0, addr)
                self._announce_path()
            elif isinstance(action, SetHeartbeat):
                sctp_opts.set_paddr_params(self.sock, 0, addr, action.interval_ms, u.path_max_retrans)
        except OSError as e:
            log.warning("cannot apply %s: %s", action, e)

    def _announce_path(self) -> None:
        """Tell the endpoint our primary by sending over it: it makes the address this
        arrives from its own primary towards us, so replies follow (NAT included)."""
        u = self.by_name.get(self.policy.primary or "")
        if u is not None and self.admitted:
            self._send_raw(wire.encode_path(), via=u)

    def _publish(self, ev: Event) -> None:
        publish(self.status, self.clock, ev)

    def force_primary(self, uplink: str | None, duration_s: float) -> None:
        if uplink is not None and uplink not in self.by_name:
            raise ValueError(f"unknown uplink {uplink!r}; configured: {', '.join(self.by_name)}")
        self.policy.force_primary(uplink, self.clock.mono(), duration_s)
        self._drain_policy()

    # -- link awareness -----------------------------------------------------------------

    def _start_link_watch(self) -> None:
        try:
            from haig.adapters.netlink import LinkWatcher
        except Exception as e:  # pragma: no cover - pyroute2 missing
            log.warning("link watching disabled: %s", e)
            return
        self._watcher = LinkWatcher(self.uplinks)
        self._tasks.append(asyncio.create_task(self._watch()))

    async def _watch(self) -> None:
        try:
            await self._watcher.run(self._on_link)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("link watcher stopped: %s", e)

    def _on_link(self, uplink: str, up: bool, reason: str) -> None:
        st = self._watcher.current().get(uplink) if self._watcher else None
        self.on_uplink_facts(uplink, up=up, local_address=(st[2] if st else None) or None, reason=reason)

    def _learn_addresses(self) -> None:
        """Addresses the watcher knows but never announced: its changes report up/down
        only, so a new lease on a link that stays up is picked up here (and on samples)."""
        if self._watcher is None:
            return
        for name, (up, reason, addr) in self._watcher.current().items():
            u = self.by_name.get(name)
            if u is None:
                continue
            if name not in self._links or (addr and not u.local_address and addr != self._local_addrs.get(name)):
                self.on_uplink_facts(name, up=up, local_address=addr or None, reason=reason)

    def on_uplink_facts(self, name: str, *, up: bool, local_address: str | None, reason: str) -> None:
        """The one entry point for link/address facts (netlink LinkWatcher, netifd/ubus).

        `local_address` None = not known (keep what we have). A configured
        local_address always wins over the device's. A changed address of an uplink the
        association uses makes the gateway re-associate from the new address."""
        u = self.by_name.get(name)
        if u is None:
            return
        was_up = self._links.get(name)
        self._links[name] = up
        old_addr = self._local_addrs.get(name) or ""
        new_addr = old_addr
        if local_address and not u.local_address:
            new_addr = local_address
        self._local_addrs[name] = new_addr
        if was_up != up:
            self.policy.link(name, up, self.clock.mono(), reason)
            self._drain_policy()
        self.status.update_uplink(name, link_up=up, **({"local_address": new_addr} if new_addr else {}))
        if up and (not was_up or new_addr != old_addr) and self._kick is not None:
            self._kick.set()  # a link or an address came back: do not sit out a back-off
        if new_addr != old_addr and old_addr and self.sock is not None:
            self._lose(f"uplink {name}: local address {old_addr} -> {new_addr}")

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

    # -- periodic work ------------------------------------------------------------------

    def _wake_ticker(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _ticker(self) -> None:
        next_sample = 0.0
        next_flows = 0.0
        while True:
            now = self.clock.mono()
            try:
                if now >= next_sample:
                    next_sample = now + SAMPLE_INTERVAL
                    self._sample(now)
                self.policy.handle_timer(now)
                self._drain_policy()
                for f in self.flows.expire(now):
                    self._send_raw(wire.encode_close(f.id))
                if now >= next_flows:
                    next_flows = now + 1.0
                    self.status.set_flows(self.flows.snapshot(now))
            except Exception:  # a bug in one tick must not stop the timers for good
                log.exception("gateway: periodic work failed")
            deadlines = [t for t in (self.policy.get_timer(), self.flows.get_timer(), next_sample) if t]
            delay = max(0.005, min(deadlines) - self.clock.mono())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _sample(self, now: float) -> None:
        self._learn_addresses()
        if self.sock is None:
            return
        for u in self.uplinks:
            try:
                info = sctp_opts.get_path_info(self.sock, 0, (u.endpoint_address, self.main.port))
            except OSError:
                continue
            state = _INFO_STATE.get(info.state)
            if state is None:
                continue
            self.policy.sample(u.name, now, state=state, srtt_ms=info.srtt_ms, rto_ms=info.rto_ms,
                               cwnd=info.cwnd)
            view = self.policy.uplink_view(u.name, now)
            self.status.update_uplink(u.name, **{k: v for k, v in view.items() if k in POLICY_FIELDS})
        self._drain_policy()
        if self.admitted:
            self.status.set_association("endpoint", state="up", paths=self._path_views())

    def _path_views(self) -> list[dict[str, Any]]:
        out = []
        for u in self.uplinks:
            v = self.policy.uplink_view(u.name)
            out.append({"address": u.endpoint_address, "uplink": u.name, "state": v.get("state"),
                        "srtt_ms": v.get("srtt_ms"), "rto_ms": v.get("rto_ms"), "cwnd": v.get("cwnd"),
                        "primary": u.name == self.policy.primary})
        return out
