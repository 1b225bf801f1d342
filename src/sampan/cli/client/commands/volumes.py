"""volume create/ls/rm/inspect/prune."""

from __future__ import annotations

from .... import humanize
from ..api import filters_param
from ..flags import BOOL, LIST, STR, Opt
from . import confirm, each, key_values, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..main import Cli


def create(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("d,driver", STR, "Specify volume driver name", "local"),
            Opt("label", LIST), Opt("name", STR), Opt("o,opt", LIST)]
    p = parse("volume create", "[OPTIONS] [VOLUME]", "Create a volume", opts, argv, 0, 1)
    if p is None:
        return 0
    name = p.args[0] if p.args else (p.name or "")
    volume = cli.client.post("/volumes/create", None, {
        "Name": name, "Driver": p.driver, "DriverOpts": key_values(p.opt),
        "Labels": key_values(p.label)})
    print(volume["Name"])
    return 0


LS_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
              "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
              "Size": "SIZE", "Availability": "AVAILABILITY", "Group": "GROUP"}


class VolumeRow:
    def __init__(self, v: dict[str, Any]) -> None:
        self.v = v
        self.Name, self.Driver = v.get("Name", ""), v.get("Driver", "")
        self.Scope, self.Mountpoint = v.get("Scope", "local"), v.get("Mountpoint", "")
        self.Labels = ",".join(f"{k}={val}" for k, val in (v.get("Labels") or {}).items())
        usage = v.get("UsageData") or {}
        self.Links = "N/A" if usage.get("RefCount", -1) < 0 else str(usage["RefCount"])
        self.Size = "N/A" if usage.get("Size", -1) < 0 else humanize.size(usage["Size"])
        self.Availability = self.Group = "N/A"

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(LS_HEADERS)}

    def Label(self, name: str) -> str:
        return (self.v.get("Labels") or {}).get(name, "")


def ls(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("f,filter", LIST), Opt("format", STR),
            Opt("q,quiet", BOOL, "Only display volume names")]
    p = parse("volume ls", "[OPTIONS]", "List volumes", opts, argv, 0, 0)
    if p is None:
        return 0
    from ..output import render

    answer = cli.client.get("/volumes", {"filters": filters_param(p.filter)}) or {}
    rows = sorted((VolumeRow(v) for v in answer.get("Volumes") or []), key=lambda r: r.Name)
    fmt = "{{.Name}}" if p.quiet and not p.format else (
        p.format or "table {{.Driver}}\t{{.Name}}")
    render(fmt, rows, LS_HEADERS)
    return 0


def rm(cli: Cli, argv: list[str]) -> int:
    p = parse("volume rm", "[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes",
              [Opt("f,force", BOOL)], argv, 1)
    if p is None:
        return 0
    return each(p.args, lambda v: cli.client.call("DELETE", f"/volumes/{v}",
                                                  {"force": p.force or None}).read())


def inspect(cli: Cli, argv: list[str]) -> int:
    from .containers import inspect as inspect_any

    return inspect_any(cli, argv, "volume")


def prune(cli: Cli, argv: list[str]) -> int:
    p = parse("volume prune", "[OPTIONS]", "Remove unused local volumes",
              [Opt("a,all", BOOL), Opt("f,force", BOOL), Opt("filter", LIST)], argv, 0, 0)
    if p is None:
        return 0
    warning = ("WARNING! This will remove all local volumes not used by at least one "
               "container." if p.all else "WARNING! This will remove anonymous local "
               "volumes not used by at least one container.")
    if not confirm(warning, p.force):
        return 0
    filters = list(p.filter or []) + (["all=true"] if p.all else [])
    report = cli.client.post("/volumes/prune", {"filters": filters_param(filters)})
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        print("Deleted Volumes:")
        for name in deleted:
            print(name)
        print()
    print(f"Total reclaimed space: {humanize.human_size(report.get('SpaceReclaimed', 0))}")
    return 0
