"""Prometheus exposition of the status model (`GET /metrics`), for a hospital's
monitoring stack. Uses the prometheus_client library (an optional dependency of the
endpoint, `pip install 'haig[endpoint]'`; never needed on a router): a custom
Collector turns one `StatusModel.snapshot()` into metric families at scrape time, so
nothing is counted twice and the relay's hot path is untouched.

Families (label `home` = gateway id on an endpoint, "endpoint" on a gateway):
  haig_info{role,version,gateway_id}           1
  haig_uptime_seconds
  haig_homes{state}                            homes per association state
  haig_home_up{home}                           1 when the association is up
  haig_home_association_age_seconds{home}      since the association came up
  haig_home_on_backup{home}                    1 when its primary path is not its first
  haig_home_authenticated{home}                1 when its DATA is SCTP-AUTHenticated (0: not; absent: no association)
  haig_path_up{home,address}                   1 when the path is active
  haig_path_state{home,address,state}          1 for the path's current state
  haig_path_primary{home,address}
  haig_path_srtt_seconds / haig_path_rto_seconds{home,address}
  haig_home_{rx,tx}_bytes_total{home}          from the association or its flows
  haig_uplink_{rx,tx}_bytes_total{uplink}      gateway role
  haig_uplink_up{uplink}, haig_primary{uplink}
  haig_drops_total{reason}
  haig_events_total{kind}                      seen since this exporter started
  haig_failovers_total{home} / haig_failbacks_total{home}
  haig_flows                                   flows open
  haig_admissions_refused_total{reason}        endpoint: refused associations (sheds included)
  haig_pending_sheds_total                     endpoint: associations shed for too many pending
  haig_pending_sessions                        endpoint: sessions waiting for HELLO
  haig_flows_refused_total{reason}             endpoint: flow_table_full / fd_budget
  haig_sctp_rcvbuf_bytes, haig_sctp_rcvbuf_capped  endpoint: its SCTP socket's receive buffer
  haig_kernel_sctp_in_pkt_discards_total (...)  endpoint: the kernel's discards (full buffer)
  haig_endpoint_standby                        gateway: 1 while the standby endpoint is in use
  haig_config_ok
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from haig.core.status import StatusModel

try:  # optional: the API answers 501 at /metrics without it
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    CounterMetricFamily = GaugeMetricFamily = choose_encoder = None  # type: ignore[assignment]
    Collector, CollectorRegistry = object, None  # type: ignore[assignment,misc]


def available() -> bool:
    return CollectorRegistry is not None


def on_backup(a: dict[str, Any]) -> bool:
    """A home carries traffic on a path other than its first (its preferred uplink's
    address comes first: the gateway binds its uplinks in metric order). An explicit
    `on_backup` from the relay wins."""
    if "on_backup" in a:
        return bool(a["on_backup"])
    paths = a.get("paths") or []
    for i, p in enumerate(paths):
        if p.get("primary"):
            if p.get("uplink") and paths[0].get("uplink"):
                return p["uplink"] != paths[0]["uplink"]
            return i > 0
    return False


class EventCounter:
    """Counts events by kind and by (kind, subject) from the model's history, reading
    only what is new since the last scrape. Exact as long as scrapes come before 200
    events (the history's length) pass; the relay counting them would be exact always."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self.by_kind: Counter[str] = Counter()
        self.by_subject: Counter[tuple[str, str]] = Counter()

    def update(self, model: StatusModel) -> None:
        with self._lock:
            page = model.events_page(self._seq)
            if page["last_seq"] < self._seq:  # daemon restarted its numbering
                self._seq = 0
            for e in page["events"]:
                if e["seq"] > self._seq:
                    self.by_kind[e["kind"]] += 1
                    self.by_subject[(e["kind"], e["subject"])] += 1
            self._seq = max(self._seq, page["last_seq"])


class StatusCollector(Collector):  # type: ignore[misc,valid-type]
    def __init__(self, model: StatusModel, clock: Callable[[], float]) -> None:
        self.model, self.clock = model, clock
        self.events = EventCounter()

    def collect(self) -> Iterator[Any]:
        now = self.clock()
        s = self.model.snapshot(now)
        self.events.update(self.model)
        role = s.get("role") or "unknown"

        info = GaugeMetricFamily("haig_info", "haig instance", labels=["role", "version", "gateway_id"])
        info.add_metric([role, s.get("version") or "", s.get("gateway_id") or ""], 1)
        yield info
        if s.get("uptime_s") is not None:
            yield GaugeMetricFamily("haig_uptime_seconds", "since the daemon started", value=s["uptime_s"])
        yield GaugeMetricFamily("haig_config_ok", "1 when the config in force is valid",
                                value=1 if s["config"]["ok"] else 0)
        yield GaugeMetricFamily("haig_flows", "UDP flows open", value=s.get("flows_total", 0))

        homes = GaugeMetricFamily("haig_homes", "associations by state", labels=["state"])
        up = GaugeMetricFamily("haig_home_up", "1 when the home's association is up", labels=["home"])
        age = GaugeMetricFamily("haig_home_association_age_seconds", "since the association came up",
                                labels=["home"])
        backup = GaugeMetricFamily("haig_home_on_backup", "1 when the home is on a backup path",
                                   labels=["home"])
        authed = GaugeMetricFamily("haig_home_authenticated",
                                   "1 when the home's DATA is authenticated by SCTP-AUTH", labels=["home"])
        p_up = GaugeMetricFamily("haig_path_up", "1 when the path is active", labels=["home", "address"])
        p_state = GaugeMetricFamily("haig_path_state", "the path's current state",
                                    labels=["home", "address", "state"])
        p_prim = GaugeMetricFamily("haig_path_primary", "1 for the primary path", labels=["home", "address"])
        p_srtt = GaugeMetricFamily("haig_path_srtt_seconds", "smoothed round trip", labels=["home", "address"])
        p_rto = GaugeMetricFamily("haig_path_rto_seconds", "retransmission timeout", labels=["home", "address"])
        rx = CounterMetricFamily("haig_home_rx_bytes", "bytes received from the home", labels=["home"])
        tx = CounterMetricFamily("haig_home_tx_bytes", "bytes sent to the home", labels=["home"])
        by_state: Counter[str] = Counter()
        flow_bytes: dict[str, list[int]] = {}
        for f in s.get("flows", []):
            b = flow_bytes.setdefault(f.get("gateway_id") or "endpoint", [0, 0])
            b[0] += f.get("rx_bytes", 0)
            b[1] += f.get("tx_bytes", 0)
        for a in s["associations"]:
            home = a.get("gateway_id") or a["key"]
            by_state[a["state"]] += 1
            up.add_metric([home], 1 if a["state"] == "up" else 0)
            if a["state"] == "up" and a.get("since"):
                age.add_metric([home], max(0.0, now - a["since"]))
            backup.add_metric([home], 1 if on_backup(a) else 0)
            if a.get("auth") is not None:
                authed.add_metric([home], 1 if a["auth"] else 0)
            for p in a.get("paths") or []:
                lab = [home, p["address"]]
                p_up.add_metric(lab, 1 if p["state"] == "active" else 0)
                p_state.add_metric([*lab, p["state"]], 1)
                p_prim.add_metric(lab, 1 if p.get("primary") else 0)
                if p.get("srtt_ms") is not None:
                    p_srtt.add_metric(lab, p["srtt_ms"] / 1000)
                if p.get("rto_ms") is not None:
                    p_rto.add_metric(lab, p["rto_ms"] / 1000)
            if "rx_bytes" in a:
                rx.add_metric([home], a["rx_bytes"])
                tx.add_metric([home], a.get("tx_bytes", 0))
            elif home in flow_bytes:
                rx.add_metric([home], flow_bytes[home][0])
                tx.add_metric([home], flow_bytes[home][1])
        for st, n in sorted(by_state.items()):
            homes.add_metric([st], n)
        yield from (homes, up, age, backup, authed, p_up, p_state, p_prim, p_srtt, p_rto, rx, tx)

        if s["uplinks"]:
            u_up = GaugeMetricFamily("haig_uplink_up", "1 when the uplink is healthy", labels=["uplink"])
            u_prim = GaugeMetricFamily("haig_primary", "1 for the uplink carrying traffic", labels=["uplink"])
            u_rx = CounterMetricFamily("haig_uplink_rx_bytes", "bytes received on the uplink", labels=["uplink"])
            u_tx = CounterMetricFamily("haig_uplink_tx_bytes", "bytes sent on the uplink", labels=["uplink"])
            for u in s["uplinks"]:
                u_up.add_metric([u["name"]], 1 if u["healthy"] else 0)
                u_prim.add_metric([u["name"]], 1 if u["primary"] else 0)
                u_rx.add_metric([u["name"]], u["rx_bytes"])
                u_tx.add_metric([u["name"]], u["tx_bytes"])
            yield from (u_up, u_prim, u_rx, u_tx)

        drops = CounterMetricFamily("haig_drops", "datagrams not delivered, by reason", labels=["reason"])
        for reason, n in sorted(s["drops"].items()):
            drops.add_metric([reason], n)
        yield drops
        ev = CounterMetricFamily("haig_events", "events seen since the exporter started", labels=["kind"])
        for kind, n in sorted(self.events.by_kind.items()):
            ev.add_metric([kind], n)
        yield ev
        for kind in ("failover", "failback"):
            c = CounterMetricFamily(f"haig_{kind}s", f"{kind}s seen, by home (gateway: by uplink)",
                                    labels=["home"])
            for (k, subject), n in sorted(self.events.by_subject.items()):
                if k == kind:
                    c.add_metric([subject], n)
            yield c
        yield from _admission_families(s.get("admission"))
        yield from _sctp_socket_families(s.get("sctp_socket"))
        if s.get("endpoint"):
            yield GaugeMetricFamily("haig_endpoint_standby", "1 while the gateway uses its standby endpoint",
                                    value=1 if s["endpoint"]["in_use"] == "standby" else 0)


def _admission_families(adm: dict[str, Any] | None) -> Iterator[Any]:
    """Endpoint role: what admission refused (issue 13's hardening, as numbers)."""
    if not adm:
        return
    refused = CounterMetricFamily("haig_admissions_refused", "associations refused, by reason", labels=["reason"])
    for reason, n in adm["refused"].items():
        refused.add_metric([reason], n)
    yield refused
    yield CounterMetricFamily("haig_pending_sheds", "associations shed at once: too many pending sessions",
                              value=adm["shed"])
    yield GaugeMetricFamily("haig_pending_sessions", "sessions waiting for HELLO", value=adm["pending"])
    flows = CounterMetricFamily("haig_flows_refused", "new flows refused, by reason", labels=["reason"])
    for reason, n in adm["flows_refused"].items():
        flows.add_metric([reason], n)
    yield flows


def _sctp_socket_families(sk: dict[str, Any] | None) -> Iterator[Any]:
    """Endpoint role: the shared SCTP socket's receive buffer, and the kernel's discards
    that a full one causes (no haig counter can see those packets)."""
    if not sk:
        return
    yield GaugeMetricFamily("haig_sctp_rcvbuf_bytes", "receive buffer of the endpoint's SCTP socket, as the kernel reports it",
                            value=sk["rcvbuf"])
    yield GaugeMetricFamily("haig_sctp_rcvbuf_capped", "1 if the kernel granted less receive buffer than asked (net.core.rmem_max)",
                            value=1 if sk["capped"] else 0)
    for name, n in sorted((sk.get("kernel") or {}).items()):
        snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")  # SctpInPktDiscards -> sctp_in_pkt_discards
        yield CounterMetricFamily(f"haig_kernel_{snake}", f"the network namespace's {name} (/proc/net/sctp/snmp)", value=n)


_registries: weakref.WeakKeyDictionary[StatusModel, Any] = weakref.WeakKeyDictionary()
_reg_lock = threading.Lock()


def registry_for(model: StatusModel, clock: Callable[[], float]) -> Any:
    """One registry per model (the event counter keeps its cursor across scrapes)."""
    with _reg_lock:
        reg = _registries.get(model)
        if reg is None:
            reg = CollectorRegistry(auto_describe=False)
            reg.register(StatusCollector(model, clock))
            _registries[model] = reg
        return reg


def exposition(model: StatusModel, clock: Callable[[], float], accept: str | None) -> tuple[bytes, str]:
    """The scrape body and its content type (text format, or OpenMetrics if asked)."""
    encoder, ctype = choose_encoder(accept or "")
    return encoder(registry_for(model, clock)), ctype
