"""The JSON types of the create body's parts that the engine reads as raw JSON.

`config.py` types the fields the engine acts on through dataclasses; the rest of the body
(port bindings, log config, networking, devices, ...) is stored raw and read by the network,
mount and log services later. dockerd decodes the whole body into Go structs, so a value of
the wrong JSON type is a 400 there before anything runs; this checks those shapes the same
way (the fuzzer found ``{"EndpointsConfig": {"bridge": 1}}`` answered with a 500).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..oci.decode import DecodeError, decode
from .errors import InvalidParameter


@dataclass
class PortBinding:
    host_ip: str | None = field(default=None, metadata={"json": "HostIp"})
    host_port: str | None = field(default=None, metadata={"json": "HostPort"})


@dataclass
class LogConfig:
    type: str | None = field(default=None, metadata={"json": "Type"})
    config: dict[str, str] | None = field(default=None, metadata={"json": "Config"})


@dataclass
class DeviceMapping:
    path_on_host: str | None = field(default=None, metadata={"json": "PathOnHost"})
    path_in_container: str | None = field(default=None, metadata={"json": "PathInContainer"})
    cgroup_permissions: str | None = field(default=None, metadata={"json": "CgroupPermissions"})


@dataclass
class HostShape:
    port_bindings: dict[str, list[PortBinding] | None] | None = (
        field(default=None, metadata={"json": "PortBindings"}))
    publish_all_ports: bool | None = field(default=None, metadata={"json": "PublishAllPorts"})
    log_config: LogConfig | None = field(default=None, metadata={"json": "LogConfig"})
    volumes_from: list[str] | None = field(default=None, metadata={"json": "VolumesFrom"})
    devices: list[DeviceMapping] | None = field(default=None, metadata={"json": "Devices"})
    device_cgroup_rules: list[str] | None = (
        field(default=None, metadata={"json": "DeviceCgroupRules"}))
    dns: list[str] | None = field(default=None, metadata={"json": "Dns"})
    dns_options: list[str] | None = field(default=None, metadata={"json": "DnsOptions"})
    dns_search: list[str] | None = field(default=None, metadata={"json": "DnsSearch"})
    links: list[str] | None = field(default=None, metadata={"json": "Links"})
    ipc_mode: str | None = field(default=None, metadata={"json": "IpcMode"})
    pid_mode: str | None = field(default=None, metadata={"json": "PidMode"})
    uts_mode: str | None = field(default=None, metadata={"json": "UTSMode"})
    userns_mode: str | None = field(default=None, metadata={"json": "UsernsMode"})
    cgroup_parent: str | None = field(default=None, metadata={"json": "CgroupParent"})
    storage_opt: dict[str, str] | None = field(default=None, metadata={"json": "StorageOpt"})
    annotations: dict[str, str] | None = field(default=None, metadata={"json": "Annotations"})
    memory_reservation: int | None = field(default=None, metadata={"json": "MemoryReservation"})
    blkio_weight: int | None = field(default=None, metadata={"json": "BlkioWeight"})


@dataclass
class ConfigShape:
    exposed_ports: dict[str, dict[str, Any] | None] | None = (
        field(default=None, metadata={"json": "ExposedPorts"}))
    volumes: dict[str, dict[str, Any] | None] | None = (
        field(default=None, metadata={"json": "Volumes"}))
    shell: list[str] | None = field(default=None, metadata={"json": "Shell"})
    on_build: list[str] | None = field(default=None, metadata={"json": "OnBuild"})
    args_escaped: bool | None = field(default=None, metadata={"json": "ArgsEscaped"})
    attach_stdin: bool | None = field(default=None, metadata={"json": "AttachStdin"})
    attach_stdout: bool | None = field(default=None, metadata={"json": "AttachStdout"})
    attach_stderr: bool | None = field(default=None, metadata={"json": "AttachStderr"})
    network_disabled: bool | None = field(default=None, metadata={"json": "NetworkDisabled"})
    mac_address: str | None = field(default=None, metadata={"json": "MacAddress"})


@dataclass
class EndpointIPAM:
    ipv4_address: str | None = field(default=None, metadata={"json": "IPv4Address"})
    ipv6_address: str | None = field(default=None, metadata={"json": "IPv6Address"})
    link_local_ips: list[str] | None = field(default=None, metadata={"json": "LinkLocalIPs"})


@dataclass
class Endpoint:
    aliases: list[str] | None = field(default=None, metadata={"json": "Aliases"})
    ipam_config: EndpointIPAM | None = field(default=None, metadata={"json": "IPAMConfig"})
    links: list[str] | None = field(default=None, metadata={"json": "Links"})
    mac_address: str | None = field(default=None, metadata={"json": "MacAddress"})
    driver_opts: dict[str, str] | None = field(default=None, metadata={"json": "DriverOpts"})
    network_id: str | None = field(default=None, metadata={"json": "NetworkID"})
    dns_names: list[str] | None = field(default=None, metadata={"json": "DNSNames"})


@dataclass
class NetworkingShape:
    endpoints_config: dict[str, Endpoint | None] | None = (
        field(default=None, metadata={"json": "EndpointsConfig"}))


def check_create_body(body: dict[str, Any]) -> None:
    """A 400 naming the first field of ``body`` whose JSON type is wrong."""
    parts: list[tuple[type, Any, str]] = [
        (ConfigShape, body, ""),
        (HostShape, body.get("HostConfig") or {}, "HostConfig"),
        (NetworkingShape, body.get("NetworkingConfig") or {}, "NetworkingConfig"),
    ]
    for cls, raw, path in parts:
        try:
            decode(cls, raw, path)
        except DecodeError as exc:
            raise InvalidParameter(str(exc)) from None
