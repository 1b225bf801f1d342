"""Bridges and veths against the real kernel: addresses inside, reachability, isolation."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from sampan.network import bridge
from sampan.network.errors import Conflict, NetworkError, NotFound
from sampan.network.nat import Nat
from tests.network.conftest import BUSYBOX, Bridge, Netns

MakeBridge = Callable[[str, str], Bridge]


def _ping(ns: Netns, address: object) -> bool:
    return ns.run(BUSYBOX, "ping", "-c", "1", "-W", "1", str(address)).returncode == 0


def test_attach_configures_inside(make_bridge: MakeBridge, make_netns: Callable[[], Netns]) -> None:
    br = make_bridge("a", "10.231.1.0/24")
    ns = make_netns()
    ep = bridge.attach(br.name, ns.path, "svta", br.address(2), br.gateway.ip)
    assert ep.mac == "02:42:0a:e7:01:02"
    addr = ns.run("ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert "inet 10.231.1.2/24" in addr
    link = ns.run("ip", "-o", "link", "show", "eth0").stdout
    assert "state UP" in link and "02:42:0a:e7:01:02" in link
    assert "default via 10.231.1.1 dev eth0" in ns.run("ip", "route").stdout
    assert "state UNKNOWN" in ns.run("ip", "-o", "link", "show", "lo").stdout
    assert _ping(ns, br.gateway.ip)
    bridge.detach("svta")
    assert bridge.links("svta") == []
    assert "eth0" not in ns.run("ip", "-o", "link").stdout
    bridge.detach("svta")  # repeatable


def test_attach_dual_stack_mtu_and_hairpin(
    make_bridge: MakeBridge, make_netns: Callable[[], Netns]
) -> None:
    """Every setting of the veth's messages (rtnl.py) as the kernel reports it: the MTU on
    both ends, the host end a hairpin port of the bridge, the IPv6 address usable at once
    (no duplicate detection) with its default route."""
    br = make_bridge("d", "10.231.7.0/24", "fd00:231:7::/64")
    ns = make_netns()
    bridge.attach(br.name, ns.path, "svtd", br.address(2), br.gateway.ip, mtu=1400,
                  address6=br.address6(2), gateway6=br.address6(1).ip)
    with open("/sys/class/net/svtd/brport/hairpin_mode") as f:
        assert f.read().strip() == "1"
    with open("/sys/class/net/svtd/mtu") as f:
        assert f.read().strip() == "1400"
    assert os.path.basename(os.readlink("/sys/class/net/svtd/master")) == br.name
    assert "mtu 1400" in ns.run("ip", "-o", "link", "show", "eth0").stdout
    addr6 = ns.run("ip", "-6", "-o", "addr", "show", "eth0").stdout.splitlines()
    mine = [line for line in addr6 if "inet6 fd00:231:7::2/64" in line]
    assert mine and "nodad" in mine[0] and "tentative" not in mine[0], addr6
    assert "default via fd00:231:7::1 dev eth0" in ns.run("ip", "-6", "route").stdout
    assert ns.run(BUSYBOX, "ping", "-6", "-c", "1", "-W", "1", "fd00:231:7::1").returncode == 0


def test_attach_by_fd_and_second_interface(
    make_bridge: MakeBridge, make_netns: Callable[[], Netns]
) -> None:
    br1, br2 = make_bridge("b1", "10.231.2.0/24"), make_bridge("b2", "10.231.3.0/24")
    ns = make_netns()
    fd = os.open(ns.path, os.O_RDONLY)
    try:
        bridge.attach(br1.name, fd, "svtb1", br1.address(2), br1.gateway.ip)
        bridge.attach(br2.name, fd, "svtb2", br2.address(2), None, ifname="eth1")
    finally:
        os.close(fd)
    out = ns.run("ip", "-4", "-o", "addr").stdout
    assert "eth0    inet 10.231.2.2/24" in out and "eth1    inet 10.231.3.2/24" in out
    assert ns.run("ip", "route", "show", "default").stdout.count("default") == 1


def test_same_bridge_reaches_other_bridge_does_not(
    make_bridge: MakeBridge, make_netns: Callable[[], Netns], nat: Nat
) -> None:
    br1, br2 = make_bridge("p1", "10.231.4.0/24"), make_bridge("p2", "10.231.5.0/24")
    nat.add_network(br1.name, br1.subnet)
    nat.add_network(br2.name, br2.subnet)
    a, b, c = make_netns(), make_netns(), make_netns()
    bridge.attach(br1.name, a.path, "svtpa", br1.address(2), br1.gateway.ip)
    bridge.attach(br1.name, b.path, "svtpb", br1.address(3), br1.gateway.ip)
    bridge.attach(br2.name, c.path, "svtpc", br2.address(2), br2.gateway.ip)
    assert _ping(a, br1.address(3).ip)
    assert _ping(b, br1.address(2).ip)
    assert not _ping(a, br2.address(2).ip)
    assert not _ping(c, br1.address(2).ip)


def test_errors(make_bridge: MakeBridge, make_netns: Callable[[], Netns]) -> None:
    br = make_bridge("e", "10.231.6.0/24")
    ns = make_netns()
    with pytest.raises(NotFound):
        bridge.attach("sbtmissing", ns.path, "svte", br.address(2), None)
    with pytest.raises(NotFound):
        bridge.attach(br.name, "/proc/0/ns/net", "svte", br.address(2), None)
    bridge.attach(br.name, ns.path, "svte", br.address(2), None)
    with pytest.raises(Conflict):
        bridge.attach(br.name, ns.path, "svte", br.address(3), None)
    with pytest.raises(Conflict):  # eth0 is taken inside
        bridge.attach(br.name, ns.path, "svte2", br.address(3), None)
    assert bridge.links("svte2") == []
    with pytest.raises(NetworkError, match="unreachable"):  # a gateway off the subnet
        bridge.attach(br.name, make_netns().path, "svtf", br.address(4), br.address(4).ip + 512)
    assert bridge.links("svtf") == []  # the half-made veth went
    bridge.create_bridge(br.name, br.gateway)  # idempotent


def test_names() -> None:
    assert bridge.bridge_name("0123456789abcdef") == "sbr-0123456789a"
    assert bridge.veth_name("0123456789abcdef") == "sv0123456789ab0"
    assert len(bridge.veth_name("0123456789abcdef", 12)) == 15
