"""A container's /etc/hostname, /etc/hosts and /etc/resolv.conf, as dockerd writes them
for each network mode (the text from ``sampan.network.files``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from ..network import files as etc
from .errors import InvalidParameter
from .netmodel import read_text
from .record import Container

NAMES = ("hostname", "hosts", "resolv.conf")


def etc_files(c: Container, addresses: list[str], *, embedded_dns: bool,
              host_gateway: str, host_mode: bool = False,
              links: Sequence[etc.HostEntry] = ()) -> dict[str, str]:
    """The files' text; ``host_gateway`` is what ``--add-host x:host-gateway`` means,
    ``links`` the ``--link`` entries."""
    hc = c.host_config
    extra = []
    for spec in hc.get("ExtraHosts") or []:
        try:
            entry = etc.HostEntry.parse(spec)
        except ValueError as exc:
            raise InvalidParameter(f"HostConfig.ExtraHosts: {exc}") from None
        if entry.address == "host-gateway":
            entry = etc.HostEntry(entry.name, host_gateway)
        extra.append(entry)
    host_resolv = read_text("/etc/resolv.conf")
    if host_mode and not (hc.get("Dns") or hc.get("DnsSearch") or hc.get("DnsOptions")):
        resolv = host_resolv
    else:
        resolv = etc.resolv_file(host_resolv, hc.get("Dns") or [], hc.get("DnsSearch") or [],
                                 hc.get("DnsOptions") or [], embedded_dns=embedded_dns)
    if host_mode:
        hostname = socket.gethostname()
        hosts = read_text("/etc/hosts") + "".join(f"{e.address}\t{e.name}\n" for e in extra)
    else:
        hostname = c.config.get("Hostname") or c.id[:12]
        domain = c.config.get("Domainname") or ""
        hosts = etc.hosts_file(f"{hostname}.{domain}" if domain else hostname, addresses,
                               [*extra, *links])
    return {"hostname": etc.hostname_file(hostname), "hosts": hosts, "resolv.conf": resolv}


def read_files(directory: str) -> dict[str, str]:
    """A container's current files (``container:<other>`` mode shares the other's)."""
    return {name: read_text(os.path.join(directory, name)) for name in NAMES}


def rewrite(path: str, text: str) -> None:
    """Replace a bind-mounted file's content in place: the container sees the same inode."""
    if os.path.exists(path):
        with open(path, "r+") as f:
            f.truncate(0)
            f.write(text)
