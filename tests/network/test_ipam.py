"""IPAM: pool subnets skipping the host's networks, serial addresses, state across restarts."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from sampan.network.errors import Conflict, Exhausted, InvalidRequest, NotFound
from sampan.network.ipam import Ipam, Pool, host_networks

POOL = Pool(IPv4Network("10.232.0.0/16"), 24)
DUMMY = "sbtdummy"


@pytest.fixture
def ipam(tmp_path: Path) -> Ipam:
    return Ipam(str(tmp_path), [POOL])


@pytest.fixture
def dummy() -> Iterator[str]:
    """A link with an address in the pool's first subnet (a bridge: this kernel has no
    dummy driver), deleted at the end."""
    subprocess.run(["ip", "link", "add", DUMMY, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.232.0.1/24", "dev", DUMMY], check=True)
        yield DUMMY
    finally:
        subprocess.run(["ip", "link", "del", DUMMY], check=False)


def test_pool_subnets_in_order(ipam: Ipam) -> None:
    a = ipam.request_subnet("a")
    b = ipam.request_subnet("b")
    assert (a.subnet, a.gateway) == (IPv4Network("10.232.0.0/24"), IPv4Address("10.232.0.1"))
    assert b.subnet == IPv4Network("10.232.1.0/24")
    assert a.gateway_interface == IPv4Interface("10.232.0.1/24")
    ipam.release_subnet("a")
    assert ipam.request_subnet("c").subnet == IPv4Network("10.232.0.0/24")


def test_skips_a_subnet_the_host_uses(ipam: Ipam, dummy: str) -> None:
    assert IPv4Network("10.232.0.0/24") in host_networks()
    assert ipam.request_subnet("a").subnet == IPv4Network("10.232.1.0/24")


def test_addresses_are_serial_and_survive_a_restart(ipam: Ipam, tmp_path: Path) -> None:
    ipam.request_subnet("n")
    assert ipam.request_address("n", "c1") == IPv4Interface("10.232.0.2/24")
    assert ipam.request_address("n", "c2") == IPv4Interface("10.232.0.3/24")
    ipam.release_address("n", "c1")
    assert ipam.request_address("n", "c3") == IPv4Interface("10.232.0.4/24")  # not .2 yet
    again = Ipam(str(tmp_path), [POOL])
    assert again.subnet("n").allocated == {"10.232.0.3": "c2", "10.232.0.4": "c3"}
    assert again.request_address("n", "c4") == IPv4Interface("10.232.0.5/24")
    again.release_address("n", "nobody")
    again.release_address("gone", "c4")


def test_explicit_subnet_gateway_range_and_address(ipam: Ipam) -> None:
    sub = ipam.request_subnet("n", "192.168.77.0/24", "192.168.77.254", "192.168.77.128/30")
    assert sub.gateway == IPv4Address("192.168.77.254")
    got = [ipam.request_address("n", f"c{i}").ip for i in range(4)]
    assert [str(ip) for ip in got] == [f"192.168.77.{i}" for i in (128, 129, 130, 131)]
    with pytest.raises(Exhausted):
        ipam.request_address("n", "c5")
    ipam.release_address("n", "c1")
    assert str(ipam.request_address("n", "c6").ip) == "192.168.77.129"
    assert str(ipam.request_address("n", "c7", "192.168.77.9").ip) == "192.168.77.9"
    with pytest.raises(Conflict):
        ipam.request_address("n", "c8", "192.168.77.9")
    for bad in ("192.168.77.254", "192.168.77.0", "10.0.0.1", "nonsense"):
        with pytest.raises(InvalidRequest):
            ipam.request_address("n", "c9", bad)


def test_subnet_errors(ipam: Ipam) -> None:
    ipam.request_subnet("n", "192.168.77.0/24")
    with pytest.raises(Conflict):
        ipam.request_subnet("n")
    with pytest.raises(Conflict):
        ipam.request_subnet("m", "192.168.77.128/25")
    for args in [
        ("192.168.78.1/24",), ("192.168.78.0/24", "192.168.79.1"),
        ("192.168.78.0/24", None, "192.168.79.0/28"), ("192.168.78.0/31",),
    ]:
        with pytest.raises(InvalidRequest):
            ipam.request_subnet("m", *args)
    with pytest.raises(InvalidRequest):
        ipam.request_subnet("m", None, "10.232.0.1")
    with pytest.raises(NotFound):
        ipam.request_address("missing", "c")
    assert [s.network_id for s in ipam.subnets()] == ["n"]


def test_pools_exhausted(tmp_path: Path) -> None:
    small = Ipam(str(tmp_path), [Pool(IPv4Network("10.233.0.0/23"), 24)])
    small.request_subnet("a")
    small.request_subnet("b")
    with pytest.raises(Exhausted):
        small.request_subnet("c")


def test_ipv6_subnet_beside_ipv4(ipam: Ipam, tmp_path: Path) -> None:
    """A dual-stack network's IPv6 subnet is explicit; it overlaps only IPv6 subnets."""
    ipam.request_subnet("n1", "10.77.0.0/24")
    six = ipam.request_subnet("n1/6", "fd00:77::/64")
    assert str(six.gateway) == "fd00:77::1"
    assert str(six.gateway_interface) == "fd00:77::1/64"
    assert str(ipam.request_address("n1/6", "c1")) == "fd00:77::2/64"
    assert str(ipam.request_address("n1/6", "c2", "fd00:77::99")) == "fd00:77::99/64"
    with pytest.raises(Conflict):
        ipam.request_subnet("n2/6", "fd00:77::/48")
    with pytest.raises(InvalidRequest):
        ipam.request_subnet("n3/6", "fd00:78::/64", ip_range="10.0.0.0/24")
    # reloaded from its file: serial after the last given (::99), as for IPv4
    assert str(Ipam(str(tmp_path)).request_address("n1/6", "c3")) == "fd00:77::9a/64"
    ipam.release_address("n1/6", "c1")
    assert ipam.find_subnet("n1/6") is not None and ipam.find_subnet("n9") is None
