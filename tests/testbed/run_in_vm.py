"""Run one command inside the test-bed VM with the project on PYTHONPATH:
`python -m tests.testbed.run_in_vm python -m tests.testbed.demo`.
Output goes to the terminal; artifacts/ is writable from the guest."""

from __future__ import annotations

import shlex
import sys

from tests.testbed.vm import REPO, run_in_vm


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    out = REPO / "artifacts"
    out.mkdir(exist_ok=True)
    if argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    guest = (f"HAIG_REPO={shlex.quote(str(REPO))} sh tests/testbed/guest.sh "
             + " ".join(shlex.quote(a) for a in argv))
    return run_in_vm(guest, rwdirs=[str(out)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
