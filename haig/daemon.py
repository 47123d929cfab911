"""`haig run`: load the config, run the relay role, serve the status surfaces, reload on
SIGHUP (a broken config is refused and the running one kept), stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
import traceback
from typing import Any

from haig import __version__
from haig.config import ConfigError, load_config, try_reload
from haig.config.model import Config
from haig.core.backoff import Backoff
from haig.core.events import ASSOC, CONFIG, Event
from haig.core.status import StatusModel
from haig.relay.common import Clock, publish

log = logging.getLogger("haig")

WATCHDOG_BEAT_S = 1.0
WATCHDOG_STALL_S = 30.0  # s without a loop tick before the stall is logged (start-up imports under emulation take ~10 s)
RELAY_STABLE_S = 60.0  # a relay that ran this long failed afresh: restart it soon again


class Daemon:
    """Owns the relay role and implements the Control protocol the surfaces call
    (from their own threads: every call hops onto the event loop)."""

    def __init__(self, path: str, cfg: Config, role_override: str | None = None) -> None:
        self.path, self.cfg, self.role_override = path, cfg, role_override
        self.clock = Clock()
        self.status = StatusModel(started_at=time.time())
        self.relay: Any = None
        self._relay_task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._api: Any = None
        self._ubus_stop: Any = None
        self._reload_lock = asyncio.Lock()  # one reload at a time (SIGHUP, API, ubus)

    # -- life cycle ---------------------------------------------------------------------

    async def main(self) -> int:
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stop.set)
        self._loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        self._start_surfaces()
        self._start_watchdog()
        self._start_relay()
        self._publish("started", f"haig {__version__} started as {self.cfg.main.role}")
        from haig.cli import take_early_hup

        if take_early_hup():  # a SIGHUP during start-up (before the handler above)
            log.info("reload requested during start-up: reloading now")
            self._on_hup()
        await self._stop.wait()
        log.info("stopping")
        await self._stop_relay()
        self.status.close()
        if self._api is not None:
            self._api.stop()
        if self._ubus_stop is not None:
            self._ubus_stop.set()
        return 0

    def _start_watchdog(self) -> None:
        """A stalled event loop (a blocking call, a runaway callback) is otherwise silent:
        the API threads keep answering from a status nobody updates. A thread notices
        and logs where the loop thread is stuck."""
        loop_thread = threading.get_ident()
        self._tick = time.monotonic()

        async def beat() -> None:
            while True:
                self._tick = time.monotonic()
                await asyncio.sleep(WATCHDOG_BEAT_S)

        self._beat = asyncio.create_task(beat())

        def watch() -> None:
            warned = False
            while not self._stop.is_set():
                time.sleep(WATCHDOG_BEAT_S)
                stalled = time.monotonic() - self._tick
                if stalled > WATCHDOG_STALL_S and not warned:
                    frame = sys._current_frames().get(loop_thread)
                    where = "".join(traceback.format_stack(frame)[-6:]) if frame else "?"
                    log.error("event loop stalled for %.0f s, at:\n%s", stalled, where)
                    warned = True
                elif stalled <= WATCHDOG_STALL_S:
                    warned = False

        threading.Thread(target=watch, name="haig-watchdog", daemon=True).start()

    def _make_relay(self, cfg: Config) -> Any:
        if cfg.main.role == "gateway":
            from haig.relay.gateway import Gateway

            return Gateway(cfg, self.status, clock=self.clock)
        from haig.relay.endpoint import Endpoint

        return Endpoint(cfg, self.status, clock=self.clock)

    def _start_relay(self, relay: Any = None) -> None:
        m = self.cfg.main
        self.status.set_identity(m.role, m.gateway_id if m.role == "gateway" else None, __version__)
        self.relay = relay if relay is not None else self._make_relay(self.cfg)
        self._relay_task = asyncio.create_task(self._run_relay(self.relay))

    def _on_hup(self) -> None:
        async def reload() -> None:
            with contextlib.suppress(ValueError):  # a refusal is reported by _reload itself
                await self._reload()

        asyncio.ensure_future(reload())

    async def _run_relay(self, relay: Any) -> None:
        """Run the relay; if it fails, report it and start a fresh one after a back-off.
        The daemon (API, ubus, status history) never goes down with a relay."""
        backoff = Backoff()
        while True:
            started = self.clock.mono()
            try:
                await relay.run()
                why = "relay ended"
            except asyncio.CancelledError:
                raise
            except OSError as e:  # e.g. a bind: an operating condition, not a bug (no traceback)
                log.error("relay failed: %s", e)
                why = f"relay failed: {e}"
            except Exception as e:
                log.exception("relay failed")
                why = f"relay failed: {type(e).__name__}: {e}"
            with contextlib.suppress(Exception):
                await relay.stop()
            if self.clock.mono() - started > RELAY_STABLE_S:
                backoff.reset()
            delay = backoff.next_delay(links_up=True)
            if self.cfg.main.role == "gateway":
                self.status.set_association("endpoint", state="restarting", reason=why, paths=[])
            publish(self.status, self.clock, Event(self.clock.mono(), ASSOC, "haig", None, "restarting",
                                                   f"{why}; restarting it in {delay:.1f} s"))
            await asyncio.sleep(delay)
            relay = self.relay = self._make_relay(self.cfg)

    async def _stop_relay(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(BaseException):
                await self._relay_task
        if self.relay is not None:
            await self.relay.stop()

    def _start_surfaces(self) -> None:
        m = self.cfg.main
        if m.api_listen:
            from haig.config.validate import parse_hostport

            try:  # on a router Flask comes with the optional haig-api package
                from haig.surfaces.api import create_app, serve
            except ImportError as e:
                log.warning("api_listen is set but the HTTP API needs Flask (install haig-api): %s", e)
            else:
                host, port = parse_hostport(m.api_listen)
                app = create_app(self.status, token=m.api_token or None, control=self)
                try:
                    self._api = serve(app, host, port)
                    log.info("status API and panel on http://%s:%d/ (%s)", host, self._api.port, self._api.kind)
                except OSError as e:
                    log.warning("status API not started on %s: %s", m.api_listen, e)
        from haig.surfaces.ubus_adapter import start_ubus

        _, self._ubus_stop = start_ubus(self.status, self)

    # -- reload -------------------------------------------------------------------------

    async def _reload(self) -> dict[str, Any]:
        """All or nothing, one at a time: a broken config, or a new relay that cannot
        bind, leaves the running relay as it is (config.ok false, a `rejected` event)."""
        async with self._reload_lock:
            new, err = try_reload(self.path, self.cfg, self.role_override)
            if err is not None:
                self._reject(f"reload refused, still running the previous config: {err}")
            if new == self.cfg:
                self.status.set_config_state(True, "reloaded: no change")
                return {"ok": True, "changed": False}
            if new.main.api_listen != self.cfg.main.api_listen or new.main.api_token != self.cfg.main.api_token:
                log.warning("api_listen/api_token changes take effect on restart")
            relay = self.relay
            if (new.main.role == self.cfg.main.role and hasattr(relay, "same_socket")
                    and relay.same_socket(new)):
                # Endpoint: peers, keys, targets, knobs on the same socket: in place, only
                # the changed homes re-associate.
                ended = await relay.reconfigure(new)
                self.cfg = new
                how = "applied in place" + (f"; re-associating {', '.join(ended)}" if ended else "")
            else:
                # The association's addresses and per-path settings are fixed when it is
                # made: a fresh relay, bound before the old one is stopped.
                fresh = self._make_relay(new)
                try:
                    await fresh.prepare(relay if new.main.role == self.cfg.main.role else None)
                except Exception as e:
                    self._reject(f"reload refused, still running the previous config: cannot bind: {e}")
                fresh.adopt()
                await self._stop_relay()
                self.cfg = new
                self._start_relay(fresh)
                how = "new relay started"
            self.status.set_config_state(True, f"reloaded: {how}")
            self._publish("reloaded", f"configuration reloaded ({how})")
            return {"ok": True, "changed": True}

    def _reject(self, msg: str) -> None:
        log.error("%s", msg)
        self.status.set_config_state(False, msg)
        self._publish("rejected", msg)
        raise ValueError(msg)

    def _publish(self, new: str, reason: str) -> None:
        publish(self.status, self.clock, Event(self.clock.mono(), CONFIG, "haig", None, new, reason))

    # -- Control (called from the API / ubus threads) -----------------------------------

    def _call(self, coro) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def reload(self) -> dict[str, Any]:
        return self._call(self._reload())

    def force_primary(self, uplink: str, duration_s: int) -> dict[str, Any]:
        async def do() -> dict[str, Any]:
            if not hasattr(self.relay, "force_primary"):
                raise ValueError("forcing a primary is for the gateway role")
            self.relay.force_primary(uplink if duration_s else None, duration_s)
            return {"ok": True, "uplink": uplink, "duration_s": duration_s}

        return self._call(do())


def run_from_args(args) -> int:
    try:
        cfg = load_config(args.config, args.role)
    except ConfigError as e:
        print(f"haig: {args.config}: configuration refused:", file=sys.stderr)
        for line in e.errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    # stderr (procd → logread; the journal's fields when systemd runs us), every line
    # made one printable line: peer text (gateway ids, refusals) cannot forge log lines.
    from haig.surfaces.logsetup import setup_logging

    setup_logging(cfg.main.log_level, cfg.main.role, cfg.main.gateway_id)
    if not cfg.main.enabled:
        log.warning("disabled in %s (option enabled '0'): not starting", args.config)
        return 0
    return asyncio.run(Daemon(args.config, cfg, args.role).main())
