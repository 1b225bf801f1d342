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
from sampan.network.nat import Nat
from sampan.network.ports import PortBinding, PortHolder
from sampan.network.sysctl import enable_ip_forward, read
from tests.network.conftest import BUSYBOX, Bridge, Netns, http_get, wait_port

MakeBridge = Callable[[str, str], Bridge]
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
    again = Nat(nat.table)
    again.setup()
    assert again.owners() == {"web"}
    again.unpublish("web")
    again.remove_network(web.br.name)
    assert again.owners() == set()
    listing = subprocess.run(
        ["nft", "list", "table", "ip", nat.table], capture_output=True, text=True, check=True
    ).stdout
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


def test_internal_network_has_no_masquerade(make_bridge: MakeBridge, nat: Nat) -> None:
    br = make_bridge("i", "10.231.11.0/24")
    nat.add_network(br.name, br.subnet, internal=True)
    rules = subprocess.run(
        ["nft", "list", "table", "ip", nat.table], capture_output=True, text=True, check=True
    ).stdout
    assert f'ip saddr {br.subnet} oifname != "{br.name}" masquerade' not in rules
    assert f'iifname "{br.name}" oifname != "{br.name}" drop' in rules
    nat.add_network(br.name, br.subnet)
    rules = subprocess.run(
        ["nft", "list", "table", "ip", nat.table], capture_output=True, text=True, check=True
    ).stdout
    assert f'ip saddr {br.subnet} oifname != "{br.name}" masquerade' in rules
    assert "drop comment" in rules  # isolation stays; the internal drops went
    assert f'iifname "{br.name}" oifname != "{br.name}" drop' not in rules
    assert read(f"net.ipv4.conf.{br.name}.route_localnet") == "1"
    nat.setup()  # a restarted daemon keeps what is there
    assert subprocess.run(
        ["nft", "list", "table", "ip", nat.table], capture_output=True, text=True, check=True
    ).stdout == rules


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
