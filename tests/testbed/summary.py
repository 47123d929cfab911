"""Print one closing line over the host and VM JUnit reports: 'N passed, N failed, N skipped'."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.testbed.run_vm_suite import summarize


def main(paths: list[str]) -> int:
    passed = failed = skipped = 0
    for p in paths:
        if not Path(p).exists():
            print(f"missing report {p}: counted as 1 failed")
            failed += 1
            continue
        t, f, e, s = summarize(Path(p))
        passed += t - f - e - s
        failed += f + e
        skipped += s
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
