"""/etc/hosts, /etc/resolv.conf and /etc/hostname of a container, as dockerd writes them.

Pure text functions: the engine decides where the files go (dockerd keeps them in the
container's directory and bind-mounts them), so these are tested without a container.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

EMBEDDED_DNS = "127.0.0.11"
# dockerd's fallback when the host lists only loopback resolvers, unreachable from a
# container's own namespace.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")

_HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass(frozen=True)
class HostEntry:
    """One ``--add-host name:ip`` line (the engine resolves ``host-gateway`` first)."""

    name: str
    address: str

    @classmethod
    def parse(cls, spec: str) -> HostEntry:
        name, sep, address = spec.partition(":")
        if not sep or not name or not address:
            raise ValueError(f"invalid --add-host {spec!r}: want name:address")
        return cls(name, address.strip("[]"))


def hostname_file(hostname: str) -> str:
    return hostname + "\n"


def hosts_file(
    hostname: str,
    addresses: Sequence[str] = (),
    extra: Sequence[HostEntry] = (),
    aliases: Sequence[str] = (),
) -> str:
    """The localhost lines, the ``--add-host`` entries, then the container's own names."""
    text = _HOSTS_HEADER
    for entry in extra:
        text += f"{entry.address}\t{entry.name}\n"
    names = [hostname]
    short = hostname.partition(".")[0]
    if short != hostname:
        names.append(short)
    names += [a for a in aliases if a not in names]
    for address in addresses:
        text += f"{address}\t{' '.join(names)}\n"
    return text


@dataclass
class Resolv:
    """The parts of a resolv.conf that docker carries over or replaces."""

    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Resolv:
        conf = cls()
        for line in text.splitlines():
            words = line.split("#", 1)[0].split(";", 1)[0].split()
            if len(words) < 2:
                continue
            if words[0] == "nameserver":
                conf.nameservers.append(words[1])
            elif words[0] in ("search", "domain"):
                conf.search = words[1:]
            elif words[0] == "options":
                conf.options += words[1:]
        return conf

    def render(self) -> str:
        text = "".join(f"nameserver {ns}\n" for ns in self.nameservers)
        if self.search:
            text += f"search {' '.join(self.search)}\n"
        if self.options:
            text += f"options {' '.join(self.options)}\n"
        return text


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def resolv_file(
    host_text: str,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
    embedded_dns: bool = False,
) -> str:
    """A container's resolv.conf from the host's, with ``--dns*`` replacing parts.

    Loopback resolvers of the host are dropped (they are the host's, not reachable
    from the container's namespace). With the embedded DNS server (user networks) the
    container asks 127.0.0.11 and that server forwards to the upstream resolvers.
    """
    host = Resolv.parse(host_text)
    conf = Resolv(
        nameservers=list(dns) or [ns for ns in host.nameservers if not _is_loopback(ns)],
        search=list(dns_search) or host.search,
        options=list(dns_options) or host.options,
    )
    if embedded_dns:
        conf.nameservers = [EMBEDDED_DNS]
        if not any(o.startswith("ndots:") for o in conf.options):
            conf.options.append("ndots:0")
    elif not conf.nameservers:
        conf.nameservers = list(FALLBACK_NAMESERVERS)
    if conf.search == ["."]:
        conf.search = []
    return conf.render()


def upstream_nameservers(
    host_text: str, dns: Sequence[str] = ()
) -> list[str]:
    """What the embedded DNS server forwards to: ``--dns`` or the host's resolvers."""
    return list(dns) or Resolv.parse(host_text).nameservers
