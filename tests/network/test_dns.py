"""The embedded DNS server, queried from inside namespaces; upstream is a loopback fake."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest

from sampan.network import dns
from sampan.network.dns import DnsServer
from tests.network.conftest import Netns

# A client run inside the namespace: prints the rcode and the A records of a query.
DIG = """
import socket, struct, sys
name = sys.argv[1]
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
q += struct.pack("!HH", int(sys.argv[2]) if len(sys.argv) > 2 else 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, ("127.0.0.11", 53))
r = s.recv(4096)
rid, flags, qd, an = struct.unpack_from("!HHHH", r)
assert rid == 0x1234
ips = [socket.inet_ntoa(r[i + 12:i + 16]) for i in range(len(q), len(r), 16)]
print(flags & 0xF, " ".join(ips))
"""


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    """A fake resolver on host loopback: 192.0.2.99 for upstream.test, NXDOMAIN else."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            question = dns.parse_question(query)
            assert question is not None
            if question.name == "upstream.test":
                reply = bytearray(dns.answer(query, question, [IPv4Address("192.0.2.99")]))
            else:
                reply = bytearray(dns.answer(query, question, []))
                reply[3] |= 3  # NXDOMAIN
            sock.sendto(bytes(reply), peer)

    thread = threading.Thread(target=serve)
    thread.start()
    yield sock.getsockname()
    stop.set()
    thread.join()
    sock.close()


@pytest.fixture
def server(upstream: tuple[str, int]) -> Iterator[DnsServer]:
    srv = DnsServer([("127.0.0.1", 1), upstream])  # the first refuses: the next is tried
    srv.start()
    yield srv
    srv.stop()


def _dig(ns: Netns, name: str, qtype: int = 1) -> tuple[int, list[str]]:
    out = ns.run("python3", "-c", DIG, name, str(qtype))
    assert out.returncode == 0, out.stderr
    rcode, _, ips = out.stdout.strip().partition(" ")
    return int(rcode), ips.split()


def test_names_per_network_and_forwarding(
    server: DnsServer, make_netns: Callable[[], Netns]
) -> None:
    a, b = make_netns(), make_netns()
    for ns in (a, b):
        assert ns.run("ip", "link", "set", "lo", "up").returncode == 0
    server.add_name("n1", "web", IPv4Address("10.0.1.2"))
    server.add_name("n1", "www", IPv4Address("10.0.1.2"))
    server.add_name("n1", "db", IPv4Address("10.0.1.3"))
    server.add_name("n2", "other", IPv4Address("10.0.2.2"))
    server.serve("a", a.path, ["n1"])
    server.serve("b", b.path, ["n1", "n2"])
    assert _dig(a, "web") == (0, ["10.0.1.2"])
    assert _dig(a, "WWW") == (0, ["10.0.1.2"])
    assert _dig(a, "web", dns.TYPE_AAAA) == (0, [])
    assert _dig(a, "other") == (3, [])  # another network's name: upstream says NXDOMAIN
    assert _dig(b, "other") == (0, ["10.0.2.2"])
    assert _dig(a, "upstream.test") == (0, ["192.0.2.99"])
    server.remove_address("n1", IPv4Address("10.0.1.2"))
    assert _dig(a, "web") == (3, [])
    assert _dig(a, "db") == (0, ["10.0.1.3"])
    server.set_networks("a", ["n2"])
    assert _dig(a, "other") == (0, ["10.0.2.2"])
    server.unserve("a")
    server.unserve("a")
    deadline = time.monotonic() + 2  # the serving thread closes the socket soon after
    while "127.0.0.11:53" in a.run("ss", "-uln").stdout:
        assert time.monotonic() < deadline, "the container's DNS socket is still open"
        time.sleep(0.01)


def test_per_container_upstreams(
    upstream: tuple[str, int], make_netns: Callable[[], Netns]
) -> None:
    """A container's own upstreams (its --dns) replace the server's for its queries."""
    srv = DnsServer([("127.0.0.1", 1)])  # refuses: alone it gives SERVFAIL
    srv.start()
    try:
        a, b = make_netns(), make_netns()
        for ns in (a, b):
            assert ns.run("ip", "link", "set", "lo", "up").returncode == 0
        srv.serve("a", a.path, ["n1"], [upstream])
        srv.serve("b", b.path, ["n1"])
        assert _dig(a, "upstream.test") == (0, ["192.0.2.99"])
        assert _dig(b, "upstream.test") == (dns.RCODE_SERVFAIL, [])
    finally:
        srv.stop()


def test_parse_rejects_garbage() -> None:
    assert dns.parse_question(b"") is None
    header = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
    assert dns.parse_question(header + b"\x05ab") is None
    assert dns.parse_question(header + b"\xc0\x0c\x00\x01\x00\x01") is None
    reply = struct.pack("!HHHHHH", 1, 0x8100, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01"
    assert dns.parse_question(reply) is None
    ok = dns.parse_question(header + b"\x01a\x00\x00\x01\x00\x01")
    assert ok == dns.Question("a", 1, 1, 19)
    assert dns.servfail(header)[3] & 0xF == dns.RCODE_SERVFAIL


def test_answer_aaaa_and_a_by_family() -> None:
    query = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x03web\x00"
    addresses = [IPv4Address("10.0.0.2"), IPv6Address("fd00:1::2")]
    for qtype, want in ((dns.TYPE_A, addresses[0]), (dns.TYPE_AAAA, addresses[1])):
        packet = query + struct.pack("!HH", qtype, 1)
        question = dns.parse_question(packet)
        assert question is not None
        reply = dns.answer(packet, question, addresses)
        _id, _flags, _qd, ancount, _ns, _ar = struct.unpack_from("!HHHHHH", reply)
        assert ancount == 1
        rtype, _cls, _ttl, length = struct.unpack_from("!HHIH", reply, len(packet) + 2)
        assert (rtype, length) == (qtype, len(want.packed))
        assert reply[-length:] == want.packed
