"""A gateway core and an endpoint core wired back to back on a fake clock, no sockets:
what one queues the other receives (with the path it came on), for host tests of the
relay protocol (tests/unit/test_gateway_link.py, test_endpoint_session.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from haig.config.model import Config, Main, Peer, Service, Uplink
from haig.core.endpoint_session import EndpointCore
from haig.core.gateway_link import Connect, Disconnect, GatewayLink, Sample
from haig.core.states import PathState

KEY = "k" * 24
PORT = 8888
DSL_EP, LTE_EP = "198.51.100.1", "198.51.100.2"  # endpoint addresses, one per uplink
DSL_GW, LTE_GW = "192.0.2.1", "203.0.113.1"  # gateway's local addresses
CLIENT = ("192.168.1.10", 50000)


def services(critical: bool = False, ttl: int = 1000) -> tuple[Service, ...]:
    return (Service("telemetry", listen="127.0.0.1:7000", target="10.2.0.2:7000", ttl=ttl, critical=critical),)


def gateway_config(*, queue: int = 256, critical: bool = False, hold_down: int = 5, key: str = KEY,
                   max_flows: int = 1024, local: bool = True) -> Config:
    main = Main(role="gateway", gateway_id="home1", key=key, port=PORT, hold_down=hold_down, queue=queue,
                max_flows=max_flows, max_datagram=1400)
    ups = (Uplink("dsl", device="dsl0", metric=1, endpoint_address=DSL_EP, local_address=DSL_GW if local else ""),
           Uplink("lte", device="lte0", metric=2, endpoint_address=LTE_EP, local_address=LTE_GW if local else ""))
    return Config(main=main, uplinks=ups, services=services(critical))


def endpoint_config(*, peers: tuple[Peer, ...] = (Peer("home1", KEY),), critical: bool = False,
                    svcs: tuple[Service, ...] | None = None) -> Config:
    main = Main(role="endpoint", port=PORT, bind=(DSL_EP, LTE_EP), max_datagram=1400)
    return Config(main=main, services=svcs if svcs is not None else services(critical), peers=peers)


@dataclass
class Bench:
    gw_cfg: Config = field(default_factory=gateway_config)
    ep_cfg: Config = field(default_factory=endpoint_config)
    now: float = 0.0
    assoc_id: int = 1
    up: bool = False
    lossy: set = field(default_factory=set)  # endpoint addresses whose path drops everything
    auth: bool = True  # both ends' INIT offer SCTP-AUTH (what the drivers read at COMM_UP)
    delivered_to_clients: list = field(default_factory=list)
    delivered_to_targets: list = field(default_factory=list)
    events: list = field(default_factory=list)
    gw_actions: list = field(default_factory=list)
    ep_actions: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gw = GatewayLink(self.gw_cfg, self.now, rand=random.Random(1), nonce=lambda n: b"g" * n)
        self.ep = EndpointCore(self.ep_cfg, self.now, nonce=lambda n: bytes(range(n)))

    # -- moving things between the two cores --------------------------------------------

    def pump(self) -> None:
        for _ in range(20):
            moved = False
            while (a := self.gw.next_action()) is not None:
                moved = True
                self.gw_actions.append(a)
                if isinstance(a, Connect) and self.up is None:
                    self.gw.connect_failed("connection refused", self.now)
                elif isinstance(a, Connect):
                    self._associate()
                elif isinstance(a, Disconnect) and self.up:
                    self.up = False
                    self.ep.association_gone(self.assoc_id, "peer closed", self.now)
                elif isinstance(a, Sample):
                    for u, addr in (("dsl", DSL_EP), ("lte", LTE_EP)):
                        st = PathState.PF if addr in self.lossy else PathState.ACTIVE
                        self.gw.path_sample(u, st, self.now, srtt_ms=10, rto_ms=200, cwnd=4380)
            while (a := self.ep.next_action()) is not None:
                moved = True
                self.ep_actions.append(a)
            while (item := self.gw.queue.peek()) is not None:
                moved = True
                self.gw.queue.pop()
                to = item.to[0] if item.to else self._gw_primary_addr()
                if self.up and to not in self.lossy:
                    src = DSL_GW if to == DSL_EP else LTE_GW
                    self.ep.receive_message(self.assoc_id, item.data, (src, 40000), item.stream, self.now)
            for q in self.ep.queues():
                while (item := q.peek()) is not None:
                    moved = True
                    q.pop()
                    to = item.to[0] if item.to else DSL_GW
                    ep_addr = DSL_EP if to == DSL_GW else LTE_EP
                    if self.up and ep_addr not in self.lossy:
                        self.gw.receive_message(item.data, (ep_addr, PORT), self.now)
            self.delivered_to_clients += self.gw.datagrams_to_deliver()
            self.delivered_to_targets += self.ep.datagrams_to_deliver()
            for core in (self.gw, self.ep):
                while (ev := core.next_event()) is not None:
                    self.events.append(ev)
            if not moved:
                return

    def _gw_primary_addr(self) -> str:
        p = self.gw.policy.primary
        return LTE_EP if p == "lte" else DSL_EP

    def _associate(self) -> None:
        self.up = True
        self.assoc_id += 1
        self.gw.connected(self.now, self.auth)
        self.ep.association_up(self.assoc_id, self.now, auth=self.auth)
        for u in ("dsl", "lte"):
            self.gw.path_sample(u, PathState.ACTIVE, self.now, srtt_ms=10, rto_ms=200, cwnd=4380)
        for addr in (DSL_GW, LTE_GW):
            self.ep.path_state(self.assoc_id, (addr, 40000), PathState.ACTIVE, self.now)

    def run_until(self, t: float) -> None:
        """Fire timers up to t (like the driver's call_at timer)."""
        while True:
            self.pump()
            due = [x for x in (self.gw.get_timer(), self.ep.get_timer()) if x is not None and x <= t]
            if not due:
                break
            self.now = max(self.now, min(due))
            self.gw.handle_timer(self.now)
            self.ep.handle_timer(self.now)
        self.now = t
        self.pump()

    # -- traffic --------------------------------------------------------------------------

    def client_sends(self, payload: bytes, client=CLIENT) -> None:
        self.gw.receive_datagram(0, client, payload, self.now)
        self.pump()

    def target_replies(self, payload: bytes, flow_id: int | None = None) -> None:
        if flow_id is None:
            flow_id = self.delivered_to_targets[-1].flow_id
        self.ep.receive_from_target(self.assoc_id, flow_id, payload, self.now)
        self.pump()

    def endpoint_restarts(self) -> None:
        """The endpoint process dies and comes back: a new core, the association lost."""
        self.ep = EndpointCore(self.ep_cfg, self.now, nonce=lambda n: bytes(range(n)))
        self.up = False
        self.gw.association_lost("association lost (peer unreachable)", self.now)
        self.pump()

    def drops(self, core=None) -> dict:
        out: dict = {}
        for c in (core,) if core is not None else (self.gw, self.ep):
            for (r, s), n in c.ledger.totals.items():
                out[(r, s)] = out.get((r, s), 0) + n
        return out
