"""Bridge networks through netlink: the bridge with its gateway, and veths into containers.

The container's end of a veth is created directly inside the container's network
namespace, under its final name: it never appears on the host, so no host tool or
udev sees a transient ``eth0`` and no rename or namespace move is needed.
"""

from __future__ import annotations

import errno
import os
from contextlib import suppress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

from sampan.network import netlink, sysctl
from sampan.network.errors import Conflict, InvalidRequest, NetworkError, NotFound
from sampan.network.netlink import error_code, index

IFNAMSIZ = 15
IFA_F_NODAD = 0x02  # an IPv6 address usable at once: no duplicate detection on our bridges
DEFAULT_BRIDGE = "sampan0"
USER_BRIDGE_PREFIX = "sbr-"
VETH_PREFIX = "sv"


@dataclass(frozen=True)
class Endpoint:
    """A container's attachment: the host end on the bridge, the named end inside."""

    bridge: str
    host_ifname: str
    ifname: str
    address: IPv4Interface
    gateway: IPv4Address | None
    mac: str
    address6: IPv6Interface | None = None
    gateway6: IPv6Address | None = None


def bridge_name(network_id: str) -> str:
    """``sbr-`` and the network id's first characters, within the kernel's 15."""
    return (USER_BRIDGE_PREFIX + network_id)[:IFNAMSIZ]


def veth_name(container_id: str, index: int = 0) -> str:
    """The host end's name: stable per container and interface, so a restart finds it."""
    suffix = f"{index:x}"
    return VETH_PREFIX + container_id[: IFNAMSIZ - len(VETH_PREFIX) - len(suffix)] + suffix


def mac_for(address: IPv4Address) -> str:
    """Docker's scheme, 02:42 and the address: a locally administered, stable MAC."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def random_mac() -> str:
    """A random locally administered unicast MAC."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def _check_name(name: str) -> None:
    if not name or len(name) > IFNAMSIZ or "/" in name or name.strip() != name:
        raise InvalidRequest(f"invalid interface name {name!r}")


def _ipv4_only(name: str) -> None:
    """No IPv6 on the host side of an IPv4 bridge: no link-local address or routes for
    the host to announce there, and the bridge has only what sampan put on it. Bridged
    IPv6 between containers is not affected (the bridge forwards frames)."""
    with suppress(FileNotFoundError):  # IPv6 is off on this host
        sysctl.write(f"net.ipv6.conf.{name}.disable_ipv6", "1")


def _add_address(ipr: Any, ifindex: int, address: IPv4Interface | IPv6Interface) -> None:
    """Put ``address`` on the interface; already there is no error."""
    extra = {"flags": IFA_F_NODAD} if address.version == 6 else {}
    try:
        ipr.addr("add", index=ifindex, address=str(address.ip),
                 prefixlen=address.network.prefixlen, **extra)
    except Exception as exc:
        if error_code(exc) != errno.EEXIST:
            raise


def create_bridge(name: str, gateway: IPv4Interface | None, mtu: int = 1500,
                  gateway6: IPv6Interface | None = None) -> None:
    """Create (or complete) bridge ``name`` with ``gateway`` on it, up; a dual-stack
    network's bridge has ``gateway6`` too (and IPv6 on).

    Idempotent, so a daemon restarting after a crash can call it for every network.
    An internal network without a gateway gets a bridge with no address.
    """
    _check_name(name)
    with netlink.ipr() as ipr:
        ifindex = index(name)
        if ifindex is None:
            # A fixed MAC: a bridge left to take its ports' lowest one changes its MAC as
            # containers come and go (and has 00:00:00:00:00:00 with none), and the
            # containers' ARP entries for the gateway go stale.
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu, address=random_mac())
            if gateway6 is None:
                _ipv4_only(name)
            ifindex = index(name)
            assert ifindex is not None
        else:
            info = ipr.get_links(ifindex)[0].get_attr("IFLA_LINKINFO")
            if info is None or info.get_attr("IFLA_INFO_KIND") != "bridge":
                raise Conflict(f"interface {name} exists and is not a bridge")
        if gateway is not None:
            _add_address(ipr, ifindex, gateway)
        if gateway6 is not None:
            _add_address(ipr, ifindex, gateway6)
        ipr.link("set", index=ifindex, state="up")


def delete_link(name: str) -> None:
    """Delete interface ``name``: a bridge, or a veth with its peer inside a container.

    Absent is no error: teardown is repeatable, and a veth has already gone with its
    container's namespace when the container's last process exited.
    """
    with netlink.ipr() as ipr:
        ifindex = index(name)
        if ifindex is not None:
            try:
                ipr.link("del", index=ifindex)
            except Exception as exc:
                if error_code(exc) != errno.ENODEV:
                    raise


delete_bridge = delete_link
detach = delete_link


def attach(
    bridge: str,
    netns: str | int,
    host_ifname: str,
    address: IPv4Interface,
    gateway: IPv4Address | None,
    ifname: str = "eth0",
    mtu: int = 1500,
    address6: IPv6Interface | None = None,
    gateway6: IPv6Address | None = None,
) -> Endpoint:
    """Connect the namespace ``netns`` to ``bridge`` through a veth, configured and up.

    Inside: ``ifname`` with ``address``, loopback up, and a default route through
    ``gateway`` (none for an internal network, or for a second network's interface).
    On failure the veth is deleted, so nothing is left half made.
    """
    _check_name(host_ifname)
    _check_name(ifname)
    mac = mac_for(address.ip)
    with netlink.netns_fd(netns) as fd, netlink.ipr() as ipr:
        master = index(bridge)
        if master is None:
            raise NotFound(f"bridge {bridge} does not exist")
        try:
            ipr.link(
                "add", ifname=host_ifname, kind="veth", master=master, mtu=mtu, state="up",
                peer={"ifname": ifname, "net_ns_fd": fd, "address": mac, "mtu": mtu},
            )
        except Exception as exc:
            if error_code(exc) == errno.EEXIST:
                raise Conflict(f"interface {host_ifname} or {ifname} already exists") from None
            raise NetworkError(f"creating veth {host_ifname}: {exc}") from exc
        try:
            _set_hairpin(ipr, host_ifname)
            _configure_inside(fd, ifname, address, gateway, address6, gateway6)
        except BaseException as exc:
            ipr.link("del", index=index(host_ifname))
            if isinstance(exc, Exception):
                raise NetworkError(f"configuring {ifname} in the container: {exc}") from exc
            raise
    return Endpoint(bridge, host_ifname, ifname, address, gateway, mac, address6, gateway6)


def _set_hairpin(ipr: Any, host_ifname: str) -> None:
    """Let the bridge send a frame back out of the port it came in on.

    With br_netfilter loaded, a container reaching its own published port through a
    host address is DNAT'd back to itself inside the bridge, and the frame must leave
    through the port it arrived on. dockerd sets the same without its userland proxy.
    Through netlink, not sysfs: a sampand in a network namespace of its own sees the
    host's interfaces in /sys.
    """
    ipr.brport("set", index=index(host_ifname), mode=1)


def _configure_inside(
    netns_fd: int, ifname: str, address: IPv4Interface, gateway: IPv4Address | None,
    address6: IPv6Interface | None, gateway6: IPv6Address | None,
) -> None:
    with netlink.in_netns(netns_fd):
        ifindex, lo = index(ifname), index("lo")
        sock = netlink.ipr()
    assert ifindex is not None, f"{ifname} was just created"
    with sock as ipr:
        _add_address(ipr, ifindex, address)
        ipr.link("set", index=ifindex, state="up")
        if lo is not None:
            ipr.link("set", index=lo, state="up")
        if gateway is not None:
            ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=ifindex)
        if address6 is not None:
            _add_address(ipr, ifindex, address6)
        if gateway6 is not None:
            ipr.route("add", dst="::/0", gateway=str(gateway6), oif=ifindex)


def links(prefix: str) -> list[str]:
    """Names of the host's interfaces starting with ``prefix``: what a restart sweeps."""
    with netlink.ipr() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return [name for name in names if name.startswith(prefix)]
