"""Never stuck (issue 9): the gateway daemon survives an endpoint that is not there yet,
an endpoint killed and restarted, both uplinks going down, and a new address on the main
uplink; it reconnects soon after the peer or the links return. The times are printed
(the fault matrix collects them); bounds are generous for emulation."""

from __future__ import annotations

import re
import time

from tests.testbed import traffic
from tests.testbed.haig_procs import (
    UPLINK,
    Haig,
    Service,
    assoc_up,
    paths_active,
    relayed,
)
from tests.testbed.topology import FALLBACK, MAIN


class Echo:
    """A client sending to an echo server through haig every `interval` s; records the
    echoes it gets back."""

    def __init__(self, topo, port: int, interval: float = 0.05) -> None:
        self.server = traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, port)), echo=True).start()
        cli = traffic.udp_in(topo.client)
        self.back = traffic.Sink(cli).start()
        self.snd = traffic.Sender(cli, (topo.gw_lan_addr, port), interval=interval).start()

    def first_after(self, t: float, timeout: float) -> float:
        """Seconds from `t` to the first echo after it (TimeoutError past `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.back.rec.first_after(t)
            if got is not None:
                return got - t
            time.sleep(0.05)
        raise TimeoutError(f"no echo within {timeout} s")

    def stop(self) -> None:
        self.snd.stop()
        self.back.stop()
        self.server.stop()


def _svc(topo, port: int) -> list[Service]:
    return [relayed(topo, "echo", port, ttl=1000)]


def _no_tracebacks(*ps: Haig) -> None:
    for p in ps:
        assert p.proc is not None and p.proc.poll() is None, f"{p.name} exited"
        assert "Traceback" not in p.log(), f"{p.name} logged a traceback:\n{p.log()[-3000:]}"


def _listening_at(ep: Haig, timeout: float = 300) -> float:
    """monotonic time at which the endpoint logged that it listens (its start-up under
    emulation takes seconds: recovery is measured from when it could answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r"endpoint listening on", ep.log()):
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"endpoint did not listen:\n{ep.log()[-2000:]}")


def test_gateway_survives_a_late_and_a_restarted_endpoint(topo, procs):
    port, svc_port = 8861, 7061
    svc = _svc(topo, svc_port)
    gw = procs.gateway(topo, port, svc)
    echo = Echo(topo, svc_port)
    try:
        # No endpoint yet: the gateway keeps running, says it is connecting, retries.
        st = gw.wait_for(lambda s: any(a["state"] == "connecting" for a in s["associations"]), 60,
                         "association connecting")
        time.sleep(6)
        assert gw.proc.poll() is None
        assert st["drops"]["no_association"] >= 0
        ep = procs.endpoint(topo, port, svc)
        t_listen = _listening_at(ep)
        late = echo.first_after(t_listen, 30)
        print(f"late endpoint: echo back {late:.2f} s after it listened")

        # SIGKILL the endpoint, start it again 3 s later.
        gw.wait_for(assoc_up, 30, "association up")
        ep.proc.kill()
        ep.proc.wait()
        procs.remove(ep)
        time.sleep(3)
        ep2 = procs.endpoint(topo, port, svc, "ep2")
        t_listen = _listening_at(ep2)
        restarted = echo.first_after(t_listen, 30)
        print(f"endpoint SIGKILL + restart: echo back {restarted:.2f} s after it listened")
        _no_tracebacks(gw, ep2)
        assert late < 15 and restarted < 15  # target 3 s; generous for emulation
    finally:
        echo.stop()


def test_both_uplinks_down_then_up_reconnects_soon(topo, procs):
    port, svc_port = 8862, 7062
    svc = _svc(topo, svc_port)
    gw, ep = procs.pair(topo, port, svc)
    echo = Echo(topo, svc_port)
    try:
        gw.wait_for(paths_active, 90, "both paths active")
        topo.impair.down(MAIN)
        topo.impair.down(FALLBACK)
        gw.wait_for(lambda s: not assoc_up(s), 60, "association lost")
        time.sleep(5)
        topo.impair.up(MAIN)
        ch = topo.impair.up(FALLBACK)
        back = echo.first_after(ch.effective, 40)
        print(f"both uplinks down, then up: echo back {back:.2f} s after the links returned")
        _no_tracebacks(gw, ep)
        assert back < 20
    finally:
        topo.impair.clear()
        echo.stop()


def test_new_address_on_main_moves_the_association(topo, procs):
    """A new DHCP/PPPoE lease on the main uplink (local_address from the device): the
    association is re-made from the new address and traffic returns to main."""
    port, svc_port = 8863, 7063
    svc = _svc(topo, svc_port)
    lk = topo.links[MAIN]
    new_addr = lk.gw_addr.rsplit(".", 1)[0] + ".7"
    ep = procs.endpoint(topo, port, svc)
    gw = procs.gateway(topo, port, svc, uplinks={MAIN: {"local_address": ""}, FALLBACK: {"local_address": ""}})
    echo = Echo(topo, svc_port)
    try:
        gw.wait_for(lambda s: paths_active(s) and s["primary"] == UPLINK[MAIN], 120, "main primary")
        t0 = time.monotonic()
        # old lease gone, new one in (adding first would make the new address a secondary
        # that the kernel deletes with the primary: promote_secondaries is off)
        topo.gw.run(f"ip addr del {lk.gw_addr}/{lk.prefix} dev {lk.gw_dev}")
        topo.gw.run(f"ip addr add {new_addr}/{lk.prefix} dev {lk.gw_dev}")
        st = gw.wait_for(lambda s: paths_active(s) and s["primary"] == UPLINK[MAIN] and any(
            u["name"] == UPLINK[MAIN] and u["local_address"] == new_addr for u in s["uplinks"]), 60,
            "main primary again from the new address")
        back = time.monotonic() - t0
        seen = echo.first_after(time.monotonic(), 10)
        print(f"main address replaced: main primary again from {new_addr} after {back:.2f} s, "
              f"echo {seen:.2f} s later")
        assert any(u["local_address"] == new_addr for u in st["uplinks"])
        _no_tracebacks(gw, ep)
    finally:
        topo.gw.run(f"ip addr del {new_addr}/{lk.prefix} dev {lk.gw_dev}", check=False)
        topo.gw.run(f"ip addr add {lk.gw_addr}/{lk.prefix} dev {lk.gw_dev}", check=False)
        echo.stop()
