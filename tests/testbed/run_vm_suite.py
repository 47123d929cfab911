"""Boot the VM once and run the whole VM suite (tests/vm) inside it.

Exit status is non-zero when anything failed, errored, or was SKIPPED, and when the
suite ran no test at all: a VM suite that did not really run is a failure, not a pass.
The JUnit report lands in artifacts/vm/ (a directory the guest can write).
"""

from __future__ import annotations

import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.testbed.vm import REPO, run_in_vm


def summarize(junit: Path) -> tuple[int, int, int, int]:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    t = f = e = s = 0
    for su in suites:
        t += int(su.get("tests", 0))
        f += int(su.get("failures", 0))
        e += int(su.get("errors", 0))
        s += int(su.get("skipped", 0))
    return t, f, e, s


def main(argv: list[str] | None = None) -> int:
    # Extra arguments go to pytest as they are (e.g. -k name -x).
    extra = sys.argv[1:] if argv is None else argv
    out = REPO / "artifacts" / "vm"
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "junit.xml"
    junit.unlink(missing_ok=True)
    py = shlex.quote(sys.executable)
    pytest_cmd = (
        f"{py} -m pytest tests/vm -p no:cacheprovider -v -rA --junitxml={junit} "
        f"--basetemp={out}/tmp " + " ".join(shlex.quote(a) for a in extra)
    )
    guest = f"HAIG_REPO={shlex.quote(str(REPO))} sh tests/testbed/guest.sh {pytest_cmd}"
    rc = run_in_vm(guest, rwdirs=[str(out)])
    if not junit.exists():
        print(f"VM suite: no report (VM exit status {rc}): the suite did not run", file=sys.stderr)
        return 1
    t, f, e, s = summarize(junit)
    print(f"VM suite: {t} tests, {f} failed, {e} errors, {s} skipped (VM exit status {rc})")
    if t == 0:
        print("VM suite ran no test: failing", file=sys.stderr)
        return 1
    if s:
        print("VM suite skipped tests: a skipped VM test is a failure here", file=sys.stderr)
        return 1
    return 0 if (rc == 0 and f == 0 and e == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
