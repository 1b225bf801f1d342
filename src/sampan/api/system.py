"""_ping, version and info: what clients ask first, to negotiate the API version."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from aiohttp import web

from .. import __version__
from ..engine import EngineOptions
from ..engine.record import rfc3339
from ..engine.reload import engine_id
from ..oci.image import host_platform
from .server import API_VERSION, MIN_API_VERSION, engine_of, reply, route

_HEADERS = {"API-Version": API_VERSION, "OSType": "linux", "Docker-Experimental": "false",
            "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
            "Builder-Version": "1"}


async def ping(request: web.Request) -> web.Response:
    body = "" if request.method == "HEAD" else "OK"
    return web.Response(text=body, headers=_HEADERS, content_type="text/plain")


def _kernel() -> str:
    return platform.release()


async def version(request: web.Request) -> web.Response:
    arch = host_platform().architecture
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
               "Os": "linux", "Arch": arch, "KernelVersion": _kernel()}
    return reply({
        "Platform": {"Name": "sampan"},
        "Components": [{"Name": "Engine", "Version": __version__,
                        "Details": {**details, "GitCommit": "", "GoVersion": "",
                                    "BuildTime": "", "Experimental": "false"}}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": "python" + platform.python_version(), "Os": "linux",
        "Arch": arch, "KernelVersion": _kernel(), "BuildTime": "",
    })


def _meminfo() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


async def info(request: web.Request) -> web.Response:
    engine = engine_of(request)
    containers = engine.containers.all()
    paused = sum(1 for c in containers if c.state.status == "paused")
    running = sum(1 for c in containers if c.state.running) - paused
    options = engine.options
    body: dict[str, Any] = {
        "ID": engine_id(options.data_root), "Containers": len(containers),
        "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused,
        "Images": len(engine.images.db.images()), "Driver": engine.images.snapshots.name,
        "DriverStatus": [["Backing Filesystem", "extfs"]], "Plugins": {
            "Volume": [], "Network": ["host", "null"], "Authorization": None,
            "Log": ["json-file", "none"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": False,
        "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": options.debug,
        "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": True, "NGoroutines": 0,
        "SystemTime": rfc3339(),
        "LoggingDriver": options.container_defaults.log_config["Type"],
        "CgroupDriver": "cgroupfs", "CgroupVersion": _cgroup_version(),
        "NEventsListener": 0, "KernelVersion": _kernel(), "OperatingSystem": _os_name(),
        "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                           "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
                           "IndexConfigs": {}, "Mirrors": options.registry_mirrors or None,
                           "InsecureRegistries": options.insecure_registries},
        "NCPU": os.cpu_count() or 1, "MemTotal": _meminfo(), "GenericResources": None,
        "DockerRootDir": engine.options.data_root, "HttpProxy": "", "HttpsProxy": "",
        "NoProxy": "", "Name": socket.gethostname(), "Labels": list(options.labels),
        "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": engine.runtimes.info(), "DefaultRuntime": options.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": options.live_restore, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": _security_options(options),
        "FirewallBackend": {"Driver": engine.networking.nat.name, "Info": []},
        "Warnings": ["WARNING: bridge networking is not implemented: NetworkMode "
                     "default/bridge give the container an isolated network namespace "
                     "with only a loopback interface"],
    }
    return reply(body)


def _security_options(options: EngineOptions) -> list[str]:
    """docker info's "Security Options": name=seccomp,profile=builtin and the like."""
    security = options.container_defaults.security
    out = []
    if security.seccomp != "unconfined":
        profile = "builtin" if security.seccomp in ("", "builtin") else "custom"
        out.append(f"name=seccomp,profile={profile}")
    if security.no_new_privileges:
        out.append("name=no-new-privileges")
    if _cgroup_version() == "2":
        out.append("name=cgroupns")
    if options.userns_remap:
        out.append("name=userns")
    return out


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def register(app: web.Application) -> None:
    route(app, "GET", "/_ping", ping)
    route(app, "HEAD", "/_ping", ping)
    route(app, "GET", "/version", version)
    route(app, "GET", "/info", info)
