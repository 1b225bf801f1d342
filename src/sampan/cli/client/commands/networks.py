"""network create/ls/rm/inspect/connect/disconnect/prune."""

from __future__ import annotations

from .... import humanize
from ..api import filters_param
from ..flags import BOOL, LIST, STR, Opt
from . import confirm, each, key_values, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..main import Cli

CREATE_OPTS = [Opt("attachable", BOOL), Opt("aux-address", LIST),
               Opt("d,driver", STR, "Driver to manage the Network", "bridge"),
               Opt("gateway", LIST), Opt("internal", BOOL), Opt("ip-range", LIST),
               Opt("ipam-driver", STR), Opt("ipam-opt", LIST), Opt("ipv4", BOOL, default=True),
               Opt("ipv6", BOOL), Opt("label", LIST), Opt("o,opt", LIST),
               Opt("scope", STR), Opt("subnet", LIST)]


def create(cli: Cli, argv: list[str]) -> int:
    p = parse("network create", "[OPTIONS] NETWORK", "Create a network", CREATE_OPTS, argv,
              1, 1)
    if p is None:
        return 0
    configs: list[dict[str, Any]] = []
    for n, subnet in enumerate(p.subnet or []):
        config = {"Subnet": subnet}
        if p.gateway and n < len(p.gateway):
            config["Gateway"] = p.gateway[n]
        if p.ip_range and n < len(p.ip_range):
            config["IPRange"] = p.ip_range[n]
        configs.append(config)
    body = {"Name": p.args[0], "Driver": p.driver, "Internal": p.internal,
            "Attachable": p.attachable, "EnableIPv6": p.ipv6, "Options": key_values(p.opt),
            "Labels": key_values(p.label),
            "IPAM": {"Driver": p.ipam_driver or "default", "Config": configs,
                     "Options": key_values(p.ipam_opt)}}
    if p.scope:
        body["Scope"] = p.scope
    print(cli.client.post("/networks/create", None, body)["Id"])
    return 0


LS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
              "IPv6": "IPV6", "Internal": "INTERNAL", "CreatedAt": "CREATED AT",
              "Labels": "LABELS"}


class NetworkRow:
    def __init__(self, n: dict[str, Any], trunc: bool) -> None:
        self.n, self.trunc = n, trunc
        self.Name, self.Driver, self.Scope = n.get("Name", ""), n.get("Driver", ""), \
            n.get("Scope", "")
        self.IPv6 = str(bool(n.get("EnableIPv6"))).lower()
        self.Internal = str(bool(n.get("Internal"))).lower()
        self.CreatedAt = n.get("Created", "")
        self.Labels = ",".join(f"{k}={v}" for k, v in (n.get("Labels") or {}).items())

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(LS_HEADERS)}

    @property
    def ID(self) -> str:
        return humanize.short_id(self.n["Id"]) if self.trunc else self.n["Id"]

    def Label(self, name: str) -> str:
        return (self.n.get("Labels") or {}).get(name, "")


def ls(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("f,filter", LIST), Opt("format", STR), Opt("no-trunc", BOOL),
            Opt("q,quiet", BOOL, "Only display network IDs")]
    p = parse("network ls", "[OPTIONS]", "List networks", opts, argv, 0, 0)
    if p is None:
        return 0
    from ..output import render

    found = cli.client.get("/networks", {"filters": filters_param(p.filter)}) or []
    rows = sorted((NetworkRow(n, not p.no_trunc) for n in found), key=lambda r: r.Name)
    fmt = "{{.ID}}" if p.quiet and not p.format else (
        p.format or "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}")
    render(fmt, rows, LS_HEADERS)
    return 0


def rm(cli: Cli, argv: list[str]) -> int:
    p = parse("network rm", "NETWORK [NETWORK...]", "Remove one or more networks",
              [Opt("f,force", BOOL)], argv, 1)
    if p is None:
        return 0
    return each(p.args, lambda n: cli.client.call("DELETE", f"/networks/{n}").read())


def inspect(cli: Cli, argv: list[str]) -> int:
    from .containers import inspect as inspect_any

    return inspect_any(cli, argv, "network")


def connect(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("alias", LIST), Opt("driver-opt", LIST), Opt("ip", STR), Opt("ip6", STR),
            Opt("link", LIST), Opt("link-local-ip", LIST)]
    p = parse("network connect", "[OPTIONS] NETWORK CONTAINER", "Connect a container to a "
              "network", opts, argv, 2, 2)
    if p is None:
        return 0
    endpoint: dict[str, Any] = {"Aliases": p.alias or None,
                                "DriverOpts": key_values(p.driver_opt) or None}
    if p.ip or p.ip6:
        endpoint["IPAMConfig"] = {"IPv4Address": p.ip or "", "IPv6Address": p.ip6 or ""}
    cli.client.call("POST", f"/networks/{p.args[0]}/connect", None,
                    {"Container": p.args[1], "EndpointConfig": endpoint}).read()
    return 0


def disconnect(cli: Cli, argv: list[str]) -> int:
    p = parse("network disconnect", "[OPTIONS] NETWORK CONTAINER", "Disconnect a container "
              "from a network", [Opt("f,force", BOOL)], argv, 2, 2)
    if p is None:
        return 0
    cli.client.call("POST", f"/networks/{p.args[0]}/disconnect", None,
                    {"Container": p.args[1], "Force": p.force}).read()
    return 0


def prune(cli: Cli, argv: list[str]) -> int:
    p = parse("network prune", "[OPTIONS]", "Remove all unused networks",
              [Opt("f,force", BOOL), Opt("filter", LIST)], argv, 0, 0)
    if p is None:
        return 0
    if not confirm("WARNING! This will remove all custom networks not used by at least "
                   "one container.", p.force):
        return 0
    report = cli.client.post("/networks/prune", {"filters": filters_param(p.filter)})
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        print("Deleted Networks:")
        for name in deleted:
            print(name)
    return 0
