"""The rtnetlink requests of a bridge-mode container's start, packed with struct and sent
in batches.

Everything else about links goes through pyroute2 (netlink.py). On this path, once per
container start, its request encoder and the event loop under its synchronous API cost
0.5-0.9 ms of CPU per request, about 7 of the 8.5 ms a veth's attach took (the kernel's
part is about 1.5 ms). The few messages a veth needs have a fixed shape, so they are
packed here and sent together: the kernel handles the messages of one send in order and
acknowledges each one, so a batch costs one system call each way.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_NET_NS_FD = 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFA_F_NODAD = 0x02
RTA_OIF, RTA_GATEWAY = 4, 5
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1
NLA_F_NESTED = 0x8000
IFF_UP = 0x1
LOOPBACK_INDEX = 1  # lo's index in every network namespace


def _attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + bytes(-size % 4)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _name(kind: int, name: str) -> bytes:
    return _attr(kind, name.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _ifinfo(index: int = 0, up: bool = False) -> bytes:
    """struct ifinfomsg: family, type, index, flags, change."""
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP if up else 0,
                       IFF_UP if up else 0)


@dataclass
class Message:
    type: int
    flags: int
    body: bytes
    what: str  # for the error: "creating veth sv1234"
    tolerate: tuple[int, ...] = ()  # errnos that are no error (EEXIST of an address)


def new_veth(host_ifname: str, master: int, mtu: int, peer: str, netns_fd: int,
             mac: str) -> Message:
    """A veth, up, whose host end is a port of bridge ``master`` and whose other end,
    ``peer``, is born inside the namespace ``netns_fd`` with ``mac`` (down: a veth end
    cannot come up before its peer is linked to it, ENOTCONN)."""
    peer_info = _ifinfo() + _name(IFLA_IFNAME, peer) + _u32(IFLA_MTU, mtu) + \
        _u32(IFLA_NET_NS_FD, netns_fd) + _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
    body = _ifinfo(up=True) + _name(IFLA_IFNAME, host_ifname) + _u32(IFLA_MTU, mtu) + \
        _u32(IFLA_MASTER, master) + _nested(
            IFLA_LINKINFO, _name(IFLA_INFO_KIND, "veth"),
            _nested(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_info)))
    return Message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"creating veth {host_ifname}")


def hairpin(ifname: str) -> Message:
    """Bridge port ``ifname`` may send a frame back out of the port it came in on."""
    body = _ifinfo() + _name(IFLA_IFNAME, ifname) + _nested(
        IFLA_LINKINFO, _name(IFLA_INFO_SLAVE_KIND, "bridge"),
        _nested(IFLA_INFO_SLAVE_DATA, _attr(IFLA_BRPORT_MODE, b"\1")))
    return Message(RTM_NEWLINK, 0, body, f"setting hairpin mode on {ifname}")


def delete_link(ifname: str) -> Message:
    return Message(RTM_DELLINK, 0, _ifinfo() + _name(IFLA_IFNAME, ifname),
                   f"deleting {ifname}")


def link_up(index: int) -> Message:
    return Message(RTM_NEWLINK, 0, _ifinfo(index, up=True), f"setting link {index} up")


def add_address(index: int, address: IPv4Interface | IPv6Interface) -> Message:
    """``address`` on link ``index`` (already there is no error); an IPv6 one without
    duplicate detection, usable at once."""
    ip = address.ip.packed
    v6 = address.version == 6
    head = struct.pack("=BBBBI", socket.AF_INET6 if v6 else socket.AF_INET,
                       address.network.prefixlen, IFA_F_NODAD if v6 else 0, 0, index)
    attrs = _attr(IFA_ADDRESS, ip) if v6 else _attr(IFA_LOCAL, ip) + _attr(IFA_ADDRESS, ip)
    return Message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, head + attrs,
                   f"adding address {address}", tolerate=(errno.EEXIST,))


def add_default_route(index: int, gateway: IPv4Address | IPv6Address) -> Message:
    """The default route of ``gateway``'s family through ``gateway`` on link ``index``."""
    family = socket.AF_INET6 if gateway.version == 6 else socket.AF_INET
    head = struct.pack("=BBBBBBBBI", family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC,
                       RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    return Message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL,
                   head + _attr(RTA_GATEWAY, gateway.packed) + _u32(RTA_OIF, index),
                   f"adding the default route via {gateway}")


@dataclass
class Socket:
    """An rtnetlink socket, in the network namespace of the thread that opens it."""

    sock: socket.socket = field(default_factory=lambda: socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE))
    seq: int = 0

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(self, messages: Iterable[Message]) -> None:
        """Send the messages at once and wait for every ack; raise the first error (an
        OSError with its errno) once all are answered."""
        pending: dict[int, Message] = {}
        out = bytearray()
        for m in messages:
            self.seq += 1
            pending[self.seq] = m
            out += struct.pack("=IHHII", 16 + len(m.body), m.type,
                               NLM_F_REQUEST | NLM_F_ACK | m.flags, self.seq, 0) + m.body
        self.sock.send(out)
        failed: list[tuple[int, OSError]] = []
        while pending:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                size, kind, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
                if kind == NLMSG_ERROR and seq in pending:
                    code = -struct.unpack_from("=i", data, offset + 16)[0]
                    m = pending.pop(seq)
                    if code and code not in m.tolerate:
                        failed.append((seq, OSError(code, f"{m.what}: {os.strerror(code)}")))
                offset += (size + 3) & ~3 or len(data)
        if failed:
            raise min(failed, key=lambda f: f[0])[1]
