"""The network service's records: networks, containers' memberships and endpoints, and
what the runtime spec takes from networking (``Sandbox``), persisted as plain JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_interface
from typing import Any

from ..errors import StatusError
from ..network.ports import PortBinding

PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"
DEFAULT_MTU = 1500


class Forbidden(StatusError):
    """Docker's 403: removing a predefined network or one in use, a second endpoint."""

    status = 403


@dataclass
class Network:
    """A network as ``docker network create`` made it (IPAM state lives in the Ipam)."""

    id: str
    name: str
    driver: str  # bridge | host | null
    created: str
    bridge: str = ""  # the bridge interface of a bridge network
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] = field(default_factory=dict)
    enable_ipv6: bool = False

    @property
    def user_defined(self) -> bool:
        return self.name not in PREDEFINED

    @property
    def mtu(self) -> int:
        text = self.options.get(OPT_MTU, "")
        return int(text) if text.isdigit() else DEFAULT_MTU


@dataclass
class Endpoint:
    """A running container's interface on one network."""

    id: str
    ifname: str
    host_ifname: str
    address: str  # with its prefix, e.g. 172.30.0.2/24
    gateway: str
    mac: str
    address6: str = ""  # on a dual-stack network, e.g. fd00:1::2/64
    gateway6: str = ""

    def ips(self) -> list[IPv4Address | IPv6Address]:
        """Its addresses without prefix: what names resolve to, what /etc/hosts lists."""
        return [ip_interface(a).ip for a in (self.address, self.address6) if a]


@dataclass
class Membership:
    """A container's place on a network: what it asked for, and its endpoint while it runs."""

    aliases: list[str] = field(default_factory=list)
    ipv4: str = ""  # the requested address (--ip), empty for any
    endpoint: Endpoint | None = None
    ipv6: str = ""  # the requested IPv6 address (--ip6)


@dataclass
class ContainerNet:
    """What the service keeps per container."""

    networks: dict[str, Membership] = field(default_factory=dict)  # network id → membership
    netns: str = ""  # while running: the namespace it joins
    ports: list[dict[str, Any]] = field(default_factory=list)  # published, resolved
    dns: bool = False  # an embedded DNS socket serves it

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ContainerNet:
        nets = {}
        for nid, m in (doc.get("networks") or {}).items():
            ep = m.get("endpoint")
            nets[nid] = Membership(list(m.get("aliases") or []), m.get("ipv4") or "",
                                   Endpoint(**ep) if ep else None, m.get("ipv6") or "")
        return cls(nets, doc.get("netns") or "", list(doc.get("ports") or []),
                   bool(doc.get("dns")))


@dataclass
class Sandbox:
    """What the runtime spec needs from networking: the namespace to join (None: a new
    one from the runtime; ``host``: none at all), the /etc files' text, and the
    variables of ``--link`` (before the container's own, which win)."""

    netns: str | None
    host: bool
    files: dict[str, str]
    env: list[str] = field(default_factory=list)


def binding_json(b: PortBinding) -> dict[str, Any]:
    return {"container_port": b.container_port, "proto": b.proto, "host_ip": b.host_ip,
            "host_port": b.host_port}


def read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
