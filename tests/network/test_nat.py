"""Published ports, localhost access, hairpin and masquerade rules in the real kernel."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from sampan.network import bridge, ports
from sampan.network.errors import Conflict
from sampan.network.firewall import Firewall as Nat
from sampan.network.ports import PortBinding, PortHolder
from sampan.network.sysctl import enable_ip6_forward, enable_ip_forward, read
from tests.network.conftest import (
    BUSYBOX,
    Bridge,
    Netns,
    firewall_of,
    http_get,
    rules_text,
    wait_port,
)

MakeBridge = Callable[..., Bridge]
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read())"
UDP_ECHO = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('0.0.0.0', 9000))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(2048)\n"
    "    s.sendto(b'echo:' + data, peer)\n"
)


@dataclass
class Web:
    """A container on a bridge serving a page with busybox httpd on port 80."""

    br: Bridge
    ns: Netns
    ip: str


@pytest.fixture
def holder() -> Iterator[PortHolder]:
    held = PortHolder()
    yield held
    held.release_all()


@pytest.fixture
def web(
    make_bridge: MakeBridge, make_netns: Callable[[], Netns], nat: Nat, tmp_path: Path
) -> Web:
    br = make_bridge("w", "10.231.10.0/24")
    nat.add_network(br.name, br.subnet)
    ns = make_netns()
    bridge.attach(br.name, ns.path, "svtw", br.address(2), br.gateway.ip)
    (tmp_path / "index.html").write_text("hello from the container\n")
    ns.spawn(BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(tmp_path))
    ip = str(br.address(2).ip)
    wait_port(ip, 80)
    return Web(br, ns, ip)


def _publish(nat: Nat, holder: PortHolder, owner: str, ip: str, *specs: str) -> list[PortBinding]:
    bindings = holder.reserve(owner, [b for s in specs for b in ports.parse(s)])
    nat.publish(owner, IPv4Address(ip), bindings)
    return bindings


def test_published_port_from_localhost_and_gateway(
    web: Web, nat: Nat, holder: PortHolder
) -> None:
    (b,) = _publish(nat, holder, "web", web.ip, "18080:80")
    assert b.host_port == 18080
    assert "hello from the container" in http_get("127.0.0.1", 18080)
    assert "hello from the container" in http_get(str(web.br.gateway.ip), 18080)
    nat.unpublish("web")
    with pytest.raises(OSError):
        http_get("127.0.0.1", 18080)


def test_published_on_one_address_and_random_port(
    web: Web, nat: Nat, holder: PortHolder
) -> None:
    (b,) = _publish(nat, holder, "web", web.ip, "127.0.0.1::80")
    assert b.host_port > 0 and b.host_ip == "127.0.0.1"
    assert "hello from the container" in http_get("127.0.0.1", b.host_port)
    with pytest.raises(OSError):  # bound to 127.0.0.1 only
        http_get(str(web.br.gateway.ip), b.host_port)
    assert nat.owners() == {"web"}


def test_a_restarted_daemon_finds_and_removes_rules(
    web: Web, nat: Nat, holder: PortHolder
) -> None:
    _publish(nat, holder, "web", web.ip, "127.0.0.1::80")
    holder.release("web")  # the old daemon died: its sockets went with it
    again = firewall_of(nat.name)
    again.setup()
    assert again.owners() == {"web"}
    again.unpublish("web")
    again.remove_network(web.br.name)
    assert again.owners() == set()
    listing = rules_text(nat)
    assert "comment" not in listing and web.br.name not in listing


def test_hairpin_from_a_neighbour(
    web: Web, nat: Nat, holder: PortHolder, make_netns: Callable[[], Netns]
) -> None:
    (b,) = _publish(nat, holder, "web", web.ip, "80")
    other = make_netns()
    bridge.attach(web.br.name, other.path, "svtwo", web.br.address(3), web.br.gateway.ip)
    url = f"http://{web.br.gateway.ip}:{b.host_port}/index.html"
    out = other.run("python3", "-c", FETCH, url)
    assert "hello from the container" in out.stdout, out.stderr
    mine = web.ns.run("python3", "-c", FETCH, url)
    assert "hello from the container" in mine.stdout, mine.stderr


def test_udp_echo(web: Web, nat: Nat, holder: PortHolder) -> None:
    web.ns.spawn("python3", "-c", UDP_ECHO)
    (b,) = _publish(nat, holder, "udp", web.ip, "127.0.0.1::9000/udp")
    holder.release("udp")  # the rule works without the holding socket in the way
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for _ in range(20):  # the server may still be starting
            sock.sendto(b"ping", ("127.0.0.1", b.host_port))
            try:
                assert sock.recvfrom(2048)[0] == b"echo:ping"
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no UDP echo through the published port")


def test_port_conflicts(holder: PortHolder) -> None:
    (b,) = holder.reserve("a", ports.parse("127.0.0.1::80"))
    with pytest.raises(Conflict, match="port is already allocated"):
        holder.reserve("b", ports.parse(f"{b.host_port}:80"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        with pytest.raises(Conflict, match=f"127.0.0.1:{port} failed"):
            holder.reserve("c", [*ports.parse("8081:81"), *ports.parse(f"127.0.0.1:{port}:80")])
    holder.release("a")
    # nothing of c's first binding is held after its second failed
    assert [x.host_port for x in holder.reserve("d", ports.parse("8081:81"))] == [8081]


ECHO_PEER = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET6)\n"
    "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('::', 7000))\n"
    "s.listen()\n"
    "while True:\n"
    "    c, a = s.accept()\n"
    "    c.sendall(a[0].removeprefix('::ffff:').encode() + b'\\n')\n"
    "    c.close()\n"
)
CONNECT = ("import socket, sys\n"
           "s = socket.create_connection((sys.argv[1], 7000), timeout=2)\n"
           "print('peer', s.recv(100).decode())\n")


@dataclass
class Uplink:
    """A namespace standing for the world outside the host, on a veth of its own, with
    no route back to any bridge's subnet: a reply reaches a container only if its
    connection was masqueraded to the host's address on this link."""

    ns: Netns
    host4: str = "10.231.99.1"
    far4: str = "10.231.99.2"
    host6: str = "fd00:231:99::1"
    far6: str = "fd00:231:99::2"


@pytest.fixture
def uplink(make_netns: Callable[[], Netns]) -> Iterator[Uplink]:
    up = Uplink(make_netns())
    subprocess.run(["ip", "link", "add", "svtup", "type", "veth", "peer", "name", "up0",
                    "netns", str(up.ns.pid)], check=True)
    try:
        for cmd in (f"addr add {up.host4}/24 dev svtup", f"addr add {up.host6}/64 dev svtup "
                    "nodad", "link set svtup up"):
            subprocess.run(["ip", *cmd.split()], check=True)
        for cmd in ("link set lo up", "link set up0 up", f"addr add {up.far4}/24 dev up0",
                    f"addr add {up.far6}/64 dev up0 nodad"):
            assert up.ns.run("ip", *cmd.split()).returncode == 0
        up.ns.spawn("python3", "-c", ECHO_PEER)
        wait_port(up.far4, 7000)
        yield up
    finally:
        bridge.delete_link("svtup")


def _peer_seen(ns: Netns, address: str) -> str:
    """The source address the uplink's server saw, or "" when nothing came back."""
    out = ns.run("python3", "-c", CONNECT, address)
    return out.stdout.split("peer ")[-1].strip() if out.returncode == 0 else ""


def test_masquerade_internal_and_isolation(
    make_bridge: MakeBridge, make_netns: Callable[[], Netns], nat: Nat, uplink: Uplink
) -> None:
    """Outbound NAT for IPv4 and IPv6, none for --internal, no way between networks."""
    enable_ip_forward()
    enable_ip6_forward()
    out_br = make_bridge("o", "10.231.12.0/24", "fd00:231:12::/64")
    nat.add_network(out_br.name, out_br.subnet, subnet6=out_br.subnet6)
    inner = make_bridge("i", "10.231.11.0/24", "fd00:231:11::/64")
    nat.add_network(inner.name, inner.subnet, internal=True, subnet6=inner.subnet6)
    ns, locked_in = make_netns(), make_netns()
    for br, where, veth in ((out_br, ns, "svto"), (inner, locked_in, "svti")):
        bridge.attach(br.name, where.path, veth, br.address(2), br.gateway.ip,
                      address6=br.address6(2), gateway6=br.address6(1).ip)
    # masqueraded to the host's address on the way out, both families
    assert _peer_seen(ns, uplink.far4) == uplink.host4
    assert _peer_seen(ns, uplink.far6) == uplink.host6
    # an internal network forwards nothing (it has a route here: the rules stop it)
    assert _peer_seen(locked_in, uplink.far4) == ""
    assert _peer_seen(locked_in, uplink.far6) == ""
    # nor may one network reach into another, in either direction
    locked_in.spawn("python3", "-c", ECHO_PEER)
    wait_port(str(inner.address(2).ip), 7000)
    assert _peer_seen(ns, str(inner.address(2).ip)) == ""
    assert _peer_seen(ns, str(inner.address6(2).ip)) == ""
    # the network made again as not internal: out it goes
    nat.add_network(inner.name, inner.subnet, subnet6=inner.subnet6)
    assert _peer_seen(locked_in, uplink.far4) == uplink.host4
    assert _peer_seen(locked_in, uplink.far6) == uplink.host6
    assert read(f"net.ipv4.conf.{inner.name}.route_localnet") == "1"
    rules = rules_text(nat)
    nat.setup()  # a restarted daemon keeps what is there
    assert rules_text(nat) == rules
    nat.remove_network(inner.name)
    nat.remove_network(out_br.name)
    assert "net:" not in rules_text(nat)


def test_ip_forward_is_on() -> None:
    assert enable_ip_forward() in ("0", "1")
    assert read("net.ipv4.ip_forward") == "1"


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("80", [PortBinding(80)]),
        ("8080:80", [PortBinding(80, host_port=8080)]),
        ("127.0.0.1:8080:80/udp", [PortBinding(80, "udp", "127.0.0.1", 8080)]),
        ("127.0.0.1::53/udp", [PortBinding(53, "udp", "127.0.0.1")]),
        ("[10.0.0.1]:1:2", [PortBinding(2, "tcp", "10.0.0.1", 1)]),
        ("80-81", [PortBinding(80), PortBinding(81)]),
        ("9000-9001:80-81", [PortBinding(80, host_port=9000), PortBinding(81, host_port=9001)]),
    ],
)
def test_parse(spec: str, want: list[PortBinding]) -> None:
    assert ports.parse(spec) == want


@pytest.mark.parametrize(
    "spec",
    ["", "0", "70000", "80/sctp", "x:80", "1.2.3:80:80", "a:b:c:d", "81-80", "1-3:80-81"],
)
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(ports.InvalidRequest):
        ports.parse(spec)
