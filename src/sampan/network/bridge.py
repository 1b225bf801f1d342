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

from sampan.network import netlink, rtnl, sysctl
from sampan.network.errors import Conflict, InvalidRequest, NetworkError, NotFound
from sampan.network.netlink import error_code, index

IFNAMSIZ = 15
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
    # an IPv6 address usable at once: no duplicate detection on our bridges
    extra = {"flags": rtnl.IFA_F_NODAD} if address.version == 6 else {}
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
    The host end is a hairpin port: with br_netfilter loaded, a container reaching its
    own published port through a host address is DNAT'd back to itself inside the
    bridge, and the frame must leave through the port it arrived on (dockerd sets the
    same without its userland proxy). On failure the veth is deleted, so nothing is
    left half made. The messages are rtnl's (a container start's hot path).
    """
    _check_name(host_ifname)
    _check_name(ifname)
    mac = mac_for(address.ip)
    with netlink.netns_fd(netns) as fd:
        master = index(bridge)
        if master is None:
            raise NotFound(f"bridge {bridge} does not exist")
        with rtnl.Socket() as host:
            try:
                host.request([rtnl.new_veth(host_ifname, master, mtu, ifname, fd, mac)])
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    taken = f"interface {host_ifname} or {ifname} already exists"
                    raise Conflict(taken) from None
                raise NetworkError(str(exc)) from exc
            try:
                host.request([rtnl.hairpin(host_ifname)])
                _configure_inside(fd, ifname, address, gateway, address6, gateway6)
            except BaseException as exc:
                with suppress(OSError):
                    host.request([rtnl.delete_link(host_ifname)])
                if isinstance(exc, OSError):
                    failed = f"configuring {ifname} in the container: {exc}"
                    raise NetworkError(failed) from exc
                raise
    return Endpoint(bridge, host_ifname, ifname, address, gateway, mac, address6, gateway6)


def _configure_inside(
    netns_fd: int, ifname: str, address: IPv4Interface, gateway: IPv4Address | None,
    address6: IPv6Interface | None, gateway6: IPv6Address | None,
) -> None:
    """Addresses, loopback up and default routes: one batch on a socket made inside."""
    with netlink.in_netns(netns_fd):
        ifindex = index(ifname)
        sock = rtnl.Socket()
    assert ifindex is not None, f"{ifname} was just created"
    messages = [rtnl.add_address(ifindex, address), rtnl.link_up(ifindex),
                rtnl.link_up(rtnl.LOOPBACK_INDEX)]
    if gateway is not None:
        messages.append(rtnl.add_default_route(ifindex, gateway))
    if address6 is not None:
        messages.append(rtnl.add_address(ifindex, address6))
    if gateway6 is not None:
        messages.append(rtnl.add_default_route(ifindex, gateway6))
    with sock:
        sock.request(messages)


def links(prefix: str) -> list[str]:
    """Names of the host's interfaces starting with ``prefix``: what a restart sweeps."""
    with netlink.ipr() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return [name for name in names if name.startswith(prefix)]
