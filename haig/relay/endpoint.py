"""Endpoint role (at the hospital): one one-to-many SCTP socket serving many gateways.

Each association must prove it is a configured gateway (challenge/HELLO/WELCOME, see
haig.core.wire) before anything it sends is relayed; refusals are logged and the
association is aborted. Per gateway and per flow a UDP socket towards the service's
target, so replies go back to the right client of the right home.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import sctp

from haig.adapters import sctp_io, sctp_opts
from haig.config.model import Config, Peer, Service
from haig.config.validate import parse_hostport
from haig.core import wire
from haig.core.events import ASSOC, Event
from haig.core.flows import FlowTable
from haig.core.status import StatusModel
from haig.relay.common import (
    N_STREAMS,
    Clock,
    cancel_tasks,
    ensure_udp_encap_port,
    family_of,
    publish,
    udp_socket,
)

log = logging.getLogger("haig.endpoint")

REFUSE_ABORT_DELAY = 0.5  # s: let REFUSED reach the gateway before the ABORT
PATH_SAMPLE_INTERVAL = 1.0
DEFAULT_HB_MS = 1000


@dataclass
class Session:
    assoc_id: int
    challenge: bytes
    since: float
    gateway: Peer | None = None
    services: list[Service | None] = field(default_factory=list)
    flows: FlowTable | None = None
    primary: tuple | None = None
    paths: dict[str, str] = field(default_factory=dict)  # peer address → state
    infos: dict[str, sctp_opts.PathInfo] = field(default_factory=dict)  # last sample per address


class Endpoint:
    def __init__(self, cfg: Config, status: StatusModel, *, clock: Clock | None = None) -> None:
        self.cfg, self.main, self.status = cfg, cfg.main, status
        self.clock = clock or Clock()
        self.peers = {p.name: p for p in cfg.peers}
        self.targets = {s.name: s for s in cfg.services if s.target}
        self.sessions: dict[int, Session] = {}
        self.by_gateway: dict[str, int] = {}
        self.sock: socket.socket | None = None
        self._pysctp: Any = None
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._resolved: dict[str, tuple[str, int]] = {}

    # -- life cycle ---------------------------------------------------------------------

    async def run(self) -> None:
        self.status.set_uplinks([])
        for s in self.targets.values():
            self._resolved[s.name] = await _resolve(s.target)
        ensure_udp_encap_port(self.main.udp_port)  # NATed gateways arrive over UDP
        m = self.main
        wrapper = sctp.sctpsocket_udp(family_of(m.bind[0]))
        raw = wrapper.sock()
        sctp_opts.set_initmsg(raw, N_STREAMS, N_STREAMS)
        # assoc id 0 on a one-to-many socket = defaults for associations yet to come;
        # every association is tuned again on COMM_UP.
        sctp_opts.set_rtoinfo(raw, 0, m.rto_initial, m.rto_max, m.rto_min)
        sctp_opts.set_delayed_sack(raw, 0, sctp_opts.sack_delay_for(m.rto_min))
        sctp_opts.set_nodelay(raw)
        sctp_io.subscribe(raw)
        wrapper.bindx([(a, m.port) for a in m.bind])
        wrapper.listen(128)
        raw.setblocking(False)
        self._pysctp, self.sock = wrapper, raw
        loop = asyncio.get_running_loop()
        loop.add_reader(raw.fileno(), self._on_readable)
        log.info("endpoint listening on %s port %d for %d gateway(s)",
                 ", ".join(m.bind), m.port, len(self.peers))
        self._tasks.append(asyncio.create_task(self._ticker()))
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        await cancel_tasks(self._tasks)
        for sess in list(self.sessions.values()):
            self._end_session(sess, "haig stopping")
        if self.sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self._pysctp.close()
            self.sock = None

    # -- SCTP receive -------------------------------------------------------------------

    def _on_readable(self) -> None:
        for _ in range(64):
            if self.sock is None:
                return
            try:
                item = sctp_io.receive(self.sock)
            except OSError as e:
                log.warning("receive failed: %s", e)
                return
            if item is None:
                return
            if isinstance(item, sctp_io.Received):
                self._on_message(item)
            else:
                self._on_notification(item)

    def _on_notification(self, n: sctp_io.Notification) -> None:
        if isinstance(n, sctp_io.AssocChange):
            if n.state in ("comm_up", "restart"):
                old = self.sessions.pop(n.assoc_id, None)
                if old is not None:
                    self._end_session(old, "association restarted")
                self._begin_session(n.assoc_id)
            elif n.state in ("comm_lost", "shutdown_comp", "cant_str_assoc"):
                sess = self.sessions.get(n.assoc_id)
                if sess is not None:
                    self._end_session(sess, f"association {n.state}")
        elif isinstance(n, sctp_io.PeerAddrChange):
            sess = self.sessions.get(n.assoc_id)
            if sess is not None:
                sess.paths[n.addr[0]] = n.state
        elif n.type == sctp_io.SCTP_SHUTDOWN_EVENT:
            sess = self.sessions.get(n.assoc_id)
            if sess is not None:
                self._end_session(sess, "gateway shut the association down")

    def _begin_session(self, assoc_id: int) -> None:
        sess = Session(assoc_id, os.urandom(wire.NONCE), self.clock.mono())
        self.sessions[assoc_id] = sess
        self._tune(assoc_id)
        self._send_ctl(assoc_id, wire.encode_challenge(sess.challenge))

    def _tune(self, assoc_id: int) -> None:
        """Per association, never global: the same RTO bounds as configured, a short
        heartbeat on every path so a dead one is noticed while it idles."""
        m = self.main
        try:
            sctp_opts.set_rtoinfo(self.sock, assoc_id, m.rto_initial, m.rto_max, m.rto_min)
            sctp_opts.set_delayed_sack(self.sock, assoc_id, sctp_opts.sack_delay_for(m.rto_min))
            sctp_opts.expose_pf(self.sock, assoc_id, 2)
            sctp_opts.set_paddr_params(self.sock, assoc_id, None, DEFAULT_HB_MS, 0)
        except OSError as e:
            log.warning("association %d: cannot tune: %s", assoc_id, e)

    def _on_message(self, r: sctp_io.Received) -> None:
        sess = self.sessions.get(r.assoc_id)
        if sess is None:
            self.status.count_drop("no_association")
            return
        try:
            typ = wire.msg_type(r.data)
            if sess.gateway is None:
                if typ == wire.HELLO:
                    self._on_hello(sess, wire.decode_hello(r.data), r.addr)
                else:
                    self.status.count_drop("no_association")
                return
            if typ == wire.DATA:
                self._from_gateway(sess, wire.decode_data(r.data), r)
            elif typ == wire.PATH and r.addr:
                wire.decode_path(r.data)
                self._follow_path(sess, r.addr)
            elif typ == wire.CLOSE:
                self._close_flow(sess, wire.decode_close(r.data))
            else:
                self.status.count_drop("malformed")
        except wire.WireError as e:
            log.debug("malformed message on association %d: %s", r.assoc_id, e)
            self.status.count_drop("malformed")

    def _on_hello(self, sess: Session, hello: wire.Hello, addr) -> None:
        peer = self.peers.get(hello.gateway_id)
        where = f"{addr[0]}" if addr else "?"
        if peer is None:
            return self._refuse(sess, hello.gateway_id, where, "unknown gateway")
        if not peer.enabled:
            return self._refuse(sess, hello.gateway_id, where, "gateway disabled")
        if not wire.hello_ok(peer.key, sess.challenge, hello):
            return self._refuse(sess, hello.gateway_id, where, "wrong key")
        old = self.by_gateway.get(peer.name)
        if old is not None and old != sess.assoc_id and old in self.sessions:
            # The home re-associated (router reboot, new addresses): the old one is stale.
            self._end_session(self.sessions[old], "replaced by a new association", abort=True)
        sess.gateway = peer
        sess.services = [self.targets.get(name) for name in hello.services]
        sess.flows = FlowTable(self.main.max_flows, self.main.flow_idle, n_streams=N_STREAMS)
        self.by_gateway[peer.name] = sess.assoc_id
        accepted = tuple(s is not None for s in sess.services)
        self._send_ctl(sess.assoc_id, wire.encode_welcome(peer.key, hello.nonce, sess.challenge, accepted))
        missing = [n for n, s in zip(hello.services, sess.services, strict=False) if s is None]
        self._publish(Event(self.clock.mono(), ASSOC, peer.name, "authenticating", "up",
                            f"gateway {peer.name} admitted from {where}"
                            + (f"; no target for {', '.join(missing)}" if missing else "")))
        self._update_status(sess)

    def _refuse(self, sess: Session, gw_id: str, where: str, why: str) -> None:
        log.warning("refused gateway %r from %s: %s", gw_id, where, why)
        self._publish(Event(self.clock.mono(), ASSOC, gw_id or "?", "authenticating", "refused",
                            f"refused gateway {gw_id!r} from {where}: {why}"))
        self._send_ctl(sess.assoc_id, wire.encode_refused(why))
        asyncio.get_running_loop().call_later(REFUSE_ABORT_DELAY, self._abort, sess.assoc_id)
        self.sessions.pop(sess.assoc_id, None)

    def _abort(self, assoc_id: int) -> None:
        if self.sock is None:
            return
        with contextlib.suppress(OSError):
            sctp_io.send(self.sock, b"", assoc_id=assoc_id, abort=True, unordered=False)

    def _end_session(self, sess: Session, why: str, abort: bool = False) -> None:
        self.sessions.pop(sess.assoc_id, None)
        if sess.flows is not None:
            for f in sess.flows.clear():
                self._drop_flow_socket(f)
        if sess.gateway is not None:
            name = sess.gateway.name
            if self.by_gateway.get(name) == sess.assoc_id:
                del self.by_gateway[name]
                self.status.set_association(name, state="down", reason=why, paths=[])
            self._publish(Event(self.clock.mono(), ASSOC, name, "up", "down", f"gateway {name}: {why}"))
        if abort:
            self._abort(sess.assoc_id)

    def _follow_path(self, sess: Session, addr: tuple) -> None:
        """The gateway sent PATH over its chosen primary: use that address towards it."""
        if sess.primary == addr[:2]:
            return
        try:
            sctp_opts.set_primary(self.sock, sess.assoc_id, addr[:2])
            sess.primary = addr[:2]
            log.info("gateway %s: replies now via %s", sess.gateway.name if sess.gateway else "?", addr[0])
        except OSError as e:
            log.warning("cannot follow the gateway's primary %s: %s", addr[0], e)

    # -- data ---------------------------------------------------------------------------

    def _from_gateway(self, sess: Session, d: wire.Data, r: sctp_io.Received) -> None:
        assert sess.flows is not None
        svc = sess.services[d.service] if d.service < len(sess.services) else None
        if svc is None:
            self.status.count_drop("unknown_flow")
            return
        now = self.clock.mono()
        flow = sess.flows.get_or_open(d.flow_id, now, stream=r.stream, service=svc.name,
                                      critical=bool(d.flags & wire.FLAG_CRITICAL))
        if flow is None:
            self.status.count_drop("flow_table_full")
            return
        if d.flags & wire.FLAG_CRITICAL and not flow.dedup_window().accept(d.seq):
            return
        if flow.data is None:
            try:
                flow.data = self._open_flow_socket(sess, flow, d.service, svc)
            except OSError as e:
                log.warning("gateway %s: cannot open UDP towards %s: %s", sess.gateway.name, svc.target, e)
                sess.flows.close(flow.id)
                self.status.count_drop("no_association")
                return
        flow.count_rx(len(d.payload))
        try:
            flow.data.send(d.payload)
        except BlockingIOError:
            flow.drops += 1
            self.status.count_drop("queue_full")
        except OSError:  # ICMP port unreachable from the target: UDP, so count it
            flow.drops += 1
            self.status.count_drop("no_association")

    def _open_flow_socket(self, sess: Session, flow, svc_index: int, svc: Service) -> socket.socket:
        s = udp_socket(connect=self._resolved[svc.name])
        assoc_id, gw_flow = sess.assoc_id, flow.key
        asyncio.get_running_loop().add_reader(
            s.fileno(), self._from_target, s, assoc_id, gw_flow, svc_index)
        return s

    def _from_target(self, s: socket.socket, assoc_id: int, gw_flow: int, svc_index: int) -> None:
        sess = self.sessions.get(assoc_id)
        for _ in range(64):
            try:
                data = s.recv(65535)
            except BlockingIOError:
                return
            except OSError:
                return  # ICMP error from the target; nothing to relay
            if sess is None or sess.flows is None:
                return
            flow = sess.flows.get(gw_flow)  # keyed by the gateway's flow id
            svc = sess.services[svc_index]
            if flow is None or svc is None:
                return
            sess.flows.touch(flow.id, self.clock.mono())
            if len(data) > self.main.max_datagram:
                self.status.count_drop("oversized")
                continue
            flow.count_tx(len(data))
            if flow.critical:
                seq = flow.next_seq()
                self._send_data(sess, wire.encode_data(svc_index, gw_flow, data, seq, wire.FLAG_CRITICAL),
                                flow.stream, svc.ttl)
                other = self._other_path(sess)
                if other is not None:
                    self._send_data(sess, wire.encode_data(svc_index, gw_flow, data, seq,
                                                           wire.FLAG_CRITICAL | wire.FLAG_COPY),
                                    flow.stream, svc.ttl, to=other)
            else:
                self._send_data(sess, wire.encode_data(svc_index, gw_flow, data), flow.stream, svc.ttl)

    def _other_path(self, sess: Session) -> tuple | None:
        for addr, state in sess.paths.items():
            if state == "active" and (sess.primary is None or addr != sess.primary[0]):
                port = sess.primary[1] if sess.primary else self._peer_port(sess)
                return (addr, port) if port else None
        return None

    def _peer_port(self, sess: Session) -> int | None:
        with contextlib.suppress(Exception):
            return self._pysctp.getpaddrs(sess.assoc_id)[0][1]
        return None

    def _send_data(self, sess: Session, msg: bytes, stream: int, ttl: int, to: tuple | None = None) -> None:
        try:
            sctp_io.send(self.sock, msg, stream=stream, ttl_ms=ttl, assoc_id=sess.assoc_id,
                         to=to, addr_over=to is not None)
        except BlockingIOError:
            self.status.count_drop("queue_full")
        except OSError as e:
            log.debug("send to association %d failed: %s", sess.assoc_id, e)
            self.status.count_drop("no_association")

    def _send_ctl(self, assoc_id: int, msg: bytes) -> None:
        try:
            sctp_io.send(self.sock, msg, stream=0, unordered=False, assoc_id=assoc_id)
        except OSError as e:
            log.debug("control send to association %d failed: %s", assoc_id, e)

    def _close_flow(self, sess: Session, flow_id: int) -> None:
        if sess.flows is not None:
            f = sess.flows.close(flow_id)
            if f is not None:
                self._drop_flow_socket(f)

    def _drop_flow_socket(self, flow) -> None:
        s = flow.data
        flow.data = None
        if s is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(s.fileno())
            s.close()

    # -- periodic -----------------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            now = self.clock.mono()
            for sess in list(self.sessions.values()):
                if sess.flows is not None:
                    for f in sess.flows.expire(now):
                        self._drop_flow_socket(f)
                if sess.gateway is not None:
                    self._sample(sess)
                    self._update_status(sess)
                elif now - sess.since > 10:
                    self._refuse(sess, "", "?", "no HELLO within 10 s")
            flows = []
            for sess in self.sessions.values():
                if sess.flows is not None and sess.gateway is not None:
                    for f in sess.flows.snapshot(now, key_fmt=lambda k: f"flow {k}"):
                        f["gateway_id"] = sess.gateway.name
                        flows.append(f)
            self.status.set_flows(flows)
            await asyncio.sleep(PATH_SAMPLE_INTERVAL)

    def _sample(self, sess: Session) -> None:
        try:
            addrs = [a[:2] for a in self._pysctp.getpaddrs(sess.assoc_id)]
        except Exception:
            return
        for a in addrs:
            with contextlib.suppress(OSError):
                info = sctp_opts.get_path_info(self.sock, sess.assoc_id, a)
                sess.paths[a[0]] = info.state
                sess.infos[a[0]] = info

    def _update_status(self, sess: Session) -> None:
        if sess.gateway is None:
            return
        infos = sess.infos
        paths = []
        for addr, state in sess.paths.items():
            i = infos.get(addr)
            paths.append({"address": addr, "state": state,
                          "srtt_ms": i.srtt_ms if i else None, "rto_ms": i.rto_ms if i else None,
                          "cwnd": i.cwnd if i else None,
                          "primary": bool(sess.primary and sess.primary[0] == addr)})
        self.status.set_association(sess.gateway.name, state="up", gateway_id=sess.gateway.name,
                                    assoc_id=sess.assoc_id, paths=paths,
                                    primary=sess.primary[0] if sess.primary else None)

    def _publish(self, ev: Event) -> None:
        publish(self.status, self.clock, ev)


async def _resolve(hostport: str) -> tuple[str, int]:
    host, port = parse_hostport(hostport)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    return infos[0][4][:2]
