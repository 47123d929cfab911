"""Shared by the status-surface tests: schema validators, the recorded run, a fake
control and a real HTTP server on an ephemeral loopback port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from haig.core.status import StatusModel
from haig.surfaces.replay import apply_phase, load_recording

ROOT = Path(__file__).resolve().parents[2]
SURFACES = ROOT / "haig" / "surfaces"
RECORDING = ROOT / "tests" / "fixtures" / "recorded_run.json"
T0 = 1_700_000_000.0  # replay start for deterministic tests


def _load(name: str) -> dict[str, Any]:
    return json.loads((SURFACES / name).read_text())


STATUS_SCHEMA = _load("status.schema.json")
EVENT_SCHEMA = _load("event.schema.json")
_REGISTRY = Registry().with_resources(
    [
        (STATUS_SCHEMA["$id"], Resource.from_contents(STATUS_SCHEMA)),
        (EVENT_SCHEMA["$id"], Resource.from_contents(EVENT_SCHEMA)),
    ]
)


def _validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref}, registry=_REGISTRY)


STATUS = _validator(STATUS_SCHEMA["$id"])
EVENT = _validator(EVENT_SCHEMA["$id"])
EVENTS_RESPONSE = _validator(STATUS_SCHEMA["$id"] + "#/$defs/events_response")


def errors(validator: Draft202012Validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def assert_valid(validator: Draft202012Validator, doc: Any) -> None:
    errs = errors(validator, doc)
    assert not errs, errs


def recording() -> dict[str, Any]:
    return load_recording(RECORDING)


def model_at(*phases: str, t0: float = T0) -> StatusModel:
    """A model fed with the recorded run up to (and including) the given phases."""
    rec = recording()
    m = StatusModel()
    for ph in phases:
        apply_phase(m, rec, ph, t0)
    return m


class FakeControl:
    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def force_primary(self, uplink: str, duration_s: int) -> dict[str, Any]:
        self.calls.append(("force_primary", uplink, duration_s))
        if self.fail:
            raise ValueError(self.fail)
        return {"ok": True, "primary": uplink, "until_s": duration_s}

    def reload(self) -> dict[str, Any]:
        self.calls.append(("reload",))
        if self.fail:
            raise ValueError(self.fail)
        return {"ok": True, "message": "reloaded"}


@contextmanager
def running_api(model: StatusModel, **app_kwargs: Any) -> Iterator[str]:
    """Serve the real app (waitress) on 127.0.0.1:<ephemeral>; yields the base URL."""
    from haig.surfaces.api import create_app, serve

    handle = serve(create_app(model, **app_kwargs), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{handle.port}"
    finally:
        model.close()  # ends live streams so the server threads can finish
        handle.stop()
