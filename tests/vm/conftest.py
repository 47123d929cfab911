"""VM suite: runs inside the test-bed VM (tests/run-vm-suite boots it).

On the host these tests cannot run (no SCTP, no veth, no netem); they are not skipped
silently in CI: the runner fails when the VM suite did not run or skipped anything.
"""

from __future__ import annotations

import os

import pytest

from tests.testbed import topology
from tests.testbed.haig_procs import Started

IN_VM = os.environ.get("HAIG_IN_VM") == "1"


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.vm)
        if not IN_VM:
            item.add_marker(pytest.mark.skip(reason="VM suite: run through ./dev test (tests/run-vm-suite)"))


@pytest.fixture(scope="session")
def _shared_topo():
    # Building the bed costs ~40 tc/ip commands at 150-400 ms each under emulation:
    # build once, give each test fresh ports, and undo impairments after every test.
    t = topology.build()
    try:
        yield t
    finally:
        t.teardown()


@pytest.fixture
def topo(_shared_topo):
    try:
        yield _shared_topo
    finally:
        _shared_topo.impair.clear()


@pytest.fixture
def procs():
    """Daemons started by the test (`procs.start(...)`, `procs.pair(...)`): stopped after
    it, their log tails printed (pytest shows them for a failing test)."""
    started = Started()
    try:
        yield started
    finally:
        started.stop_all()
