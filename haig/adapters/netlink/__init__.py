"""Link awareness (LinkWatcher) and endpoint pinning policy routes (RouteReconciler) over netlink.

facts.py   pyroute2 messages -> plain facts (pure)
tracker.py facts -> per-uplink up/down with a reason (pure)
watcher.py asyncio adapter: events, initial dump, resync after overrun
routes.py  pure planner + reconciler for the per-uplink rules/tables
"""

from .routes import GUARD_METRIC, RULE_PRIORITY, TABLE_BASE, ReconcileResult, RouteReconciler, plan
from .tracker import Change, LinkTracker, UplinkState
from .watcher import LinkWatcher

__all__ = [
    "GUARD_METRIC",
    "RULE_PRIORITY",
    "TABLE_BASE",
    "Change",
    "LinkTracker",
    "LinkWatcher",
    "ReconcileResult",
    "RouteReconciler",
    "UplinkState",
    "plan",
]
