"""The byte layouts haig hands to and reads from kernel SCTP (linux/sctp.h), on the host:
socket options are captured before they reach a socket, notifications and ancillary data
are built by hand. LAYOUT is the contract; a gcc test checks it against the real header
where a compiler and linux/sctp.h exist."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from haig.adapters import sctp_io, sctp_opts

# (struct, field) -> offset, and (struct, None) -> size, as gcc sees linux/sctp.h (6.1).
LAYOUT = {
    ("sctp_paddrparams", None): 156,
    ("sctp_paddrparams", "spp_address"): 4,
    ("sctp_paddrparams", "spp_hbinterval"): 132,
    ("sctp_paddrparams", "spp_pathmaxrxt"): 136,
    ("sctp_paddrparams", "spp_flags"): 146,
    ("sctp_paddrthlds_v2", None): 144,
    ("sctp_paddrthlds_v2", "spt_address"): 8,
    ("sctp_paddrthlds_v2", "spt_pathmaxrxt"): 136,
    ("sctp_paddrthlds_v2", "spt_pathpfthld"): 138,
    ("sctp_paddrthlds_v2", "spt_pathcpthld"): 140,
    ("sctp_setprim", None): 132,
    ("sctp_setprim", "ssp_addr"): 4,
    ("sctp_udpencaps", None): 144,
    ("sctp_udpencaps", "sue_address"): 8,
    ("sctp_udpencaps", "sue_port"): 136,
    ("sctp_paddrinfo", None): 152,
    ("sctp_paddrinfo", "spinfo_address"): 4,
    ("sctp_paddrinfo", "spinfo_state"): 132,
    ("sctp_paddrinfo", "spinfo_cwnd"): 136,
    ("sctp_paddrinfo", "spinfo_srtt"): 140,
    ("sctp_paddrinfo", "spinfo_rto"): 144,
    ("sctp_paddrinfo", "spinfo_mtu"): 148,
    ("sctp_rtoinfo", None): 16,
    ("sctp_initmsg", None): 8,
    ("sctp_assoc_value", None): 8,
    ("sctp_event", None): 8,
    ("sctp_event", "se_type"): 4,
    ("sctp_event", "se_on"): 6,
    ("sctp_sndrcvinfo", None): 32,
    ("sctp_sndrcvinfo", "sinfo_flags"): 4,
    ("sctp_sndrcvinfo", "sinfo_timetolive"): 16,
    ("sctp_sndrcvinfo", "sinfo_assoc_id"): 28,
    ("sctp_rcvinfo", None): 28,
    ("sctp_rcvinfo", "rcv_assoc_id"): 24,
    ("sctp_assoc_change", None): 20,
    ("sctp_assoc_change", "sac_state"): 8,
    ("sctp_assoc_change", "sac_error"): 10,
    ("sctp_assoc_change", "sac_assoc_id"): 16,
    ("sctp_paddr_change", None): 148,
    ("sctp_paddr_change", "spc_aaddr"): 8,
    ("sctp_paddr_change", "spc_state"): 136,
    ("sctp_paddr_change", "spc_error"): 140,
    ("sctp_paddr_change", "spc_assoc_id"): 144,
    ("sctp_remote_error", "sre_assoc_id"): 12,
    ("sctp_shutdown_event", "sse_assoc_id"): 8,
    ("sctp_send_failed", "ssf_assoc_id"): 44,
    ("sctp_send_failed_event", "ssf_assoc_id"): 28,
    ("sctp_pdapi_event", "pdapi_assoc_id"): 12,
    ("sctp_adaptation_event", "sai_assoc_id"): 12,
    ("sctp_authkey_event", "auth_assoc_id"): 16,
    ("sctp_sender_dry_event", "sender_dry_assoc_id"): 8,
    ("sctp_stream_reset_event", "strreset_assoc_id"): 8,
    ("sctp_assoc_reset_event", "assocreset_assoc_id"): 8,
    ("sctp_stream_change_event", "strchange_assoc_id"): 8,
}

# Python name -> C macro, values checked by the same gcc test.
CONSTANTS = {
    "SOL_SCTP": (sctp_opts.SOL_SCTP, "SOL_SCTP"),
    "SCTP_RTOINFO": (sctp_opts.SCTP_RTOINFO, "SCTP_RTOINFO"),
    "SCTP_INITMSG": (sctp_opts.SCTP_INITMSG, "SCTP_INITMSG"),
    "SCTP_NODELAY": (sctp_opts.SCTP_NODELAY, "SCTP_NODELAY"),
    "SCTP_PRIMARY_ADDR": (sctp_opts.SCTP_PRIMARY_ADDR, "SCTP_PRIMARY_ADDR"),
    "SCTP_PEER_ADDR_PARAMS": (sctp_opts.SCTP_PEER_ADDR_PARAMS, "SCTP_PEER_ADDR_PARAMS"),
    "SCTP_GET_PEER_ADDR_INFO": (sctp_opts.SCTP_GET_PEER_ADDR_INFO, "SCTP_GET_PEER_ADDR_INFO"),
    "SCTP_PEER_ADDR_THLDS_V2": (sctp_opts.SCTP_PEER_ADDR_THLDS_V2, "SCTP_PEER_ADDR_THLDS_V2"),
    "SCTP_EXPOSE_PF": (sctp_opts.SCTP_EXPOSE_POTENTIALLY_FAILED_STATE, "SCTP_EXPOSE_POTENTIALLY_FAILED_STATE"),
    "SCTP_REMOTE_UDP_ENCAPS_PORT": (sctp_opts.SCTP_REMOTE_UDP_ENCAPS_PORT, "SCTP_REMOTE_UDP_ENCAPS_PORT"),
    "SPP_HB_ENABLE": (sctp_opts.SPP_HB_ENABLE, "SPP_HB_ENABLE"),
    "SPP_HB_DISABLE": (sctp_opts.SPP_HB_DISABLE, "SPP_HB_DISABLE"),
    "SCTP_EVENT": (sctp_io.SCTP_EVENT, "SCTP_EVENT"),
    "SCTP_RECVRCVINFO": (sctp_io.SCTP_RECVRCVINFO, "SCTP_RECVRCVINFO"),
    "SCTP_SNDRCV": (sctp_io.SCTP_SNDRCV, "SCTP_SNDRCV"),
    "SCTP_RCVINFO": (sctp_io.SCTP_RCVINFO, "SCTP_RCVINFO"),
    "SCTP_UNORDERED": (sctp_io.SCTP_UNORDERED, "SCTP_UNORDERED"),
    "SCTP_ADDR_OVER": (sctp_io.SCTP_ADDR_OVER, "SCTP_ADDR_OVER"),
    "SCTP_ABORT": (sctp_io.SCTP_ABORT, "SCTP_ABORT"),
    "SCTP_EOF": (sctp_io.SCTP_EOF, "SCTP_EOF"),
    "SCTP_PR_SCTP_TTL": (sctp_io.SCTP_PR_SCTP_TTL, "SCTP_PR_SCTP_TTL"),
    "SCTP_ASSOC_CHANGE": (sctp_io.SCTP_ASSOC_CHANGE, "SCTP_ASSOC_CHANGE"),
    "SCTP_PEER_ADDR_CHANGE": (sctp_io.SCTP_PEER_ADDR_CHANGE, "SCTP_PEER_ADDR_CHANGE"),
    "SCTP_SEND_FAILED": (sctp_io.SCTP_SEND_FAILED, "SCTP_SEND_FAILED"),
    "SCTP_REMOTE_ERROR": (sctp_io.SCTP_REMOTE_ERROR, "SCTP_REMOTE_ERROR"),
    "SCTP_SHUTDOWN_EVENT": (sctp_io.SCTP_SHUTDOWN_EVENT, "SCTP_SHUTDOWN_EVENT"),
    "SCTP_PARTIAL_DELIVERY_EVENT": (sctp_io.SCTP_PARTIAL_DELIVERY_EVENT, "SCTP_PARTIAL_DELIVERY_EVENT"),
    "SCTP_ADAPTATION_INDICATION": (sctp_io.SCTP_ADAPTATION_INDICATION, "SCTP_ADAPTATION_INDICATION"),
    "SCTP_AUTHENTICATION_EVENT": (sctp_io.SCTP_AUTHENTICATION_EVENT, "SCTP_AUTHENTICATION_EVENT"),
    "SCTP_SENDER_DRY_EVENT": (sctp_io.SCTP_SENDER_DRY_EVENT, "SCTP_SENDER_DRY_EVENT"),
    "SCTP_STREAM_RESET_EVENT": (sctp_io.SCTP_STREAM_RESET_EVENT, "SCTP_STREAM_RESET_EVENT"),
    "SCTP_ASSOC_RESET_EVENT": (sctp_io.SCTP_ASSOC_RESET_EVENT, "SCTP_ASSOC_RESET_EVENT"),
    "SCTP_STREAM_CHANGE_EVENT": (sctp_io.SCTP_STREAM_CHANGE_EVENT, "SCTP_STREAM_CHANGE_EVENT"),
    "SCTP_SEND_FAILED_EVENT": (sctp_io.SCTP_SEND_FAILED_EVENT, "SCTP_SEND_FAILED_EVENT"),
    "SCTP_COMM_UP": (0, "SCTP_COMM_UP"),
    "SCTP_CANT_STR_ASSOC": (4, "SCTP_CANT_STR_ASSOC"),
    "SCTP_ADDR_POTENTIALLY_FAILED": (6, "SCTP_ADDR_POTENTIALLY_FAILED"),
    "SCTP_UNCONFIRMED": (3, "SCTP_UNCONFIRMED"),
    "SCTP_UNKNOWN": (0xFFFF, "SCTP_UNKNOWN"),
}

HEADER = Path("/usr/include/linux/sctp.h")


@pytest.mark.skipif(shutil.which("gcc") is None or not HEADER.exists(), reason="needs gcc and linux/sctp.h")
def test_layout_and_constants_match_linux_sctp_h(tmp_path):
    lines = []
    for (st, field), _ in LAYOUT.items():
        expr = f"sizeof(struct {st})" if field is None else f"offsetof(struct {st}, {field})"
        lines.append(f'printf("{st} {field} %zu\\n", (size_t){expr});')
    for name, (_, macro) in CONSTANTS.items():
        lines.append(f'printf("{name} %ld\\n", (long){macro});')
    src = tmp_path / "layout.c"
    # stdint.h first: linux/sctp.h uses uint8_t without including it itself.
    src.write_text("#include <stdint.h>\n#include <stddef.h>\n#include <stdio.h>\n#include <sys/socket.h>\n"
                   "#include <netinet/in.h>\n#include <linux/sctp.h>\n#ifndef SOL_SCTP\n#define SOL_SCTP 132\n#endif\n"
                   "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = tmp_path / "layout"
    subprocess.run(["gcc", str(src), "-o", str(exe)], check=True, capture_output=True, timeout=60)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=10).stdout.split("\n")
    got_layout = {}
    got_consts = {}
    for line in filter(None, out):
        parts = line.split()
        if len(parts) == 3:
            got_layout[(parts[0], None if parts[1] == "None" else parts[1])] = int(parts[2])
        else:
            got_consts[parts[0]] = int(parts[1])
    assert got_layout == LAYOUT
    assert got_consts == {n: v for n, (v, _) in CONSTANTS.items()}


# --- sockaddr ---------------------------------------------------------------------------


def test_sockaddr_ipv4_is_a_sockaddr_in_padded_to_storage():
    raw = sctp_opts.sockaddr(("192.0.2.7", 5000))
    assert len(raw) == 128
    assert struct.unpack_from("=H", raw)[0] == socket.AF_INET
    assert raw[2:4] == b"\x13\x88"  # port in network order
    assert raw[4:8] == bytes([192, 0, 2, 7])
    assert raw[8:] == bytes(120)


def test_sockaddr_ipv6_is_a_sockaddr_in6():
    raw = sctp_opts.sockaddr(("2001:db8::1", 443))
    assert len(raw) == 128
    assert struct.unpack_from("=H", raw)[0] == socket.AF_INET6
    assert raw[2:4] == b"\x01\xbb"
    assert raw[4:8] == bytes(4)  # flowinfo
    assert raw[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    assert raw[24:] == bytes(104)  # scope id and padding


def test_sockaddr_none_is_all_zero():
    assert sctp_opts.sockaddr(None) == bytes(128)


def test_sockaddr_ignores_extra_tuple_fields():
    assert sctp_opts.sockaddr(("2001:db8::1", 443, 0, 0)) == sctp_opts.sockaddr(("2001:db8::1", 443))


@pytest.mark.parametrize("host", ["10.1", "1", "300.1.2.3", "not-an-address", "2001:db8::zz"])
def test_sockaddr_refuses_malformed_addresses(host):
    with pytest.raises(OSError):
        sctp_opts.sockaddr((host, 1))


@pytest.mark.parametrize("addr", [("192.0.2.7", 5000), ("2001:db8::1", 443), ("::ffff:192.0.2.1", 1), ("0.0.0.0", 0)])
def test_parse_sockaddr_reads_what_sockaddr_packs(addr):
    assert sctp_io.parse_sockaddr(sctp_opts.sockaddr(addr)) == addr


def test_parse_sockaddr_reads_a_bare_sockaddr_in():
    assert sctp_io.parse_sockaddr(sctp_opts.sockaddr(("198.51.100.2", 9))[:16]) == ("198.51.100.2", 9)


def test_parse_sockaddr_other_family():
    assert sctp_io.parse_sockaddr(struct.pack("=H", socket.AF_UNIX).ljust(128, b"\0")) == ("?", 0)


@pytest.mark.parametrize("raw", [b"", b"\x02", sctp_opts.sockaddr(("192.0.2.1", 1))[:7],
                                 sctp_opts.sockaddr(("2001:db8::1", 1))[:23]],
                         ids=["empty", "half_family", "ipv4", "ipv6"])
def test_parse_sockaddr_too_short_is_value_error(raw):
    with pytest.raises(ValueError):
        sctp_io.parse_sockaddr(raw)


# --- socket options: bytes captured before they reach a socket -------------------------


@pytest.fixture
def captured(monkeypatch):
    calls: list[tuple[int, bytes]] = []
    monkeypatch.setattr(sctp_opts, "_set", lambda sock, opt, data: calls.append((opt, data)))
    monkeypatch.setattr(sctp_io, "_set", lambda sock, opt, data: calls.append((opt, data)))
    return calls


def answer(monkeypatch, fill):
    """Stand in for getsockopt: check what goes in, let `fill` write the kernel's answer."""
    seen: list[tuple[int, bytes]] = []

    def fake_get(sock, opt, buf):
        seen.append((opt, buf))
        out = bytearray(buf)
        fill(out)
        return bytes(out)

    monkeypatch.setattr(sctp_opts, "_get", fake_get)
    return seen


PEER = ("192.0.2.9", 7000)


def test_paddr_params_layout(captured):
    sctp_opts.set_paddr_params(None, 42, PEER, hbinterval_ms=250, pathmaxrxt=3)
    opt, data = captured[-1]
    assert opt == sctp_opts.SCTP_PEER_ADDR_PARAMS == 9
    assert len(data) == LAYOUT[("sctp_paddrparams", None)]
    assert struct.unpack_from("=i", data, 0)[0] == 42
    assert data[4:132] == sctp_opts.sockaddr(PEER)
    assert struct.unpack_from("=I", data, 132)[0] == 250
    assert struct.unpack_from("=H", data, 136)[0] == 3
    # The flags must carry HB_ENABLE, or the kernel ignores hbinterval (pysctp's bug).
    assert struct.unpack_from("=I", data, 146)[0] == sctp_opts.SPP_HB_ENABLE
    assert data[138:146] == bytes(8) and data[150:] == bytes(6)


def test_paddr_params_heartbeat_off(captured):
    sctp_opts.set_paddr_params(None, 1, None, 0, heartbeat=False)
    data = captured[-1][1]
    assert struct.unpack_from("=I", data, 146)[0] == sctp_opts.SPP_HB_DISABLE
    assert data[4:132] == bytes(128)


def test_get_paddr_params_reads_hbinterval_and_pathmaxrxt(monkeypatch):
    def fill(b):
        struct.pack_into("=IH", b, 132, 1500, 4)
    seen = answer(monkeypatch, fill)
    assert sctp_opts.get_paddr_params(None, 7, PEER) == (1500, 4)
    opt, buf = seen[0]
    assert opt == 9 and len(buf) == 156
    assert struct.unpack_from("=i", buf)[0] == 7 and buf[4:132] == sctp_opts.sockaddr(PEER)


def test_thresholds_v2_layout(captured):
    sctp_opts.set_thresholds(None, 5, PEER, pathmaxrxt=4, pf_retrans=1, ps_retrans=3)
    opt, data = captured[-1]
    assert opt == sctp_opts.SCTP_PEER_ADDR_THLDS_V2 == 37
    assert len(data) == LAYOUT[("sctp_paddrthlds_v2", None)]
    assert struct.unpack_from("=i", data)[0] == 5
    assert data[4:8] == bytes(4)  # alignment hole before the sockaddr_storage
    assert data[8:136] == sctp_opts.sockaddr(PEER)
    assert struct.unpack_from("=HHH", data, 136) == (4, 1, 3)


def test_get_thresholds(monkeypatch):
    def fill(b):
        struct.pack_into("=HHH", b, 136, 6, 2, 0xFFFF)
    seen = answer(monkeypatch, fill)
    assert sctp_opts.get_thresholds(None, 5, PEER) == (6, 2, 0xFFFF)
    assert len(seen[0][1]) == 144 and seen[0][1][8:136] == sctp_opts.sockaddr(PEER)


def test_setprim_layout(captured):
    sctp_opts.set_primary(None, 9, PEER)
    opt, data = captured[-1]
    assert opt == sctp_opts.SCTP_PRIMARY_ADDR == 6
    assert len(data) == LAYOUT[("sctp_setprim", None)]
    assert struct.unpack_from("=i", data)[0] == 9 and data[4:] == sctp_opts.sockaddr(PEER)


def test_udpencaps_layout_port_in_network_order(captured):
    sctp_opts.set_udp_encap(None, 3, PEER, 9899)
    opt, data = captured[-1]
    assert opt == sctp_opts.SCTP_REMOTE_UDP_ENCAPS_PORT == 132
    assert len(data) == LAYOUT[("sctp_udpencaps", None)]
    assert struct.unpack_from("=i", data)[0] == 3
    assert data[8:136] == sctp_opts.sockaddr(PEER)
    assert data[136:138] == (9899).to_bytes(2, "big")
    assert data[138:] == bytes(6)


def test_path_info_buffer_and_answer(monkeypatch):
    def fill(b):
        struct.pack_into("=iIIII", b, 132, 1, 4380, 210, 630, 1480)
    seen = answer(monkeypatch, fill)
    info = sctp_opts.get_path_info(None, 11, PEER)
    assert info == sctp_opts.PathInfo("pf", 4380, 210, 630, 1480)
    opt, buf = seen[0]
    assert opt == sctp_opts.SCTP_GET_PEER_ADDR_INFO == 15
    assert len(buf) == LAYOUT[("sctp_paddrinfo", None)]
    assert struct.unpack_from("=i", buf)[0] == 11 and buf[4:132] == sctp_opts.sockaddr(PEER)


@pytest.mark.parametrize("state, name", [(0, "inactive"), (1, "pf"), (2, "active"), (3, "unconfirmed"),
                                         (0xFFFF, "unknown"), (9, "9")])
def test_path_info_state_names(monkeypatch, state, name):
    answer(monkeypatch, lambda b: struct.pack_into("=i", b, 132, state))
    assert sctp_opts.get_path_info(None, 1, PEER).state == name


def test_rtoinfo_layout(captured, monkeypatch):
    sctp_opts.set_rtoinfo(None, 8, initial=1000, max_=3000, min_=100)
    opt, data = captured[-1]
    assert opt == 0 and len(data) == 16
    assert struct.unpack("=iIII", data) == (8, 1000, 3000, 100)
    answer(monkeypatch, lambda b: struct.pack_into("=III", b, 4, 900, 2000, 50))
    assert sctp_opts.get_rtoinfo(None, 8) == (900, 2000, 50)


def test_small_options(captured):
    sctp_opts.set_initmsg(None, 10, 12, attempts=3, init_timeo_ms=500)
    sctp_opts.set_nodelay(None)
    sctp_opts.expose_pf(None, 4)
    assert captured == [
        (2, struct.pack("=HHHH", 10, 12, 3, 500)),
        (3, struct.pack("=i", 1)),
        (131, struct.pack("=iI", 4, 2)),
    ]
    assert len(captured[0][1]) == LAYOUT[("sctp_initmsg", None)]
    assert len(captured[2][1]) == LAYOUT[("sctp_assoc_value", None)]


def test_subscribe_turns_each_event_on_then_rcvinfo(captured):
    sctp_io.subscribe(None, events=(sctp_io.SCTP_ASSOC_CHANGE, sctp_io.SCTP_SHUTDOWN_EVENT))
    (o1, e1), (o2, e2), (o3, r) = captured
    assert o1 == o2 == sctp_io.SCTP_EVENT and o3 == sctp_io.SCTP_RECVRCVINFO
    for data, typ in ((e1, 0x8001), (e2, 0x8005)):
        assert len(data) == LAYOUT[("sctp_event", None)]
        assert struct.unpack_from("=i", data)[0] == 0
        assert struct.unpack_from("=H", data, 4)[0] == typ
        assert data[6] == 1
    assert r == struct.pack("=i", 1)


# --- send / receive ancillary data, through a stand-in socket ---------------------------


class FakeSock:
    def __init__(self, recv=None):
        self.sent = []
        self.recv = recv

    def sendmsg(self, bufs, anc, flags=0, addr=None):
        self.sent.append((bufs, anc, flags, addr))
        return sum(len(b) for b in bufs)

    def recvmsg(self, bufsize, ancsize):
        if self.recv is None:
            raise BlockingIOError
        return self.recv


def test_send_sndrcv_cmsg_layout():
    s = FakeSock()
    assert sctp_io.send(s, b"hello", stream=3, ttl_ms=1500, assoc_id=77, to=PEER, addr_over=True) == 5
    bufs, anc, _, addr = s.sent[0]
    assert bufs == [b"hello"] and addr == PEER
    (level, typ, cmsg), = anc
    assert (level, typ) == (sctp_opts.SOL_SCTP, sctp_io.SCTP_SNDRCV)
    assert len(cmsg) == LAYOUT[("sctp_sndrcvinfo", None)]
    assert struct.unpack_from("=H", cmsg, 0)[0] == 3
    flags = struct.unpack_from("=H", cmsg, 4)[0]
    assert flags == sctp_io.SCTP_UNORDERED | sctp_io.SCTP_PR_SCTP_TTL | sctp_io.SCTP_ADDR_OVER
    assert struct.unpack_from("=I", cmsg, 16)[0] == 1500
    assert struct.unpack_from("=i", cmsg, 28)[0] == 77


def test_send_plain_ordered_and_abort_flags():
    s = FakeSock()
    sctp_io.send(s, b"x", unordered=False)
    sctp_io.send(s, b"", unordered=False, abort=True, assoc_id=5)
    assert struct.unpack_from("=H", s.sent[0][1][0][2], 4)[0] == 0
    assert s.sent[0][3] is None
    cmsg = s.sent[1][1][0][2]
    assert struct.unpack_from("=H", cmsg, 4)[0] == sctp_io.SCTP_ABORT
    assert struct.unpack_from("=i", cmsg, 28)[0] == 5


def rcvinfo(sid: int, assoc_id: int) -> bytes:
    return struct.pack("=HHH2xIIIIi", sid, 0, 0, 0, 0, 0, 0, assoc_id)


def test_receive_message_with_rcvinfo():
    anc = [(sctp_opts.SOL_SCTP, sctp_io.SCTP_RCVINFO, rcvinfo(4, 1234))]
    got = sctp_io.receive(FakeSock((b"data", anc, socket.MSG_EOR, ("192.0.2.9", 7000))))
    assert got == sctp_io.Received(b"data", ("192.0.2.9", 7000), 1234, 4, True)
    assert len(rcvinfo(0, 0)) == LAYOUT[("sctp_rcvinfo", None)]


def test_receive_ipv6_peer_keeps_host_and_port():
    got = sctp_io.receive(FakeSock((b"d", [], 0, ("2001:db8::1", 7000, 0, 0))))
    assert got.addr == ("2001:db8::1", 7000) and got.eor is False and got.assoc_id == 0


def test_receive_nothing_ready():
    assert sctp_io.receive(FakeSock()) is None


def test_receive_notification():
    buf = assoc_change(0, 0, 99)
    assert sctp_io.receive(FakeSock((buf, [], sctp_io.MSG_NOTIFICATION | socket.MSG_EOR, None))) == \
        sctp_io.AssocChange("comm_up", 0, 99)


def test_receive_truncated_notification_is_ignorable_not_raised():
    got = sctp_io.receive(FakeSock((assoc_change(1, 0, 5)[:12], [], sctp_io.MSG_NOTIFICATION, None)))
    assert got == sctp_io.OtherNotification(0, 0)


# --- notifications built by hand per linux/sctp.h ---------------------------------------


def assoc_change(state: int, error: int, assoc_id: int, out_streams: int = 10, in_streams: int = 10) -> bytes:
    return struct.pack("=HHIHHHHi", sctp_io.SCTP_ASSOC_CHANGE, 0, 20, state, error, out_streams, in_streams, assoc_id)


def paddr_change(addr, state: int, error: int, assoc_id: int) -> bytes:
    buf = struct.pack("=HHI", sctp_io.SCTP_PEER_ADDR_CHANGE, 0, 148) + sctp_opts.sockaddr(addr)
    return buf + struct.pack("=iii", state, error, assoc_id)


@pytest.mark.parametrize("state, name", [(0, "comm_up"), (1, "comm_lost"), (2, "restart"),
                                         (3, "shutdown_comp"), (4, "cant_str_assoc"), (7, "7")])
def test_assoc_change(state, name):
    assert len(assoc_change(0, 0, 0)) == LAYOUT[("sctp_assoc_change", None)]
    assert sctp_io.parse_notification(assoc_change(state, 3, -5)) == sctp_io.AssocChange(name, 3, -5)


def test_assoc_change_with_trailing_info_bytes():
    # COMM_LOST/CANT_STR_ASSOC may carry the ABORT chunk after the struct (sac_info[]).
    buf = assoc_change(1, 0, 12) + b"\x06\x00\x00\x04"
    assert sctp_io.parse_notification(buf) == sctp_io.AssocChange("comm_lost", 0, 12)


@pytest.mark.parametrize("state, name", [(0, "available"), (1, "unreachable"), (2, "removed"), (3, "added"),
                                         (4, "made_prim"), (5, "confirmed"), (6, "potentially_failed"), (9, "9")])
def test_peer_addr_change(state, name):
    buf = paddr_change(("198.51.100.4", 9899), state, 0, 314)
    assert len(buf) == LAYOUT[("sctp_paddr_change", None)]
    assert sctp_io.parse_notification(buf) == sctp_io.PeerAddrChange(("198.51.100.4", 9899), name, 0, 314)


def test_peer_addr_change_ipv6():
    buf = paddr_change(("2001:db8:1::2", 5000), 1, 110, 2)
    assert sctp_io.parse_notification(buf) == sctp_io.PeerAddrChange(("2001:db8:1::2", 5000), "unreachable", 110, 2)


def header_then(typ: int, body: bytes) -> bytes:
    return struct.pack("=HHI", typ, 0, 8 + len(body)) + body


@pytest.mark.parametrize("typ, body", [
    (sctp_io.SCTP_SHUTDOWN_EVENT, struct.pack("=i", 21)),
    (sctp_io.SCTP_REMOTE_ERROR, struct.pack("!H2x", 7) + struct.pack("=i", 21) + b"\0\x07\0\x04"),
    (sctp_io.SCTP_SEND_FAILED, struct.pack("=I", 1) + bytes(32) + struct.pack("=i", 21)),
    (sctp_io.SCTP_PARTIAL_DELIVERY_EVENT, struct.pack("=I", 0) + struct.pack("=i", 21) + bytes(8)),
    (sctp_io.SCTP_ADAPTATION_INDICATION, struct.pack("=I", 0) + struct.pack("=i", 21)),
    (sctp_io.SCTP_AUTHENTICATION_EVENT, struct.pack("=HHI", 1, 0, 0) + struct.pack("=i", 21)),
    (sctp_io.SCTP_SENDER_DRY_EVENT, struct.pack("=i", 21)),
], ids=["shutdown", "remote_error", "send_failed", "partial_delivery", "adaptation",
        "authentication", "sender_dry"])
def test_other_notifications_read_the_assoc_id_where_the_struct_has_it(typ, body):
    assert sctp_io.parse_notification(header_then(typ, body)) == sctp_io.OtherNotification(typ, 21)


def test_send_failed_event_carries_the_abandoned_message():
    body = struct.pack("=I", 1) + struct.pack("=HHIIi", 0, 0, 0, 0, 0) + struct.pack("=i", 21) + b"payload"
    buf = struct.pack("=HHI", sctp_io.SCTP_SEND_FAILED_EVENT, sctp_io.SCTP_DATA_SENT, 8 + len(body)) + body
    assert sctp_io.parse_notification(buf) == sctp_io.SendFailed(1, True, 21, b"payload")


def test_unknown_notification_type_has_no_assoc_id():
    assert sctp_io.parse_notification(header_then(0x80FF, struct.pack("=i", 21))) == \
        sctp_io.OtherNotification(0x80FF, 0)


@pytest.mark.parametrize("buf", [
    b"",
    struct.pack("=HH", sctp_io.SCTP_ASSOC_CHANGE, 0),
    assoc_change(0, 0, 1)[:19],
    paddr_change(PEER, 0, 0, 1)[:147],
    header_then(sctp_io.SCTP_SHUTDOWN_EVENT, b"\0\0"),
    header_then(sctp_io.SCTP_SEND_FAILED_EVENT, bytes(16)),
], ids=["empty", "half_header", "assoc_change", "paddr_change", "shutdown", "send_failed_event"])
def test_truncated_notification_is_value_error(buf):
    with pytest.raises(ValueError):
        sctp_io.parse_notification(buf)


def test_failed_getsockopt_raises_oserror_not_a_crash():
    """A getsockopt that fails (a path of a dying association) raised a SIGSEGV once:
    libc's strerror through ctypes returned a truncated pointer."""
    import subprocess
    import sys

    code = ("import socket; from haig.adapters import sctp_opts\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try:\n    sctp_opts.get_path_info(s, 0, ('127.0.0.1', 1))\n"
            "except OSError as e:\n    print('OSError', e.errno)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.startswith("OSError"), (out.returncode, out.stderr)


def test_sack_delay_is_a_quarter_of_rto_min_within_bounds():
    from haig.config.model import Main

    shipped = Main().rto_min
    assert sctp_opts.sack_delay_for(shipped) == shipped // 4 == 10
    assert sctp_opts.sack_delay_for(100) == 25
    assert sctp_opts.sack_delay_for(10) == sctp_opts.SACK_DELAY_MIN_MS  # never 0 (kernel default)
    assert sctp_opts.sack_delay_for(60000) == sctp_opts.SACK_DELAY_MAX_MS
    # A lone message's SACK, delayed at most this, arrives well inside the smallest T3
    # timer whenever the round trip fits three quarters of it.
    for rto_min in range(10, 3001):
        assert sctp_opts.sack_delay_for(rto_min) <= max(rto_min // 4, sctp_opts.SACK_DELAY_MIN_MS) < rto_min
