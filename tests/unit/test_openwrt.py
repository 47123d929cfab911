"""The OpenWrt package Makefiles: fields, dependencies (against what haig
really imports), and that every shipped file is installed."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata

import pytest

from tests.unit.openwrt_support import PYTHON, REPO, SITE, tool

bp = tool("build-packages")

# Package names checked against OpenWrt's trees (packages feed lang/python,
# net/lksctp-tools; core kernel modules; luci) or defined in this repo.
KNOWN_PACKAGES = {
    "python3-light", "python3-asyncio", "python3-logging", "python3-ctypes", "python3-urllib",
    "python3-email", "python3-codecs", "python3-decimal", "python3-multiprocessing",
    "python3-openssl", "python3-uuid", "python3-xml", "python3-sqlite3", "python3-unittest",
    "python3-pyroute2", "python3-flask", "python3-werkzeug", "python3-ubus", "python3-pysctp",
    "libsctp", "kmod-sctp", "luci-base", "haig",
}

# Standard-library modules that python3-light lacks, and the package that has
# them (lang/python/python3-find-stdlib-depends.sh, plus what the stdlib itself
# imports: http.* and urllib need email).
STDLIB_PACKAGES = {
    "asyncio": "python3-asyncio", "ctypes": "python3-ctypes", "logging": "python3-logging",
    "urllib": "python3-urllib", "email": "python3-email", "http": "python3-email",
    "unicodedata": "python3-codecs", "decimal": "python3-decimal",
    "multiprocessing": "python3-multiprocessing", "ssl": "python3-openssl",
    "uuid": "python3-uuid", "xml": "python3-xml", "xmlrpc": "python3-xml",
    "sqlite3": "python3-sqlite3", "unittest": "python3-unittest", "lzma": "python3-lzma",
    "dbm": "python3-dbm", "cgi": "python3-cgi", "readline": "python3-readline",
}
# Third-party modules haig may import, and the OpenWrt packages that provide them.
THIRD_PARTY = {
    "sctp": ("python3-pysctp",), "_sctp": ("python3-pysctp",),
    "pyroute2": ("python3-pyroute2",), "flask": ("python3-flask",),
    "werkzeug": ("python3-werkzeug", "python3-flask"), "ubus": ("python3-ubus",),
}


@pytest.fixture(scope="module")
def mk():
    return bp.parse_makefile(REPO / "Makefile")


@pytest.fixture(scope="module")
def depends(mk) -> list[str]:
    return bp.depends_list(bp.define_fields(mk.defines["Package/haig"])["DEPENDS"])


def test_package_identity(mk):
    fields = bp.define_fields(mk.defines["Package/haig"])
    assert mk.variables["PKG_NAME"] == "haig"
    assert fields["PKGARCH"] == "all"
    assert [c.strip() for c in mk.defines["Package/haig/conffiles"] if c.strip()] == ["/etc/config/haig"]
    subst = bp.make_subst(REPO, PYTHON, REPO, REPO)
    ns: dict = {}
    exec((REPO / "haig/__init__.py").read_text(), ns)
    assert bp.expand(mk.variables["PKG_VERSION"], subst, REPO) == ns["__version__"]


def test_depends_are_real_package_names(depends):
    assert depends, "DEPENDS is empty"
    unknown = set(depends) - KNOWN_PACKAGES
    assert not unknown, f"not OpenWrt package names: {unknown}"
    assert {"python3-light", "python3-pyroute2", "python3-flask", "python3-ubus",
            "python3-pysctp", "kmod-sctp"} <= set(depends)


def _imports() -> tuple[dict[str, list[str]], set[str]]:
    """Top-level modules haig imports (module -> files), and those only ever
    imported optionally somewhere (inside `try: ... except ImportError`)."""
    used: dict[str, list[str]] = {}
    optional: set[str] = set()
    for path in sorted((REPO / "haig").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        guarded: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                    for h in node.handlers):
                for stmt in node.body:
                    guarded.update(id(n) for n in ast.walk(stmt))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                used.setdefault(top, []).append(path.relative_to(REPO).as_posix())
                if id(node) in guarded:
                    optional.add(top)
    return used, optional


def test_every_import_is_provided_by_a_dependency(depends):
    used, optional = _imports()
    missing = []
    for mod, files in sorted(used.items()):
        if mod in ("haig", "__future__"):
            continue
        if mod in STDLIB_PACKAGES:
            if STDLIB_PACKAGES[mod] not in depends:
                missing.append(f"{mod} ({files[0]}) needs {STDLIB_PACKAGES[mod]}")
        elif mod in sys.stdlib_module_names:
            continue  # in python3-light
        elif mod in THIRD_PARTY:
            if not set(THIRD_PARTY[mod]) & set(depends):
                missing.append(f"{mod} ({files[0]}) needs {THIRD_PARTY[mod][0]}")
        elif mod not in optional:
            missing.append(f"{mod} ({files[0]}) has no OpenWrt package: import it optionally")
    assert not missing, "\n".join(missing)


def test_no_stdlib_extra_is_depended_on_without_use(depends):
    used, _ = _imports()
    providers = {STDLIB_PACKAGES[m] for m in used if m in STDLIB_PACKAGES}
    providers.add("python3-email")  # python3-urllib and http.* need it
    extras = {d for d in depends if d in STDLIB_PACKAGES.values()} - providers
    assert not extras, f"DEPENDS lists stdlib packages nothing imports: {extras}"


def test_every_shipped_file_is_installed(mk, tmp_path):
    """Runs Build/Prepare and the install recipe; each file under files/ and
    uci-defaults/ must land where OpenWrt expects it, unchanged."""
    root, build = tmp_path / "root", tmp_path / "build"
    subst = bp.make_subst(REPO, PYTHON, build, root)
    bp.run_recipe(mk.defines["Build/Prepare"], subst, REPO)
    root.mkdir()
    bp.run_recipe(mk.defines["Package/haig/install"], subst, REPO)
    expected = {p: root / p.relative_to(REPO / "files") for p in (REPO / "files").rglob("*") if p.is_file()}
    expected |= {p: root / "etc/uci-defaults" / p.name for p in (REPO / "uci-defaults").iterdir() if p.is_file()}
    assert expected
    for src, dst in expected.items():
        assert dst.is_file(), f"{src.relative_to(REPO)} is not installed (expected at /{dst.relative_to(root)})"
        assert dst.read_bytes() == src.read_bytes()
    assert (root / SITE / "haig/cli.py").is_file()


def test_entry_point_matches_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^haig = "haig\.cli:main"$', text, re.M)
    script = (REPO / "files/usr/bin/haig").read_text()
    assert script.startswith("#!/usr/bin/python3\n")
    assert "from haig.cli import main" in script


# ------------------------------------------------------------ python3-pysctp

def test_pysctp_package_follows_feed_conventions():
    pmk = bp.parse_makefile(REPO / "python3-pysctp/Makefile")
    v = pmk.variables
    assert v["PYPI_NAME"] == "pysctp"
    assert re.fullmatch(r"[0-9a-f]{64}", v["PKG_HASH"])
    # the router gets the version developers test against
    assert v["PKG_VERSION"] == metadata.version("pysctp")
    fields = bp.define_fields(pmk.defines["Package/python3-pysctp"])
    assert set(bp.depends_list(fields["DEPENDS"])) == {"libsctp", "python3-light"}
    text = (REPO / "python3-pysctp/Makefile").read_text()
    for line in ("$(eval $(call Py3Package,python3-pysctp))",
                 "$(eval $(call BuildPackage,python3-pysctp))"):
        assert line in text


def test_pysctp_patch_drops_host_paths():
    patch = (REPO / "python3-pysctp/patches/001-no-host-paths.patch").read_text()
    removed = [ln for ln in patch.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    added = [ln for ln in patch.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert any("/usr/include" in ln for ln in removed)
    assert any("library_dirs" in ln for ln in removed)
    assert not any("/usr/" in ln for ln in added), "cross builds must not see the build host's headers"



# ------------------------------------------------------------ python-pyroute2

PYROUTE2 = REPO / "python-pyroute2"


def test_pyroute2_package_supersedes_the_feeds():
    pmk = bp.parse_makefile(PYROUTE2 / "Makefile")
    v = pmk.variables
    # OpenWrt's feeds script compares source packages by directory name: only the
    # feed's own name (lang/python/python-pyroute2) makes this copy win over it.
    assert PYROUTE2.name == v["PKG_NAME"] == "python-pyroute2"
    assert v["PYPI_NAME"] == "pyroute2"
    assert re.fullmatch(r"[0-9a-f]{64}", v["PKG_HASH"])
    # the router gets the version developers test against, and one with AsyncIPRoute
    assert v["PKG_VERSION"] == metadata.version("pyroute2")
    assert tuple(int(x) for x in v["PKG_VERSION"].split(".")[:2]) >= (0, 9)
    fields = bp.define_fields(pmk.defines["Package/python3-pyroute2"])
    assert bp.depends_list(fields["DEPENDS"]) == ["python3"]  # as the feed's package
    text = (PYROUTE2 / "Makefile").read_text()
    for line in ("$(eval $(call Py3Package,python3-pyroute2))",
                 "$(eval $(call BuildPackage,python3-pyroute2))"):
        assert line in text


def test_pyroute2_patch_restates_the_license_for_older_setuptools():
    patch = (PYROUTE2 / "patches/001-license-for-older-setuptools.patch").read_text()
    assert patch.startswith("--- a/pyproject.toml\n+++ b/pyproject.toml\n")
    removed = [ln[1:] for ln in patch.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    added = [ln[1:] for ln in patch.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    # setuptools < 77 accepts only a table here, and no [project] license-files
    assert any(ln.startswith("license = \"") for ln in removed)
    assert any(ln.startswith("license-files") for ln in removed)
    assert added == ['license = {text = "GPL-2.0-or-later OR Apache-2.0"}']


def test_haig_and_developers_need_pyroute2_0_9():
    assert '"pyroute2>=0.9"' in (REPO / "pyproject.toml").read_text()
    pinned = re.search(r"^pyroute2==(\S+)", (REPO / "requirements-dev.txt").read_text(), re.M)
    assert pinned and pinned.group(1) == bp.parse_makefile(PYROUTE2 / "Makefile").variables["PKG_VERSION"]
