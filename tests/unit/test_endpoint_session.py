"""The endpoint core on the host: several homes on one socket, a reload applied in
place, the path for critical copies, the kernel's names mapped at the driver."""

from __future__ import annotations

from haig.adapters import sctp_io
from haig.config.model import Peer, Service
from haig.core import wire
from haig.core.endpoint_session import EndpointCore
from haig.core.states import PathState, best_path
from haig.relay import sctp_driver
from tests.unit.relay_bench import KEY, endpoint_config, services


def hello(gw: str, challenge: bytes, key: str = KEY) -> bytes:
    return wire.encode_hello(key, challenge, gw, b"n" * 16, ("telemetry",))


def three_homes() -> EndpointCore:
    cfg = endpoint_config(peers=tuple(Peer(f"home{i}", KEY) for i in (1, 2, 3)))
    core = EndpointCore(cfg, 0.0, nonce=lambda n: b"c" * n)
    for i in (1, 2, 3):
        core.association_up(i, 0.0)
        core.receive_message(i, hello(f"home{i}", b"c" * 16), (f"192.0.2.{i}", 40000), 0, 0.0)
    assert core.by_gateway == {"home1": 1, "home2": 2, "home3": 3}
    return core


def aborted(core: EndpointCore) -> set[int]:
    return {a.assoc_id for a in iter(core.next_action, None) if type(a).__name__ == "Abort"}


def test_reload_adding_a_home_touches_no_association():
    core = three_homes()
    aborted(core)
    cfg = endpoint_config(peers=tuple(Peer(f"home{i}", KEY) for i in (1, 2, 3, 4)))
    assert core.reconfigure(cfg, 1.0) == []
    assert aborted(core) == set() and core.by_gateway == {"home1": 1, "home2": 2, "home3": 3}
    core.association_up(4, 1.0)
    core.receive_message(4, hello("home4", b"c" * 16), ("192.0.2.4", 40000), 0, 1.0)
    assert core.by_gateway["home4"] == 4


def test_reload_ends_only_the_changed_or_removed_homes():
    core = three_homes()
    aborted(core)
    cfg = endpoint_config(peers=(Peer("home1", KEY), Peer("home2", "z" * 24)))  # home2 re-keyed, home3 gone
    assert sorted(core.reconfigure(cfg, 1.0)) == ["home2", "home3"]
    assert aborted(core) == {2, 3} and core.by_gateway == {"home1": 1}


def test_reload_changing_a_target_re_associates_the_homes_using_it():
    core = three_homes()
    aborted(core)
    svcs = (Service("telemetry", target="10.2.0.9:7000"),)
    cfg = endpoint_config(peers=tuple(Peer(f"home{i}", KEY) for i in (1, 2, 3)), svcs=svcs)
    assert sorted(core.reconfigure(cfg, 1.0)) == ["home1", "home2", "home3"]
    assert services()[0].target != svcs[0].target


def test_new_association_of_a_home_replaces_its_old_one():
    core = three_homes()
    aborted(core)
    core.association_up(9, 2.0)
    core.receive_message(9, hello("home1", b"c" * 16), ("192.0.2.99", 40000), 0, 2.0)
    assert core.by_gateway["home1"] == 9 and aborted(core) == {1}


def test_copy_path_is_the_best_ranked_other_path():
    paths = {"a": PathState.ACTIVE, "b": PathState.PF, "c": PathState.ACTIVE}
    assert best_path(paths, exclude="a") == "c"
    assert best_path({"a": PathState.ACTIVE, "b": PathState.PF}, exclude="a") is None  # no dead copies
    assert best_path({"a": PathState.UNCONFIRMED, "b": PathState.ACTIVE}) == "b"


def test_kernel_names_are_mapped_once_at_the_driver():
    up = sctp_driver.translate(sctp_io.AssocChange("comm_up", 0, 5))
    assert up == sctp_driver.AssocUp(5, False)
    gone = sctp_driver.translate(sctp_io.AssocChange("comm_lost", 0, 5))
    assert isinstance(gone, sctp_driver.AssocGone) and gone.assoc_id == 5
    for kernel, ours in (("available", PathState.ACTIVE), ("potentially_failed", PathState.PF),
                         ("unreachable", PathState.UNREACHABLE), ("added", PathState.UNCONFIRMED)):
        ch = sctp_driver.translate(sctp_io.PeerAddrChange(("192.0.2.1", 1), kernel, 0, 5))
        assert ch.state is ours and ch.kernel == kernel
    assert sctp_driver.translate(sctp_io.PeerAddrChange(("192.0.2.1", 1), "made_prim", 0, 5)).state is None
    ab = sctp_driver.translate(sctp_io.SendFailed(0, True, 5, b"msg"))
    assert ab == sctp_driver.Abandoned(5, b"msg")
    assert sctp_driver.translate(sctp_io.OtherNotification(sctp_io.SCTP_SHUTDOWN_EVENT, 5)).assoc_id == 5


def test_send_errors_map_to_drop_reasons():
    import errno

    from haig.core import drops

    assert sctp_driver.drop_reason(OSError(errno.EPIPE, "x")) == drops.NO_ASSOCIATION
    assert sctp_driver.drop_reason(OSError(errno.EMSGSIZE, "x")) == drops.SEND_FAILED
