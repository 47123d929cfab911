"""The relay end to end: haig gateway and endpoint daemons in the test bed, UDP in,
UDP out, admission of gateways, bad input counted."""

from __future__ import annotations

import random
import select
import time

from tests.testbed import traffic
from tests.testbed.haig_procs import (
    KEY,
    UPLINK,
    Service,
    assoc_up,
    paths_active,
    relayed,
)
from tests.testbed.topology import MAIN


def _echo(topo, port: int) -> traffic.Sink:
    return traffic.Sink(traffic.udp_in(topo.server, (topo.server_addr, port)), echo=True).start()


def test_datagrams_arrive_intact_with_per_association_tuning(topo, procs):
    port = 8801
    # ttl 0 = fully reliable: every datagram must arrive, even across a failover
    svc = [relayed(topo, "echo", 7001, ttl=0)]
    gw, ep = procs.pair(topo, port, svc, main={"max_datagram": 1400})
    echo = _echo(topo, 7001)
    try:
        st = gw.wait_for(paths_active, 90, "association up with both paths active")
        # rto_min 100 applied to this association alone: the kernel default is 1000.
        main_up = next(u for u in st["uplinks"] if u["name"] == UPLINK[MAIN])
        assert main_up["rto_ms"] is not None and main_up["rto_ms"] < 1000, main_up
        assert topo.gw.run("sysctl -n net.sctp.rto_min").stdout.strip() == "1000"

        cli = traffic.udp_in(topo.client)
        rng = random.Random(7)
        sent = {}
        for seq in range(300):
            size = rng.choice([traffic.HDR.size, 60, 200, 576, 1200, 1400])
            d = traffic.make_datagram(seq, size, rng)
            sent[seq] = d
            cli.sendto(d, (topo.gw_lan_addr, 7001))
            time.sleep(0.005)  # ~1 Mbit/s: fits the 3.5 Mbit/s fallback, should a failover happen
        got: dict[int, bytes] = {}
        dups = corrupted = 0
        deadline = time.monotonic() + 20
        while len(got) < len(sent) and time.monotonic() < deadline:
            r, _, _ = select.select([cli], [], [], 0.5)
            if not r:
                continue
            data = cli.recv(65535)
            ok = traffic.check_datagram(data)
            if ok is None:
                corrupted += 1
            elif ok[0] in got:
                dups += 1
            else:
                got[ok[0]] = data
        assert corrupted == 0 and dups == 0
        missing = sorted(set(sent) - set(got))
        # haig relayed every datagram both ways (its own counters)...
        # (the flow list in the status is refreshed about once a second: wait for it)
        def counted(s: dict) -> bool:
            return bool(s["flows"]) and s["flows"][0]["rx_packets"] >= len(sent) and s["flows"][0]["tx_packets"] >= len(sent)
        gf, ef = gw.wait_for(counted, 10, "gateway flow counters")["flows"][0], ep.wait_for(counted, 10, "endpoint flow counters")["flows"][0]
        assert gf["rx_packets"] == ef["rx_packets"] == ef["tx_packets"] == gf["tx_packets"] == len(sent)
        # ...and the client got them (a handful at the very end of the burst have been seen
        # lost on the final UDP hop in the emulator; see the issue note)
        assert len(missing) <= 5, (f"missing {missing} (sizes {[len(sent[m]) for m in missing]}); "
                             f"gw flows {gw.status()['flows']}; ep flows {ep.status()['flows']}; gw drops "
                                              f"{gw.status()['drops']}, ep drops {ep.status()['drops']}")
        assert all(got[s] == sent[s] for s in got)  # boundaries and bytes kept

        # Oversized datagrams are counted and dropped; the daemon carries on.
        cli.sendto(b"x" * 3000, (topo.gw_lan_addr, 7001))
        st = gw.wait_for(lambda s: s["drops"].get("oversized", 0) >= 1, 20, "oversized drop counted")
        cli.sendto(sent[0], (topo.gw_lan_addr, 7001))
        r, _, _ = select.select([cli], [], [], 10)
        assert r and cli.recv(65535) == sent[0]
        cli.close()
        flows = gw.status()["flows"]
        assert len(flows) == 1 and flows[0]["service"] == "echo"
        assert ep.status()["associations"][0]["gateway_id"] == "home1"
    finally:
        echo.stop()


def test_many_gateways_kept_apart_and_unknown_refused(topo, procs):
    port = 8802
    homes = {"home1": KEY, "home2": KEY + "2", "home3": KEY + "3"}
    services = {g: relayed(topo, "echo", 7100 + i) for i, g in enumerate(homes)}
    ep_services = [Service("echo", "", f"{topo.server_addr}:7100")]
    ep = procs.endpoint(topo, port, ep_services, gateways=homes)
    echo = _echo(topo, 7100)
    gws = {}
    for i, (g, key) in enumerate(homes.items()):
        gws[g] = procs.gateway(topo, port, [services[g]], g, 8990 + i, gateway_id=g, key=key)
    intruder = procs.gateway(topo, port, [relayed(topo, "echo", 7199)], "intruder", 8999,
                             gateway_id="intruder", key=KEY)
    try:
        for g in homes:
            gws[g].wait_for(assoc_up, 120, f"{g} admitted")
        # Each home's clients get back exactly their own datagrams.
        socks = {g: traffic.udp_in(topo.client) for g in homes}
        rng = random.Random(3)
        for n in range(50):
            for i, g in enumerate(homes):
                d = traffic.make_datagram(n * 10 + i, 100, rng)
                socks[g].sendto(d, (topo.gw_lan_addr, 7100 + i))
        for i, g in enumerate(homes):
            seqs = []
            deadline = time.monotonic() + 15
            while len(seqs) < 50 and time.monotonic() < deadline:
                r, _, _ = select.select([socks[g]], [], [], 0.5)
                if r:
                    ok = traffic.check_datagram(socks[g].recv(65535))
                    assert ok is not None
                    seqs.append(ok[0])
            assert len(seqs) >= 49 and all(s % 10 == i for s in seqs), (g, seqs[:10])
        ep_st = ep.status()
        assert {a["gateway_id"] for a in ep_st["associations"] if a.get("state") == "up"} == set(homes)
        # The unknown gateway is refused: the endpoint logs why and summarises refusals in
        # one rate-limited event; the wire says only "not admitted" (no hint which ids exist).
        ep.wait_for(lambda s: any(e["new"] == "refused" and "intruder" in e["reason"]
                                  for e in s["events"]), 60, "intruder refused")
        assert "refused gateway 'intruder'" in ep.log() and "unknown gateway" in ep.log()
        ist = intruder.status()
        assert not assoc_up(ist)
        refused = [e for e in intruder.events() if e["new"] == "refused" and "endpoint refused" in e["reason"]]
        assert refused and all(e["reason"].endswith(": not admitted") for e in refused), refused
    finally:
        echo.stop()
