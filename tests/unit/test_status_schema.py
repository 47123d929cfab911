"""The schema itself: well-formed, not vacuous, matches the recorded run, documented."""

from __future__ import annotations

import copy
import re

import pytest
from jsonschema import Draft202012Validator

from haig.core.events import KINDS
from haig.core.status import SCHEMA_VERSION
from tests.unit.surfaces_support import (
    EVENT,
    EVENT_SCHEMA,
    ROOT,
    STATUS,
    STATUS_SCHEMA,
    T0,
    assert_valid,
    errors,
    model_at,
    recording,
)

PHASES = list(recording()["phases"])


def test_schemas_are_valid_draft_2020_12():
    Draft202012Validator.check_schema(STATUS_SCHEMA)
    Draft202012Validator.check_schema(EVENT_SCHEMA)
    assert STATUS_SCHEMA["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_event_kinds_match_the_event_model():
    assert tuple(EVENT_SCHEMA["properties"]["kind"]["enum"]) == KINDS


@pytest.mark.parametrize("upto", range(1, len(PHASES) + 1))
def test_every_phase_of_the_recorded_run_is_valid(upto):
    m = model_at(*PHASES[:upto])
    snap = m.snapshot(T0 + 100)
    assert_valid(STATUS, snap)
    for ev in m.events_since(0):
        assert_valid(EVENT, ev)


def test_recorded_run_tells_the_failover_story():
    heads = [model_at(*PHASES[: i + 1]).snapshot(T0 + 100)["summary"]["text"] for i in range(len(PHASES))]
    assert heads == [
        "Connected via DSL (wan)",
        "Connected via LTE backup",
        "Connected via LTE backup",
        "Connected via DSL (wan)",
    ]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda s: s.pop("primary"),
        lambda s: s.update(schema_version=2),
        lambda s: s["uplinks"][0].update(tx_bytes=-1),
        lambda s: s["uplinks"][0].update(surprise=1),
        lambda s: s["events"][0].update(kind="explosion"),
        lambda s: s["associations"][0]["paths"][0].pop("address"),
        lambda s: s["drops"].update(queue_full="many"),
        lambda s: s["summary"].pop("text"),
    ],
)
def test_schema_rejects_broken_snapshots(breakage):
    snap = copy.deepcopy(model_at("boot").snapshot(T0))
    breakage(snap)
    assert errors(STATUS, snap)


def test_docs_describe_every_snapshot_field():
    doc = (ROOT / "docs" / "status.md").read_text()
    fields = set(STATUS_SCHEMA["properties"])
    for sub in ("uplink", "association", "path"):
        fields |= set(STATUS_SCHEMA["$defs"][sub]["properties"])
    fields |= set(EVENT_SCHEMA["properties"])
    missing = sorted(f for f in fields if not re.search(rf"`{re.escape(f)}`", doc))
    assert not missing, f"docs/status.md does not mention {missing}"
