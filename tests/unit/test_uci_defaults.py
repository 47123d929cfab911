"""files/etc/uci-defaults/90-haig, run by a real shell against a stand-in `uci`.

The stand-in (FAKE_UCI) keeps uci's get/set/commit semantics (staged changes visible
to get, written to the file on commit) on a config directory in FAKE_UCI_DIR and logs
every call, so a test can tell that a second run set and committed nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "files/etc/uci-defaults/90-haig"
SHIPPED = REPO / "files" / "etc" / "config" / "haig"

SHELLS = [s for s in (["sh"], ["busybox", "sh"]) if shutil.which(s[0])]


# ---------------------------------------------------------------- the stand-in uci

# Written to <tmp>/bin/uci and run with `python -S` (no pytest import: it runs ~6 times
# per script run). uci semantics kept: `get` sees staged `set`s; `commit` writes the file.
FAKE_UCI = r"""
import importlib.util, json, os, sys
# load uci.py alone: importing the haig.config package would cost startup time per call
spec = importlib.util.spec_from_file_location("uci", os.environ["HAIG_REPO"] + "/haig/config/uci.py")
uci = importlib.util.module_from_spec(spec)
sys.modules["uci"] = uci
spec.loader.exec_module(uci)
UciOption, dump_uci, parse_uci = uci.UciOption, uci.dump_uci, uci.parse_uci

def main(argv):
    confdir = os.environ["FAKE_UCI_DIR"]
    with open(os.environ["FAKE_UCI_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    quiet = "-q" in argv
    args = [a for a in argv if a != "-q"]
    pending_file = os.path.join(confdir, ".pending.json")
    pending = json.load(open(pending_file)) if os.path.exists(pending_file) else []

    def load(pkg):
        path = os.path.join(confdir, pkg)
        if not os.path.exists(path):
            return None
        secs = parse_uci(open(path).read())
        for p, s, o, v in pending:
            for sec in secs:
                if p == pkg and sec.name == s:
                    sec.options[o] = UciOption(o, v, 0)
        return secs

    def fail(msg):
        if not quiet:
            print("uci: " + msg, file=sys.stderr)
        return 1

    cmd, rest = (args[0], args[1:]) if args else ("", [])
    if cmd == "get" and len(rest) == 1:
        parts = rest[0].split(".")
        sec = next((s for s in load(parts[0]) or [] if len(parts) > 1 and s.name == parts[1]), None)
        if sec is None or len(parts) > 3:
            return fail("Entry not found")
        if len(parts) == 2:
            print(sec.type)
            return 0
        value = sec.get(parts[2])
        if value is None:
            return fail("Entry not found")
        print(" ".join(value) if isinstance(value, list) else value)
        return 0
    if cmd == "set" and len(rest) == 1 and "=" in rest[0]:
        path, value = rest[0].split("=", 1)
        p, s, o = path.split(".")
        if not any(sec.name == s for sec in load(p) or []):
            return fail("Invalid argument")
        pending.append([p, s, o, value])
        json.dump(pending, open(pending_file, "w"))
        return 0
    if cmd == "commit" and len(rest) == 1:
        secs = load(rest[0])
        if secs is not None and any(x[0] == rest[0] for x in pending):
            with open(os.path.join(confdir, rest[0]), "w") as f:
                f.write(dump_uci(secs))
        json.dump([x for x in pending if x[0] != rest[0]], open(pending_file, "w"))
        return 0
    return fail("unsupported by the stand-in: %r" % (argv,))

sys.exit(main(sys.argv[1:]))
"""


# ---------------------------------------------------------------- tests


@pytest.fixture
def router(tmp_path):
    """A temp 'router': config dir, call log, and a bin dir whose `uci` is the stand-in."""
    confdir = tmp_path / "config"
    confdir.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    uci = bindir / "uci"
    uci.write_text(f"#!{sys.executable} -S\n{FAKE_UCI}")
    uci.chmod(0o755)
    log = tmp_path / "uci.log"
    log.touch()

    class Router:
        dir = confdir
        cfg = confdir / "haig"

        @staticmethod
        def run(shell=("sh",)):
            env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}",
                       FAKE_UCI_DIR=str(confdir), FAKE_UCI_LOG=str(log), HAIG_REPO=str(REPO))
            return subprocess.run([*shell, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)

        @staticmethod
        def calls():
            return [json.loads(line) for line in log.read_text().splitlines()]

        @staticmethod
        def reset_log():
            log.write_text("")

        @staticmethod
        def get(option):
            from haig.config.uci import parse_uci

            (main,) = [s for s in parse_uci(confdir.joinpath("haig").read_text()) if s.name == "main"]
            return main.get(option)

    return Router


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: " ".join(s))
def test_first_boot_fills_placeholders_and_second_run_changes_nothing(router, shell):
    shutil.copy(SHIPPED, router.cfg)
    r = router.run(shell)
    assert r.returncode == 0, r.stderr
    gid, key = router.get("gateway_id"), router.get("key")
    assert re.fullmatch(r"gw_[a-z0-9]{12}", gid), gid
    assert re.fullmatch(r"[A-Za-z0-9]{32}", key), key
    # the rest of the shipped file is untouched
    assert router.get("enabled") == "0" and router.get("rto_min") == "40"

    after_first = router.cfg.read_bytes()
    router.reset_log()
    r = router.run(shell)
    assert r.returncode == 0, r.stderr
    assert router.cfg.read_bytes() == after_first
    assert not [c for c in router.calls() if {"set", "commit"} & set(c)], router.calls()


def test_two_routers_get_different_secrets(router, tmp_path):
    shutil.copy(SHIPPED, router.cfg)
    router.run()
    first = (router.get("gateway_id"), router.get("key"))
    shutil.copy(SHIPPED, router.cfg)
    router.run()
    second = (router.get("gateway_id"), router.get("key"))
    assert first[0] != second[0] and first[1] != second[1]


def test_user_values_survive(router):
    text = SHIPPED.read_text().replace("option gateway_id 'CHANGE_ME'", "option gateway_id 'grandma'")
    text = text.replace("option key 'CHANGE_ME'", "option key 'users-own-secret-123'")
    router.cfg.write_text(text)
    r = router.run()
    assert r.returncode == 0, r.stderr
    assert router.cfg.read_text() == text  # not even rewritten (comments kept)
    assert not [c for c in router.calls() if {"set", "commit"} & set(c)]


def test_only_the_missing_value_is_filled(router):
    text = SHIPPED.read_text().replace("option gateway_id 'CHANGE_ME'", "option gateway_id 'grandma'")
    text = text.replace("\toption key 'CHANGE_ME'\n", "")  # key absent altogether
    router.cfg.write_text(text)
    assert router.run().returncode == 0
    assert router.get("gateway_id") == "grandma"
    assert re.fullmatch(r"[A-Za-z0-9]{32}", router.get("key"))


def test_endpoint_role_and_missing_config_are_left_alone(router):
    text = SHIPPED.read_text().replace("option role 'gateway'", "option role 'endpoint'")
    router.cfg.write_text(text)
    assert router.run().returncode == 0
    assert router.cfg.read_text() == text
    router.cfg.unlink()
    r = router.run()
    assert r.returncode == 0 and not router.cfg.exists()


def test_filled_in_shipped_file_is_a_valid_config(router):
    from haig.config.loader import load_config

    shutil.copy(SHIPPED, router.cfg)
    router.run()
    text = router.cfg.read_text()
    text = text.replace("'CHANGE_ME'", "'192.0.2.1'", 1).replace("'CHANGE_ME'", "'198.51.100.1'", 1)
    router.cfg.write_text(text)
    cfg = load_config(str(router.cfg))
    assert cfg.main.gateway_id == router.get("gateway_id")
