"""Shared by the OpenWrt packaging tests: load the tools (scripts without .py),
build the packages once per session, read .ipk archives."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import sys
import tarfile
from functools import cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
PYTHON = "3.11"
SITE = f"usr/lib/python{PYTHON}/site-packages"


@cache
def tool(name: str) -> ModuleType:
    """tools/<name> imported as a module."""
    path = REPO / "tools" / name
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = mod  # dataclasses look their module up there
    loader.exec_module(mod)
    return mod


class Ipk:
    """An OpenWrt .ipk: gzipped tar of debian-binary, control.tar.gz, data.tar.gz."""

    def __init__(self, path: Path):
        self.path = path
        with tarfile.open(path, "r:gz") as outer:
            self.outer_names = outer.getnames()
            self.parts = {m.name: outer.extractfile(m).read() for m in outer.getmembers() if m.isfile()}
        self.control_files = self._members(self.parts["./control.tar.gz"])
        self.data = self._members(self.parts["./data.tar.gz"])

    @staticmethod
    def _members(blob: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
        out = {}
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            for m in tar.getmembers():
                data = tar.extractfile(m).read() if m.isfile() else None
                out[m.name] = (m, data)
        return out

    def control(self) -> dict[str, str]:
        fields, last = {}, None
        for line in self.control_files["./control"][1].decode().splitlines():
            if line.startswith(" ") and last:
                fields[last] += "\n" + line[1:]
            else:
                last, _, value = line.partition(": ")
                fields[last] = value
        return fields

    def text(self, name: str) -> str:
        return self.control_files[name][1].decode()

    def extract_data(self, dest: Path) -> None:
        with tarfile.open(fileobj=io.BytesIO(self.parts["./data.tar.gz"]), mode="r:gz") as tar:
            # extraction filters arrived in 3.11.4; Debian 12 has 3.11.2
            kwargs = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
            tar.extractall(dest, **kwargs)
