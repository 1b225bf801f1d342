"""The OCI runtime specification (config.json, versions 1.0 to 1.2) as typed records.

Field names follow the spec's JSON keys (camelCase in JSON, snake_case here); ``load_spec``
checks every type and names the field of any error.  Windows, Solaris and VM sections are
not modelled: sampan is a Linux runtime.
These are records (`sampan.oci.record`), not dataclasses: the runtime imports them on
every container start. Their annotations are evaluated as the classes are made (no
``from __future__ import annotations`` here): strings would be compiled and evaluated on
the first decode of every start instead, about 0.5 ms.
"""

from . import jsonio
from .decode import DecodeError, decode, encode
from .record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _json(name: str) -> "Any":
    return field(default=None, metadata={"json": name})


@record
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] | None = None
    username: str | None = None


@record
class Box:
    height: int = 0
    width: int = 0


@record
class Capabilities:
    bounding: list[str] | None = None
    effective: list[str] | None = None
    inheritable: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


@record
class Rlimit:
    type: str
    hard: int
    soft: int


@record
class IOPriority:
    class_: str = field(default="", metadata={"json": "class"})
    priority: int = 0


@record
class Scheduler:
    policy: str = ""
    nice: int | None = None
    priority: int | None = None
    flags: list[str] | None = None
    runtime: int | None = None
    deadline: int | None = None
    period: int | None = None


@record
class CPUAffinity:
    initial: str | None = None
    final: str | None = None


@record
class Process:
    cwd: str = "/"
    args: list[str] | None = None
    env: list[str] | None = None
    terminal: bool = False
    console_size: Box | None = None
    user: User = field(default_factory=User)
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] | None = None
    no_new_privileges: bool = False
    apparmor_profile: str | None = None
    oom_score_adj: int | None = None
    selinux_label: str | None = None
    io_priority: IOPriority | None = None
    scheduler: Scheduler | None = None
    exec_cpu_affinity: CPUAffinity | None = _json("execCPUAffinity")


@record
class Root:
    path: str
    readonly: bool = False


@record
class IDMapping:
    container_id: int = _json("containerID")
    host_id: int = _json("hostID")
    size: int = 0


@record
class Mount:
    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] | None = None
    uid_mappings: list[IDMapping] | None = None
    gid_mappings: list[IDMapping] | None = None


@record
class Hook:
    path: str
    args: list[str] | None = None
    env: list[str] | None = None
    timeout: int | None = None


@record
class Hooks:
    prestart: list[Hook] | None = None
    create_runtime: list[Hook] | None = None
    create_container: list[Hook] | None = None
    start_container: list[Hook] | None = None
    poststart: list[Hook] | None = None
    poststop: list[Hook] | None = None


@record
class Namespace:
    type: str
    path: str | None = None


@record
class TimeOffset:
    secs: int = 0
    nanosecs: int = 0


@record
class Device:
    type: str
    path: str
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@record
class DeviceCgroup:
    allow: bool
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None


@record
class Memory:
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = _json("kernelTCP")
    swappiness: int | None = None
    disable_oom_killer: bool | None = _json("disableOOMKiller")
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


@record
class CPU:
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


@record
class Pids:
    limit: int = 0


@record
class WeightDevice:
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@record
class ThrottleDevice:
    major: int
    minor: int
    rate: int


@record
class BlockIO:
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: list[WeightDevice] | None = None
    throttle_read_bps_device: list[ThrottleDevice] | None = None
    throttle_write_bps_device: list[ThrottleDevice] | None = None
    throttle_read_iops_device: list[ThrottleDevice] | None = _json("throttleReadIOPSDevice")
    throttle_write_iops_device: list[ThrottleDevice] | None = _json("throttleWriteIOPSDevice")


@record
class HugepageLimit:
    page_size: str
    limit: int


@record
class InterfacePriority:
    name: str
    priority: int


@record
class Network:
    class_id: int | None = _json("classID")
    priorities: list[InterfacePriority] | None = None


@record
class Resources:
    devices: list[DeviceCgroup] | None = None
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = _json("blockIO")
    hugepage_limits: list[HugepageLimit] | None = None
    network: Network | None = None
    rdma: dict[str, dict[str, int]] | None = None
    unified: dict[str, str] | None = None


@record
class SeccompArg:
    index: int
    value: int
    op: str
    value_two: int = 0


@record
class SeccompSyscall:
    names: list[str]
    action: str
    errno_ret: int | None = None
    args: list[SeccompArg] | None = None


@record
class Seccomp:
    default_action: str
    default_errno_ret: int | None = None
    architectures: list[str] | None = None
    flags: list[str] | None = None
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: list[SeccompSyscall] | None = None


@record
class Personality:
    domain: str
    flags: list[str] | None = None


@record
class Linux:
    namespaces: list[Namespace] | None = None
    uid_mappings: list[IDMapping] | None = None
    gid_mappings: list[IDMapping] | None = None
    time_offsets: dict[str, TimeOffset] | None = None
    devices: list[Device] | None = None
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: str | None = None
    seccomp: Seccomp | None = None
    sysctl: dict[str, str] | None = None
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    mount_label: str | None = None
    personality: Personality | None = None
    intel_rdt: dict[str, object] | None = _json("intelRdt")


@record
class Spec:
    oci_version: str = _json("ociVersion")
    process: Process | None = None
    root: Root | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] | None = None
    hooks: Hooks | None = None
    annotations: dict[str, str] | None = None
    linux: Linux | None = None

    def namespace(self, kind: str) -> Namespace | None:
        """The namespace entry of ``kind`` (pid, network, ...), if the config asks for one."""
        for ns in (self.linux.namespaces if self.linux else None) or []:
            if ns.type == kind:
                return ns
        return None

    def to_json(self) -> "dict[str, Any]":
        data: dict[str, Any] = encode(self)
        return data


class ConfigError(ValueError):
    """config.json is invalid; the message names the field."""


NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def parse_spec(data: "Any") -> "Spec":
    """Decode and validate a config.json document."""
    try:
        spec = decode(Spec, data)
    except DecodeError as exc:
        raise ConfigError(str(exc)) from None
    validate(spec)
    return spec


def load_spec(path: str) -> Spec:
    try:
        with open(path, "rb") as f:
            data = jsonio.loads(f.read())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from None
    return parse_spec(data)


def validate(spec: Spec) -> None:
    """Checks that decoding cannot express: required-ness, allowed values, consistency."""
    if not spec.oci_version:
        raise ConfigError("ociVersion: required field is missing")
    major = spec.oci_version.split(".")[0]
    if major != "1":
        raise ConfigError(f"ociVersion: unsupported version {spec.oci_version!r} (want 1.x)")
    if spec.root is None:
        raise ConfigError("root: required field is missing")
    if spec.process is not None:
        proc = spec.process
        if not proc.args:
            raise ConfigError("process.args: must contain at least the program to run")
        if not proc.cwd.startswith("/"):
            raise ConfigError(f"process.cwd: must be an absolute path, got {proc.cwd!r}")
        for i, env in enumerate(proc.env or []):
            if "=" not in env:
                raise ConfigError(f"process.env[{i}]: expected KEY=value, got {env!r}")
        seen: set[str] = set()
        for i, rl in enumerate(proc.rlimits or []):
            if not rl.type.startswith("RLIMIT_"):
                raise ConfigError(f"process.rlimits[{i}].type: unknown rlimit {rl.type!r}")
            if rl.type in seen:
                raise ConfigError(f"process.rlimits[{i}].type: {rl.type} given twice")
            seen.add(rl.type)
            if rl.soft > rl.hard:
                raise ConfigError(f"process.rlimits[{i}]: soft limit {rl.soft} exceeds hard "
                                  f"limit {rl.hard}")
        if proc.oom_score_adj is not None and not -1000 <= proc.oom_score_adj <= 1000:
            raise ConfigError("process.oomScoreAdj: must be between -1000 and 1000")
    for i, m in enumerate(spec.mounts or []):
        if not m.destination.startswith("/"):
            raise ConfigError(f"mounts[{i}].destination: must be an absolute path, "
                              f"got {m.destination!r}")
    linux = spec.linux
    if linux is None:
        return
    kinds: set[str] = set()
    for i, ns in enumerate(linux.namespaces or []):
        if ns.type not in NAMESPACE_TYPES:
            raise ConfigError(f"linux.namespaces[{i}].type: unknown namespace {ns.type!r}")
        if ns.type in kinds:
            raise ConfigError(f"linux.namespaces[{i}].type: namespace {ns.type} given twice")
        kinds.add(ns.type)
    if (linux.uid_mappings or linux.gid_mappings) and "user" not in kinds:
        raise ConfigError("linux.uidMappings: mappings need a user namespace in "
                          "linux.namespaces")
    if linux.time_offsets and "time" not in kinds:
        raise ConfigError("linux.timeOffsets: offsets need a time namespace in "
                          "linux.namespaces")
    if spec.hostname and "uts" not in kinds:
        raise ConfigError("hostname: setting it needs a uts namespace in linux.namespaces")
    if linux.rootfs_propagation not in (None, "", "private", "rprivate", "slave", "rslave",
                                        "shared", "rshared", "unbindable", "runbindable"):
        raise ConfigError(f"linux.rootfsPropagation: unknown value "
                          f"{linux.rootfs_propagation!r}")
    for i, dev in enumerate(linux.devices or []):
        if dev.type not in ("c", "b", "u", "p"):
            raise ConfigError(f"linux.devices[{i}].type: unknown device type {dev.type!r}")
        if dev.type != "p" and (dev.major is None or dev.minor is None):
            raise ConfigError(f"linux.devices[{i}]: major and minor are required for "
                              f"type {dev.type}")
