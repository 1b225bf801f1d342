"""The engine's network service: Docker's networks, and each container's place on them.

Networks (the predefined ``bridge``, ``host`` and ``none``, and user-defined bridge
networks) and every container's memberships (aliases, requested address, and while it
runs its endpoints and published ports) are one JSON document under the data root,
replaced atomically on each change. The kernel side is ``sampan.network``: a network
namespace per bridge-mode container made before the runtime runs (``prepare``), veths,
addresses from the IPAM, NAT rules, held host ports and the embedded DNS server. After a
restart of sampand, ``restore`` keeps what running containers use (re-holding their ports
and DNS sockets) and removes what containers that died meanwhile left behind.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, replace
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import Any, ParamSpec, TypeVar

from .. import statefile
from ..errors import StatusError
from ..network import bridge as br
from ..network import files as etc
from ..network import firewall, netns, ports
from ..network.dns import DnsServer
from ..network.errors import Conflict as LinkExists
from ..network.errors import NetworkError
from ..network.firewall import Firewall
from ..network.ipam import DEFAULT_POOLS, Ipam, Pool
from ..network.ports import ANY6, PortBinding, PortHolder
from ..network.proxy import Proxy
from . import netfiles, netlinks
from .errors import Conflict, InvalidParameter, NotFound
from .netmodel import (
    OPT_BRIDGE_NAME,
    OPT_MTU,
    PREDEFINED,
    ContainerNet,
    Endpoint,
    Forbidden,
    Membership,
    Network,
    Sandbox,
    binding_json,
    read_text,
)
from .record import Container, rfc3339

log = logging.getLogger("sampand")

STATE_FILE = "networks.json"
V6 = "/6"  # the Ipam's key of a network's IPv6 subnet: its id and this


def nat_table(bridge: str) -> str:
    """The nftables table of the daemon whose default bridge is ``bridge``."""
    return firewall.table_name(bridge, br.DEFAULT_BRIDGE)


def random_ula() -> str:
    """A /64 in a random ULA /48 (RFC 4193), for --ipv6 without --subnet."""
    raw = b"\xfd" + os.urandom(5)
    return str(IPv6Network((int.from_bytes(raw + bytes(10), "big"), 64)))


P = ParamSpec("P")
T = TypeVar("T")


def locked(method: Callable[P, T]) -> Callable[P, T]:
    """One caller at a time in the service: the event loop (views, create) or its worker."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with args[0].lock:  # type: ignore[attr-defined]
            return method(*args, **kwargs)

    return wrapper


class Networking:
    """Networks and endpoints of one daemon (see the module's docstring).

    Whatever touches the kernel runs on the service's one worker thread (``run``):
    pyroute2's sockets cannot be used in a thread running an event loop, joining a
    namespace is per thread, and one thread keeps the order of attach and detach.
    """

    def __init__(self, data_root: str, exec_root: str, nat: Firewall | None = None,
                 pools: Sequence[Pool] = DEFAULT_POOLS, bridge: str = br.DEFAULT_BRIDGE,
                 firewall: str = "") -> None:
        self.default_bridge = bridge
        self.dir = os.path.join(data_root, "network")
        self.netns_dir = os.path.join(exec_root, "netns")
        self.path = os.path.join(self.dir, STATE_FILE)
        self.ipam = Ipam(self.dir, pools)  # default-address-pools
        self.nat = nat or _firewall(firewall, bridge)
        self.holder = PortHolder()
        self.proxy = Proxy()  # published ports IPv6's loopback reaches
        self.dns: DnsServer | None = None
        doc = statefile.load(self.path) or {}
        self.networks = {nid: Network(**n) for nid, n in (doc.get("networks") or {}).items()}
        self.containers = {cid: ContainerNet.from_json(c)
                           for cid, c in (doc.get("containers") or {}).items()}
        self.ready = False
        self.lock = threading.RLock()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="sampan-net")
        # the engine's container lookup by id, for names registered outside a call about
        # that container (when the DNS server starts)
        self.lookup: Callable[[str], Container | None] = lambda cid: None
        # the engine's event log: (action, network, container id or "") → a network event
        self.on_event: Callable[[str, Network, str], None] = lambda action, net, cid: None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self._worker.submit(fn, *args).result()

    def _save(self) -> None:
        statefile.save(self.path, {
            "networks": {nid: asdict(n) for nid, n in self.networks.items()},
            "containers": {cid: asdict(c) for cid, c in self.containers.items()}})

    # Daemon start and stop ----------------------------------------------------------------

    @locked
    def start(self) -> None:
        """Predefined networks, every bridge and its rules, forwarding on; pyroute2 is
        imported here, once, not on a container's start."""
        for name, driver in PREDEFINED.items():
            net = self.by_name(name) or Network(secrets.token_hex(32), name, driver, rfc3339())
            if name == "bridge" and self.default_bridge == NO_BRIDGE:
                self.networks.pop(net.id, None)  # (one an earlier run with a bridge made)
                self.ipam.release_subnet(net.id)
                continue
            self.networks[net.id] = net
            if name == "bridge":  # the daemon's bridge now (a restart may name another)
                net.bridge = self.default_bridge
                net.options = {"com.docker.network.bridge.default_bridge": "true",
                               OPT_BRIDGE_NAME: self.default_bridge}
        try:
            from ..network import sysctl

            sysctl.enable_ip_forward()
            for other in firewall.others(self.nat.name):  # a daemon that changed backend
                with suppress(OSError, NetworkError):
                    _firewall(other, self.default_bridge).teardown()
            self.nat.setup()
            for net in self.networks.values():
                if net.driver == "bridge":
                    self._bring_up(net)
            self.ready = True
        except (OSError, NetworkError) as exc:
            log.error("bridge networking is unavailable: %s", exc)
        self._save()

    def _bring_up(self, net: Network) -> None:
        """The bridge, its gateway and its rules (idempotent: also after a restart)."""
        if net.id not in {s.network_id for s in self.ipam.subnets()}:
            self.ipam.request_subnet(net.id)
        sub = self.ipam.subnet(net.id)
        gateway6 = self.ipam.subnet(net.id + V6).gateway_interface if net.enable_ipv6 else None
        assert isinstance(sub.gateway_interface, IPv4Interface)
        assert isinstance(sub.subnet, IPv4Network)
        assert gateway6 is None or isinstance(gateway6, IPv6Interface)
        br.create_bridge(net.bridge, sub.gateway_interface, net.mtu, gateway6)
        subnet6 = self.ipam.subnet(net.id + V6).subnet if net.enable_ipv6 else None
        assert subnet6 is None or isinstance(subnet6, IPv6Network)
        if subnet6 is not None:  # forwarding and outbound NAT for IPv6, as dockerd's
            from ..network import sysctl

            sysctl.enable_ip6_forward()
        self.nat.add_network(net.bridge, sub.subnet, internal=net.internal, subnet6=subnet6)

    @locked
    def restore(self, running: dict[str, Container]) -> None:
        """After the containers were found again: keep what the running ones use, remove
        what the others left (veths, rules, namespaces, addresses), sweep strays."""
        for cid in list(self.containers):
            c = running.get(cid)
            state = self.containers[cid]
            if c is not None and state.netns and netns.exists(state.netns):
                try:
                    self._readopt(c, state)
                    continue
                except (OSError, StatusError) as exc:
                    log.warning("network of %s not restored: %s", cid[:12], exc)
            self._release_state(cid, state)
        live = {m.endpoint.host_ifname for s in self.containers.values()
                for m in s.networks.values() if m.endpoint}
        if self.ready:
            for name in br.links(br.VETH_PREFIX):
                if name not in live and all(ch in "0123456789abcdef" for ch in name[2:]):
                    br.delete_link(name)
            for owner in self.nat.owners() - set(running):
                self.nat.unpublish(owner)
        if os.path.isdir(self.netns_dir):
            held = {s.netns for s in self.containers.values()}
            for entry in os.listdir(self.netns_dir):
                path = os.path.join(self.netns_dir, entry)
                if path not in held:
                    netns.delete(path)
        self._save()

    def _readopt(self, c: Container, state: ContainerNet) -> None:
        bindings = [PortBinding(**p) for p in state.ports]
        if bindings:
            self.holder.reserve(c.id, bindings)
            self.nat.unpublish(c.id)
            ep = self._primary(state)
            if ep is not None:
                self._serve_ports(c.id, ep, bindings)
        if state.dns:
            self._serve_dns(c, state)
        log.info("network of %s restored", c.id[:12])

    @locked
    def close(self, any_running: bool) -> None:
        """Stop serving DNS and holding ports. With no container left running, the
        bridges and the table go too (the next start makes them again)."""
        if self.dns is not None:
            self.dns.stop()
            self.dns = None
        self.proxy.close()
        self.holder.release_all()
        if not any_running and self.ready:
            with suppress(OSError, NetworkError):
                for net in self.networks.values():
                    if net.driver == "bridge":
                        br.delete_bridge(net.bridge)
                self.nat.teardown()

    # Networks -----------------------------------------------------------------------------

    def by_name(self, name: str) -> Network | None:
        return next((n for n in self.networks.values() if n.name == name), None)

    @locked
    def get(self, ref: str) -> Network:
        """By full id, name, or unique id prefix (Docker's order)."""
        if ref in self.networks:
            return self.networks[ref]
        by_name = self.by_name(ref)
        if by_name is not None:
            return by_name
        matches = [n for i, n in self.networks.items() if ref and i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found "
                                   "based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    @locked
    def all(self) -> list[Network]:
        return sorted(self.networks.values(), key=lambda n: n.created)

    def subnet(self, net: Network) -> Any:
        return self.ipam.find_subnet(net.id)

    def subnets(self, net: Network) -> list[Any]:
        """The network's IPv4 subnet, and its IPv6 one on a dual-stack network."""
        return [s for s in (self.subnet(net), self.ipam.find_subnet(net.id + V6)) if s]

    @locked
    def create(self, body: Any) -> Network:
        """``POST /networks/create``; nothing is left behind when it fails."""
        if not isinstance(body, dict) or not body.get("Name"):
            raise InvalidParameter("Name: a network name is required")
        name = str(body["Name"])
        if self.by_name(name) is not None or name in PREDEFINED:
            raise Conflict(f"network with name {name} already exists")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            if driver in ("host", "null"):
                raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
            raise NotFound(f"plugin \"{driver}\" not found")
        ipam = body.get("IPAM") or {}
        configs = [c for c in ipam.get("Config") or [] if isinstance(c, dict)]
        v6 = [c for c in configs if ":" in str(c.get("Subnet") or "")]
        v4 = [c for c in configs if c not in v6]
        if len(v4) > 1 or len(v6) > 1:
            raise InvalidParameter("IPAM.Config: one IPv4 and one IPv6 subnet at most")
        if v6 and not body.get("EnableIPv6"):
            raise InvalidParameter("IPAM.Config: an IPv6 subnet needs EnableIPv6 (--ipv6)")
        if body.get("EnableIPv6") and not os.path.exists("/proc/sys/net/ipv6"):
            raise InvalidParameter("EnableIPv6: IPv6 is disabled on this host")
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        if options.get(OPT_MTU, "1500").isdigit() is False:
            raise InvalidParameter(f"Options: {OPT_MTU} must be a number")
        if not self.ready:
            raise StatusError("bridge networking is unavailable on this host (see the log)")
        net = Network(secrets.token_hex(32), name, "bridge", rfc3339(),
                      internal=bool(body.get("Internal")),
                      attachable=bool(body.get("Attachable")),
                      labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
                      options=options,
                      ipam_options=dict(ipam.get("Options") or {}),
                      enable_ipv6=bool(body.get("EnableIPv6")))
        net.bridge = options.get(OPT_BRIDGE_NAME) or br.bridge_name(net.id)
        if any(n.bridge == net.bridge for n in self.networks.values()):
            raise Conflict(f"bridge name {net.bridge} is in use by another network")
        conf = v4[0] if v4 else {}
        self.ipam.request_subnet(net.id, conf.get("Subnet") or None,
                                 conf.get("Gateway") or None, conf.get("IPRange") or None)
        try:
            if net.enable_ipv6:
                conf6 = v6[0] if v6 else {"Subnet": random_ula()}
                self.ipam.request_subnet(net.id + V6, conf6["Subnet"],
                                         conf6.get("Gateway") or None,
                                         conf6.get("IPRange") or None)
            self._bring_up(net)
        except BaseException:
            self.ipam.release_subnet(net.id + V6)
            with suppress(Exception):
                self.nat.remove_network(net.bridge)
            with suppress(Exception):
                br.delete_bridge(net.bridge)
            self.ipam.release_subnet(net.id)
            raise
        self.networks[net.id] = net
        self._save()
        self.on_event("create", net, "")
        return net

    @locked
    def members(self, net: Network) -> list[str]:
        """Ids of containers with an endpoint on ``net`` (running on it)."""
        return [cid for cid, s in self.containers.items()
                if (m := s.networks.get(net.id)) is not None and m.endpoint is not None]

    @locked
    def remove(self, ref: str) -> None:
        net = self.get(ref)
        if not net.user_defined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        if self.members(net):
            raise Forbidden(f"error while removing network: network {net.name} id {net.id} "
                            "has active endpoints")
        self.nat.remove_network(net.bridge)
        br.delete_bridge(net.bridge)
        self.ipam.release_subnet(net.id)
        self.ipam.release_subnet(net.id + V6)
        for state in self.containers.values():
            state.networks.pop(net.id, None)
        del self.networks[net.id]
        self._save()
        self.on_event("destroy", net, "")

    @locked
    def prune(self, keep: Iterable[str] = ()) -> list[str]:
        """Remove user networks no container uses (``keep``: ids spared by filters)."""
        used = {nid for s in self.containers.values() for nid in s.networks}
        spared = set(keep)
        removed = []
        for net in self.all():
            if net.user_defined and net.id not in used and net.id not in spared:
                self.remove(net.id)
                removed.append(net.name)
        return removed

    # Containers: create and remove --------------------------------------------------------

    def mode(self, c: Container) -> str:
        mode = c.host_config.get("NetworkMode") or "default"
        if mode in ("default", "bridge") and self.default_bridge == NO_BRIDGE:
            return "none"  # as dockerd's --bridge=none: a namespace with its loopback only
        return "bridge" if mode == "default" else mode

    @locked
    def check_create(self, host_config: dict[str, Any], networking: Any,
                     find: Any) -> tuple[str, dict[str, Membership]]:
        """The network mode as stored and the memberships a new container asks for;
        a 404 for an unknown network, a 400 for what cannot go together."""
        mode = host_config.get("NetworkMode") or "default"
        endpoints = (networking or {}).get("EndpointsConfig") or {}
        for link in netlinks.parse(host_config.get("Links")):
            try:
                find(link.name)
            except NotFound:
                raise InvalidParameter(f"could not get container for {link.name}") from None
        if mode.startswith("container:"):
            other = find(mode.partition(":")[2])
            if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
                raise InvalidParameter("conflicting options: port publishing and the "
                                       "container type network mode")
            return f"container:{other.id}", {}
        name = "bridge" if mode == "default" else mode
        chosen: dict[str, Membership] = {}
        for ref, conf in [(name, endpoints.get(name) or endpoints.get(mode)),
                          *((k, v) for k, v in endpoints.items() if k not in (name, mode))]:
            try:
                net = self.get(ref)
            except NotFound:  # as dockerd: created, and the start fails with a 404
                chosen[ref] = Membership()
                continue
            conf = conf or {}
            aliases = [str(a) for a in conf.get("Aliases") or []]
            ipv4 = ((conf.get("IPAMConfig") or {}).get("IPv4Address")) or ""
            ipv6 = ((conf.get("IPAMConfig") or {}).get("IPv6Address")) or ""
            if (aliases or ipv4 or ipv6) and not net.user_defined:
                raise InvalidParameter("network-scoped alias is supported only for containers "
                                       "in user defined networks" if aliases else
                                       "user specified IP address is supported on user "
                                       "defined networks only")
            if net.driver != "bridge" and len(endpoints) > 1:
                raise InvalidParameter(f"container cannot be connected to network {net.name} "
                                       "and to other networks")
            chosen[net.id] = Membership(aliases, ipv4, None, ipv6)
        return mode, chosen

    @locked
    def created(self, c: Container, memberships: dict[str, Membership]) -> None:
        self.containers[c.id] = ContainerNet(memberships)
        self._save()

    @locked
    def forget(self, c: Container) -> None:
        """The container is removed: its memberships go (after ``release``)."""
        state = self.containers.pop(c.id, None)
        if state is not None:
            self._release_state(c.id, state)
            self._save()

    # Containers: start and stop -----------------------------------------------------------

    def _state(self, c: Container) -> ContainerNet:
        state = self.containers.get(c.id)
        if state is None:  # made before networking kept records: the default bridge
            state = self.containers[c.id] = ContainerNet()
        if not state.networks and self.mode(c) == "bridge":
            bridge_net = self.by_name("bridge")
            assert bridge_net is not None
            state.networks[bridge_net.id] = Membership()
        return state

    @locked
    def prepare(self, c: Container, find: Callable[[str], Container]) -> Sandbox:
        """Before the spec is built: the namespace, endpoints, ports and /etc files."""
        mode = self.mode(c)
        if mode == "host":
            files = self._files(c, [], host_mode=True)
            return Sandbox(None, True, files)
        if mode.startswith("container:"):
            other = find(mode.partition(":")[2])
            if not other.state.running or not other.state.pid:
                raise Conflict(f"cannot join network namespace of a non running container: "
                               f"{other.id}")
            path = self.containers.get(other.id, ContainerNet()).netns or \
                f"/proc/{other.state.pid}/ns/net"
            return Sandbox(path, False, netfiles.read_files(self._container_dir(other.id)))
        if mode == "none":
            return Sandbox(None, False, self._files(c, []))
        state = self._state(c)
        for ref in [r for r in state.networks if r not in self.networks]:
            state.networks[self.get(ref).id] = state.networks.pop(ref)
        if not self.ready:
            raise StatusError("bridge networking is unavailable on this host (see the log)")
        self._release_state(c.id, state)  # leftovers of an earlier run
        state.netns = netns.create(os.path.join(self.netns_dir, c.id))
        self._save()
        addresses = []
        for index, (nid, member) in enumerate(state.networks.items()):
            ep = self._attach(c, state, nid, member, index)
            addresses += [str(ip) for ip in ep.ips()]
        wanted = self._bindings(c)
        if wanted:
            primary = self._primary(state)
            assert primary is not None
            resolved = self.holder.reserve(c.id, [b for b, _ in wanted])
            if primary.address6:  # -p 8080:80 on a dual-stack network: [::]:8080 too
                resolved += self.holder.reserve(c.id, [
                    replace(r, host_ip=ANY6) for r, (_, dual) in zip(resolved, wanted,
                                                                     strict=True) if dual])
            state.ports = [binding_json(b) for b in resolved]
            self._save()
            self._serve_ports(c.id, primary, resolved)
        if any(self.networks[nid].user_defined for nid in state.networks):
            self._serve_dns(c, state)
        links = netlinks.resolve(c, self._linked(c, find))
        return Sandbox(state.netns, False, self._files(c, addresses, links.hosts),
                       links.env)

    def _serve_ports(self, cid: str, ep: Endpoint, bindings: list[PortBinding]) -> None:
        """DNAT rules for the bindings; IPv6 ones listen and are proxied too, for what
        the rules cannot serve (``::1``, and all when the container has no IPv6
        address)."""
        address6 = IPv6Interface(ep.address6).ip if ep.address6 else None
        self.nat.publish(cid, IPv4Interface(ep.address).ip, bindings, address6)
        for b in bindings:
            if b.v6:
                target = str(address6 or IPv4Interface(ep.address).ip)
                self.proxy.serve(cid, self.holder.socket_of(cid, b),
                                 (target, b.container_port))

    def _linked(self, c: Container, find: Callable[[str], Container],
                ) -> list[tuple[netlinks.Link, Container, str]]:
        """``--link`` targets on the default bridge: each running, with its address."""
        out = []
        bridge_net = self.by_name("bridge")
        for link in netlinks.parse(c.host_config.get("Links")):
            try:
                child = find(link.name)
            except NotFound:
                raise InvalidParameter(f"could not get container for {link.name}") from None
            member = self.containers.get(child.id, ContainerNet()).networks.get(
                bridge_net.id if bridge_net else "")
            if not child.state.running or member is None or member.endpoint is None:
                raise Conflict(f"cannot link to a non running container: /{child.name} AS "
                               f"/{c.name}/{link.alias}")
            out.append((link, child, str(IPv4Interface(member.endpoint.address).ip)))
        return out

    def _attach(self, c: Container, state: ContainerNet, nid: str, member: Membership,
                index: int) -> Endpoint:
        net = self.networks.get(nid)
        if net is None:
            raise NotFound(f"network {nid} not found")
        sub = self.ipam.subnet(net.id)
        primary = not any(m.endpoint and not self.networks[n].internal
                          for n, m in state.networks.items() if n != nid)
        gateway = None if net.internal or not primary else sub.gateway
        sub6 = self.ipam.subnet(net.id + V6) if net.enable_ipv6 else None
        gateway6 = sub6.gateway if sub6 and gateway else None
        try:
            address = self.ipam.request_address(net.id, c.id, member.ipv4 or None)
            address6 = self.ipam.request_address(net.id + V6, c.id, member.ipv6 or None) \
                if sub6 else None
            assert isinstance(address, IPv4Interface)
            assert gateway is None or isinstance(gateway, IPv4Address)
            assert address6 is None or isinstance(address6, IPv6Interface)
            assert gateway6 is None or isinstance(gateway6, IPv6Address)
            host_ifname = br.veth_name(c.id, index)
            attach = functools.partial(
                br.attach, net.bridge, state.netns, host_ifname, address, gateway,
                ifname=f"eth{index}", mtu=net.mtu, address6=address6, gateway6=gateway6)
            try:
                raw = attach()
            except LinkExists:
                # the veth of this container's last run, which the kernel has not finished
                # deleting with that run's namespace (see _release_state)
                with suppress(NetworkError, OSError):
                    br.delete_link(host_ifname)
                raw = attach()
        except BaseException:
            self.ipam.release_address(net.id, c.id)
            self.ipam.release_address(net.id + V6, c.id)
            raise
        member.endpoint = Endpoint(secrets.token_hex(32), raw.ifname, raw.host_ifname,
                                   str(address), str(sub.gateway), raw.mac,
                                   str(address6 or ""), str(sub6.gateway if sub6 else ""))
        self._save()
        self.on_event("connect", net, c.id)
        if net.user_defined and self.dns is not None:
            self._register_names(c, net, member)
        return member.endpoint

    def _register_names(self, c: Container, net: Network, member: Membership) -> None:
        assert self.dns is not None and member.endpoint is not None
        for ip in member.endpoint.ips():
            self.dns.remove_address(net.id, ip)
            for name in dns_names(c, member):
                self.dns.add_name(net.id, name, ip)

    @locked
    def renamed(self, c: Container) -> None:
        """``docker rename``: the names on its user networks are the new ones at once."""
        state = self.containers.get(c.id)
        if state is None or self.dns is None:
            return
        for nid, member in state.networks.items():
            net = self.networks.get(nid)
            if net is not None and net.user_defined and member.endpoint is not None:
                self._register_names(c, net, member)

    def _serve_dns(self, c: Container, state: ContainerNet) -> None:
        if self.dns is None:
            host = read_text("/etc/resolv.conf")
            self.dns = DnsServer([(ns, 53) for ns in etc.upstream_nameservers(host)])
            self.dns.start()
            for cid, other in self.containers.items():
                known = self.lookup(cid)
                for nid, m in other.networks.items():
                    if known and m.endpoint is not None and self.networks[nid].user_defined:
                        self._register_names(known, self.networks[nid], m)
        user = [nid for nid in state.networks if self.networks[nid].user_defined]
        self.dns.serve(c.id, state.netns, user,
                       [(ns, 53) for ns in c.host_config.get("Dns") or []])
        state.dns = True
        self._save()

    def _primary(self, state: ContainerNet) -> Endpoint | None:
        return next((m.endpoint for m in state.networks.values() if m.endpoint), None)

    def _bindings(self, c: Container) -> list[tuple[PortBinding, bool]]:
        """PortBindings, and with PublishAllPorts every exposed port on a random one;
        each with whether it names no address (so IPv6's any address is meant too)."""
        wanted: list[tuple[PortBinding, bool]] = []
        published = c.host_config.get("PortBindings") or {}
        for key, hosts in published.items():
            port, _, proto = key.partition("/")
            for h in hosts or [{}]:
                host_ip = (h or {}).get("HostIp") or ""
                host_port = (h or {}).get("HostPort") or ""
                spec = f"{host_ip}:{host_port}:{port}/{proto or 'tcp'}" if host_ip else \
                    f"{host_port}:{port}/{proto or 'tcp'}"
                wanted += [(b, not host_ip) for b in ports.parse(spec)]
        if c.host_config.get("PublishAllPorts"):
            for key in c.config.get("ExposedPorts") or {}:
                if key not in published:
                    wanted += [(b, True) for b in ports.parse(key)]
        return wanted

    @locked
    def release(self, c: Container) -> None:
        """The container stopped: endpoints, ports, names and its namespace go; its
        memberships stay for the next start."""
        state = self.containers.get(c.id)
        if state is not None and (state.netns or state.ports or state.dns):
            self._release_state(c.id, state)
            self._save()

    def _release_state(self, cid: str, state: ContainerNet) -> None:
        if self.dns is not None and state.dns:
            self.dns.unserve(cid)
        state.dns = False
        if state.ports:
            self.proxy.stop(cid)
            self.holder.release(cid)
            with suppress(NetworkError):
                self.nat.unpublish(cid)
            state.ports = []
        # Deleting a veth waits for the kernel's unregistering (25-30 ms here); dropping the
        # last hold on the namespace has the kernel delete its veths on its own, batched
        # and off our path. Unless another container lives in the namespace too.
        with_netns = bool(state.netns) and not self._netns_shared()
        for nid, member in state.networks.items():
            ep = member.endpoint
            if ep is None:
                continue
            self._drop_endpoint(cid, nid, ep, delete_link=not with_netns)
            member.endpoint = None
        if state.netns:
            netns.delete(state.netns)
            state.netns = ""

    def _netns_shared(self) -> bool:
        """Whether some container may be in another's namespace (--network container:)."""
        return any(self.mode(other).startswith("container:") and other.state.running
                   for other in map(self.lookup, self.containers) if other is not None)

    def _drop_endpoint(self, cid: str, nid: str, ep: Endpoint, delete_link: bool = True,
                       ) -> None:
        """Its names, its veth (the inner end goes with it) and its addresses."""
        if self.dns is not None:
            for ip in ep.ips():
                self.dns.remove_address(nid, ip)
        if delete_link:
            with suppress(NetworkError, OSError):
                br.delete_link(ep.host_ifname)
        self.ipam.release_address(nid, cid)
        self.ipam.release_address(nid + V6, cid)
        net = self.networks.get(nid)
        if net is not None:
            self.on_event("disconnect", net, cid)

    # Connect and disconnect ---------------------------------------------------------------

    @locked
    def connect(self, net_ref: str, c: Container, body: Any) -> None:
        net = self.get(net_ref)
        mode = self.mode(c)
        conf = (body or {}).get("EndpointConfig") or {}
        if net.driver != "bridge" or mode in ("host", "none") or mode.startswith("container:"):
            raise InvalidParameter("container sharing network namespace with another "
                                   "container or host cannot be connected to any other "
                                   "network" if net.driver == "bridge" else
                                   f"container cannot be disconnected from host network or "
                                   f"connected to {net.name} network")
        state = self._state(c)
        if net.id in state.networks:
            raise Forbidden(f"endpoint with name {c.name} already exists in network "
                            f"{net.name}")
        aliases = [str(a) for a in conf.get("Aliases") or []]
        ipv4 = (conf.get("IPAMConfig") or {}).get("IPv4Address") or ""
        ipv6 = (conf.get("IPAMConfig") or {}).get("IPv6Address") or ""
        if (aliases or ipv4 or ipv6) and not net.user_defined:
            raise InvalidParameter("network-scoped alias is supported only for containers in "
                                   "user defined networks")
        member = Membership(aliases, ipv4, None, ipv6)
        if c.state.running and state.netns:
            used = {int(m.endpoint.ifname[3:]) for m in state.networks.values()
                    if m.endpoint and m.endpoint.ifname[3:].isdigit()}
            index = min(set(range(len(used) + 1)) - used)
            state.networks[net.id] = member
            try:
                self._attach(c, state, net.id, member, index)
            except BaseException:
                del state.networks[net.id]
                raise
            if net.user_defined and state.dns:
                # (already listening in its netns: a second bind would be EADDRINUSE)
                self._dns_networks_changed(c.id, state)
            elif net.user_defined:
                self._serve_dns(c, state)
            self._rewrite_hosts(c, state)
        else:
            state.networks[net.id] = member
        self._save()

    @locked
    def disconnect(self, net_ref: str, c: Container, force: bool = False) -> None:
        net = self.get(net_ref)
        state = self.containers.get(c.id)
        if state is None or net.id not in state.networks:
            if self.mode(c) == net.name and not net.user_defined:
                raise InvalidParameter(f"container cannot be disconnected from {net.name} "
                                       "network")
            raise NotFound(f"container {c.id} is not connected to network {net.name}")
        member = state.networks.pop(net.id)
        ep = member.endpoint
        if ep is not None:
            self._drop_endpoint(c.id, net.id, ep)
            if state.dns:
                self._dns_networks_changed(c.id, state)
            self._rewrite_hosts(c, state)
        self._save()

    def _dns_networks_changed(self, cid: str, state: ContainerNet) -> None:
        if self.dns is not None:
            self.dns.set_networks(cid, [n for n in state.networks
                                        if self.networks[n].user_defined])

    # /etc files ---------------------------------------------------------------------------

    def _files(self, c: Container, addresses: list[str], links: Sequence[etc.HostEntry] = (),
               host_mode: bool = False) -> dict[str, str]:
        state = self.containers.get(c.id)
        embedded = bool(state and any(self.networks[n].user_defined for n in state.networks
                                      if n in self.networks))
        bridge = self.by_name("bridge")
        sub = self.subnet(bridge) if bridge else None
        return netfiles.etc_files(c, addresses, embedded_dns=embedded and not host_mode,
                                  host_gateway=str(sub.gateway) if sub else "127.0.0.1",
                                  host_mode=host_mode, links=links)

    def _container_dir(self, cid: str) -> str:
        return os.path.join(os.path.dirname(self.dir), "containers", cid)

    def _rewrite_hosts(self, c: Container, state: ContainerNet) -> None:
        """After connect/disconnect: /etc/hosts lists the container's current addresses."""
        addresses = [str(ip) for m in state.networks.values() if m.endpoint
                     for ip in m.endpoint.ips()]
        netfiles.rewrite(os.path.join(self._container_dir(c.id), "hosts"),
                         self._files(c, addresses)["hosts"])


def dns_names(c: Container, member: Membership) -> list[str]:
    """What a container answers to on a user network: name, short id, aliases."""
    return [c.name, c.id[:12], *member.aliases]


NO_BRIDGE = "none"  # sampand --bridge none: no default network


def _firewall(backend: str, bridge: str) -> Firewall:
    """The firewall backend asked for (or the host's best) of the daemon's bridge."""
    return firewall.make(firewall.choose(backend), bridge, br.DEFAULT_BRIDGE)
