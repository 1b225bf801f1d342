"""Containers as the Docker API shows them: inspect and list JSON shapes."""

from __future__ import annotations

import os
import shlex
import time
from typing import Any

from ..humanize import duration as human_duration
from . import health
from .mounts import api_mounts
from .record import Container, parse_rfc3339


def _network_settings(c: Container) -> dict[str, Any]:
    mode = c.host_config.get("NetworkMode") or "default"
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "",
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
        "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
        "Networks": {("none" if mode in ("none",) else mode): {
            "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
            "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}},
    }


def inspect(c: Container, directory: str, log_path: str, graph: dict[str, Any],
            network: dict[str, Any] | None = None) -> dict[str, Any]:
    """``network``: NetworkSettings as the network service has them."""
    s = c.state
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": {
            "Status": s.status, "Running": s.running or s.status == "restarting",
            "Paused": s.status == "paused", "Restarting": s.status == "restarting",
            "OOMKilled": s.oom_killed, "Dead": s.status == "dead", "Pid": s.pid,
            "ExitCode": s.exit_code, "Error": s.error, "StartedAt": s.started_at,
            "FinishedAt": s.finished_at,
            **({"Health": s.health} if s.health is not None and health.parse(c.config)
               else {}),
        },
        "Image": c.image_id,
        "ResolvConfPath": os.path.join(directory, "resolv.conf"),
        "HostnamePath": os.path.join(directory, "hostname"),
        "HostsPath": os.path.join(directory, "hosts"),
        "LogPath": log_path,
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": graph.get("Name", ""),
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": c.host_config,
        "GraphDriver": graph,
        "Mounts": api_mounts(c),
        "Config": c.config,
        "NetworkSettings": network or _network_settings(c),
    }


def status_text(c: Container, now: float | None = None) -> str:
    now = time.time() if now is None else now
    s = c.state
    if s.status == "paused":
        return "Up " + human_duration(now - parse_rfc3339(s.started_at)) + " (Paused)"
    if s.running:
        return ("Up " + human_duration(now - parse_rfc3339(s.started_at))
                + health.status_suffix(c))
    if s.status == "restarting":
        return (f"Restarting ({s.exit_code}) "
                f"{human_duration(now - parse_rfc3339(s.finished_at))} ago")
    if s.status == "exited":
        finished = parse_rfc3339(s.finished_at)
        if not finished:
            return f"Exited ({s.exit_code})"
        return f"Exited ({s.exit_code}) {human_duration(now - finished)} ago"
    if s.status == "removing":
        return "Removal In Progress"
    if s.status == "dead":
        return "Dead"
    return "Created"


def summary(c: Container, network: dict[str, Any] | None = None,
            ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One item of GET /containers/json (``network``, ``ports``: from the network service)."""
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": " ".join(shlex.quote(a) if " " in a else a for a in [c.path, *c.args]),
        "Created": int(parse_rfc3339(c.created)),
        "Ports": ports or [],
        "Labels": c.config.get("Labels") or {},
        "State": c.state.status,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": (network or _network_settings(c))["Networks"]},
        "Mounts": api_mounts(c),
    }


def matches(c: Container, filters: dict[str, list[str]]) -> bool:
    """Docker's container list filters: id, name, status, label, ancestor, exited, volume
    (a volume's name or a mount's destination)."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "name" and not any(v.lstrip("/") in c.name for v in values):
            return False
        if key == "status" and c.state.status not in values:
            return False
        if key == "exited" and (c.state.status != "exited"
                                or str(c.state.exit_code) not in values):
            return False
        if key == "ancestor" and not any(v in (c.image, c.image_id) or
                                         c.image_id.startswith("sha256:" + v)
                                         for v in values):
            return False
        if key == "health":
            current = (c.state.health or {}).get("Status") \
                if c.state.running and health.parse(c.config) else "none"
            if current not in values:
                return False
        if key == "volume" and not any(v in (m.get("name"), m.get("destination"))
                                       for m in c.mounts for v in values):
            return False
        if key == "label":
            labels = c.config.get("Labels") or {}
            for want in values:
                name, sep, value = want.partition("=")
                if name not in labels or (sep and labels[name] != value):
                    return False
    return True


FILTERS = ("id", "name", "status", "label", "ancestor", "exited", "health", "volume")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
