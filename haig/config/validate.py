"""UCI sections -> typed Config, with every problem reported at once.

Decisions (also stated in docs/options.md):

* Unknown section types and unknown options are errors, with a "did you mean" hint:
  a typo such as `option metirc '2'` would otherwise silently fall back to a default
  and change which uplink carries the alarms.
* An empty value (`option metric ''`) means "not set", i.e. the default, as in uci,
  which deletes options set to ''.
* Metrics must be distinct among uplinks: the path policy needs a strict order, and
  a tie would be broken by something the user never wrote down.
* Values starting with CHANGE_ME are placeholders from the shipped file and are
  refused wherever they appear.
* Addresses are IP literals (IPv4 or IPv6), not names: they are pinned to uplinks
  with policy routes, and DNS is not available before the uplinks are up.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
import typing
from collections.abc import Iterable
from dataclasses import MISSING, Field, fields, replace

from haig.config.errors import ConfigError, Problem
from haig.config.model import Config, Main, Peer, Service, Uplink
from haig.config.uci import UciSection

# section type in /etc/config/haig -> dataclass
SECTION_TYPES: dict[str, type] = {"haig": Main, "uplink": Uplink, "service": Service, "gateway": Peer}
MAIN_SECTION = "main"
PLACEHOLDER = "CHANGE_ME"
MIN_SECRET_LEN = 16
BOOL_WORDS = {
    "1": True, "true": True, "yes": True, "on": True, "enabled": True,
    "0": False, "false": False, "no": False, "off": False, "disabled": False,
}
_OFF_WORDS = ("0", "off", "no", "false", "disabled", "none")
_GATEWAY_ID_RE = re.compile(r"[A-Za-z0-9_]{1,64}\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?\Z")
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
# More digits than any range needs: refused before int(), which raises ValueError past
# 4300 digits (CPython's int_max_str_digits) and is slow long before that.
_MAX_INT_DIGITS = 18
_SHOW_MAX = 40  # longest value quoted back in full in an error message

# Limits the wire format imposes (haig/core/wire.py): HELLO carries the gateway id and
# each service name behind a one-byte length, and the services behind a one-byte count
# (WELCOME answers with one flag per service, counted in one byte too).
WIRE_NAME_MAX_BYTES = 255
WIRE_MAX_SERVICES = 255


class _Bad(ValueError):
    """A value could not be converted; the text says why and what is allowed."""


# ---------------------------------------------------------------- field metadata


def option_fields(cls: type) -> list[Field]:
    """The UCI options of a section class, in declaration order (`name` is the section name)."""
    return [f for f in fields(cls) if f.name != "name"]


@functools.cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


def field_kind(cls: type, f: Field) -> str:
    """'bool', 'int', 'str' or 'list' (a UCI list of strings)."""
    t = _hints(cls)[f.name]
    if typing.get_origin(t) in (tuple, list) or t in (tuple, list):
        return "list"
    return {bool: "bool", int: "int", str: "str"}[t]


def field_default(f: Field):
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


def allowed_text(kind: str, f: Field) -> str:
    """What values an option takes, in words (used by errors and the docs)."""
    meta = f.metadata
    if "choices" in meta:
        return "one of " + ", ".join(meta["choices"])
    if "range" in meta:
        lo, hi = meta["range"]
        return f"{lo}..{hi}"
    if kind == "bool":
        return "0/1 (also no/yes, off/on, false/true, disabled/enabled)"
    return ""


def _convert(kind: str, f: Field, raw: str):
    meta = f.metadata
    if kind == "bool":
        v = BOOL_WORDS.get(raw.strip().lower())
        if v is None:
            raise _Bad("is not a boolean (allowed 0/1, no/yes, off/on, false/true, disabled/enabled)")
        return v
    if kind == "int":
        lo, hi = meta.get("range", (None, None))
        rng = f" (allowed {lo}..{hi})" if "range" in meta else ""
        text = raw.strip()
        if not _INT_RE.match(text):
            raise _Bad(f"is not a whole number{rng}")
        sign, digits = ("-" if text[0] == "-" else ""), text.lstrip("+-").lstrip("0") or "0"
        if len(digits) > _MAX_INT_DIGITS:
            raise _Bad(f"is out of range{rng or ' (far too many digits)'}")
        v = int(sign + digits)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _Bad(f"is out of range{rng}")
        return v
    if "choices" in meta and raw not in meta["choices"]:
        raise _Bad(f"is not allowed (choices: {', '.join(meta['choices'])})")
    return raw


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


# ---------------------------------------------------------------- addresses


def shown(value: object) -> str:
    """A value as quoted back in an error: long ones cut, with their length."""
    value = str(value)
    if len(value) <= _SHOW_MAX:
        return value
    return f"{value[:_SHOW_MAX]}... ({len(value)} characters)"


def is_placeholder(value: str) -> bool:
    return value.strip().upper().startswith(PLACEHOLDER)


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4 or IPv6 literal (no brackets, no names). Raises ValueError."""
    try:
        return ipaddress.ip_address(text)  # no strip: ' 1.2.3.4' is refused, visibly quoted
    except ValueError:
        raise ValueError(f"'{shown(text)}' is not an IPv4 or IPv6 address") from None


def parse_hostport(text: str, names: bool = True) -> tuple[str, int]:
    """Split `host:port`. Host: IPv4 literal, `[IPv6]` literal, or (if `names`) a host
    name. Returns (host without brackets, port). Raises ValueError saying what is wrong."""
    s = text
    if s.startswith("["):
        host, sep, port = s[1:].partition("]:")
        if not sep:
            raise ValueError("an IPv6 address in brackets must be followed by :port")
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError(f"'[{shown(host)}]' is not an IPv6 address") from None
    else:
        host, sep, port = s.rpartition(":")
        if not sep:
            raise ValueError("the port is missing")
        if ":" in host:
            raise ValueError("an IPv6 address needs brackets, e.g. [::1]:1194")
        if not host:
            raise ValueError("the host is missing (0.0.0.0 means all IPv4 addresses)")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not names or re.fullmatch(r"[0-9.]+", host) or not _HOSTNAME_RE.match(host):
                kind = "an IPv4 address" if not names else "an IPv4 address or host name"
                raise ValueError(f"'{shown(host)}' is not {kind}") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port '{shown(port)}' is not a number in 1..65535")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid_device(name: str) -> bool:
    # the kernel's dev_valid_name(): 1..15 bytes, not . or .., no '/', ':' or whitespace
    return (0 < len(name.encode()) < 16 and name not in (".", "..")
            and not any(c in "/:" or c.isspace() for c in name))


# ---------------------------------------------------------------- the builder


class _Builder:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.bad: set[tuple[int, str]] = set()  # (id(section), option) whose value was refused
        self.secs: dict[int, UciSection] = {}  # id(obj) -> section it came from

    def err(self, msg: str, line: int | None = None) -> None:
        self.problems.append(Problem(msg, line))

    def line(self, obj, option: str | None = None) -> int | None:
        sec = self.secs.get(id(obj))
        if sec is None:
            return None
        o = sec.options.get(option) if option else None
        return o.line if o else sec.line

    def first_line(self, obj, *options: str) -> int | None:
        """Line of the first of these options set in the file, else of the section."""
        sec = self.secs.get(id(obj))
        if sec is None:
            return None
        lines = [sec.options[o].line for o in options if o in sec.options]
        return min(lines) if lines else sec.line

    def ok(self, obj, *options: str) -> bool:
        """True if none of these options of `obj` was refused (so cross-checks make sense)."""
        sec = self.secs.get(id(obj))
        return sec is None or not any((id(sec), o) in self.bad for o in options)

    def label(self, obj) -> str:
        sec = self.secs.get(id(obj))
        return sec.label() if sec else f"{type(obj).__name__.lower()}"

    def read(self, cls: type, sec: UciSection):
        """Typed object from one section; refused options keep their default."""
        by_name = {f.name: f for f in option_fields(cls)}
        kwargs = {}
        for oname, o in sec.options.items():
            f = by_name.get(oname)
            if f is None:
                hint = _suggest(oname, by_name) or f" (options of {sec.type}: {', '.join(by_name)})"
                self.err(f"{sec.label()}: unknown option '{oname}'{hint}", o.line)
                continue
            kind = field_kind(cls, f)
            here = f"{sec.label()}: option {oname}"
            if kind == "list":
                values = [v for v in (o.value if o.is_list else [o.value]) if v != ""]
                ph = [v for v in values if is_placeholder(v)]
                if ph:
                    self.err(f"{here} is still the placeholder '{ph[0]}'; set it. It means: {f.metadata['doc']}", o.line)
                    self.bad.add((id(sec), oname))
                    continue
                kwargs[oname] = tuple(values)
                continue
            if o.is_list:
                self.err(f"{here} is given as a list; it takes one value: option {oname} 'value'", o.line)
                self.bad.add((id(sec), oname))
                continue
            raw = o.value
            if raw == "":
                continue  # uci semantics: empty = not set = default
            if cls is Main and oname == "api_listen" and raw.strip().lower() in _OFF_WORDS:
                kwargs[oname] = ""  # '' cannot be stored through uci (it deletes the option)
                continue
            if kind == "str" and is_placeholder(raw):
                self.err(f"{here} is still the placeholder '{shown(raw)}'; set it. It means: {f.metadata['doc']}", o.line)
                self.bad.add((id(sec), oname))
                continue
            try:
                kwargs[oname] = _convert(kind, f, raw)
            except _Bad as e:
                self.err(f"{here} = '{shown(raw)}' {e}", o.line)
                self.bad.add((id(sec), oname))
        obj = cls(**kwargs) if cls is Main else cls(name=sec.name, **kwargs)
        self.secs[id(obj)] = sec
        return obj

    # -- checks -------------------------------------------------------------

    def check_ip(self, obj, option: str, required: bool = False, what: str = "") -> None:
        value = getattr(obj, option)
        if not self.ok(obj, option):
            return
        if value == "":
            if required:
                self.err(f"{self.label(obj)}: option {option} is missing: {what}", self.line(obj))
            return
        try:
            parse_ip(value)
        except ValueError as e:
            self.err(f"{self.label(obj)}: option {option} = '{shown(value)}' is not an IP address ({e}; "
                     "names are not accepted: give an IPv4 or IPv6 literal)", self.line(obj, option))
            if id(obj) in self.secs:
                self.bad.add((id(self.secs[id(obj)]), option))

    def check_hostport(self, obj, option: str, names: bool) -> tuple[str, int] | None:
        value = getattr(obj, option)
        try:
            return parse_hostport(value, names=names)
        except ValueError as e:
            eg = "127.0.0.1:1194 or [::1]:1194"
            self.err(f"{self.label(obj)}: option {option} = '{shown(value)}' is not host:port ({e}; e.g. {eg})",
                     self.line(obj, option))
            return None

    def check_secret(self, obj, option: str, what: str) -> None:
        value = getattr(obj, option)
        if not self.ok(obj, option):
            return
        if value == "":
            self.err(f"{self.label(obj)}: option {option} is missing: {what} "
                     f"(at least {MIN_SECRET_LEN} characters)", self.line(obj))
        elif len(value) < MIN_SECRET_LEN:
            self.err(f"{self.label(obj)}: option {option} is too short ({len(value)} characters; "
                     f"allowed at least {MIN_SECRET_LEN})", self.line(obj, option))

    def check_main(self, m: Main) -> None:
        L = self.label(m)
        if self.ok(m, "rto_min", "rto_initial", "rto_max") and not (m.rto_min <= m.rto_initial <= m.rto_max):
            self.err(f"{L}: rto_min <= rto_initial <= rto_max does not hold "
                     f"(rto_min = '{m.rto_min}', rto_initial = '{m.rto_initial}', rto_max = '{m.rto_max}')",
                     self.first_line(m, "rto_min", "rto_initial", "rto_max"))
        if m.api_listen and self.ok(m, "api_listen"):
            hp = self.check_hostport(m, "api_listen", names=True)
            if hp and not is_loopback_host(hp[0]) and self.ok(m, "api_token"):
                if len(m.api_token) < MIN_SECRET_LEN:
                    self.err(f"{L}: option api_token is {'missing' if not m.api_token else 'too short'}: "
                             f"api_listen = '{shown(m.api_listen)}' is not loopback, so the API needs a token "
                             f"of at least {MIN_SECRET_LEN} characters", self.line(m, "api_token"))

    def check_uplink(self, u: Uplink) -> None:
        L = self.label(u)
        if not u.interface and not u.device:
            self.err(f"{L}: set option interface (OpenWrt interface, e.g. wan) or option device "
                     "(Linux device): one of them is needed to watch this uplink", self.line(u))
        if u.interface and self.ok(u, "interface") and not re.fullmatch(r"[A-Za-z0-9_]+", u.interface):
            self.err(f"{L}: option interface = '{shown(u.interface)}' is not an OpenWrt interface name "
                     "(letters, digits and _)", self.line(u, "interface"))
        if u.device and self.ok(u, "device") and not _valid_device(u.device):
            self.err(f"{L}: option device = '{shown(u.device)}' is not a Linux device name "
                     "(1..15 characters, no '/', ':' or spaces)", self.line(u, "device"))
        self.check_ip(u, "endpoint_address", required=True,
                      what="the endpoint's address reached over this uplink")
        self.check_ip(u, "standby_address")
        self.check_ip(u, "local_address")
        self.check_ip(u, "gateway")
        fams = {}
        for o in ("endpoint_address", "standby_address", "local_address", "gateway"):
            v = getattr(u, o)
            if v and self.ok(u, o):
                fams[o] = parse_ip(v).version
        if len(set(fams.values())) > 1:
            self.err(f"{L}: " + ", ".join(f"{o} = '{shown(getattr(u, o))}'" for o in fams)
                     + " mix IPv4 and IPv6; one path uses one address family", self.line(u))
        if self.ok(u, "pf_retrans", "path_max_retrans") and u.pf_retrans > u.path_max_retrans:
            self.err(f"{L}: option pf_retrans = '{u.pf_retrans}' is out of range "
                     f"(allowed 0..path_max_retrans = {u.path_max_retrans})", self.line(u, "pf_retrans"))

    def distinct(self, objs, option: str, why: str) -> None:
        seen: dict[str, object] = {}
        for o in objs:
            v = getattr(o, option)
            if v == "" or not self.ok(o, option):
                continue
            key = str(v)
            if option in ("endpoint_address", "standby_address", "local_address"):
                key = str(parse_ip(v))  # 2001:db8::1 == 2001:DB8:0::1
            if key in seen:
                first = seen[key]
                self.err(f"{self.label(o)}: option {option} = '{shown(v)}' is also used by "
                         f"{self.label(first)}; {why}", self.line(o, option))
            else:
                seen[key] = o

    def check_gateway_role(self, m: Main, uplinks, services) -> None:
        L = self.label(m)
        if self.ok(m, "gateway_id"):
            if not m.gateway_id:
                self.err(f"{L}: option gateway_id is missing: the gateway role needs this home's identity "
                         "(letters, digits and _, as the endpoint's `config gateway` section name)", self.line(m))
            elif not _GATEWAY_ID_RE.match(m.gateway_id):
                self.err(f"{L}: option gateway_id = '{shown(m.gateway_id)}' is not allowed (letters, digits and _, "
                         "1..64 characters: the endpoint uses it as a UCI section name)",
                         self.line(m, "gateway_id"))
        self.check_secret(m, "key", "the gateway role needs the secret shared with the endpoint")
        if not uplinks:
            self.err("the gateway role needs at least one `config uplink` section "
                     "(one per internet connection; two or more for failover)")
        for u in uplinks:
            self.check_uplink(u)
        self.distinct(uplinks, "endpoint_address",
                      "a path is a peer address, so two uplinks with one endpoint address give ONE path, "
                      "not two: give each uplink its own endpoint address")
        self.check_standby(uplinks)
        self.distinct(uplinks, "metric", "metrics must differ: they set the order in which uplinks carry traffic")
        self.distinct(uplinks, "interface", "two uplinks on one interface leave through the same connection")
        self.distinct(uplinks, "device", "two uplinks on one device leave through the same connection")
        self.distinct(uplinks, "local_address", "two uplinks cannot share a local address")
        self.check_services("gateway", services, "listen", names=False,
                            what="host:port where local clients send datagrams")
        self.distinct(services, "listen", "two services cannot listen on one host:port")

    def check_standby(self, uplinks) -> None:
        """A standby endpoint is a second endpoint with one address per uplink (a path is a
        peer address): on every uplink or on none, never one of the primary's addresses."""
        have = [u for u in uplinks if u.standby_address]
        if not have:
            return
        for u in uplinks:
            if not u.standby_address and self.ok(u, "standby_address"):
                self.err(f"{self.label(u)}: option standby_address is missing: {self.label(have[0])} sets one, "
                         "and a standby endpoint needs its address on every uplink (or on none)", self.line(u))
        self.distinct(uplinks, "standby_address",
                      "a path is a peer address: give each uplink the standby's own address on it")
        primary = {str(parse_ip(u.endpoint_address)): u for u in uplinks
                   if u.endpoint_address and self.ok(u, "endpoint_address")}
        for u in have:
            if not self.ok(u, "standby_address"):
                continue
            other = primary.get(str(parse_ip(u.standby_address)))
            if other is not None:
                self.err(f"{self.label(u)}: option standby_address = '{shown(u.standby_address)}' is the "
                         f"endpoint_address of {self.label(other)}; the standby is another endpoint "
                         "(another server or site) with its own addresses", self.line(u, "standby_address"))

    def check_services(self, role: str, services, option: str, names: bool, what: str) -> None:
        """Each service of this role needs `option` (listen / target) as host:port."""
        if not services:
            self.err(f"the {role} role needs at least one `config service` section with option {option}")
        if len(services) > WIRE_MAX_SERVICES:
            self.err(f"{len(services)} `config service` sections: allowed at most {WIRE_MAX_SERVICES} "
                     "(the admission handshake counts them in one byte)",
                     self.line(services[WIRE_MAX_SERVICES]))
        for s in services:
            n = len(s.name.encode())
            if n > WIRE_NAME_MAX_BYTES:
                self.err(f"{self.label(s)}: the service name is {n} bytes long; allowed 1..{WIRE_NAME_MAX_BYTES} "
                         "(the admission handshake carries it behind a one-byte length)", self.line(s))
            if not self.ok(s, option):
                continue
            if not getattr(s, option):
                self.err(f"{self.label(s)}: option {option} is missing: the {role} role needs the "
                         f"{what} (e.g. 127.0.0.1:1194)", self.line(s))
            else:
                self.check_hostport(s, option, names=names)

    def check_endpoint_role(self, m: Main, peers, services) -> None:
        L = self.label(m)
        if self.ok(m, "bind"):
            if not m.bind:
                self.err(f"{L}: list bind is missing: the endpoint role needs its local addresses, "
                         "one per path the gateways reach it on (list bind '192.0.2.1')", self.line(m))
            seen = set()
            for a in m.bind:
                try:
                    ip = parse_ip(a)
                except ValueError as e:
                    self.err(f"{L}: list bind = '{shown(a)}' is not an IP address ({e})", self.line(m, "bind"))
                    continue
                if ip in seen:
                    self.err(f"{L}: list bind = '{shown(a)}' is given twice", self.line(m, "bind"))
                seen.add(ip)
        if not peers:
            self.err("the endpoint role needs at least one `config gateway 'ID'` section "
                     "(one per home it admits, with option key)")
        elif not any(p.enabled for p in peers):
            self.err("the endpoint role needs at least one enabled `config gateway` section "
                     f"(all {len(peers)} have enabled = 0)")
        for p in peers:
            if not _GATEWAY_ID_RE.match(p.name):
                self.err(f"{self.label(p)}: '{shown(p.name)}' is not a gateway id (letters, digits and _, "
                         "1..64 characters, as the gateway's option gateway_id)", self.line(p))
            self.check_secret(p, "key", "each gateway needs the secret it shares with this endpoint")
        self.check_services("endpoint", services, "target", names=True,
                            what="host:port datagrams are delivered to")


def build_config(sections: Iterable[UciSection], role_override: str | None = None,
                 source: str | None = None) -> Config:
    """Typed, checked Config from parsed sections. Raises ConfigError listing every problem.

    role_override ('gateway' / 'endpoint') replaces option role of the main section."""
    b = _Builder()
    mains: list[Main] = []
    uplinks: list[Uplink] = []
    services: list[Service] = []
    peers: list[Peer] = []
    into = {Main: mains, Uplink: uplinks, Service: services, Peer: peers}
    for sec in sections:
        cls = SECTION_TYPES.get(sec.type)
        if cls is None:
            hint = _suggest(sec.type, SECTION_TYPES) or f" (known: {', '.join(SECTION_TYPES)})"
            b.err(f"unknown section type '{sec.type}'{hint}", sec.line)
            continue
        if cls is Main:
            if sec.name != MAIN_SECTION:
                b.err(f"{sec.label()}: the main section must be named: config haig '{MAIN_SECTION}'", sec.line)
            if mains:
                b.err(f"{sec.label()}: only one `config haig` section is allowed", sec.line)
                continue
        elif sec.name is None:
            what = {Uplink: "the uplink's name, shown in status and events",
                    Service: "the service name, the same at both ends",
                    Peer: "the gateway id"}[cls]
            b.err(f"{sec.label()}: needs a name: config {sec.type} 'NAME' ({what})", sec.line)
            continue
        into[cls].append(b.read(cls, sec))

    if not mains:
        b.err(f"no `config haig '{MAIN_SECTION}'` section: the file needs one (role, SCTP settings)")
    main = mains[0] if mains else Main()
    if role_override is not None:
        if role_override not in Main.__dataclass_fields__["role"].metadata["choices"]:
            b.err(f"role override '{role_override}' is not one of gateway, endpoint")
        else:
            sec = b.secs.pop(id(main), None)
            main = replace(main, role=role_override)
            if sec is not None:
                b.secs[id(main)] = sec
    b.check_main(main)
    if role_override is None and not b.ok(main, "role"):
        pass  # role unreadable (already reported): role checks would only add noise
    elif main.role == "gateway":
        b.check_gateway_role(main, uplinks, services)
    else:
        b.check_endpoint_role(main, peers, services)
    if b.problems:
        # file order reads best; problems without a line (missing sections) go last
        raise ConfigError(sorted(b.problems, key=lambda p: (p.line is None, p.line or 0)), source)
    return Config(main=main, uplinks=tuple(uplinks), services=tuple(services), peers=tuple(peers))
