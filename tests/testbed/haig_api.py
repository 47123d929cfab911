"""haig daemons whose status API is asked from this process (the socket is made inside
the daemon's namespace with setns) instead of from a fresh Python interpreter per call:
under TCG emulation that is ~0.07 s instead of 5–15 s a call, which decides how long a
`wait_for` loop really takes. Same interface as haig_procs.Haig."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.testbed import haig_procs


class Haig(haig_procs.Haig):
    def _get(self, path: str) -> str:
        try:
            with self.ns.enter():
                with urllib.request.urlopen(self.api + path, timeout=10) as r:
                    return r.read().decode()
        except (OSError, urllib.error.URLError) as e:
            raise RuntimeError(f"{self.name}: API {path} failed: {e}") from e
