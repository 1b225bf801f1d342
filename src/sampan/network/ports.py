"""Published ports: parsing ``-p`` and holding the host ports while they are published.

A published port is served by DNAT rules, not by a process; nothing would stop another
program from binding the same port later and then being silently shadowed by the rule.
So each published host port is held by a bound (not listening) socket for as long as it
is published: a port in use is refused at publish time with Docker's message, a random
port is the kernel's choice of a free one, and later binds by others fail visibly.
"""

from __future__ import annotations

import errno
import socket
import threading
from dataclasses import dataclass, replace
from ipaddress import ip_address

from sampan.network.errors import Conflict, InvalidRequest

PROTOCOLS = ("tcp", "udp")
ANY = "0.0.0.0"
ANY6 = "::"


@dataclass(frozen=True)
class PortBinding:
    """``[host_ip:]host_port:container_port/proto``; host_port 0 is a random port."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ANY
    host_port: int = 0

    def __str__(self) -> str:
        host = f"[{self.host_ip}]" if self.v6 else self.host_ip
        return f"{host}:{self.host_port}->{self.container_port}/{self.proto}"

    @property
    def v6(self) -> bool:
        return ":" in self.host_ip


def _port(text: str, spec: str, allow_zero: bool = False) -> int:
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise InvalidRequest(f"invalid port {text!r} in {spec!r}")
    return int(text)


def _ports(text: str, spec: str, allow_zero: bool = False) -> list[int]:
    """A port or an inclusive range ``first-last``."""
    first, dash, last = text.partition("-")
    low = _port(first, spec, allow_zero)
    high = _port(last, spec) if dash else low
    if high < low:
        raise InvalidRequest(f"invalid port range {text!r} in {spec!r}")
    return list(range(low, high + 1))


def parse(spec: str) -> list[PortBinding]:
    """One ``-p`` value: ``80``, ``8080:80``, ``127.0.0.1:8080:80``, ``127.0.0.1::80/udp``,
    ``[::1]:8080:80``, or ranges of equal length (``8000-8001:80-81``) giving one binding
    per port."""
    rest, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in PROTOCOLS:
        raise InvalidRequest(f"invalid protocol {proto!r} in {spec!r}")
    parts = rest.rsplit(":", 2)
    host_ip = ANY
    if len(parts) == 3:
        host_ip = parts[0].strip("[]") or ANY
        try:
            host_ip = str(ip_address(host_ip))
        except ValueError:
            raise InvalidRequest(f"invalid host address {host_ip!r} in {spec!r}") from None
    inside = _ports(parts[-1], spec)
    hosts = [0] * len(inside)
    if len(parts) > 1 and parts[-2]:
        hosts = _ports(parts[-2], spec, allow_zero=True)
        if len(hosts) != len(inside):
            raise InvalidRequest(f"host and container port ranges differ in length in {spec!r}")
    return [PortBinding(c, proto, host_ip, h) for h, c in zip(hosts, inside, strict=True)]


def _bind(binding: PortBinding) -> socket.socket:
    kind = socket.SOCK_STREAM if binding.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET6 if binding.v6 else socket.AF_INET, kind)
    try:
        if binding.v6:  # [::]:port beside 0.0.0.0:port, as two bindings
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:  # it listens (the proxy's): a port its last
                # connections left in TIME_WAIT can be published again at once
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((binding.host_ip, binding.host_port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            host = f"[{binding.host_ip}]" if binding.v6 else binding.host_ip
            raise Conflict(
                f"Bind for {host}:{binding.host_port} failed: "
                "port is already allocated"
            ) from None
        raise Conflict(f"cannot bind {binding.host_ip}:{binding.host_port}: {exc}") from None
    return sock


class PortHolder:
    """The sockets holding published host ports, per owner (a container id)."""

    def __init__(self) -> None:
        self._held: dict[str, list[tuple[PortBinding, socket.socket]]] = {}
        self._lock = threading.Lock()

    def reserve(self, owner: str, bindings: list[PortBinding]) -> list[PortBinding]:
        """Bind every host port (random ones chosen now); all or none are held."""
        taken: list[tuple[PortBinding, socket.socket]] = []
        try:
            for binding in bindings:
                sock = _bind(binding)
                taken.append((replace(binding, host_port=sock.getsockname()[1]), sock))
        except BaseException:
            for _, sock in taken:
                sock.close()
            raise
        with self._lock:
            self._held.setdefault(owner, []).extend(taken)
        return [b for b, _ in taken]

    def socket_of(self, owner: str, binding: PortBinding) -> socket.socket:
        """The socket holding ``binding`` (resolved), for a proxy to listen on."""
        with self._lock:
            return next(s for b, s in self._held.get(owner, []) if b == binding)

    def release(self, owner: str) -> None:
        with self._lock:
            for _, sock in self._held.pop(owner, []):
                sock.close()

    def release_all(self) -> None:
        with self._lock:
            owners = list(self._held)
        for owner in owners:
            self.release(owner)
