"""The kernel's SCTP counters (/proc/net/sctp/snmp) for the endpoint's status.

SctpInPktDiscards is how a full receive buffer shows: the kernel discards whole packets
before haig sees them, so no haig counter can know (the sender's PR-SCTP then abandons
the data). The counters are per network namespace, not per socket: on a host that runs
only haig's endpoint they are its own."""

from __future__ import annotations

SNMP_PATH = "/proc/net/sctp/snmp"
# what status carries: receive-side discards, and the retransmissions that follow them
STATUS_KEYS = ("SctpInPktDiscards", "SctpInDataChunkDiscards", "SctpT3RtxExpireds")


def parse(text: str) -> dict[str, int]:
    """'Name value' lines -> {name: value}; anything else is skipped."""
    vals: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            vals[parts[0]] = int(parts[1])
    return vals


def read(path: str | None = None) -> dict[str, int] | None:
    """The counters, or None where the kernel has no SCTP MIB (module not loaded)."""
    try:
        with open(path or SNMP_PATH) as f:
            return parse(f.read())
    except OSError:
        return None
