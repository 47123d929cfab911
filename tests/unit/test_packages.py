"""tools/build-packages: the .ipk archives it makes from the Makefiles are
well-formed, hold what the install recipes install (bytecode of the target's
Python, no sources), and install a working `haig` command. (opkg itself, and
apk on 25.12, run only on a router.)"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.openwrt_support import REPO, SITE, Ipk, tool

MTIME = 1_700_000_000


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, str(REPO / "tools/build-packages"), "--out", str(out),
                          "--mtime", str(MTIME)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def version() -> str:
    ns: dict = {}
    exec((REPO / "haig/__init__.py").read_text(), ns)
    return f"{ns['__version__']}-r1"


@pytest.fixture(scope="module")
def haig_ipk(dist, version) -> Ipk:
    return Ipk(dist / f"haig_{version}_all.ipk")


@pytest.fixture(scope="module")
def api_ipk(dist, version) -> Ipk:
    return Ipk(dist / f"haig-api_{version}_all.ipk")


@pytest.fixture(scope="module")
def luci_ipk(dist, version) -> Ipk:
    return Ipk(dist / f"luci-app-haig_{version}_all.ipk")


def test_ipk_layout_is_openwrts(haig_ipk, api_ipk, luci_ipk):
    for ipk in (haig_ipk, api_ipk, luci_ipk):
        assert ipk.outer_names == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
        assert ipk.parts["./debian-binary"] == b"2.0\n"
        for name, (info, _) in ipk.data.items():
            assert (info.uid, info.gid, info.mtime) == (0, 0, MTIME), name


def test_haig_control_fields(haig_ipk, version):
    c = haig_ipk.control()
    assert c["Package"] == "haig"
    assert c["Version"] == version
    assert c["Architecture"] == "all"
    depends = [d.strip() for d in c["Depends"].split(",")]
    for needed in ("python3-light", "python3-pyroute2", "python3-ubus", "python3-pysctp", "kmod-sctp"):
        assert needed in depends
    # the router's daemon needs no web framework; haig-api brings it
    assert "python3-flask" not in depends and "python3-email" not in depends
    assert c["License"] == "GPL-2.0-only"
    assert re.fullmatch(r"[^<>]+ <[^@<>\s]+@[^@<>\s]+>", c["Maintainer"])
    size = sum(len(data) for _, data in haig_ipk.data.values() if data is not None)
    assert int(c["Installed-Size"]) == size
    assert c["Description"].startswith("High-availability Internet Gateway")


def test_haig_conffiles_and_maintainer_scripts(haig_ipk):
    assert haig_ipk.text("./conffiles").splitlines() == ["/etc/config/haig"]
    # base-files' default_postinst runs uci-defaults and enables the init script
    assert "default_postinst $0 $@" in haig_ipk.text("./postinst")
    assert "default_prerm $0 $@" in haig_ipk.text("./prerm")
    for script in ("./postinst", "./prerm"):
        assert haig_ipk.control_files[script][0].mode == 0o755


def test_haig_data_holds_package_command_service_config(haig_ipk):
    data = haig_ipk.data
    modes = {name: info.mode for name, (info, _) in data.items()}
    assert modes["./usr/bin/haig"] == 0o755
    assert modes["./etc/init.d/haig"] == 0o755
    assert modes["./etc/config/haig"] == 0o600  # INSTALL_CONF
    assert data["./etc/config/haig"][1] == (REPO / "files/etc/config/haig").read_bytes()
    for script in sorted((REPO / "files/etc/uci-defaults").iterdir()):
        assert modes[f"./etc/uci-defaults/{script.name}"] == 0o755


def test_api_package_only_pulls_in_flask(api_ipk, version):
    c = api_ipk.control()
    assert (c["Package"], c["Version"]) == ("haig-api", version)
    assert [d.strip() for d in c["Depends"].split(",")] == ["libc", "haig", "python3-flask"]
    assert not [n for n, (i, _) in api_ipk.data.items() if i.isfile()]


def _shipped(ipk: Ipk, site: str = SITE) -> dict[str, bytes]:
    return {n[len(f"./{site}/"):]: d for n, (i, d) in ipk.data.items() if n.startswith(f"./{site}/") and i.isfile()}


def test_haig_ships_bytecode_for_every_module_and_no_sources(haig_ipk):
    shipped = _shipped(haig_ipk)
    in_tree = {p.relative_to(REPO).as_posix() for p in (REPO / "haig").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    expected = {n[:-3] + ".pyc" if n.endswith(".py") else n for n in in_tree}
    assert set(shipped) == expected  # data files (schemas, panel) stay as they are
    assert not any("__pycache__" in n or n.endswith(".py") for n in haig_ipk.data)
    for name, data in shipped.items():
        if name.endswith(".pyc"):
            assert data[:4] == importlib.util.MAGIC_NUMBER, name  # the target's (3.11) magic
            assert int.from_bytes(data[4:8], "little") == 0b01, name  # hash-based, unchecked: reproducible


def test_bytecode_for_another_python_uses_its_magic(tmp_path):
    bp = tool("build-packages")
    try:
        exe = bp.find_python("3.13")
    except ValueError as e:
        pytest.skip(str(e))
    res = subprocess.run([sys.executable, str(REPO / "tools/build-packages"), "--out", str(tmp_path),
                          "--python", "3.13", "--python-exe", exe, "--mtime", str(MTIME)],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    version = next(tmp_path.glob("haig_*_all.ipk"))
    shipped = _shipped(Ipk(version), "usr/lib/python3.13/site-packages")
    magic = subprocess.run([exe, "-c", "import importlib.util, sys; sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER)"],
                           capture_output=True, check=True).stdout
    assert magic != importlib.util.MAGIC_NUMBER
    assert shipped["haig/cli.pyc"][:4] == magic


def test_a_wrong_interpreter_is_refused_with_the_reason(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "tools/build-packages"), "--out", str(tmp_path),
                          "--python", "3.13", "--python-exe", sys.executable],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "not 3.13" in res.stderr


def test_installed_tree_runs_the_haig_command(haig_ipk, tmp_path, version):
    root = tmp_path / "root"
    haig_ipk.extract_data(root)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(root / SITE)}
    # -S: no site-packages, so the repo or the venv cannot supply `haig`
    res = subprocess.run([sys.executable, "-S", str(root / "usr/bin/haig"), "--version"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"haig {version.rsplit('-r', 1)[0]}"
    res = subprocess.run([sys.executable, "-S", "-c", "import haig.cli; print(haig.cli.__file__)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == str(root / SITE / "haig/cli.pyc")  # sourceless, as on the router
    # tracebacks name the installed path, not the build tree
    res = subprocess.run([sys.executable, "-S", "-c", "import haig.cli; print(haig.cli.main.__code__.co_filename)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == f"/{SITE}/haig/cli.py"


def test_luci_package(luci_ipk, version):
    c = luci_ipk.control()
    assert (c["Package"], c["Version"], c["Architecture"]) == ("luci-app-haig", version, "all")
    assert {d.strip() for d in c["Depends"].split(",")} >= {"luci-base", "haig"}
    names = set(luci_ipk.data)
    for f in ("./www/luci-static/resources/view/haig/status.js",
              "./www/luci-static/resources/view/haig/settings.js",
              "./usr/share/luci/menu.d/luci-app-haig.json",
              "./usr/share/rpcd/acl.d/luci-app-haig.json"):
        assert f in names
    assert "rpcd" in luci_ipk.text("./postinst")  # reloads ACLs on install


def test_build_is_reproducible(dist, tmp_path):
    again = tmp_path / "again"
    subprocess.run([sys.executable, str(REPO / "tools/build-packages"), "--out", str(again),
                    "--mtime", str(MTIME)], check=True, capture_output=True, timeout=120)
    assert len(list(dist.glob("*.ipk"))) == 3
    for ipk in sorted(dist.glob("*.ipk")):
        assert (again / ipk.name).read_bytes() == ipk.read_bytes(), ipk.name


def test_recipe_runner_refuses_what_it_does_not_understand(tmp_path):
    bp = tool("build-packages")
    with pytest.raises(ValueError, match="not supported"):
        bp.run_recipe(["\t$(SED) -i s/a/b/ $(1)/x"], {"1": str(tmp_path)}, tmp_path)
    with pytest.raises(ValueError, match="not understood"):
        bp.run_recipe(["\tcp a b"], {}, tmp_path)
    with pytest.raises(ValueError, match="unknown make variable"):
        bp.run_recipe(["\t$(INSTALL_DIR) $(STAGING_DIR)/x"], {}, tmp_path)


def test_recipe_runner_installs_with_openwrt_modes(tmp_path):
    bp = tool("build-packages")
    (tmp_path / "a.conf").write_text("x")
    (tmp_path / "b.sh").write_text("y")
    root = tmp_path / "root"
    bp.run_recipe([
        "\t$(INSTALL_DIR) $(1)/etc/config $(1)/usr/bin",
        "\t$(INSTALL_CONF) ./a.conf $(1)/etc/config/a",
        "\t$(INSTALL_BIN) ./*.sh $(1)/usr/bin/",
    ], {"1": str(root)}, tmp_path)
    assert (root / "etc/config/a").stat().st_mode & 0o777 == 0o600
    assert (root / "usr/bin/b.sh").stat().st_mode & 0o777 == 0o755
