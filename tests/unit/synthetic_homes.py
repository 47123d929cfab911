"""A synthetic endpoint status with many homes (panel and /metrics at scale): a
deterministic mix of homes up, down, on their backup path, flapping, with a path
potentially failed, plus the events that make some of them flap."""

from __future__ import annotations

import random

from haig.core.events import ASSOC, FAILOVER, Event
from haig.core.status import StatusModel


def synthetic_endpoint(n: int, now: float, seed: int = 13) -> StatusModel:
    rng = random.Random(seed)
    m = StatusModel(started_at=now - 9 * 86400, max_events=500, recent_events=300)
    m.set_identity("endpoint", None, "0.1.0")
    for i in range(n):
        home = f"home_{i:05d}"
        dsl, lte = f"198.51.{i // 250}.{i % 250 + 1}", f"100.64.{i // 250}.{i % 250 + 1}"
        r = rng.random()
        since = now - rng.uniform(60, 6 * 86400)
        if r < 0.03:
            m.set_association(home, state="down", gateway_id=home, reason="no heartbeat answer", paths=[])
            m.add_event(Event(t=now - rng.uniform(5, 3000), kind=ASSOC, subject=home, old="up", new="down",
                              reason="no heartbeat answer"))
            continue
        on_backup = r < 0.08
        pf = 0.08 <= r < 0.11
        paths = [
            {"address": dsl, "state": "inactive" if on_backup else ("pf" if pf else "active"),
             "primary": not on_backup, "srtt_ms": rng.randint(8, 40), "rto_ms": rng.choice([120, 200, 400])},
            {"address": lte, "state": "active", "primary": on_backup,
             "srtt_ms": rng.randint(40, 120), "rto_ms": rng.choice([200, 400, 1000])},
        ]
        m.set_association(home, state="up", gateway_id=home, assoc_id=i + 1, since=since, paths=paths,
                          primary=lte if on_backup else dsl)
        if 0.11 <= r < 0.13:  # flapping: several switches in the last minutes
            for k in range(5):
                m.add_event(Event(t=now - 60 * k - 10, kind=FAILOVER, subject=home,
                                  old="dsl" if k % 2 else "lte", new="lte" if k % 2 else "dsl",
                                  reason="path flapping"))
    return m
