"""`pip install .` gives a working `haig` with its package data; the systemd unit
passes `systemd-analyze verify` against that installed entry point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "haig.service"
SKIP = shutil.ignore_patterns(".git", "artifacts", "build", "dist", "*.egg-info", "__pycache__",
                              ".pytest_cache", ".ruff_cache", ".hypothesis", "luci-app-haig",
                              "python-pyroute2", "python3-pysctp", "tests")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project installed with pip into a target dir (no deps, no network): built
    from a copy so the worktree gets no build/ or egg-info."""
    src = tmp_path_factory.mktemp("src") / "haig"
    shutil.copytree(ROOT, src, ignore=SKIP)
    target = tmp_path_factory.mktemp("target")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(target), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return target


def test_package_data_is_installed(installed):
    pkg = installed / "haig" / "surfaces"
    for name in ("static/panel.html", "status.schema.json", "event.schema.json", "metrics.py", "logsafe.py"):
        assert (pkg / name).is_file(), name


def test_entry_point_and_extras(installed):
    (dist,) = installed.glob("haig-*.dist-info")
    eps = (dist / "entry_points.txt").read_text()
    assert "[console_scripts]" in eps and "haig = haig.cli:main" in eps
    meta = (dist / "METADATA").read_text()
    assert "Provides-Extra: endpoint" in meta
    assert "prometheus_client" in meta.replace("prometheus-client", "prometheus_client")
    script = installed / "bin" / "haig"
    assert os.access(script, os.X_OK)
    env = dict(os.environ, PYTHONPATH=str(installed))
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, env=env,
                       cwd=installed, timeout=60)
    assert r.returncode == 0 and "run" in r.stdout
    # the installed copy serves its own panel page (package data found via importlib.resources)
    code = ("from haig.surfaces.api import _panel_html; import haig, sys; "
            "sys.exit(0 if haig.__file__.startswith(sys.argv[1]) and b'<title>haig' in _panel_html() else 1)")
    r = subprocess.run([sys.executable, "-c", code, str(installed)], env=env, cwd=installed, timeout=60)
    assert r.returncode == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (apt install systemd)")
def test_unit_file_verifies(installed, tmp_path):
    unit = tmp_path / "haig.service"
    # verify checks that ExecStart exists: point it at the entry point pip just installed
    unit.write_text(UNIT.read_text().replace("/opt/haig/bin/haig", str(installed / "bin" / "haig")))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if line.strip() and "haig.service" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_unit_has_what_the_service_needs():
    text = UNIT.read_text()
    for line in ("Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                 "ExecStart=/opt/haig/bin/haig run -c /etc/haig/haig.conf", "LimitNOFILE=65536",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet="):
        assert line in text.splitlines(), line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_exposure_is_low():
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                       capture_output=True, text=True, timeout=60)
    last = [ln for ln in r.stdout.splitlines() if "Overall exposure level" in ln]
    assert last, r.stdout[-2000:] + r.stderr[-2000:]
    score = float(last[0].split("haig.service:")[1].split()[0])
    assert score <= 2.0, last[0]


def test_template_unit_is_the_service_with_the_instance_name():
    """haig@<name>.service (one endpoint per shard of homes) must not drift from
    haig.service: the same directives but for the config, description and log name."""
    template = UNIT.with_name("haig@.service")

    def directives(path: Path) -> list[str]:
        return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]

    per_instance = {"ExecStart=/opt/haig/bin/haig run -c /etc/haig/%i.conf", "SyslogIdentifier=haig-%i",
                    "Description=haig endpoint %i: UDP relay for home gateways over multihomed SCTP"}
    t = directives(template)
    assert per_instance <= set(t)
    base = [ln.replace("haig endpoint:", "haig endpoint %i:").replace("/etc/haig/haig.conf", "/etc/haig/%i.conf")
            .replace("SyslogIdentifier=haig", "SyslogIdentifier=haig-%i") for ln in directives(UNIT)]
    assert t == base


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (apt install systemd)")
def test_template_unit_verifies_as_an_instance(installed, tmp_path):
    unit = tmp_path / "haig@shard1.service"
    unit.write_text(UNIT.with_name("haig@.service").read_text().replace("/opt/haig/bin/haig",
                                                                         str(installed / "bin" / "haig")))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if line.strip() and "haig@" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
