"""Command line: `haig run|status|events|check-config`.

Each subcommand lives in the module that owns it; this file only parses and dispatches,
importing lazily so `haig --help` stays fast on a router.
"""

from __future__ import annotations

import signal

# First thing, before any heavy import: a SIGHUP (an interface trigger at boot, a
# reload) arriving while haig starts must not kill it (SIGHUP's default action). It is
# remembered and handed to the daemon, which reloads once its own handler is in place.
_early_hup: list[int] = []
if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
    signal.signal(signal.SIGHUP, lambda signum, frame: _early_hup.append(signum))


def take_early_hup() -> bool:
    """Whether a SIGHUP arrived before the daemon installed its handler (and forget it)."""
    got = bool(_early_hup)
    _early_hup.clear()
    return got


import argparse  # noqa: E402  (after the SIGHUP guard on purpose)
import sys  # noqa: E402

from haig import __version__  # noqa: E402

DEFAULT_CONFIG = "/etc/config/haig"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="haig",
        description="High-availability Internet Gateway: UDP relay over multihomed SCTP.",
    )
    p.add_argument("--version", action="version", version=f"haig {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    r = sub.add_parser("run", help="run the relay daemon")
    r.add_argument("--role", choices=("gateway", "endpoint"), help="override the role in the config")
    r.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="UCI-format config file (default %(default)s)")

    c = sub.add_parser("check-config", help="validate a config file and print what it means")
    c.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    c.add_argument("--role", choices=("gateway", "endpoint"))

    s = sub.add_parser("status", help="show uplinks, primary, flows (from the running daemon)")
    s.add_argument("--json", action="store_true", help="print the status snapshot as JSON")
    s.add_argument("--api", default=None, help="API base URL (default from config api_listen)")
    s.add_argument("-c", "--config", default=DEFAULT_CONFIG)

    e = sub.add_parser("events", help="show the failover event history")
    e.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    e.add_argument("--json", action="store_true", help="one JSON object per line")
    e.add_argument("--api", default=None)
    e.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    if args.cmd == "run":
        from haig.daemon import run_from_args

        return run_from_args(args)
    if args.cmd == "check-config":
        from haig.config.loader import check_config_cli

        return check_config_cli(args)
    if args.cmd in ("status", "events"):
        from haig.surfaces import cli as surface_cli

        return surface_cli.main(args)
    parser.error(f"unknown command {args.cmd}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
