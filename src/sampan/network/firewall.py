"""The firewall backends' one interface: NAT, isolation and published ports of bridge
networks, in nftables (``nat.Nat``, preferred) or iptables (``iptables.Iptables``, where
only it exists), as dockerd 28's ``firewall-backend`` chooses between the two.

Both keep to objects of their own (a table, or SAMPAN-* chains), tag every rule with
its owner (``net:<bridge>``, ``ctr:<id>``) so removal finds exactly those rules after a
restart, and are driven the same way by the engine::

    fw = make(choose(""), "sampan0"); fw.setup()
    fw.add_network("sampan0", IPv4Network("172.30.0.0/24"), subnet6=None)
    fw.publish(ctr_id, IPv4Address("172.30.0.2"), bindings, address6=None)
    fw.unpublish(ctr_id); fw.remove_network("sampan0"); fw.teardown()

The same rules in both: masquerade of a network's subnet(s) leaving through another
interface (none for ``--internal``, which forwards nothing in or out), no forwarding
between two sampan bridges, DNAT of published ports for packets to a local address
(from outside, and from the host itself: ``route_localnet`` and masquerade of
127.0.0.0/8 for IPv4, hairpin for containers), and a guard dropping packets to
127.0.0.0/8 that arrive from a bridge. IPv6's loopback cannot be DNATed; a proxy
serves it (``proxy.Proxy``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Protocol

from sampan.network.errors import InvalidRequest
from sampan.network.ports import PortBinding

BACKENDS = ("nftables", "iptables")


class Firewall(Protocol):
    """What the engine asks of a backend (see the module's docstring)."""

    name: str  # "nftables" or "iptables", as ``docker info`` shows it

    def setup(self) -> None: ...

    def teardown(self) -> None: ...

    def add_network(self, bridge: str, subnet: IPv4Network, internal: bool = False,
                    subnet6: IPv6Network | None = None) -> None: ...

    def remove_network(self, bridge: str) -> None: ...

    def publish(self, owner: str, address: IPv4Address, bindings: Iterable[PortBinding],
                address6: IPv6Address | None = None) -> None: ...

    def unpublish(self, owner: str) -> None: ...

    def owners(self) -> set[str]: ...


def choose(wanted: str = "") -> str:
    """The backend asked for, or nftables when ``nft`` is installed, else iptables."""
    if wanted and wanted not in BACKENDS:
        raise InvalidRequest(f"firewall-backend: {wanted!r} is not one of "
                             f"{', '.join(BACKENDS)}")
    if wanted:
        return wanted
    return "nftables" if shutil.which("nft") else "iptables"


def table_name(bridge: str, default_bridge: str) -> str:
    """The nftables table (and iptables chain suffix) of the daemon whose default bridge
    is ``bridge``: two daemons never share or remove each other's rules."""
    if bridge == default_bridge:
        return "sampan"
    return "sampan_" + "".join(ch if ch.isalnum() else "_" for ch in bridge)


def make(backend: str, bridge: str, default_bridge: str = "sampan0") -> Firewall:
    """The backend named ``backend`` for the daemon whose default bridge is ``bridge``."""
    if backend == "iptables":
        from sampan.network.iptables import Iptables

        return Iptables("" if bridge == default_bridge else bridge)
    from sampan.network.nat import Nat

    return Nat(table_name(bridge, default_bridge))


def others(backend: str) -> list[str]:
    """The backends not chosen: their leftovers are removed when the daemon starts."""
    return [b for b in BACKENDS if b != backend]
