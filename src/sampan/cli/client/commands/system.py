"""version, info, system df, system prune."""

from __future__ import annotations

import sys

from .... import __version__, humanize
from ..api import DaemonUnreachable
from ..errors import CommandError
from ..flags import BOOL, LIST, STR, Opt
from ..gotemplate import Template
from ..output import tabwrite
from . import confirm, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..main import Cli

API_VERSION = "1.45"

# docker/cli's version template, run through our Go-template engine.
VERSION_TEMPLATE = """Client:{{if ne .Client.Platform.Name ""}} {{.Client.Platform.Name}}{{end}}
 Version:\t{{.Client.Version}}
 API version:\t{{.Client.APIVersion}}
 Go version:\t{{.Client.GoVersion}}
 Git commit:\t{{.Client.GitCommit}}
 Built:\t{{.Client.BuildTime}}
 OS/Arch:\t{{.Client.Os}}/{{.Client.Arch}}
 Context:\t{{.Client.Context}}
{{- if .ServerOK}}

Server:{{if ne .Server.Platform.Name ""}} {{.Server.Platform.Name}}{{end}}
 {{- range $component := .Server.Components}}
 {{$component.Name}}:
  {{- if eq $component.Name "Engine" }}
  Version:\t{{.Version}}
  API version:\t{{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})
  Go version:\t{{index .Details "GoVersion"}}
  Git commit:\t{{index .Details "GitCommit"}}
  Built:\t{{index .Details "BuildTime"}}
  OS/Arch:\t{{index .Details "Os"}}/{{index .Details "Arch"}}
  Experimental:\t{{index .Details "Experimental"}}
  {{- else }}
  Version:\t{{$component.Version}}
  {{- range $key, $value := $component.Details}}
  {{$key}}:\t{{$value}}
  {{- end}}
  {{- end}}
 {{- end}}
{{- end}}"""


def _client_version(cli: Cli) -> dict[str, Any]:
    import os
    import platform

    machine = platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {"Platform": {"Name": "sampan"}, "Version": __version__,
            "APIVersion": API_VERSION, "DefaultAPIVersion": API_VERSION,
            "GoVersion": "python" + platform.python_version(), "GitCommit": "",
            "BuildTime": "", "Os": os.uname().sysname.lower(), "Arch": arch,
            "Context": "default"}


def version(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("f,format", STR, "Format output using a custom template")]
    p = parse("version", "[OPTIONS]", "Show the Docker version information", opts, argv,
              0, 0)
    if p is None:
        return 0
    data: dict[str, Any] = {"Client": _client_version(cli), "Server": None,
                            "ServerOK": False}
    failure = None
    try:
        data["Server"] = cli.client.get("/version")
        data["ServerOK"] = True
    except DaemonUnreachable as exc:
        failure = exc
    if p.format:
        from ..output import render

        render(p.format, [data])
    else:
        text = Template(VERSION_TEMPLATE).render(data)
        print(tabwrite(text.split("\n"), minwidth=20, padding=1))
    if failure is not None:
        raise failure
    return 0


def info(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("f,format", STR, "Format output using a custom template")]
    p = parse("info", "[OPTIONS]", "Display system-wide information", opts, argv, 0, 0)
    if p is None:
        return 0
    client_info = {"Version": __version__, "Context": "default", "Debug": False,
                   "Plugins": []}
    if p.format:
        server = cli.client.get("/info")
        from ..output import render

        render(p.format, [{**server, "ClientInfo": client_info}])
        return 0
    print(f"Client:\n Version:    {__version__}\n Context:    default\n Debug Mode: false\n")
    try:
        server = cli.client.get("/info")
    except DaemonUnreachable as exc:
        print("Server:")
        raise CommandError(f"ERROR: {exc}\nerrors pretty printing info", 1) from None
    print("\n".join(server_lines(server)))
    for warning in server.get("Warnings") or []:
        print(warning, file=sys.stderr)
    return 0


def server_lines(s: dict[str, Any]) -> list[str]:
    out = ["Server:", f" Containers: {s.get('Containers', 0)}",
           f"  Running: {s.get('ContainersRunning', 0)}",
           f"  Paused: {s.get('ContainersPaused', 0)}",
           f"  Stopped: {s.get('ContainersStopped', 0)}",
           f" Images: {s.get('Images', 0)}",
           f" Server Version: {s.get('ServerVersion', '')}",
           f" Storage Driver: {s.get('Driver', '')}"]
    out += [f"  {k}: {v}" for k, v in s.get("DriverStatus") or []]
    out += [f" Logging Driver: {s.get('LoggingDriver', '')}",
            f" Cgroup Driver: {s.get('CgroupDriver', '')}",
            f" Cgroup Version: {s.get('CgroupVersion', '')}", " Plugins:"]
    plugins = s.get("Plugins") or {}
    for kind in ("Volume", "Network", "Authorization", "Log"):
        if kind != "Authorization" or plugins.get(kind):
            out.append(f"  {kind}: {' '.join(plugins.get(kind) or [])}")
    swarm = (s.get("Swarm") or {}).get("LocalNodeState", "inactive")
    out += [f" Swarm: {swarm}",
            f" Runtimes: {' '.join(sorted(s.get('Runtimes') or {}))}",
            f" Default Runtime: {s.get('DefaultRuntime', '')}",
            f" Init Binary: {s.get('InitBinary', '')}",
            f" containerd version: {(s.get('ContainerdCommit') or {}).get('ID', '')}",
            f" runc version: {(s.get('RuncCommit') or {}).get('ID', '')}",
            f" init version: {(s.get('InitCommit') or {}).get('ID', '')}"]
    security = s.get("SecurityOptions") or []
    if security:
        out.append(" Security Options:")
        for opt in security:
            fields = dict(f.partition("=")[::2] for f in opt.split(","))
            out.append(f"  {fields.pop('name', opt)}")
            out += [f"   {key.capitalize()}: {value}" for key, value in fields.items()]
    out += [f" Kernel Version: {s.get('KernelVersion', '')}",
            f" Operating System: {s.get('OperatingSystem', '')}",
            f" OSType: {s.get('OSType', '')}",
            f" Architecture: {s.get('Architecture', '')}",
            f" CPUs: {s.get('NCPU', 0)}",
            f" Total Memory: {humanize.bytes_size(s.get('MemTotal', 0))}",
            f" Name: {s.get('Name', '')}",
            *([f" ID: {s['ID']}"] if s.get("ID") else []),
            f" Docker Root Dir: {s.get('DockerRootDir', '')}",
            f" Debug Mode: {str(bool(s.get('Debug'))).lower()}"]
    if s.get("Labels"):
        out.append(" Labels:")
        out += [f"  {label}" for label in s["Labels"]]
    out.append(f" Experimental: {str(bool(s.get('ExperimentalBuild'))).lower()}")
    registry = s.get("RegistryConfig") or {}
    insecure = list(registry.get("InsecureRegistryCIDRs") or [])
    insecure += [name for name, conf in (registry.get("IndexConfigs") or {}).items()
                 if not conf.get("Secure", True)]
    if insecure:
        out.append(" Insecure Registries:")
        out += [f"  {item}" for item in insecure]
    if registry.get("Mirrors"):
        out.append(" Registry Mirrors:")
        out += [f"  {m}" for m in registry["Mirrors"]]
    out.append(f" Live Restore Enabled: {str(bool(s.get('LiveRestoreEnabled'))).lower()}")
    out.append("")
    return out


DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


def _reclaim(reclaimable: float, total: float, percent: bool = True) -> str:
    text = humanize.human_size(reclaimable)
    if percent and total > 0:
        text += f" ({int(reclaimable / total * 100)}%)"
    return text


def df_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    images = d.get("Images") or []
    image_total = d.get("LayersSize") or sum(i.get("Size", 0) for i in images)
    used = sum(i.get("Size", 0) - max(i.get("SharedSize", 0), 0)
               for i in images if i.get("Containers", 0) > 0)
    containers = d.get("Containers") or []
    c_size = sum(c.get("SizeRw") or 0 for c in containers)
    c_reclaim = sum(c.get("SizeRw") or 0 for c in containers if c.get("State") != "running")
    volumes = d.get("Volumes") or []
    v_size = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes)
    v_reclaim = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes
                    if (v.get("UsageData") or {}).get("RefCount", 0) == 0)
    cache = d.get("BuildCache") or []
    cache_size = sum(b.get("Size", 0) for b in cache)
    return [
        {"Type": "Images", "TotalCount": str(len(images)),
         "Active": str(sum(1 for i in images if i.get("Containers", 0) > 0)),
         "Size": humanize.human_size(image_total),
         "Reclaimable": _reclaim(max(image_total - used, 0), image_total)},
        {"Type": "Containers", "TotalCount": str(len(containers)),
         "Active": str(sum(1 for c in containers if c.get("State") == "running")),
         "Size": humanize.human_size(c_size), "Reclaimable": _reclaim(c_reclaim, c_size)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)),
         "Active": str(sum(1 for v in volumes
                           if (v.get("UsageData") or {}).get("RefCount", 0) > 0)),
         "Size": humanize.human_size(v_size), "Reclaimable": _reclaim(v_reclaim, v_size)},
        {"Type": "Build Cache", "TotalCount": str(len(cache)),
         "Active": str(sum(1 for b in cache if b.get("InUse"))),
         "Size": humanize.human_size(cache_size),
         "Reclaimable": _reclaim(sum(b.get("Size", 0) for b in cache if not b.get("InUse")),
                                 cache_size, percent=False)},
    ]


def df(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("format", STR, "Format output using a custom template"),
            Opt("v,verbose", BOOL, "Show detailed information on space usage")]
    p = parse("system df", "[OPTIONS]", "Show docker disk usage", opts, argv, 0, 0)
    if p is None:
        return 0
    from ..output import render

    data = cli.client.get("/system/df")
    if p.verbose:
        from .diskusage import verbose

        verbose(data, p.format)
        return 0
    render(p.format or "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t"
           "{{.Reclaimable}}", df_rows(data), DF_HEADERS)
    return 0


def prune(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("a,all", BOOL, "Remove all unused images not just dangling ones"),
            Opt("filter", LIST, "Provide filter values"),
            Opt("f,force", BOOL, "Do not prompt for confirmation"),
            Opt("volumes", BOOL, "Prune anonymous volumes")]
    p = parse("system prune", "[OPTIONS]", "Remove unused data", opts, argv, 0, 0)
    if p is None:
        return 0
    items = ["all stopped containers", "all networks not used by at least one container"]
    if p.volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them"
                 if p.all else "all dangling images")
    items.append("unused build cache")
    warning = "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)
    if not confirm(warning, p.force):
        return 0
    from ..api import APIError, filters_param

    client = cli.client
    reclaimed = 0
    report = client.post("/containers/prune", {"filters": filters_param(p.filter)})
    reclaimed += report.get("SpaceReclaimed") or 0
    _deleted("Deleted Containers:", report.get("ContainersDeleted"))
    try:
        report = client.post("/networks/prune", {"filters": filters_param(p.filter)})
        _deleted("Deleted Networks:", report.get("NetworksDeleted"))
    except APIError as exc:
        if exc.status != 404:
            raise
    if p.volumes:
        report = client.post("/volumes/prune", {"filters": filters_param(p.filter)})
        reclaimed += report.get("SpaceReclaimed") or 0
        _deleted("Deleted Volumes:", report.get("VolumesDeleted"))
    filters = list(p.filter or []) + ([] if p.all else ["dangling=true"])
    report = client.post("/images/prune", {"filters": filters_param(filters)})
    reclaimed += report.get("SpaceReclaimed") or 0
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        _deleted("Deleted Images:", [f"{k.lower()}: {v}" for i in deleted
                                     for k, v in i.items()])
    print(f"Total reclaimed space: {humanize.human_size(reclaimed)}")
    return 0


def _deleted(title: str, items: list[str] | None) -> None:
    if items:
        print(title)
        for item in items:
            print(item)
        print()
