"""Host side of the test bed: boot a throwaway VM with Debian's kernel (real SCTP,
netem, veth) through virtme-ng and run one command in it on the host's own files.

Software emulation only: KVM hangs on these machines (see shared notes), and virtme-ng
picks KVM by itself when /dev/kvm exists, hence --disable-kvm. Boot once per run.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def find_kernel() -> str:
    """Newest Debian kernel image with 9p (the -cloud- flavour has none)."""
    images = [p for p in glob.glob("/boot/vmlinuz-*-amd64") if "-cloud-" not in p]
    if not images:
        raise RuntimeError(
            "no Debian kernel image in /boot: install linux-image-amd64 (./dev setup does it)"
        )
    return sorted(images, key=os.path.getmtime)[-1]


def vng_command(guest_cmd: str, rwdirs: list[str], memory: str = "1G", cpus: int = 2) -> list[str]:
    vng = shutil.which("vng")
    if vng is None:
        raise RuntimeError("virtme-ng (vng) not on PATH: install it into the venv")
    cmd = [
        vng, "--disable-kvm", "--force-9p", "--memory", memory, "--cpus", str(cpus),
        "--qemu-opts=-accel tcg,tb-size=256",
        "--run", find_kernel(),
    ]
    for d in rwdirs:
        cmd.append(f"--rwdir={d}")
    cmd += ["--exec", guest_cmd]
    return cmd


def run_in_vm(guest_cmd: str, rwdirs: list[str] | None = None, timeout: float = 3600,
              memory: str = "1G") -> int:
    """Run guest_cmd (a shell command line) in a fresh VM; stream its output; return its
    exit status. vng must see a pipe, not a file, on stdout (it truncates files)."""
    env = dict(os.environ)
    # vng calls virtme-run from PATH: make sure the venv's bin is there.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    cmd = vng_command(guest_cmd, rwdirs or [], memory=memory)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=REPO)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
