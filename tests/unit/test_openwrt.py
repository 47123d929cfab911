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
    "python3-codecs", "python3-decimal", "python3-multiprocessing",
    "python3-openssl", "python3-uuid", "python3-xml", "python3-sqlite3", "python3-unittest",
    "python3-pyroute2", "python3-flask", "python3-werkzeug", "python3-ubus", "python3-pysctp",
    "libsctp", "kmod-sctp", "kmod-crypto-sha1", "kmod-crypto-sha256", "luci-base", "haig",
}

# Standard-library modules that python3-light lacks, and the package that has
# them (lang/python/python3-find-stdlib-depends.sh, plus what the stdlib itself
# imports: http.* and urllib need email, which python3-urllib brings on every
# release: its own python3-email up to 24.10, merged into python3-urllib on master).
STDLIB_PACKAGES = {
    "asyncio": "python3-asyncio", "ctypes": "python3-ctypes", "logging": "python3-logging",
    "urllib": "python3-urllib", "email": "python3-urllib", "http": "python3-urllib",
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


@pytest.fixture(scope="module")
def api_depends(mk) -> list[str]:
    return bp.depends_list(bp.define_fields(mk.defines["Package/haig-api"])["DEPENDS"])


# Modules whose imports the haig-api package provides (Flask), not haig itself.
API_MODULES = {"haig/surfaces/api.py"}


def test_package_identity(mk):
    fields = bp.define_fields(mk.defines["Package/haig"])
    assert mk.variables["PKG_NAME"] == "haig"
    assert fields["PKGARCH"] == "all"
    assert [c.strip() for c in mk.defines["Package/haig/conffiles"] if c.strip()] == ["/etc/config/haig"]
    subst = bp.make_subst(REPO, PYTHON, REPO, REPO)
    ns: dict = {}
    exec((REPO / "haig/__init__.py").read_text(), ns)
    assert bp.expand(mk.variables["PKG_VERSION"], subst, REPO) == ns["__version__"]


def test_depends_are_real_package_names(depends, api_depends):
    assert depends, "DEPENDS is empty"
    unknown = set(depends + api_depends) - KNOWN_PACKAGES
    assert not unknown, f"not OpenWrt package names: {unknown}"
    assert {"python3-light", "python3-pyroute2", "python3-ubus", "python3-pysctp", "kmod-sctp"} <= set(depends)
    # no version constraint: the feed's python3-pyroute2 (0.7.x) is what every release has
    assert "+python3-pyroute2 " in bp.define_fields(bp.parse_makefile(REPO / "Makefile").defines["Package/haig"])["DEPENDS"] + " "
    assert api_depends == ["haig", "python3-flask"]


# apk-tools' version grammar (OpenWrt 25.12 installs apk): digits and dots, an optional
# letter, _alpha/_beta/_pre/_rc/_p... suffixes, then -r<number>.
APK_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*-r[0-9]+")


@pytest.mark.parametrize("makefile", ["Makefile", "luci-app-haig/Makefile", "python3-pysctp/Makefile"])
def test_versions_are_valid_for_apk_and_opkg(makefile):
    m = bp.parse_makefile(REPO / makefile)
    subst = bp.make_subst(m.path.parent, PYTHON, REPO, REPO)
    version = bp.package_version(m, subst, m.path.parent)
    assert APK_VERSION.fullmatch(version), f"{makefile}: {version} is not an apk version"
    assert m.variables["PKG_RELEASE"].isdigit()


@pytest.mark.parametrize("makefile", ["Makefile", "luci-app-haig/Makefile", "python3-pysctp/Makefile"])
def test_license_and_maintainer_address(makefile):
    v = bp.parse_makefile(REPO / makefile).variables
    assert v["PKG_LICENSE"]
    assert re.fullmatch(r"[^<>]+ <[^@<>\s]+@[^@<>\s]+>", v["PKG_MAINTAINER"])
    if makefile == "Makefile":
        assert v["PKG_LICENSE"] == "GPL-2.0-only" and v["PKG_LICENSE_FILES"] == "LICENSE"
        assert "GNU GENERAL PUBLIC LICENSE" in (REPO / "LICENSE").read_text()[:200]
        assert "Version 2, June 1991" in (REPO / "LICENSE").read_text()[:300]


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


def test_every_import_is_provided_by_a_dependency(depends, api_depends):
    used, optional = _imports()
    missing = []
    for mod, files in sorted(used.items()):
        if mod in ("haig", "__future__"):
            continue
        if set(files) <= API_MODULES:
            provided = set(THIRD_PARTY.get(mod, ())) & set(api_depends)
            if not provided and mod not in sys.stdlib_module_names and mod not in optional:
                missing.append(f"{mod} ({files[0]}) needs a haig-api dependency")
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
    extras = {d for d in depends if d in STDLIB_PACKAGES.values()} - providers
    assert not extras, f"DEPENDS lists stdlib packages nothing imports: {extras}"


def test_every_shipped_file_is_installed(mk, tmp_path):
    """Runs Build/Prepare and the install recipe; each file under files/ must land
    where OpenWrt expects it, unchanged (Python modules become .pyc)."""
    root, build = tmp_path / "root", tmp_path / "build"
    subst = bp.make_subst(REPO, PYTHON, build, root)
    bp.run_recipe(mk.defines["Build/Prepare"], subst, REPO)
    root.mkdir()
    bp.run_recipe(mk.defines["Package/haig/install"], subst, REPO, sys.executable)
    expected = {p: root / p.relative_to(REPO / "files") for p in (REPO / "files").rglob("*") if p.is_file()}
    assert not (REPO / "uci-defaults").exists()  # convention: files/etc/uci-defaults/
    assert expected
    for src, dst in expected.items():
        assert dst.is_file(), f"{src.relative_to(REPO)} is not installed (expected at /{dst.relative_to(root)})"
        assert dst.read_bytes() == src.read_bytes()
    assert (root / SITE / "haig/cli.pyc").is_file() and not (root / SITE / "haig/cli.py").exists()


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



# ------------------------------------------------------------ pyroute2

def test_no_pyroute2_override_the_feeds_version_is_used():
    # haig works with the packages feed's pyroute2 0.7.x (sync netlink fallback), so the
    # repository carries no python-pyroute2 that would shadow the feed's package.
    assert not (REPO / "python-pyroute2").exists()
    assert '"pyroute2>=0.7' in (REPO / "pyproject.toml").read_text()


def test_only_the_api_module_imports_flask():
    used, _ = _imports()
    assert set(used.get("flask", [])) | set(used.get("werkzeug", [])) <= API_MODULES
