"""The pure route/rule planner behind RouteReconciler."""

from haig.adapters.netlink.facts import AddrFact, RouteFact, RuleFact
from haig.adapters.netlink.routes import GUARD_METRIC, RTN_UNREACHABLE, PinRoute, plan
from haig.config.model import Uplink

T, P = 9900, 990
LINKS = {"lo": 1, "eth1": 2, "wwan0": 3}
ADDRS = [AddrFact(2, "10.0.0.2", 24), AddrFact(3, "100.64.0.9", 32)]
WAN = Uplink(name="wan", device="eth1", endpoint_address="192.0.2.10", gateway="10.0.0.1")
LTE = Uplink(name="lte", device="wwan0", endpoint_address="198.51.100.10")


def pin(table, dst, oif, gw=None, src=None):
    return RouteFact(table, dst, 32, (oif,), gw, src)


def guard(table, dst):
    return RouteFact(table, dst, 32, (), priority=GUARD_METRIC, type=RTN_UNREACHABLE)


def rule(table, dst, prio=P):
    return RuleFact(prio, table, dst, 32)


INSTALLED_RULES = [rule(T, "192.0.2.10"), rule(T + 1, "198.51.100.10")]
INSTALLED_ROUTES = [
    pin(T, "192.0.2.10", 2, "10.0.0.1", "10.0.0.2"),
    guard(T, "192.0.2.10"),
    pin(T + 1, "198.51.100.10", 3, None, "100.64.0.9"),
    guard(T + 1, "198.51.100.10"),
]


def test_fresh_kernel_gets_pin_guard_and_rule_per_uplink():
    p = plan([WAN, LTE], LINKS, ADDRS, [], [])
    assert p.put_routes == [
        PinRoute("wan", T, "192.0.2.10", None, guard=True),
        PinRoute("wan", T, "192.0.2.10", 2, "10.0.0.1", "10.0.0.2"),
        PinRoute("lte", T + 1, "198.51.100.10", None, guard=True),
        PinRoute("lte", T + 1, "198.51.100.10", 3, None, "100.64.0.9"),
    ]
    assert p.add_rules == INSTALLED_RULES
    assert p.del_routes == [] and p.del_rules == [] and p.skipped == {}


def test_installed_state_plans_nothing():
    p = plan([WAN, LTE], LINKS, ADDRS, INSTALLED_RULES, INSTALLED_ROUTES)
    assert p.empty and p.skipped == {}


def test_configured_local_address_is_the_source():
    up = Uplink(name="wan", device="eth1", endpoint_address="192.0.2.10", local_address="10.0.0.77")
    p = plan([up], LINKS, ADDRS, [], [])
    assert p.put_routes[1].prefsrc == "10.0.0.77"


def test_changed_gateway_is_replaced_not_duplicated():
    moved = WAN.__class__(**{**WAN.__dict__, "gateway": "10.0.0.254"})
    p = plan([moved, LTE], LINKS, ADDRS, INSTALLED_RULES, INSTALLED_ROUTES)
    assert p.put_routes == [PinRoute("wan", T, "192.0.2.10", 2, "10.0.0.254", "10.0.0.2")]
    assert p.del_routes == [] and p.add_rules == [] and p.del_rules == []


def test_stale_rules_and_routes_in_our_range_are_removed_others_kept():
    stale_rule = rule(T + 5, "203.0.113.1")  # a removed uplink
    foreign_at_our_prio = RuleFact(P, 100, None, 0, src="10.9.9.9", src_len=32)
    in_our_table = rule(T, "192.0.2.10", prio=5000)
    theirs = [RuleFact(1001, 1, None, 0), RuleFact(32766, 254, None, 0)]
    stale_route = pin(T + 5, "203.0.113.1", 2)
    main_route = RouteFact(254, "0.0.0.0", 0, (2,), "10.0.0.1")
    p = plan(
        [WAN, LTE],
        LINKS,
        ADDRS,
        INSTALLED_RULES + [stale_rule, foreign_at_our_prio, in_our_table] + theirs,
        INSTALLED_ROUTES + [stale_route, main_route],
    )
    assert p.del_rules == [stale_rule, foreign_at_our_prio, in_our_table]
    assert p.del_routes == [stale_route]
    assert p.put_routes == [] and p.add_rules == []


def test_duplicate_rule_is_removed_once():
    p = plan(
        [WAN], LINKS, ADDRS, [rule(T, "192.0.2.10"), rule(T, "192.0.2.10")], INSTALLED_ROUTES[:2]
    )
    assert p.del_rules == [rule(T, "192.0.2.10")] and p.add_rules == []


def test_missing_device_is_skipped_but_guarded():
    p = plan([LTE], {"lo": 1}, [], [], [])
    assert p.skipped == {"lte": "device wwan0 missing"}
    # rule + unreachable guard: traffic to that endpoint must not leak via another uplink
    assert p.put_routes == [PinRoute("lte", T, "198.51.100.10", None, guard=True)]
    assert p.add_rules == [rule(T, "198.51.100.10")]


def test_uplink_without_endpoint_is_ignored_and_duplicate_endpoint_skipped():
    bare = Uplink(name="bare", device="eth1")
    twin = Uplink(name="twin", device="wwan0", endpoint_address="192.0.2.10")
    p = plan([WAN, bare, twin], LINKS, ADDRS, [], [])
    assert p.skipped == {"twin": "endpoint 192.0.2.10 already pinned to wan"}
    assert [r.dst for r in p.add_rules] == ["192.0.2.10"]


def test_remove_all_plan_deletes_everything_of_ours():
    p = plan([], LINKS, ADDRS, INSTALLED_RULES + [RuleFact(32766, 254, None, 0)], INSTALLED_ROUTES)
    assert p.del_rules == INSTALLED_RULES
    assert p.del_routes == INSTALLED_ROUTES
    assert p.put_routes == [] and p.add_rules == []


def test_table_base_and_priority_are_parameters():
    p = plan([WAN], LINKS, ADDRS, [], [], table_base=500, rule_priority=77)
    assert p.add_rules == [RuleFact(77, 500, "192.0.2.10", 32)]
    assert {r.table for r in p.put_routes} == {500}
