"""Impairments of the test bed's links, each recorded with when it really took effect.

`tc` takes 150–400 ms under TCG emulation, so an impairment is stamped twice: just
before the command (`asked`) and just after it returned (`effective`). Measurements
compare arrival times against `effective` for the start of an outage and `asked` for
the lower bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from tests.testbed.topology import Topology


@dataclass(frozen=True)
class Change:
    what: str
    link: str
    asked: float  # time.monotonic() before the command
    effective: float  # time.monotonic() after it returned


class Impairments:
    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.log: list[Change] = []
        self._loss: dict[str, float] = {}
        self._down: set[str] = set()
        self._shaped = False  # the fallback's shaping replaced (shape_fallback)

    def _apply(self, what: str, link: str, cmds: list[tuple[object, str]]) -> Change:
        t0 = time.monotonic()
        for ns, cmd in cmds:
            ns.run(cmd)  # type: ignore[attr-defined]
        ch = Change(what, link, t0, time.monotonic())
        self.log.append(ch)
        return ch

    def loss(self, link: str, percent: float) -> Change:
        """netem loss on both ends of `link` (the report impaired the router's side; we
        impair both so heartbeats and SACKs are lost too, as on a dead line)."""
        lk = self.topo.links[link]
        if link != "main":
            raise ValueError("loss is modelled on the main link only")
        spec = f"loss {percent}%" if percent > 0 else "loss 0%"
        ch = self._apply(f"loss {percent}%", link, [
            (self.topo.gw, f"tc qdisc change dev {lk.gw_dev} root netem delay 0ms limit 10000 {spec}"),
            (self.topo.ep, f"tc qdisc change dev {lk.ep_dev} root netem delay 0ms limit 10000 {spec}"),
        ])
        self._loss[link] = percent
        return ch

    def netem(self, link: str, spec: str, side: str = "both") -> Change:
        """Any netem loss/corruption `spec` on main (e.g. `loss gemodel 5% 30% 70% 0.1%`
        for bursty Gilbert-Elliott loss); side "gw" impairs only gateway->endpoint
        packets, "ep" only endpoint->gateway. `loss(link, 0)` undoes it."""
        lk = self.topo.links[link]
        if link != "main":
            raise ValueError("netem impairments are modelled on the main link only")
        ends = {"gw": [(self.topo.gw, lk.gw_dev)], "ep": [(self.topo.ep, lk.ep_dev)]}
        ends["both"] = ends["gw"] + ends["ep"]
        ch = self._apply(f"{spec} ({side})", link, [
            (ns, f"tc qdisc change dev {dev} root netem delay 0ms limit 10000 {spec}")
            for ns, dev in ends[side]])
        self._loss[link] = 100.0  # anything non-zero: clear() resets it
        return ch

    def shape_fallback(self, spec: str | None) -> Change:
        """Replace the fallback's gateway-side netem (delay, jitter, rate), e.g. LTE-like
        jitter `delay 200ms 40ms 25% rate 3500kbit limit 10000`; None restores the bed's
        own shaping (clear() does too)."""
        lk = self.topo.links["fallback"]
        spec = spec or self.topo.fallback_shape
        ch = self._apply(f"fallback shaped {spec}", "fallback",
                         [(self.topo.gw, f"tc qdisc change dev {lk.gw_dev} root netem {spec}")])
        self._shaped = spec != self.topo.fallback_shape
        return ch

    def down(self, link: str) -> Change:
        """Carrier loss as the router sees it: the gateway's end goes down."""
        lk = self.topo.links[link]
        ch = self._apply("down", link, [(self.topo.gw, f"ip link set {lk.gw_dev} down")])
        self._down.add(link)
        return ch

    def up(self, link: str) -> Change:
        lk = self.topo.links[link]
        ch = self._apply("up", link, [(self.topo.gw, f"ip link set {lk.gw_dev} up")])
        self._down.discard(link)
        return ch

    def window(self, link: str, percent: float, seconds: float) -> tuple[Change, Change]:
        """Loss for a window, then back to none (the report's 5 s failure)."""
        start = self.loss(link, percent)
        time.sleep(max(0.0, seconds - (time.monotonic() - start.effective)))
        return start, self.loss(link, 0)

    def flap(self, link: str, period: float, count: int) -> list[Change]:
        """Link down/up `count` times, `period` seconds per half-cycle."""
        out = []
        for _ in range(count):
            out.append(self.down(link))
            time.sleep(period)
            out.append(self.up(link))
            time.sleep(period)
        return out

    def clear(self) -> None:
        """Undo every impairment (called in finally)."""
        for link in list(self._down):
            self.up(link)
        if self._shaped:
            self.shape_fallback(None)
        for link, pct in list(self._loss.items()):
            if pct:
                self.loss(link, 0)
