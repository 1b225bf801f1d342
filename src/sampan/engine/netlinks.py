"""Docker's legacy links (``--link name:alias``) on the default bridge: the linked
container's addresses in /etc/hosts and its ports, name and environment as variables
(the ones moby's daemon/links writes: ``ALIAS_PORT_80_TCP_ADDR`` …)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..network.files import HostEntry
from .errors import InvalidParameter
from .record import Container


@dataclass(frozen=True)
class Link:
    name: str  # the linked container's name or id
    alias: str


@dataclass
class Resolved:
    """What the links add to a starting container."""

    hosts: list[HostEntry] = field(default_factory=list)
    env: list[str] = field(default_factory=list)


def parse(raw: Any) -> list[Link]:
    """HostConfig.Links: ``name:alias``, ``name`` (alias = name), or inspect's form
    ``/name:/self/alias``."""
    links = []
    for item in raw or []:
        if not isinstance(item, str) or not item.strip(":/"):
            raise InvalidParameter(f"HostConfig.Links: invalid link {item!r}")
        name, _, alias = item.partition(":")
        name = name.strip("/")
        alias = alias.rsplit("/", 1)[-1] or name
        links.append(Link(name, alias))
    return links


def _port_key(key: str) -> tuple[int, str, int]:
    """withTCPPriority: tcp first, then by protocol, then by number."""
    number, _, proto = key.partition("/")
    proto = proto or "tcp"
    return (0 if proto == "tcp" else 1, proto, int(number))


def link_env(alias: str, link_name: str, child_ip: str, env: list[str],
             exposed: list[str]) -> list[str]:
    """moby's ``Link.ToEnv``: ports (with ranges), name, and the child's environment."""
    prefix_alias = alias.upper().replace("-", "_")
    out: list[str] = []
    ports = [(p, n) for _, p, n in sorted(_port_key(k) for k in exposed)]
    start = end = ports[0] if ports else None
    for i, (proto, number) in enumerate(ports):
        if i == 0:
            out.append(f"{prefix_alias}_PORT={proto}://{child_ip}:{number}")
        prefix = f"{prefix_alias}_PORT_{number}_{proto.upper()}"
        out += [f"{prefix}={proto}://{child_ip}:{number}", f"{prefix}_ADDR={child_ip}",
                f"{prefix}_PORT={number}", f"{prefix}_PROTO={proto}"]
        assert start is not None and end is not None
        if number == end[1] + 1 and proto == end[0]:
            end = (proto, number)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{prefix_alias}_PORT_{start[1]}_{start[0].upper()}"
            out += [f"{prefix}_START={start[0]}://{child_ip}:{start[1]}",
                    f"{prefix}_PORT_START={start[1]}",
                    f"{prefix}_END={end[0]}://{child_ip}:{end[1]}",
                    f"{prefix}_PORT_END={end[1]}"]
        start = end = (proto, number)
    out.append(f"{prefix_alias}_NAME={link_name}")
    for item in env:
        name, sep, value = item.partition("=")
        if sep and name not in ("HOME", "PATH"):
            out.append(f"{prefix_alias}_ENV_{name}={value}")
    return out


def resolve(parent: Container, linked: list[tuple[Link, Container, str]]) -> Resolved:
    """Hosts entries (alias, the child's hostname and its name) and variables."""
    out = Resolved()
    for link, child, ip in linked:
        names = [link.alias, child.config.get("Hostname") or child.id[:12]]
        if link.alias != child.name:
            names.append(child.name)
        out.hosts.append(HostEntry(" ".join(names), ip))
        out.env += link_env(link.alias, f"/{parent.name}/{link.alias}", ip,
                            list(child.config.get("Env") or []),
                            list(child.config.get("ExposedPorts") or {}))
    return out
