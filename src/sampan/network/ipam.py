"""Address management: subnets carved from pools, addresses handed out per network.

Pools work as dockerd's default-address-pools: a base network split into fixed-size
subnets, and a subnet that overlaps a route or an address already on the host (docker0's
172.17.0.0/16, a VPN's routes) is skipped, so sampan never shadows a network the host
uses. The state is one JSON file, replaced atomically on every change, so allocations
survive a daemon restart and a crash leaves either the old or the new allocation.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)

from sampan import statefile
from sampan.network import netlink
from sampan.network.errors import Conflict, Exhausted, InvalidRequest, NotFound

Net = IPv4Network | IPv6Network
Addr = IPv4Address | IPv6Address
Iface = IPv4Interface | IPv6Interface

STATE_FILE = "ipam.json"


@dataclass(frozen=True)
class Pool:
    """A base network split into subnets of ``prefix`` bits."""

    base: IPv4Network
    prefix: int

    def subnets(self) -> Iterator[IPv4Network]:
        return self.base.subnets(new_prefix=self.prefix)


DEFAULT_POOLS = (Pool(IPv4Network("172.30.0.0/16"), 24), Pool(IPv4Network("10.230.0.0/16"), 24))


@dataclass
class Subnet:
    """A network's subnet, gateway and the addresses given out in it (address -> owner)."""

    network_id: str
    subnet: Net  # IPv6 subnets are given explicitly (the pools are IPv4)
    gateway: Addr
    ip_range: Net | None = None
    from_pool: bool = False
    allocated: dict[str, str] = field(default_factory=dict)
    last: str = ""

    @property
    def gateway_interface(self) -> Iface:
        """The gateway with the subnet's prefix, as it is put on the bridge."""
        return ip_interface(f"{self.gateway}/{self.subnet.prefixlen}")

    def to_json(self) -> dict[str, object]:
        return {
            "subnet": str(self.subnet),
            "gateway": str(self.gateway),
            "ip_range": str(self.ip_range) if self.ip_range else None,
            "from_pool": self.from_pool,
            "allocated": self.allocated,
            "last": self.last,
        }

    @classmethod
    def from_json(cls, network_id: str, doc: dict[str, object]) -> Subnet:
        ip_range = doc.get("ip_range")
        allocated = doc.get("allocated") or {}
        assert isinstance(allocated, dict)
        return cls(
            network_id=network_id,
            subnet=ip_network(str(doc["subnet"])),
            gateway=ip_address(str(doc["gateway"])),
            ip_range=ip_network(str(ip_range)) if ip_range else None,
            from_pool=bool(doc.get("from_pool")),
            allocated={str(k): str(v) for k, v in allocated.items()},
            last=str(doc.get("last") or ""),
        )


def host_networks() -> list[IPv4Network]:
    """IPv4 networks of the host's routes (all tables but local) and addresses."""
    found: list[IPv4Network] = []
    with netlink.ipr() as ipr:
        for route in ipr.get_routes(family=2, table=0):
            dst = route.get_attr("RTA_DST")
            if route["table"] == 255 or dst is None or route["dst_len"] == 0:
                continue
            found.append(IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
        for addr in ipr.get_addr(family=2):
            ip = addr.get_attr("IFA_ADDRESS")
            found.append(IPv4Network(f"{ip}/{addr['prefixlen']}", strict=False))
    return found


def _parse_network(text: str, what: str) -> Net:
    try:
        return ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidRequest(f"invalid {what} {text!r}: {exc}") from None


def _parse_address(text: str, what: str) -> Addr:
    try:
        return ip_address(text)
    except ValueError as exc:
        raise InvalidRequest(f"invalid {what} {text!r}: {exc}") from None


def _overlaps(candidate: Net, others: Iterable[Net]) -> bool:
    return any(candidate.version == other.version and candidate.overlaps(other)
               for other in others)


class Ipam:
    """Subnets and addresses of every sampan network, persisted under ``state_dir``."""

    def __init__(self, state_dir: str, pools: Sequence[Pool] = DEFAULT_POOLS) -> None:
        self.path = os.path.join(state_dir, STATE_FILE)
        self.pools = tuple(pools)
        self._lock = threading.Lock()
        doc = statefile.load(self.path) or {}
        self._subnets = {
            nid: Subnet.from_json(nid, sub) for nid, sub in doc.get("networks", {}).items()
        }

    def _save(self) -> None:
        statefile.save(
            self.path, {"networks": {n: s.to_json() for n, s in self._subnets.items()}}
        )

    def subnets(self) -> list[Subnet]:
        with self._lock:
            return list(self._subnets.values())

    def find_subnet(self, network_id: str) -> Subnet | None:
        """``network_id``'s subnet, or None when it has none."""
        with self._lock:
            return self._subnets.get(network_id)

    def subnet(self, network_id: str) -> Subnet:
        with self._lock:
            return self._get(network_id)

    def _get(self, network_id: str) -> Subnet:
        try:
            return self._subnets[network_id]
        except KeyError:
            raise NotFound(f"network {network_id} has no address space") from None

    def request_subnet(
        self,
        network_id: str,
        subnet: str | None = None,
        gateway: str | None = None,
        ip_range: str | None = None,
    ) -> Subnet:
        """Reserve ``subnet`` (or the first free pool subnet) for ``network_id``.

        A subnet from a pool skips the host's networks; an explicit one must only not
        overlap another sampan network, as dockerd checks for --subnet.
        """
        with self._lock:
            if network_id in self._subnets:
                raise Conflict(f"network {network_id} already has a subnet")
            ours = [s.subnet for s in self._subnets.values()]
            if subnet is None:
                if ip_range is not None or gateway is not None:
                    raise InvalidRequest("--gateway and --ip-range need --subnet")
                net = self._free_pool_subnet(ours)
            else:
                net = _parse_network(subnet, "subnet")
                if _overlaps(net, ours):
                    raise Conflict(f"subnet {net} overlaps with another sampan network")
            gw = _parse_address(gateway, "gateway") if gateway else net.network_address + 1
            rng = _parse_network(ip_range, "ip range") if ip_range else None
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise InvalidRequest(f"gateway {gw} is not a host address of {net}")
            if rng is not None and (rng.version != net.version
                                    or not rng.subnet_of(net)):  # type: ignore[arg-type]
                raise InvalidRequest(f"ip range {rng} is not inside subnet {net}")
            if net.num_addresses < 4:
                raise InvalidRequest(f"subnet {net} has no room for a gateway and hosts")
            record = Subnet(network_id, net, gw, rng, from_pool=subnet is None)
            self._subnets[network_id] = record
            self._save()
            return record

    def _free_pool_subnet(self, ours: list[Net]) -> Net:
        taken = ours + host_networks()
        for pool in self.pools:
            for candidate in pool.subnets():
                if not _overlaps(candidate, taken):
                    return candidate
        raise Exhausted("all predefined address pools have been fully subnetted")

    def release_subnet(self, network_id: str) -> None:
        with self._lock:
            if self._subnets.pop(network_id, None) is not None:
                self._save()

    def request_address(
        self, network_id: str, owner: str, address: str | None = None
    ) -> Iface:
        """An address for ``owner`` (``address`` if given), with the subnet's prefix.

        Free addresses are handed out after the last one given, wrapping around, as
        dockerd does: a just-released address is not reused at once, so neighbours'
        ARP caches have time to forget its old MAC.
        """
        with self._lock:
            sub = self._get(network_id)
            if address is not None:
                ip = _parse_address(address, "address")
                if ip not in sub.subnet or ip in self._reserved(sub):
                    raise InvalidRequest(f"address {ip} is not usable in {sub.subnet}")
                if str(ip) in sub.allocated:
                    raise Conflict(f"address {ip} is already in use on {network_id}")
            else:
                ip = self._next_free(sub)
            sub.allocated[str(ip)] = owner
            sub.last = str(ip)
            self._save()
            return ip_interface(f"{ip}/{sub.subnet.prefixlen}")

    @staticmethod
    def _reserved(sub: Subnet) -> set[Addr]:
        return {sub.subnet.network_address, sub.subnet.broadcast_address, sub.gateway}

    def _next_free(self, sub: Subnet) -> Addr:
        span = sub.ip_range or sub.subnet
        first, size = int(span.network_address), span.num_addresses
        start = int(ip_address(sub.last)) - first + 1 if sub.last else 0
        reserved = self._reserved(sub)
        for step in range(size):
            ip = ip_address(first + (start + step) % size)
            if ip not in reserved and str(ip) not in sub.allocated:
                return ip
        raise Exhausted(f"no available IPv{span.version} addresses on network "
                        f"{sub.network_id}")

    def release_address(self, network_id: str, owner: str) -> None:
        """Free what ``owner`` holds on ``network_id`` (nothing held is no error)."""
        with self._lock:
            sub = self._subnets.get(network_id)
            if sub is None:
                return
            mine = [ip for ip, who in sub.allocated.items() if who == owner]
            for ip in mine:
                del sub.allocated[ip]
            if mine:
                self._save()
