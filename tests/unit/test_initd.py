"""files/etc/init.d/haig under a POSIX shell, with stand-ins for OpenWrt's
/etc/rc.common, /lib/functions.sh (UCI config_* API) and
/lib/functions/procd.sh that record what the script asks procd for.

Runs under busybox ash (OpenWrt's shell) when present, and dash/bash.
What procd then does with the request is verified only on a router.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "files/etc/init.d/haig"
SHIPPED_CONFIG = REPO / "files/etc/config/haig"

# UCI's file syntax is shell syntax once `config`, `option` and `list` are
# functions; that is how these stand-ins load a config (real OpenWrt parses
# `uci export` output into the same CONFIG_<section>_<option> variables).
FUNCTIONS_SH = r"""
CONFIG_SECTIONS=
CONFIG_NUM_SECTIONS=0
config() {
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	CONFIG_SECTION="${2:-cfg$CONFIG_NUM_SECTIONS}"
	CONFIG_SECTIONS="$CONFIG_SECTIONS $CONFIG_SECTION"
	eval "CONFIG_${CONFIG_SECTION}_TYPE=\$1"
}
option() { eval "CONFIG_${CONFIG_SECTION}_$1=\$2"; }
list() {
	local n
	eval "n=\${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0}"
	n=$((n + 1))
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$n=\$2; CONFIG_${CONFIG_SECTION}_$1_LENGTH=$n"
}
config_load() {
	local s
	for s in $CONFIG_SECTIONS; do unset "CONFIG_${s}_TYPE"; done
	CONFIG_SECTIONS=
	CONFIG_NUM_SECTIONS=0
	record config_load "$1"
	. "$UCI_CONFIG_DIR/$1"
}
config_get() {
	case "$#" in
	2) eval "echo \"\${CONFIG_$1_$2}\"" ;;
	*) eval "$1=\${CONFIG_$2_$3:-\$4}" ;;
	esac
}
config_get_bool() {
	local _v
	eval "_v=\${CONFIG_$2_$3:-\$4}"
	case "$_v" in
	1|on|true|yes|enabled) _v=1 ;;
	0|off|false|no|disabled) _v=0 ;;
	*) _v="$4" ;;
	esac
	eval "$1=\$_v"
}
config_foreach() {
	local fn="$1" type="$2" s t
	shift 2
	for s in $CONFIG_SECTIONS; do
		eval "t=\${CONFIG_${s}_TYPE}"
		[ -z "$type" ] || [ "$t" = "$type" ] || continue
		"$fn" "$s" "$@"
	done
}
"""

# Each call becomes one line: name, then its arguments, separated by \037.
PROCD_SH = r"""
record() {
	local name="$1" a
	shift
	{
		printf '%s' "$name"
		for a in "$@"; do printf '\037%s' "$a"; done
		printf '\n'
	} >> "$PROCD_LOG"
}
procd_open_instance() { record procd_open_instance "$@"; }
procd_set_param() { record procd_set_param "$@"; }
procd_close_instance() { record procd_close_instance "$@"; }
procd_add_reload_trigger() { record procd_add_reload_trigger "$@"; }
procd_add_interface_trigger() { record procd_add_interface_trigger "$@"; }
procd_send_signal() { record procd_send_signal "$@"; }
procd_running() { record procd_running "$@"; [ "$PROCD_RUNNING" = 1 ]; }
"""

# What rc.common does for a procd script, reduced to the calls procd sees.
RC_COMMON = r"""
. "$STANDIN/lib/functions.sh"
. "$STANDIN/lib/functions/procd.sh"
initscript="$1"
action="$2"
. "$initscript"
start() {
	record procd_open_service haig
	start_service
	service_triggers
	record procd_close_service
}
stop() { record procd_kill haig; }
case "$action" in
start) start ;;
reload) reload_service ;;
*) echo "unknown action $action" >&2; exit 2 ;;
esac
"""

TEST_CONFIG = """
config haig 'main'
	option enabled '1'
	option role 'gateway'
	option gateway_id 'home-42'
	option key 'a-long-shared-secret'

config uplink 'dsl'
	option interface 'wan'
	option metric '1'
	option endpoint_address '192.0.2.10'

config uplink 'lte'
	option interface 'wwan'
	option metric '2'
	option endpoint_address '198.51.100.10'
	option metered '1'

config service 'vpn'
	option listen '127.0.0.1:1194'
"""


def _shells() -> list[list[str]]:
    found = []
    if shutil.which("busybox"):
        found.append(["busybox", "sh"])
    for name in ("dash", "bash"):
        if shutil.which(name):
            found.append([name])
    return found


SHELLS = _shells()


@pytest.fixture(params=SHELLS, ids=lambda s: s[0])
def run_init(request, tmp_path):
    """run_init(action, config_text, running=False) -> list of calls."""
    shell = request.param
    standin = tmp_path / "standin"
    (standin / "lib/functions").mkdir(parents=True)
    (standin / "lib/functions.sh").write_text(FUNCTIONS_SH)
    (standin / "lib/functions/procd.sh").write_text(PROCD_SH)
    (standin / "rc.common").write_text(RC_COMMON)
    uci_dir = tmp_path / "config"
    uci_dir.mkdir()

    def run(action: str, config_text: str, running: bool = False) -> list[list[str]]:
        (uci_dir / "haig").write_text(config_text)
        log = tmp_path / f"procd-{action}.log"
        log.unlink(missing_ok=True)
        env = {
            "PATH": "/usr/bin:/bin",
            "STANDIN": str(standin),
            "UCI_CONFIG_DIR": str(uci_dir),
            "PROCD_LOG": str(log),
            "PROCD_RUNNING": "1" if running else "0",
        }
        res = subprocess.run([*shell, str(standin / "rc.common"), str(INIT), action],
                             env=env, capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        assert res.stderr == "", res.stderr
        text = log.read_text() if log.exists() else ""
        return [line.split("\x1f") for line in text.splitlines()]

    return run


def params(calls):
    return {c[1]: c[2:] for c in calls if c[0] == "procd_set_param"}


def test_a_shell_is_available():
    assert SHELLS, "no POSIX shell (busybox, dash, bash) to run the init script"


def test_script_header_is_a_procd_service():
    text = INIT.read_text()
    assert text.startswith("#!/bin/sh /etc/rc.common\n")
    assert "\nUSE_PROCD=1\n" in text
    assert "\nSTART=95\n" in text
    assert INIT.stat().st_mode & 0o111, "init script must be executable"


def test_start_runs_daemon_with_respawn_and_logging(run_init):
    calls = run_init("start", TEST_CONFIG)
    names = [c[0] for c in calls]
    assert names.count("procd_open_instance") == 1
    assert names.index("procd_open_instance") < names.index("procd_close_instance")
    p = params(calls)
    assert p["command"] == ["/usr/bin/haig", "run", "-c", "/etc/config/haig"]
    threshold, timeout, retry = (int(x) for x in p["respawn"])
    assert threshold > 0 and timeout > 0
    assert retry == 0, "a medical link must never stop respawning (retry 0 = forever)"
    assert p["stdout"] == ["1"] and p["stderr"] == ["1"]
    assert p["file"] == ["/etc/config/haig"]
    # procd reloads an unchanged instance with a signal, never a restart
    assert p["reload_signal"] == ["HUP"]


def test_triggers_reload_on_config_change_and_each_uplink_interface(run_init):
    calls = run_init("start", TEST_CONFIG)
    assert ["procd_add_reload_trigger", "haig"] in calls
    iface = [c[1:] for c in calls if c[0] == "procd_add_interface_trigger"]
    assert iface == [
        ["interface.*", "wan", "/etc/init.d/haig", "reload"],
        ["interface.*", "wwan", "/etc/init.d/haig", "reload"],
    ]


def test_uplink_without_interface_adds_no_trigger(run_init):
    cfg = TEST_CONFIG + "\nconfig uplink 'spare'\n\toption metric '3'\n"
    calls = run_init("start", cfg)
    ifaces = [c[2] for c in calls if c[0] == "procd_add_interface_trigger"]
    assert ifaces == ["wan", "wwan"]


def test_disabled_opens_no_instance_but_keeps_triggers(run_init):
    calls = run_init("start", TEST_CONFIG.replace("option enabled '1'", "option enabled '0'"))
    assert not any(c[0] == "procd_open_instance" for c in calls)
    assert ["procd_add_reload_trigger", "haig"] in calls, "enabling it again must be noticed"


def test_enabled_defaults_to_on(run_init):
    calls = run_init("start", TEST_CONFIG.replace("\toption enabled '1'\n", ""))
    assert any(c[0] == "procd_open_instance" for c in calls)


def test_reload_of_running_daemon_sends_sighup_without_restart(run_init):
    calls = run_init("reload", TEST_CONFIG, running=True)
    assert ["procd_send_signal", "haig", "*", "HUP"] in calls
    assert not any(c[0] in ("procd_open_service", "procd_open_instance") for c in calls)


def test_reload_when_not_running_starts_it(run_init):
    calls = run_init("reload", TEST_CONFIG, running=False)
    assert not any(c[0] == "procd_send_signal" for c in calls)
    assert any(c[0] == "procd_open_instance" for c in calls)


def test_reload_after_disabling_removes_the_instance(run_init):
    calls = run_init("reload", TEST_CONFIG.replace("option enabled '1'", "option enabled '0'"), running=True)
    assert not any(c[0] == "procd_send_signal" for c in calls)
    assert ["procd_open_service", "haig"] in calls
    assert not any(c[0] == "procd_open_instance" for c in calls)


@pytest.mark.skipif(not SHIPPED_CONFIG.exists(), reason="files/etc/config/haig not written yet")
def test_shipped_config_gives_a_trigger_per_uplink_interface(run_init):
    text = SHIPPED_CONFIG.read_text()
    calls = run_init("start", text)
    expected = _uplink_interfaces(text)
    assert expected, "the shipped config has uplinks with interfaces"
    assert [c[2] for c in calls if c[0] == "procd_add_interface_trigger"] == expected


def _uplink_interfaces(text: str) -> list[str]:
    """Independent reading of the UCI file: interface of each uplink section."""
    out, in_uplink = [], False
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "config":
            in_uplink = words[1].strip("'\"") == "uplink"
        elif in_uplink and words[0] == "option" and words[1] == "interface":
            out.append(words[2].strip("'\""))
    return out


def _wrapper_under_hup(tmp_path, argv: list[str]) -> subprocess.CompletedProcess:
    """files/usr/bin/haig with a stand-in haig.cli whose main() gets a SIGHUP at once."""
    pkg = tmp_path / "haig"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text(
        "import os, signal, sys\n"
        "def main():\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
        "    import hashlib, hmac\n"
        "    hmac.new(b'k', b'm', 'sha256').digest()  # HMAC still works\n"
        "    print('survived', sys.modules.get('ssl', 'unset'))\n"
        "    return 0\n")
    wrapper = Path(__file__).resolve().parents[2] / "files/usr/bin/haig"
    # SIGHUP at its default in the child: under nohup (SIG_IGN inherited) nothing would die
    return subprocess.run([sys.executable, "-S", str(wrapper), *argv], env={"PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))


def test_an_early_sighup_does_not_kill_the_daemon(tmp_path):
    res = _wrapper_under_hup(tmp_path, ["run", "-c", "/etc/config/haig"])
    # survived, and ssl is blocked for the daemon (memory; it never speaks TLS)
    assert (res.returncode, res.stdout.strip()) == (0, "survived None"), res.stderr


def test_interactive_commands_still_die_on_hangup(tmp_path):
    res = _wrapper_under_hup(tmp_path, ["events", "-f"])
    assert res.returncode == -signal.SIGHUP
