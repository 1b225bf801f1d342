"""How sampan talks to registries: TLS trust, insecure registries, credentials, limits.

The defaults are dockerd's: HTTPS everywhere except for insecure registries (loopback
always, others when listed by name or CIDR), which are tried over HTTPS without certificate
checks and then over plain HTTP; three concurrent layer downloads and five uploads.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from .credentials import Credentials

try:
    from importlib.metadata import version as _version

    USER_AGENT = f"sampan/{_version('sampan')}"
except Exception:  # not installed as a distribution (running from a checkout)
    USER_AGENT = "sampan"

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


@dataclass
class RegistryOptions:
    """Settings for a pull, push or any other registry call."""

    # Docker's config.json holding ``auths`` (None: $DOCKER_CONFIG or ~/.docker).
    config_path: str | None = None
    # Credentials for this call's registry; they win over config.json (X-Registry-Auth).
    credentials: Credentials | None = None
    # An extra CA bundle (PEM) trusted besides the system's.
    ca_file: str | None = None
    # Docker's certs.d layout: <certs_dir>/<host:port>/*.crt CAs, *.cert/*.key client certs.
    certs_dir: str | None = None
    # Registries reached over plain HTTP (host, host:port or CIDR), as dockerd's
    # --insecure-registry.
    insecure_registries: Sequence[str] = field(default_factory=tuple)
    # dockerd's registry-mirrors: tried in order for Docker Hub pulls before Docker Hub
    # itself (http://… or https://…[:port]).
    mirrors: Sequence[str] = field(default_factory=tuple)
    # 127.0.0.0/8 and ::1 are insecure in dockerd; tests turn it off to check TLS.
    insecure_loopback: bool = True
    timeout: float = 60.0
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    # Blobs larger than this are uploaded in PATCH chunks of this size; smaller in one PUT.
    chunk_size: int = 32 << 20
    # Attempts after a dropped connection (downloads resume with a Range request).
    retries: int = 3
    retry_delay: float = 0.5
    user_agent: str = USER_AGENT


def _split_host(domain: str) -> tuple[str, int | None]:
    if domain.startswith("["):
        host, _, rest = domain[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = domain.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return domain, None


def is_insecure(domain: str, options: RegistryOptions) -> bool:
    """Whether dockerd would treat ``domain`` (host[:port]) as an insecure registry."""
    host, _ = _split_host(domain)
    networks = []
    for entry in options.insecure_registries:
        entry = entry.removeprefix("http://").removeprefix("https://").rstrip("/")
        if entry in (domain, host):
            return True
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    if options.insecure_loopback:
        networks += [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
        if host.lower() in _LOOPBACK_NAMES:
            return True
    if not networks:
        return False
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not any(n for n in networks if not n.is_loopback):
            return False  # only loopback ranges to match: no DNS lookup for a name
        try:
            addresses = [ipaddress.ip_address(info[4][0]) for info in
                         socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]
        except (OSError, ValueError):
            return False
    return any(a in n for a in addresses for n in networks)
