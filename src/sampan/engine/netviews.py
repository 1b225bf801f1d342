"""The network service's state as the Docker API shows it: a container's NetworkSettings
and port lists, and networks (NetworkResource)."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface
from typing import Any

from .netmodel import ContainerNet, Membership, Network
from .networking import Networking, dns_names
from .record import Container


def container_settings(service: Networking, c: Container) -> dict[str, Any]:
    """``NetworkSettings`` of inspect."""
    with service.lock:
        mode = service.mode(c)
        state = service.containers.get(c.id) or ContainerNet()
        nets: dict[str, Any] = {}
        if mode in ("host", "none"):
            net = service.by_name(mode)
            nets[mode] = _endpoint_json(net.id if net else "", Membership(), [])
        elif not mode.startswith("container:"):
            default = service.by_name("bridge")
            members = state.networks or ({default.id: Membership()} if default else {})
            for nid, member in members.items():
                net = service.networks.get(nid)
                if net is not None:
                    names = dns_names(c, member) if net.user_defined else []
                    nets[net.name] = _endpoint_json(nid, member, names)
        out: dict[str, Any] = {
            "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": _port_map(state, c),
            "SandboxKey": state.netns, "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "", "Networks": nets}
    bridge = nets.get("bridge")
    if bridge is not None:  # the default bridge's endpoint, also at the top (legacy)
        for key in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress",
                    "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen"):
            out[key] = bridge[key]
    return out


def _port_map(state: ContainerNet, c: Container) -> dict[str, Any]:
    """``{"80/tcp": [{"HostIp", "HostPort"}]}``, exposed but unpublished ports null."""
    out: dict[str, Any] = {}
    if not c.state.running:
        return out
    for key in c.config.get("ExposedPorts") or {}:
        out[key if "/" in key else key + "/tcp"] = None
    for p in state.ports:
        key = f"{p['container_port']}/{p['proto']}"
        out[key] = (out.get(key) or []) + [{"HostIp": p["host_ip"],
                                             "HostPort": str(p["host_port"])}]
    return out


def port_list(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """``Ports`` of the container list, from the container's NetworkSettings."""
    out: list[dict[str, Any]] = []
    for key, hosts in settings["Ports"].items():
        port, _, proto = key.partition("/")
        if not hosts:
            out.append({"PrivatePort": int(port), "Type": proto})
        for h in hosts or []:
            out.append({"IP": h["HostIp"], "PrivatePort": int(port),
                        "PublicPort": int(h["HostPort"]), "Type": proto})
    return out


def network_json(service: Networking, net: Network, containers: dict[str, Container],
                 ) -> dict[str, Any]:
    """Docker's NetworkResource."""
    with service.lock:
        config = []
        for sub in service.subnets(net):
            conf = {"Subnet": str(sub.subnet), "Gateway": str(sub.gateway)}
            if sub.ip_range is not None:
                conf["IPRange"] = str(sub.ip_range)
            config.append(conf)
        members = {}
        for cid in service.members(net):
            ep = service.containers[cid].networks[net.id].endpoint
            assert ep is not None
            c = containers.get(cid)
            members[cid] = {"Name": c.name if c else "", "EndpointID": ep.id,
                            "MacAddress": ep.mac, "IPv4Address": ep.address,
                            "IPv6Address": ep.address6}
    return {
        "Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local",
        "Driver": net.driver, "EnableIPv6": net.enable_ipv6,
        "IPAM": {"Driver": "default", "Options": net.ipam_options or None, "Config": config},
        "Internal": net.internal, "Attachable": net.attachable, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": members,
        "Options": net.options, "Labels": net.labels,
    }


def _endpoint_json(nid: str, member: Membership, names: list[str]) -> dict[str, Any]:
    ep = member.endpoint
    address = IPv4Interface(ep.address) if ep else None
    address6 = IPv6Interface(ep.address6) if ep and ep.address6 else None
    requested = {k: v for k, v in (("IPv4Address", member.ipv4), ("IPv6Address", member.ipv6))
                 if v}
    return {
        "IPAMConfig": requested or None,
        "Links": None, "Aliases": member.aliases or None,
        "MacAddress": ep.mac if ep else "", "DriverOpts": None, "NetworkID": nid,
        "EndpointID": ep.id if ep else "", "Gateway": ep.gateway if ep else "",
        "IPAddress": str(address.ip) if address else "",
        "IPPrefixLen": address.network.prefixlen if address else 0,
        "IPv6Gateway": ep.gateway6 if ep else "",
        "GlobalIPv6Address": str(address6.ip) if address6 else "",
        "GlobalIPv6PrefixLen": address6.network.prefixlen if address6 else 0,
        "DNSNames": names or None,
    }
