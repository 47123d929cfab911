"""The one state vocabulary every part of haig speaks (policy, status, surfaces).

Kernel names (SCTP_PEER_ADDR_CHANGE's spc_state, SCTP_GET_PEER_ADDR_INFO's
spinfo_state) are mapped to PathState once, at the adapter boundary (the SCTP driver);
nothing past it sees "available", "potentially_failed" or "inactive". StrEnum members
compare equal to their strings, so JSON, ubus and LuCI carry the plain values.
"""

from __future__ import annotations

from enum import StrEnum


class PathState(StrEnum):
    ACTIVE = "active"  # heartbeats/data acknowledged: may carry traffic
    PF = "pf"  # potentially failed: a T3 timeout, not yet unreachable
    UNREACHABLE = "unreachable"  # retransmissions exhausted
    UNCONFIRMED = "unconfirmed"  # added, no heartbeat answered yet (or link just came back)
    REMOVED = "removed"  # the peer address left the association
    UNKNOWN = "unknown"  # no association, or nothing reported yet


class AssocState(StrEnum):
    CONNECTING = "connecting"  # gateway: INIT sent or waiting to retry (reason says which)
    AUTHENTICATING = "authenticating"  # SCTP up, CHALLENGE/HELLO/WELCOME under way
    UP = "up"  # admitted: traffic flows
    REFUSED = "refused"  # the peer refused admission (reason says why)
    RESTARTING = "restarting"  # the relay failed and is being restarted by the daemon
    DOWN = "down"  # no association
    UNKNOWN = "unknown"  # nothing known yet


class EndpointRole(StrEnum):
    """Which of a gateway's endpoints it associates with (haig.core.endpoint_choice)."""
    PRIMARY = "primary"  # the uplinks' endpoint_address
    STANDBY = "standby"  # the uplinks' standby_address: another server or site


# Which path is better when choosing between unhealthy ones or picking the path for the
# second copy of a critical datagram: lower is better. The gateway's policy and the
# endpoint rank with the same table.
PATH_RANK = {
    PathState.ACTIVE: 0, PathState.UNCONFIRMED: 1, PathState.PF: 2, PathState.UNKNOWN: 3,
    PathState.UNREACHABLE: 4, PathState.REMOVED: 5,
}

# SCTP_PEER_ADDR_CHANGE spc_state names (haig.adapters.sctp_opts.ADDR_CHANGE) → PathState.
# "made_prim" says nothing about health: not mapped (ignored).
FROM_ADDR_CHANGE = {
    "available": PathState.ACTIVE, "confirmed": PathState.ACTIVE,
    "unreachable": PathState.UNREACHABLE, "potentially_failed": PathState.PF,
    "removed": PathState.REMOVED, "added": PathState.UNCONFIRMED,
}
# struct sctp_paddrinfo spinfo_state names (haig.adapters.sctp_opts.PATH_STATES) → PathState.
FROM_PATH_INFO = {
    "active": PathState.ACTIVE, "pf": PathState.PF, "inactive": PathState.UNREACHABLE,
    "unconfirmed": PathState.UNCONFIRMED, "unknown": PathState.UNKNOWN,
}


def best_path(states: dict[str, PathState], exclude: str | None = None) -> str | None:
    """The best-ranked path key among `states` (ties: insertion order), never `exclude`;
    only an ACTIVE path qualifies (a copy on a dead path is no copy)."""
    ranked = sorted((PATH_RANK[PathState(s)], i, k) for i, (k, s) in enumerate(states.items()) if k != exclude)
    if ranked and ranked[0][0] == PATH_RANK[PathState.ACTIVE]:
        return ranked[0][2]
    return None
