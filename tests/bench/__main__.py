"""Run every benchmark in turn (inside the test-bed VM):
`python -m tests.bench [name...] [--option...]`.

Each benchmark is a module of this package with a `main() -> int`, or
`main(argv) -> int` taking the --options given here; a listed module that does not
exist (yet) is reported and skipped, so the list can name work in progress.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import time
import traceback

BENCHMARKS = ["relay", "failover", "duplication", "jitter", "profile", "hotpath", "scale", "integrity", "memory", "reuseport"]


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or BENCHMARKS
    opts = [a for a in argv if a.startswith("-")]
    rc = 0
    for name in names:
        mod = f"tests.bench.{name}"
        if importlib.util.find_spec(mod) is None:
            print(f"== bench {name}: no module {mod}, skipped", flush=True)
            continue
        print(f"== bench {name}", flush=True)
        t0 = time.monotonic()
        try:
            fn = importlib.import_module(mod).main
            r = fn(opts) if inspect.signature(fn).parameters else fn()
        except Exception as e:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            print(f"== bench {name} failed: {e!r}", flush=True)
            r = 1
        print(f"== bench {name}: {time.monotonic() - t0:.0f} s, exit {r}", flush=True)
        rc = rc or (r or 0)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
