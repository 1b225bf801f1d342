"""sampand's configuration: daemon.json merged with the command line, as dockerd does it.

The file uses dockerd's keys (``data-root``, ``hosts``, ``log-opts``, ``runtimes`` …). A
key given both in the file and as a flag is an error, as in dockerd; so is a key the file
should not have or a value that cannot work. Every error names the key, and sampand exits
with status 1 before it touches anything.
"""

from __future__ import annotations

import grp
import ipaddress
import json
import os
import re
import shutil
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..oci.decode import DecodeError, decode
from ..security.options import UNCONFINED, SecurityDefaults
from .logs import parse_size  # json-file's sizes, as its driver reads them

if TYPE_CHECKING:
    from ..network.ipam import Pool
    from .engine import EngineOptions

DEFAULT_CONFIG_FILE = "/etc/sampan/daemon.json"
DEFAULT_DATA_ROOT = "/var/lib/sampan"
DEFAULT_EXEC_ROOT = "/run/sampan"
DEFAULT_HOST = "unix:///run/sampan/sampan.sock"
DEFAULT_GROUP = "sampan"
DEFAULT_CGROUP_PARENT = "/sampan"
DEFAULT_RUNTIME = "sampan-runtime"
LOG_DRIVERS = ("json-file",)
# json-file's options (moby daemon/logger/jsonfilelog plus the common ones).
JSON_FILE_OPTS = ("max-size", "max-file", "compress", "labels", "labels-regex", "env",
                  "env-regex", "tag", "mode", "max-buffer-size")
MONITORS = ("sampan", "conmon")
ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
           "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


@dataclass
class RuntimeEntry:
    """One of daemon.json's ``runtimes``: an OCI runtime with runc's command line."""

    path: str = ""
    runtime_args: list[str] | None = field(default=None, metadata={"json": "runtimeArgs"})


@dataclass
class AddressPoolEntry:
    """One of ``default-address-pools``: a base network split into /size subnets."""

    base: str = ""
    size: int = 0


@dataclass
class UlimitEntry:
    name: str = field(default="", metadata={"json": "Name"})
    soft: int = field(default=0, metadata={"json": "Soft"})
    hard: int = field(default=0, metadata={"json": "Hard"})


@dataclass
class ContainerDefaults:
    """What the daemon's configuration gives every new container."""

    log_config: dict[str, Any] = field(
        default_factory=lambda: {"Type": "json-file", "Config": {}})
    ulimits: list[dict[str, Any]] = field(default_factory=list)  # HostConfig.Ulimits' shape
    security: SecurityDefaults = field(default_factory=SecurityDefaults)


def _key(name: str) -> dict[str, str]:
    return {"json": name}


@dataclass
class DaemonConfig:
    """Everything sampand is told, with dockerd's daemon.json key as each field's name."""

    data_root: str = field(default=DEFAULT_DATA_ROOT, metadata=_key("data-root"))
    exec_root: str = field(default=DEFAULT_EXEC_ROOT, metadata=_key("exec-root"))
    hosts: list[str] = field(default_factory=list, metadata=_key("hosts"))
    insecure_registries: list[str] = field(default_factory=list,
                                           metadata=_key("insecure-registries"))
    registry_mirrors: list[str] = field(default_factory=list,
                                        metadata=_key("registry-mirrors"))
    log_driver: str = field(default="json-file", metadata=_key("log-driver"))
    log_opts: dict[str, str] = field(default_factory=dict, metadata=_key("log-opts"))
    default_address_pools: list[AddressPoolEntry] = field(
        default_factory=list, metadata=_key("default-address-pools"))
    # The default network's bridge; its nftables table is named after it, so that two
    # sampands (a test's and a user's) never share or remove each other's. "none", as
    # dockerd's, makes no default network: its containers have a loopback only.
    bridge: str = field(default="sampan0", metadata=_key("bridge"))
    # dockerd 28's choice of packet filter: iptables or nftables ("": nftables if there)
    firewall_backend: str = field(default="", metadata=_key("firewall-backend"))
    runtimes: dict[str, RuntimeEntry] = field(default_factory=dict, metadata=_key("runtimes"))
    default_runtime: str = field(default=DEFAULT_RUNTIME, metadata=_key("default-runtime"))
    # Containers outlive sampand unless this is false (then they are stopped with it).
    live_restore: bool = field(default=True, metadata=_key("live-restore"))
    userns_remap: str = field(default="", metadata=_key("userns-remap"))
    default_ulimits: dict[str, UlimitEntry] = field(default_factory=dict,
                                                    metadata=_key("default-ulimits"))
    debug: bool = field(default=False, metadata=_key("debug"))
    labels: list[str] = field(default_factory=list, metadata=_key("labels"))  # key=value
    group: str = field(default=DEFAULT_GROUP, metadata=_key("group"))
    cgroup_parent: str = field(default=DEFAULT_CGROUP_PARENT, metadata=_key("cgroup-parent"))
    tls: bool = field(default=False, metadata=_key("tls"))
    tlsverify: bool = field(default=False, metadata=_key("tlsverify"))
    tlscacert: str = field(default="", metadata=_key("tlscacert"))
    tlscert: str = field(default="", metadata=_key("tlscert"))
    tlskey: str = field(default="", metadata=_key("tlskey"))
    pidfile: str = field(default="", metadata=_key("pidfile"))
    seccomp_profile: str = field(default="", metadata=_key("seccomp-profile"))
    no_new_privileges: bool = field(default=False, metadata=_key("no-new-privileges"))
    # Each container's monitor: sampan's own, forked from a warm helper (a start some 70 ms
    # quicker: no interpreter start-up per container), or conmon (sampan's own key).
    monitor: str = field(default="sampan", metadata=_key("monitor"))

    def address_pools(self) -> list[Pool]:
        """The pools as the network library takes them (its defaults if none are set)."""
        from ..network.ipam import DEFAULT_POOLS, Pool

        if not self.default_address_pools:
            return list(DEFAULT_POOLS)
        return [Pool(ipaddress.IPv4Network(p.base), p.size) for p in self.default_address_pools]

    def log_config(self) -> dict[str, Any]:
        """HostConfig.LogConfig for a container that asks for none."""
        return {"Type": self.log_driver, "Config": dict(self.log_opts)}

    def ulimits(self) -> list[dict[str, Any]]:
        """default-ulimits in HostConfig.Ulimits' shape."""
        return [{"Name": u.name or name, "Soft": u.soft, "Hard": u.hard}
                for name, u in sorted(self.default_ulimits.items())]

    def container_defaults(self) -> ContainerDefaults:
        return ContainerDefaults(
            log_config=self.log_config(), ulimits=self.ulimits(),
            security=SecurityDefaults(seccomp=load_seccomp_profile(self.seccomp_profile),
                                      no_new_privileges=self.no_new_privileges))

    def engine_options(self, conmon: str = "conmon") -> EngineOptions:
        """The engine's typed options (paths made absolute)."""
        from .engine import EngineOptions
        from .runtimes import RuntimeInfo

        runtimes = {name: RuntimeInfo(e.path, tuple(e.runtime_args or ()))
                    for name, e in all_runtimes(self).items()}
        return EngineOptions(
            data_root=os.path.abspath(self.data_root), exec_root=os.path.abspath(self.exec_root),
            runtime=runtimes[self.default_runtime].path, conmon=conmon,
            cgroup_parent=self.cgroup_parent, runtimes=runtimes,
            default_runtime=self.default_runtime,
            insecure_registries=list(self.insecure_registries),
            registry_mirrors=list(self.registry_mirrors), address_pools=self.address_pools(),
            bridge=self.bridge, firewall_backend=self.firewall_backend,
            container_defaults=self.container_defaults(), live_restore=self.live_restore,
            debug=self.debug, labels=list(self.labels), userns_remap=self.userns_remap,
            monitor=self.monitor)


def load_seccomp_profile(value: str) -> str:
    """seccomp-profile: "" (docker's default), "unconfined", "builtin", or a file whose
    profile is checked now and kept as text."""
    if value in ("", UNCONFINED, "builtin"):
        return value
    from ..security.seccomp import ProfileError, parse

    try:
        with open(value, "rb") as f:
            text = f.read()
        parse(text)
    except OSError as exc:
        raise ConfigError(f"seccomp-profile: {value}: {exc.strerror}") from None
    except ProfileError as exc:
        raise ConfigError(f"seccomp-profile: {value}: {exc}") from None
    return text.decode()


KEYS = {f.metadata["json"]: f.name for f in fields(DaemonConfig)}


def load_file(path: str, required: bool) -> dict[str, Any]:
    """daemon.json as a dict ({} if the default file is absent)."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"open {path}: no such file or directory") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"open {path}: {exc.strerror}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("the configuration file must hold a JSON object")
    unknown = sorted(k for k in data if k not in KEYS)
    if unknown:
        raise ConfigError("the following directives don't match any configuration option: "
                          + ", ".join(unknown))
    return data


def merge(flags: dict[str, Any], file: dict[str, Any]) -> DaemonConfig:
    """The configuration from flags (only those given, by daemon.json key) and the file."""
    both = sorted(k for k in flags if k in file)
    if both:
        detail = ", ".join(f"{k}: (from flag: {_show(flags[k])}, from file: {_show(file[k])})"
                           for k in both)
        raise ConfigError("the following directives are specified both as a flag and in the "
                          f"configuration file: {detail}")
    try:
        config = decode(DaemonConfig, {**file, **flags})
    except DecodeError as exc:
        raise ConfigError(str(exc)) from None
    validate(config)
    return config


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, dict) else str(value)


# Validation --------------------------------------------------------------------------------

def validate(c: DaemonConfig) -> None:
    for key in ("data-root", "exec-root"):
        value = getattr(c, KEYS[key])
        if not value:
            raise ConfigError(f"{key}: must not be empty")
    for host in c.hosts:
        parse_host(host)
    for entry in c.insecure_registries:
        if "://" in entry.removeprefix("http://").removeprefix("https://"):
            raise ConfigError(f"insecure-registries: invalid registry {entry!r}")
    for mirror in c.registry_mirrors:
        _check_mirror(mirror)
    for label in c.labels:
        if not label.partition("=")[0] or "=" not in label:
            raise ConfigError(f"labels: invalid label {label!r}: want key=value")
    _check_log(c)
    for i, pool in enumerate(c.default_address_pools):
        _check_pool(pool, f"default-address-pools[{i}]")
    if c.monitor not in MONITORS:
        raise ConfigError(f"monitor: {c.monitor!r} is not one of {', '.join(MONITORS)}")
    if c.firewall_backend not in ("", "iptables", "nftables"):
        raise ConfigError(f"firewall-backend: {c.firewall_backend!r} is not one of iptables, "
                          "nftables")
    if not 0 < len(c.bridge) <= 15 or not all(ch.isalnum() or ch in "_.-" for ch in c.bridge) \
            or c.bridge in (".", ".."):
        raise ConfigError(f"bridge: {c.bridge!r} is not a valid interface name (1-15 letters, "
                          "digits, '_', '.', '-')")
    _check_runtimes(c)
    for name, limit in c.default_ulimits.items():
        _check_ulimit(name, limit)
    if not c.cgroup_parent.startswith("/"):
        raise ConfigError(f"cgroup-parent: {c.cgroup_parent!r} must be an absolute path")
    if c.group != DEFAULT_GROUP:
        group_id(c.group)  # a group asked for by name must exist
    load_seccomp_profile(c.seccomp_profile)
    if c.userns_remap:
        check_userns_remap(c.userns_remap)


def parse_host(host: str) -> tuple[str, str]:
    """-H / hosts: (scheme, address) for unix://path, tcp://host:port and fd://[name]."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        raise ConfigError(f"hosts: invalid address {host!r} (want unix:///path, "
                          "tcp://host:port or fd://)")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise ConfigError(f"hosts: {host!r}: the socket path must be absolute")
        return scheme, rest
    if scheme == "tcp":
        _, colon, port = rest.rpartition(":")
        if not colon or not port.isdigit() or not 0 < int(port) < 65536 or "/" in rest:
            raise ConfigError(f"hosts: {host!r}: want tcp://host:port")
        return scheme, rest
    if scheme == "fd":
        return scheme, rest
    raise ConfigError(f"hosts: {host!r}: unsupported scheme {scheme!r} "
                      "(unix, tcp and fd are)")


def _check_mirror(mirror: str) -> None:
    if "://" not in mirror:
        raise ConfigError(f"registry-mirrors: invalid mirror: no scheme specified for "
                          f"{mirror!r}: must use either 'https://' or 'http://'")
    scheme = mirror.split("://", 1)[0]
    if scheme not in ("http", "https"):
        raise ConfigError(f"registry-mirrors: invalid mirror: unsupported scheme {scheme!r} "
                          f"in {mirror!r}")


def _check_log(c: DaemonConfig) -> None:
    if c.log_driver not in LOG_DRIVERS:
        raise ConfigError(f"log-driver: unsupported logging driver {c.log_driver!r} "
                          f"(sampan has {', '.join(LOG_DRIVERS)})")
    for key in c.log_opts:
        if key not in JSON_FILE_OPTS:
            raise ConfigError(f"log-opts: unknown log opt {key!r} for {c.log_driver} "
                              "log driver")
    size = c.log_opts.get("max-size")
    if size is not None:
        try:
            if parse_size(size) <= 0:
                raise ValueError(size)
        except ValueError:
            raise ConfigError(f"log-opts: max-size: invalid size {size!r}") from None
    files = c.log_opts.get("max-file")
    if files is not None:
        if not files.isdigit() or int(files) < 1:
            raise ConfigError(f"log-opts: max-file: {files!r} must be a number of at least 1")
        if int(files) > 1 and size is None:
            raise ConfigError("log-opts: max-file cannot be set when max-size is not set")
    if c.log_opts.get("compress", "false") not in ("true", "false", "1", "0"):
        raise ConfigError(f"log-opts: compress: {c.log_opts['compress']!r} is not a boolean")


def _check_pool(pool: AddressPoolEntry, where: str) -> None:
    try:
        base = ipaddress.IPv4Network(pool.base)
    except ValueError as exc:
        raise ConfigError(f"{where}.base: invalid IPv4 network {pool.base!r}: {exc}") from None
    if not base.prefixlen <= pool.size <= 30:
        raise ConfigError(f"{where}.size: {pool.size} must be between the base's prefix "
                          f"length ({base.prefixlen}) and 30")


def builtin_runtimes() -> dict[str, RuntimeEntry]:
    """sampan-runtime always (beside this interpreter, else on PATH); runc when installed."""
    import sys

    beside = os.path.join(os.path.dirname(sys.executable), "sampan-runtime")
    ours = beside if os.access(beside, os.X_OK) else shutil.which("sampan-runtime")
    out = {DEFAULT_RUNTIME: RuntimeEntry(path=ours or "sampan-runtime")}
    runc = shutil.which("runc")
    if runc:
        out["runc"] = RuntimeEntry(path=runc)
    return out


def all_runtimes(c: DaemonConfig) -> dict[str, RuntimeEntry]:
    return {**builtin_runtimes(), **c.runtimes}


def _check_runtimes(c: DaemonConfig) -> None:
    for name, entry in c.runtimes.items():
        if name in (DEFAULT_RUNTIME, "runc"):
            raise ConfigError(f"runtimes: runtime name {name!r} is reserved")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ConfigError(f"runtimes: invalid runtime name {name!r}")
        if not entry.path:
            raise ConfigError(f"runtimes.{name}.path: a runtime needs a path")
        if shutil.which(entry.path) is None:
            raise ConfigError(f"runtimes.{name}.path: {entry.path!r}: no such executable")
    if c.default_runtime not in all_runtimes(c):
        raise ConfigError(f"default-runtime: unknown runtime {c.default_runtime!r} (known: "
                          f"{', '.join(sorted(all_runtimes(c)))})")


def _check_ulimit(name: str, limit: UlimitEntry) -> None:
    if name not in ULIMITS:
        raise ConfigError(f"default-ulimits: invalid ulimit type: {name}")
    if limit.name and limit.name != name:
        raise ConfigError(f"default-ulimits.{name}.Name: {limit.name!r} differs from its "
                          "key")
    if limit.soft > limit.hard:
        raise ConfigError(f"default-ulimits.{name}: ulimit soft limit must be less than or "
                          f"equal to hard limit: {limit.soft} > {limit.hard}")


def group_id(name: str) -> int:
    """The gid of the API socket's group (the name or a number)."""
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"group: group {name!r} not found") from None


def socket_group(c: DaemonConfig) -> int:
    """docker's rule: the configured group; the default one only if it exists, else root."""
    if c.group == DEFAULT_GROUP:
        try:
            return grp.getgrnam(DEFAULT_GROUP).gr_gid
        except KeyError:
            return 0
    return group_id(c.group)


def check_userns_remap(value: str) -> tuple[str, str]:
    """``default`` or ``user[:group]``, the user having ranges in /etc/subuid and subgid
    (``default``'s user and ranges are made at start when missing, as dockerd does)."""
    from .userns import RemapError, load_map

    try:
        idmap = load_map(value)
    except RemapError as exc:
        raise ConfigError(str(exc)) from None
    return idmap.user, idmap.group


# Command-line flags -------------------------------------------------------------------------

def key_value(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"{what}: {text!r}: want key=value")
    return key, value


def pool_flag(text: str) -> dict[str, Any]:
    """--default-address-pool base=172.30.0.0/16,size=24"""
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, value = key_value(part, "default-address-pool")
        if key == "base":
            out["base"] = value
        elif key == "size" and value.isdigit():
            out["size"] = int(value)
        else:
            raise ConfigError(f"default-address-pool: invalid field {part!r}")
    return out


def ulimit_flag(text: str) -> tuple[str, dict[str, Any]]:
    """--default-ulimit nofile=1024[:2048]"""
    name, value = key_value(text, "default-ulimit")
    soft, _, hard = value.partition(":")
    try:
        limits = int(soft), int(hard or soft)
    except ValueError:
        raise ConfigError(f"default-ulimit: {text!r}: limits must be numbers") from None
    return name, {"Name": name, "Soft": limits[0], "Hard": limits[1]}
