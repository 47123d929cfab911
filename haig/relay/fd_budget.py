"""The endpoint's file-descriptor budget: one UDP socket per flow towards a target, so
flows are bounded by RLIMIT_NOFILE. At start the soft limit is raised to the hard one
(no privilege needed), and the core is given what is left after a fixed reserve for
the SCTP socket, the API and its streams, ubus, logging and the event loop."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("haig.endpoint")

FD_RESERVE = 128  # fds never given to flows


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, e)
    return soft


def flow_budget(soft_limit: int, reserve: int = FD_RESERVE) -> int:
    """Target sockets the core may hold at once: the limit less the reserve (at least 1)."""
    return max(1, soft_limit - reserve)
