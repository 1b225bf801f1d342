"""Kernel fixtures for the network library: namespaces, bridges and a table, all cleaned up.

A "container" here is a ``sleep`` in a new network namespace (``unshare --net``); tests
reach it through /proc/<pid>/ns/net and run commands in it with nsenter. Every object
is made under a name owned by this session (bridges ``sbt…``, veths ``svt…``, table
``sampantest`` or chains ``SAMPAN-*-sampantest``) and removed by a finalizer, also when
the test fails. The ``nat`` fixture is each firewall backend in turn: the tests using it
are the backends' conformance suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

import pytest

from sampan.network import bridge
from sampan.network.firewall import BACKENDS, Firewall
from sampan.network.iptables import Iptables
from sampan.network.nat import Nat

BUSYBOX = "/bin/busybox"
TEST_TABLE = "sampantest"
BRIDGE_PREFIX = "sbt"
VETH_PREFIX = "svt"


@dataclass
class Netns:
    """A process holding a fresh network namespace."""

    proc: subprocess.Popen[bytes]
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def run(self, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", "-t", str(self.pid), "-n", *argv],
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            ["nsenter", "-t", str(self.pid), "-n", *argv],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.children.append(child)
        return child

    def stop(self) -> None:
        for proc in [*self.children, self.proc]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _own_netns() -> str:
    return os.readlink("/proc/self/ns/net")


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    made: list[Netns] = []

    def make() -> Netns:
        proc = subprocess.Popen(["unshare", "--net", "sleep", "1000"])
        ns = Netns(proc)
        made.append(ns)
        host = _own_netns()
        deadline = time.monotonic() + 5
        while os.readlink(ns.path) == host:
            assert time.monotonic() < deadline, "unshare did not make a namespace"
            time.sleep(0.002)
        return ns

    yield make
    for ns in made:
        ns.stop()


def delete_links(prefix: str) -> None:
    for name in bridge.links(prefix):
        bridge.detach(name)


def firewall_of(backend: str) -> Firewall:
    """The session's firewall of ``backend`` (a new object: what a restarted daemon has)."""
    return Nat(TEST_TABLE) if backend == "nftables" else Iptables(TEST_TABLE)




def rules_text(fw: Firewall) -> str:
    """Every rule of ``fw``'s own, as its tools list them."""
    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

    if isinstance(fw, Nat):
        return run("nft", "list", "table", "ip", fw.table) + \
            run("nft", "list", "table", "ip6", fw.table)
    assert isinstance(fw, Iptables)
    return "".join(line + "\n" for tool in ("iptables-save", "ip6tables-save")
                   for line in run(tool).splitlines() if fw.suffix + " " in line + " ")


@pytest.fixture(params=BACKENDS)
def nat(request: pytest.FixtureRequest) -> Iterator[Firewall]:
    table = firewall_of(request.param)
    table.teardown()
    table.setup()
    yield table
    table.teardown()


@dataclass
class Bridge:
    name: str
    subnet: IPv4Network
    subnet6: IPv6Network | None = None

    @property
    def gateway(self) -> IPv4Interface:
        return IPv4Interface(f"{self.subnet.network_address + 1}/{self.subnet.prefixlen}")

    def address(self, host: int) -> IPv4Interface:
        return IPv4Interface(f"{self.subnet.network_address + host}/{self.subnet.prefixlen}")

    def address6(self, host: int) -> IPv6Interface:
        assert self.subnet6 is not None
        return IPv6Interface(f"{self.subnet6.network_address + host}/{self.subnet6.prefixlen}")


@pytest.fixture
def make_bridge() -> Iterator[Callable[..., Bridge]]:
    """Bridges ``sbt<suffix>`` with their gateway(s); they and every test veth go at the
    end."""
    made: list[str] = []

    def make(suffix: str, subnet: str, subnet6: str | None = None) -> Bridge:
        br = Bridge(BRIDGE_PREFIX + suffix, IPv4Network(subnet),
                    IPv6Network(subnet6) if subnet6 else None)
        made.append(br.name)
        bridge.create_bridge(br.name, br.gateway, gateway6=br.address6(1) if subnet6 else None)
        return br

    yield make
    delete_links(VETH_PREFIX)
    for name in made:
        bridge.delete_bridge(name)


def wait_port(address: str, port: int, timeout: float = 5) -> None:
    """Wait until a TCP server answers at address:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def http_get(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
