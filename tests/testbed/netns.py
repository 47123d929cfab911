"""Network namespaces for the test bed (inside the VM, as root).

`Netns.enter()` switches the calling thread into the namespace, so sockets made there
stay there (a socket keeps the netns it was created in). Processes run with
`ip netns exec`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import subprocess
from collections.abc import Iterator

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def sh(cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"command failed ({res.returncode}): {cmd}\n{res.stdout}{res.stderr}")
    return res


class Netns:
    def __init__(self, name: str) -> None:
        self.name = name

    def create(self) -> Netns:
        sh(f"ip netns add {self.name}")
        self.run("ip link set lo up")
        return self

    def delete(self) -> None:
        sh(f"ip netns del {self.name}", check=False)

    def run(self, cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh(f"ip netns exec {self.name} {cmd}", check=check)

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kw)

    def sysctl(self, key: str, value: str | int) -> None:
        self.run(f"sysctl -qw {shlex.quote(f'{key}={value}')}")

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        """Run the block (in this thread) inside the namespace."""
        with open("/proc/self/ns/net") as here, open(f"/run/netns/{self.name}") as there:
            _setns(there.fileno())
            try:
                yield
            finally:
                _setns(here.fileno())

    def __repr__(self) -> str:
        return f"Netns({self.name})"
