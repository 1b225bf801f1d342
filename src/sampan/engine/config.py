"""Docker's container create body (Config + HostConfig) as typed dataclasses.

Decoding reuses ``sampan.oci.decode``: every value is type-checked and an error names the
field (``HostConfig.Memory: expected integer, got string``), which becomes a 400. Unknown
keys are ignored, as dockerd ignores them. The record keeps the raw JSON (what inspect
shows back); these classes are the typed view the engine acts on.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import Any

from ..oci.decode import DecodeError, decode
from .errors import InvalidParameter
from .logs import parse_log_config
from .restart import parse_policy


@dataclass
class RestartPolicy:
    name: str | None = field(default=None, metadata={"json": "Name"})
    maximum_retry_count: int | None = field(default=None, metadata={"json": "MaximumRetryCount"})


@dataclass
class Ulimit:
    name: str = field(default="", metadata={"json": "Name"})
    soft: int = field(default=0, metadata={"json": "Soft"})
    hard: int = field(default=0, metadata={"json": "Hard"})


@dataclass
class HostConfig:
    network_mode: str | None = field(default=None, metadata={"json": "NetworkMode"})
    auto_remove: bool | None = field(default=None, metadata={"json": "AutoRemove"})
    privileged: bool | None = field(default=None, metadata={"json": "Privileged"})
    readonly_rootfs: bool | None = field(default=None, metadata={"json": "ReadonlyRootfs"})
    memory: int | None = field(default=None, metadata={"json": "Memory"})
    memory_swap: int | None = field(default=None, metadata={"json": "MemorySwap"})
    nano_cpus: int | None = field(default=None, metadata={"json": "NanoCpus"})
    cpu_shares: int | None = field(default=None, metadata={"json": "CpuShares"})
    cpu_quota: int | None = field(default=None, metadata={"json": "CpuQuota"})
    cpu_period: int | None = field(default=None, metadata={"json": "CpuPeriod"})
    cpuset_cpus: str | None = field(default=None, metadata={"json": "CpusetCpus"})
    pids_limit: int | None = field(default=None, metadata={"json": "PidsLimit"})
    cap_add: list[str] | None = field(default=None, metadata={"json": "CapAdd"})
    cap_drop: list[str] | None = field(default=None, metadata={"json": "CapDrop"})
    binds: list[str] | None = field(default=None, metadata={"json": "Binds"})
    mounts: list[Any] | None = field(default=None, metadata={"json": "Mounts"})
    restart_policy: RestartPolicy | None = field(default=None, metadata={"json": "RestartPolicy"})
    init: bool | None = field(default=None, metadata={"json": "Init"})
    shm_size: int | None = field(default=None, metadata={"json": "ShmSize"})
    extra_hosts: list[str] | None = field(default=None, metadata={"json": "ExtraHosts"})
    group_add: list[str] | None = field(default=None, metadata={"json": "GroupAdd"})
    sysctls: dict[str, str] | None = field(default=None, metadata={"json": "Sysctls"})
    tmpfs: dict[str, str] | None = field(default=None, metadata={"json": "Tmpfs"})
    ulimits: list[Ulimit] | None = field(default=None, metadata={"json": "Ulimits"})
    security_opt: list[str] | None = field(default=None, metadata={"json": "SecurityOpt"})
    oom_kill_disable: bool | None = field(default=None, metadata={"json": "OomKillDisable"})
    runtime: str | None = field(default=None, metadata={"json": "Runtime"})


@dataclass
class ContainerConfig:
    hostname: str | None = field(default=None, metadata={"json": "Hostname"})
    domainname: str | None = field(default=None, metadata={"json": "Domainname"})
    user: str | None = field(default=None, metadata={"json": "User"})
    tty: bool | None = field(default=None, metadata={"json": "Tty"})
    open_stdin: bool | None = field(default=None, metadata={"json": "OpenStdin"})
    stdin_once: bool | None = field(default=None, metadata={"json": "StdinOnce"})
    env: list[str] | None = field(default=None, metadata={"json": "Env"})
    cmd: list[str] | str | None = field(default=None, metadata={"json": "Cmd"})
    entrypoint: list[str] | str | None = field(default=None, metadata={"json": "Entrypoint"})
    image: str | None = field(default=None, metadata={"json": "Image"})
    working_dir: str | None = field(default=None, metadata={"json": "WorkingDir"})
    labels: dict[str, str] | None = field(default=None, metadata={"json": "Labels"})
    stop_signal: str | None = field(default=None, metadata={"json": "StopSignal"})
    stop_timeout: int | None = field(default=None, metadata={"json": "StopTimeout"})


# \Z, not $: Python's $ also matches before a final newline.
_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")
MIN_MEMORY = 6 * 1024 * 1024


def as_list(value: list[str] | str | None) -> list[str] | None:
    """Cmd and Entrypoint may be a string in old API versions: a shell-less single word."""
    if isinstance(value, str):
        return [value]
    return value


def parse_config(raw: Any) -> ContainerConfig:
    try:
        return decode(ContainerConfig, raw)
    except DecodeError as exc:
        raise InvalidParameter(str(exc)) from None


def parse_host_config(raw: Any) -> HostConfig:
    try:
        host = decode(HostConfig, raw or {}, "HostConfig")
    except DecodeError as exc:
        raise InvalidParameter(str(exc)) from None
    check_host_config(host)
    if isinstance(raw, dict):
        parse_log_config(raw.get("LogConfig"))
    return host


def check_host_config(host: HostConfig) -> None:
    """The checks dockerd makes before it creates anything (the messages are its own)."""
    # the network mode is checked by the network service (engine.networking)
    if host.memory and 0 < host.memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if host.memory_swap and host.memory_swap > 0 and host.memory \
            and host.memory_swap < host.memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    if host.nano_cpus and host.nano_cpus < 0:
        raise InvalidParameter("HostConfig.NanoCpus: must not be negative")
    rp = host.restart_policy
    policy = parse_policy(None if rp is None else
                          {"Name": rp.name, "MaximumRetryCount": rp.maximum_retry_count})
    if policy.restarts and host.auto_remove:
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")


def check_name(name: str) -> str:
    """A container name as stored: without the leading slash."""
    if not _NAME_RE.match(name):
        raise InvalidParameter(f"Invalid container name ({name}), only "
                               "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def parse_signal(text: str | int | None, default: int = signal.SIGTERM) -> int:
    """A signal as Docker accepts it: a number, ``KILL`` or ``SIGKILL``."""
    if text is None or text == "":
        return int(default)
    if isinstance(text, int) or text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
        raise InvalidParameter(f"Invalid signal: {text}")
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        if name.startswith("SIGRTMIN+") and name[9:].isdigit():
            return int(signal.SIGRTMIN) + int(name[9:])
        raise InvalidParameter(f"Invalid signal: {text}") from None
