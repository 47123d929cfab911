"""Config file -> Config: the entry points the daemon and `haig check-config` use."""

from __future__ import annotations

import socket
import sys
from typing import TextIO

from haig.config.errors import ConfigError, Problem
from haig.config.model import Config
from haig.config.uci import UciSection, UciSyntaxError, parse_uci
from haig.config.validate import build_config, is_loopback_host, parse_hostport


def parse_sections(text: str, source: str) -> list[UciSection]:
    """Parse UCI text. Syntax errors raise ConfigError."""
    try:
        return parse_uci(text, source=source)
    except UciSyntaxError as e:
        raise ConfigError([Problem(why, ln) for ln, why in e.problems], source) from e


def read_sections(path: str) -> list[UciSection]:
    """Parse a UCI file. Unreadable files and syntax errors raise ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"cannot read {path}: {e}"], path) from e
    return parse_sections(text, path)


def config_from_text(text: str, source: str = "<string>", role_override: str | None = None) -> Config:
    """Parse and check UCI text. Raises ConfigError (and nothing else) for any input."""
    return build_config(parse_sections(text, source), role_override=role_override, source=source)


def load_config(path: str, role_override: str | None = None) -> Config:
    """Read, parse and check `path`. Raises ConfigError listing every problem found."""
    return build_config(read_sections(path), role_override=role_override, source=path)


def main_options(path: str) -> dict[str, str]:
    """The single-valued options of `config haig 'main'` as written, without checking
    the rest of the file: for tools that must work while the file is broken elsewhere
    (`haig status` finding the API). {} when the file is unreadable or unparsable."""
    try:
        sections = read_sections(path)
    except ConfigError:
        return {}
    for sec in sections:
        if sec.type == "haig":
            return {k: o.value for k, o in sec.options.items() if not o.is_list}  # type: ignore[misc]
    return {}


def try_reload(path: str, current: Config, role_override: str | None = None
               ) -> tuple[Config, ConfigError | None]:
    """For the daemon's reload: (new config, None), or (current, the error) if the file
    is broken, so a bad edit never takes down a running link."""
    try:
        return load_config(path, role_override), None
    except ConfigError as e:
        return current, e


def summarize(cfg: Config) -> str:
    """Human-readable account of what a config means (secrets are never printed)."""
    m = cfg.main
    out = [f"role: {m.role}" + ("" if m.enabled else "   (enabled = 0: the service will not start)")]
    if m.role == "gateway":
        out.append(f"gateway id: {m.gateway_id}   key: set ({len(m.key)} characters)")
        out.append(f"endpoint SCTP port: {m.port}")
    else:
        out.append(f"SCTP port: {m.port}   bound to: {', '.join(m.bind)}")
    out.append(f"SCTP: rto_initial {m.rto_initial} ms, rto_min {m.rto_min} ms, rto_max {m.rto_max} ms; "
               f"failback hold-down {m.hold_down} s")
    out.append(f"flows: idle after {m.flow_idle} s, at most {m.max_flows}; queue {m.queue} datagrams; "
               f"largest datagram {m.max_datagram} bytes")
    if m.role == "gateway":
        out.append("uplinks (lowest metric among healthy ones carries traffic):")
        for u in sorted(cfg.uplinks, key=lambda u: u.metric):
            where = u.interface or u.device
            if u.interface and u.device:
                where = f"{u.interface} ({u.device})"
            extra = []
            if u.local_address:
                extra.append(f"from {u.local_address}")
            if u.gateway:
                extra.append(f"via {u.gateway}")
            if u.metered:
                extra.append(f"metered (idle heartbeat {u.metered_hb_interval} ms)")
            if u.udp_encap:
                extra.append(f"SCTP over UDP to port {u.udp_encap_port}")
            out.append(f"  metric {u.metric:<3} {u.name:<12} {where:<12} -> {u.endpoint_address}  "
                       f"heartbeat {u.hb_interval} ms, path_max_retrans {u.path_max_retrans}, "
                       f"pf_retrans {u.pf_retrans}" + ("; " + ", ".join(extra) if extra else ""))
    else:
        out.append("gateways admitted:")
        for p in cfg.peers:
            out.append(f"  {p.name}" + ("" if p.enabled else "   (disabled)"))
    out.append("services:")
    for s in cfg.services:
        where = f"listen {s.listen}" if m.role == "gateway" else f"target {s.target}"
        ttl = "fully reliable" if s.ttl == 0 else f"ttl {s.ttl} ms"
        out.append(f"  {s.name:<12} {where}  {ttl}" + ("  critical (sent on two paths)" if s.critical else ""))
    if m.api_listen:
        host, _ = parse_hostport(m.api_listen)
        auth = "no token (loopback)" if is_loopback_host(host) and not m.api_token else "token required"
        out.append(f"API and panel: http://{m.api_listen}/  {auth}")
    else:
        out.append("API and panel: disabled")
    out.append(f"log level: {m.log_level}")
    return "\n".join(out)


def check_config_cli(args, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`haig check-config -c FILE [--role R]`: summary and exit 0, or the errors and exit 1."""
    out = out or sys.stdout
    err = err or sys.stderr
    path = args.config
    try:
        cfg = load_config(path, getattr(args, "role", None))
    except ConfigError as e:
        print(str(e), file=err)
        return 1
    print(f"{path}: OK", file=out)
    print(summarize(cfg), file=out)
    for warning in unbindable_listens(cfg):
        print(f"warning: {warning}", file=err)
    return 0


def unbindable_listens(cfg: Config) -> list[str]:
    """Gateway services whose listen address this machine does not have. A warning, not
    an error: the file may be checked elsewhere than on the router, or before the LAN
    address is configured; binding is the daemon's business."""
    out = []
    if cfg.main.role != "gateway":
        return out
    for s in cfg.services:
        host, _ = parse_hostport(s.listen, names=False)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(fam, socket.SOCK_DGRAM) as sock:
                sock.bind((host, 0))  # port 0: only asks whether the address is ours
        except OSError as e:
            out.append(f"service '{s.name}': listen address {host} cannot be bound on this "
                       f"machine ({e.strerror}): the daemon cannot listen there")
    return out
