"""Typed configuration. The field list here is the contract between the UCI
file (/etc/config/haig), the daemon, LuCI and the docs.

Times of SCTP knobs are in milliseconds (the kernel's unit); hold-down in seconds.
Ranges live in `meta["range"]` so validation, README and LuCI say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def opt(default, lo=None, hi=None, choices=None, doc=""):
    meta = {"doc": doc}
    if lo is not None or hi is not None:
        meta["range"] = (lo, hi)
    if choices is not None:
        meta["choices"] = tuple(choices)
    if isinstance(default, list):
        default = tuple(default)  # frozen config: lists become tuples (hashable, immutable)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Main:
    """`config haig 'main'`"""

    enabled: bool = opt(True, doc="0 keeps the service stopped (the init script checks it); the shipped file has 0 until it is filled in")
    role: str = opt("gateway", choices=("gateway", "endpoint"), doc="which end of the link this box is")
    gateway_id: str = opt("", doc="gateway role: this home's identity, as the endpoint knows it")
    key: str = opt("", doc="gateway role: shared secret with the endpoint (>= 16 characters)")
    port: int = opt(8888, 1, 65535, doc="SCTP port of the endpoint")
    standby_port: int = opt(0, 0, 65535, doc="gateway role: SCTP port of the standby endpoint (uplinks' standby_address); 0 = the same as port")
    standby_after: int = opt(5, 1, 3600, doc="gateway role: seconds the endpoint in use must stay unreachable on every path (or refuse) before the gateway associates with the other one; a restarting endpoint back within this time keeps its homes")
    standby_hold_down: int = opt(30, 0, 86400, doc="gateway role: seconds the primary endpoint must keep answering probes, while the standby is in use, before the gateway returns to it")
    bind: tuple[str, ...] = opt((), doc="endpoint role: local addresses of the endpoint's SCTP socket (one per uplink it serves)")
    rto_initial: int = opt(1000, 10, 60000, doc="SCTP RTO initial, ms (per association)")
    rto_min: int = opt(40, 10, 60000, doc="SCTP RTO minimum, ms (per association); the SACK delay follows it (a quarter, at least 5 ms)")
    rto_max: int = opt(1000, 10, 60000, doc="SCTP RTO maximum, ms (per association)")
    hold_down: int = opt(30, 0, 86400, doc="seconds the preferred uplink must stay healthy before traffic returns to it")
    flow_idle: int = opt(120, 5, 86400, doc="seconds without traffic after which a UDP flow is forgotten")
    max_flows: int = opt(1024, 1, 65535, doc="most UDP flows kept at once (per gateway on the endpoint)")
    queue: int = opt(256, 1, 65536, doc="datagrams queued per service and direction before the longest service queue loses its oldest (counted)")
    max_datagram: int = opt(65507, 64, 65507, doc="largest datagram carried; larger ones are dropped and counted")
    udp_port: int = opt(9899, 1, 65535, doc="local UDP port for SCTP-over-UDP (RFC 6951) when an uplink uses udp_encap")
    require_auth: bool = opt(True, doc="refuse an association whose peer does not authenticate DATA with SCTP-AUTH (RFC 4895; keyed per association at admission, no global sysctl); 0 admits a peer without it (an older haig, a kernel before 5.1), with a warning")
    api_listen: str = opt("127.0.0.1:8990", doc="host:port of the JSON API and panel; '0' (or off/none) disables it, and the Config then holds ''")
    api_token: str = opt("", doc="token required by the API when api_listen is not loopback")
    log_level: str = opt("info", choices=("debug", "info", "warning", "error"), doc="log verbosity")


@dataclass(frozen=True)
class Uplink:
    """`config uplink '<name>'` (gateway role): one internet connection = one SCTP path."""

    name: str
    interface: str = opt("", doc="OpenWrt logical interface (e.g. wan, wwan); its device and address are watched")
    device: str = opt("", doc="Linux network device; empty = resolved from interface")
    metric: int = opt(1, 1, 255, doc="priority as in mwan3: the lowest metric among healthy uplinks carries traffic")
    local_address: str = opt("", doc="this uplink's own address; empty = taken from the device")
    endpoint_address: str = opt("", doc="the endpoint's address reached over this uplink (one per uplink: a path is a peer address)")
    standby_address: str = opt("", doc="the standby endpoint's address reached over this uplink; set on every uplink or on none (none = no standby endpoint)")
    gateway: str = opt("", doc="next hop of this uplink, for the policy route pinning endpoint_address (and standby_address) to it; empty = on-link/none")
    metered: bool = opt(False, doc="pay-per-byte link: slow heartbeats while idle, no bulk traffic unless it is the only path")
    udp_encap: bool = opt(False, doc="carry SCTP inside UDP on this path (RFC 6951), for NAT / carriers dropping SCTP")
    udp_encap_port: int = opt(9899, 1, 65535, doc="the endpoint's UDP encapsulation port")
    hb_interval: int = opt(1000, 100, 3600000, doc="heartbeat interval on this path, ms")
    metered_hb_interval: int = opt(30000, 1000, 3600000, doc="heartbeat interval while a metered path is idle, ms")
    path_max_retrans: int = opt(3, 1, 20, doc="retransmissions before the kernel declares the path unreachable")
    pf_retrans: int = opt(0, 0, 20, doc="retransmissions before the path is potentially failed (must be <= path_max_retrans)")


@dataclass(frozen=True)
class Service:
    """`config service '<name>'`: one UDP service carried over the link.

    Gateway role uses `listen`; endpoint role uses `target`. Both ends must know the service
    by the same name."""

    name: str
    listen: str = opt("", doc="gateway: host:port where local clients send datagrams (e.g. 127.0.0.1:1194)")
    target: str = opt("", doc="endpoint: host:port datagrams are delivered to (e.g. 127.0.0.1:1194)")
    ttl: int = opt(1000, 0, 60000, doc="ms a datagram may wait for (re)transmission before it is abandoned (PR-SCTP); 0 = fully reliable")
    critical: bool = opt(False, doc="also send each datagram on the best other path, de-duplicated at the far end (alarms)")


@dataclass(frozen=True)
class Peer:
    """`config gateway '<id>'` (endpoint role): a home admitted by this endpoint."""

    name: str  # the gateway id
    key: str = opt("", doc="shared secret (>= 16 characters)")
    enabled: bool = opt(True, doc="0 refuses this gateway without deleting it")


@dataclass(frozen=True)
class Config:
    main: Main
    uplinks: tuple[Uplink, ...] = ()
    services: tuple[Service, ...] = ()
    peers: tuple[Peer, ...] = ()
