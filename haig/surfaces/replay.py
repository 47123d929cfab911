"""Replay a recorded sequence of StatusModel feeding calls.

A recording (e.g. tests/fixtures/recorded_run.json) is {"phases": {name: [step...]}};
a step is {"t": seconds, "op": feeding method name, "args": {keyword arguments}}.
Times (`t`, and the `since` / `started_at` arguments) are relative to the replay's
start `t0`. Used by the surface tests and, as `python -m haig.surfaces.replay FILE`,
to show the panel without a router (demos, screenshots, LuCI work).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from haig.config.model import Uplink
from haig.core.events import Event
from haig.core.status import StatusModel

OPS = frozenset(
    {
        "set_identity",
        "set_uplinks",
        "update_uplink",
        "count_uplink",
        "set_primary",
        "add_event",
        "set_association",
        "remove_association",
        "set_flows",
        "count_drop",
        "set_config_state",
    }
)
_RELATIVE = ("since", "started_at")


def load_recording(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def apply_step(model: StatusModel, step: dict[str, Any], t0: float) -> None:
    op = step["op"]
    if op not in OPS:
        raise ValueError(f"unknown op {op!r} in recording")
    args = dict(step.get("args", {}))
    for k in _RELATIVE:
        if args.get(k) is not None:
            args[k] = t0 + args[k]
    if op == "add_event":
        model.add_event(Event(t=t0 + step["t"], **args))
    elif op == "set_uplinks":
        model.set_uplinks([Uplink(**u) for u in args["uplinks"]])
    elif op == "set_flows":
        model.set_flows(args["flows"])
    else:
        getattr(model, op)(**args)


def apply_phase(model: StatusModel, recording: dict[str, Any], phase: str, t0: float) -> None:
    for step in recording["phases"][phase]:
        apply_step(model, step, t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="serve the haig panel fed from a recording")
    p.add_argument("recording")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8990)
    p.add_argument("--every", type=float, default=10.0, help="seconds between phases")
    a = p.parse_args(argv)

    from haig.surfaces.api import create_app, serve

    rec = load_recording(a.recording)
    model = StatusModel()
    t0 = time.time()
    phases = list(rec["phases"])
    apply_phase(model, rec, phases[0], t0)
    handle = serve(create_app(model), a.host, a.port)
    print(f"panel: http://{a.host}:{handle.port}/  ({handle.kind}); Ctrl-C to stop")
    try:
        for phase in phases[1:]:
            time.sleep(a.every)
            print(f"phase {phase}")
            apply_phase(model, rec, phase, t0)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        model.close()
        handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
