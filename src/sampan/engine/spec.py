"""A container's Docker configuration → the OCI runtime spec (config.json) of its bundle.

The base is runc's template (``oci.defaults.default_spec``) with Docker's security defaults
from the same module (capabilities, masked and read-only paths); the process comes from
``images.process_config`` (image defaults, user resolved in the container's own passwd).
SecurityOpt, the seccomp filter (docker's default profile unless asked otherwise) and the
daemon's default ulimits come from ``sampan.security`` and ``daemonconfig.ContainerDefaults``.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from ..images import ImageConfigError, process_config
from ..kernel import caps as kcaps
from ..oci.defaults import (
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    DOCKER_DEFAULT_CAPS,
    default_spec,
)
from ..oci.image import ImageConfig
from ..oci.spec import ConfigError, parse_spec
from ..security import SecurityOptions, parse_security_opt, seccomp_for
from ..security.options import no_new_privileges
from . import dockerinit
from .config import HostConfig, as_list, parse_config, parse_host_config
from .daemonconfig import ContainerDefaults
from .errors import InvalidParameter
from .mounts import oci_mounts
from .record import Container

if TYPE_CHECKING:
    from .networking import Sandbox
    from .userns import Remap

CGROUP_PARENT = "/sampan"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
# Docker's default device rules: deny all, allow mknod, then the standard devices.
_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2))),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # /dev/pts/*
]


def capabilities(host: HostConfig) -> list[str]:
    """Docker's default set with CapAdd and CapDrop applied (``ALL`` and bare names too)."""
    known = list(kcaps.CAPABILITIES[:kcaps.last_cap() + 1])

    def norm(name: str, field: str) -> str:
        full = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
        if full != "CAP_ALL" and full not in kcaps.CAPABILITIES:
            raise InvalidParameter(f"{field}: unknown capability: {name!r}")
        return full

    if host.privileged:  # every capability the daemon has, as moby's GetAllCapabilities
        return [c for c in known if c in _own_bounding_set()]
    add = [norm(c, "HostConfig.CapAdd") for c in host.cap_add or []]
    drop = [norm(c, "HostConfig.CapDrop") for c in host.cap_drop or []]
    if "CAP_ALL" in add:  # Docker's TweakCapabilities: ALL added, minus what is dropped
        return [c for c in known if c not in drop]
    if "CAP_ALL" in drop:  # nothing but what is added
        return [c for c in add if c in known]
    result = [c for c in DOCKER_DEFAULT_CAPS if c not in drop]
    return result + [c for c in add if c not in result and c in known]


def _own_bounding_set() -> set[str]:
    """The capabilities in sampand's own bounding set (a VM or container may lack some)."""
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("CapBnd:"))
    except (OSError, StopIteration):
        return set(kcaps.CAPABILITIES)
    return set(kcaps.names(int(line.split()[1], 16)))


def container_files(directory: str, container: Container, host: HostConfig) -> dict[str, str]:
    """Write /etc/hostname, /etc/hosts and /etc/resolv.conf for the container; their paths."""
    hostname = hostname_of(container, host)
    hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::\tip6-localnet", "ff00::\tip6-mcastprefix", "ff02::1\tip6-allnodes",
             "ff02::2\tip6-allrouters"]
    for entry in host.extra_hosts or []:
        name, _, address = entry.partition(":")
        if not address:
            raise InvalidParameter(f"HostConfig.ExtraHosts: invalid entry {entry!r} "
                                   "(want host:ip)")
        hosts.append(f"{address}\t{name}")
    if (host.network_mode or "") != "host":
        hosts.append(f"127.0.1.1\t{hostname}")
    try:
        with open("/etc/resolv.conf") as f:
            resolv = f.read()
    except OSError:
        resolv = ""
    files = {"hostname": hostname + "\n", "hosts": "\n".join(hosts) + "\n",
             "resolv.conf": resolv}
    paths = {}
    for name, text in files.items():
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        paths[name] = path
    return paths


def hostname_of(container: Container, host: HostConfig) -> str:
    if (host.network_mode or "") == "host":
        return socket.gethostname()
    return container.config.get("Hostname") or container.id[:12]


def write_files(directory: str, texts: dict[str, str]) -> dict[str, str]:
    """Write the /etc files networking prepared into the container's directory; their paths."""
    paths = {}
    for name, text in texts.items():
        paths[name] = os.path.join(directory, name)
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


def build_spec(container: Container, image: ImageConfig, rootfs: str, directory: str,
               cgroup_parent: str = CGROUP_PARENT,
               defaults: ContainerDefaults | None = None, sandbox: Sandbox | None = None,
               remap: Remap | None = None) -> dict[str, Any]:
    """The config.json of ``container`` whose root filesystem is mounted at ``rootfs``."""
    defaults = defaults or ContainerDefaults()
    config = parse_config(container.config)
    host = parse_host_config(container.host_config)
    try:
        process = process_config(
            image, rootfs, cmd=as_list(config.cmd) or [],
            entrypoint=as_list(config.entrypoint) or [],
            env=[*(sandbox.env if sandbox else []), *(config.env or [])],
            user=config.user or "", workdir=config.working_dir or None,
            group_add=host.group_add or [])
    except ImageConfigError as exc:
        raise InvalidParameter(str(exc)) from None
    files = (write_files(directory, sandbox.files) if sandbox is not None
             else container_files(directory, container, host))
    spec = default_spec()
    proc = spec["process"]
    proc["terminal"] = bool(config.tty)
    size = container.host_config.get("ConsoleSize")
    if config.tty and isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and v > 0 for v in size):
        proc["consoleSize"] = {"height": size[0], "width": size[1]}
    proc["args"] = process.args
    proc["env"] = process.env + (["TERM=xterm"] if config.tty and not any(
        e.startswith("TERM=") for e in process.env) else [])
    proc["cwd"] = process.cwd
    user = process.user
    proc["user"] = {"uid": user.uid, "gid": user.gid,
                    **({"additionalGids": user.additional_gids} if user.additional_gids
                       else {})}
    caps = capabilities(host)
    proc["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    # --- security defaults (sampan.security; daemonconfig.ContainerDefaults) ---
    security = security_options(host)
    proc["noNewPrivileges"] = no_new_privileges(security, defaults.security)
    proc.pop("rlimits", None)  # Docker's containers inherit the daemon's unless --ulimit
    ulimits = merged_ulimits(host, defaults)
    if ulimits:
        proc["rlimits"] = ulimits
    # --- end of security defaults ---
    spec["root"] = {"path": rootfs, "readonly": bool(host.readonly_rootfs)}
    spec["hostname"] = hostname_of(container, host)
    if config.domainname:
        spec["domainname"] = config.domainname
    user_mounts = oci_mounts(container)  # volumes, binds, tmpfs (engine/mounts.py)
    taken = {m["destination"] for m in user_mounts}
    mounts = spec["mounts"] = [m for m in spec["mounts"] if m["destination"] not in taken]
    for m in mounts:
        if m["destination"] == "/dev/shm":
            m["options"] = [o for o in m["options"] if not o.startswith("size=")] + [
                f"size={host.shm_size or DEFAULT_SHM_SIZE}"]
        if m["destination"] == "/sys" and host.privileged:
            m["options"] = [o for o in m["options"] if o != "ro"]
    mounts.extend(user_mounts)
    for name in ("hostname", "hosts", "resolv.conf"):
        if f"/etc/{name}" in taken:
            continue
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": files[name],
                       "options": ["rbind", "rprivate"] +
                       (["ro"] if host.readonly_rootfs else [])})
    if host.init:
        dockerinit.apply(spec)
    linux = spec["linux"]
    namespaces = ["pid", "ipc", "uts", "mount"]
    if (host.network_mode or "") != "host":
        namespaces.append("network")
    linux["namespaces"] = [{"type": t} for t in namespaces]
    if sandbox is not None:  # networking: the host's stack, or the namespace it prepared
        linux["namespaces"] = [{"type": t} for t in namespaces if t != "network"]
        if not sandbox.host:
            linux["namespaces"].append(
                {"type": "network", **({"path": sandbox.netns} if sandbox.netns else {})})
    if remap is not None:  # --userns-remap: the container's root is the remapped range's
        linux["namespaces"].insert(0, {"type": "user"})
        linux.update(remap.idmap.oci())
        remap.own_container_files(container, list(files.values()))
    linux["cgroupsPath"] = f"{cgroup_parent.rstrip('/')}/{container.id}"
    linux["resources"] = _resources(host)
    if host.privileged:
        linux.pop("maskedPaths", None)
        linux.pop("readonlyPaths", None)
    else:
        linux["maskedPaths"] = list(DEFAULT_MASKED_PATHS)
        linux["readonlyPaths"] = list(DEFAULT_READONLY_PATHS)
    if host.sysctls:
        linux["sysctl"] = dict(host.sysctls)
    try:
        checked = parse_spec(spec).to_json()
    except ConfigError as exc:
        raise InvalidParameter(str(exc)) from None
    # The seccomp section is made here from a checked profile (security/seccomp.py), and
    # decoding its few hundred rules again was the most of this check's cost.
    filt = seccomp_for(security, defaults.security, bool(host.privileged), caps)
    if filt is not None:
        checked["linux"]["seccomp"] = filt
    return checked


def security_options(host: HostConfig) -> SecurityOptions:
    """HostConfig.SecurityOpt, or docker's 400 naming the bad entry."""
    try:
        return parse_security_opt(host.security_opt)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None


def merged_ulimits(host: HostConfig, defaults: ContainerDefaults) -> list[dict[str, Any]]:
    """HostConfig.Ulimits over the daemon's default-ulimits, as process.rlimits."""
    chosen = {u["Name"]: (u["Soft"], u["Hard"]) for u in defaults.ulimits}
    chosen.update({u.name: (u.soft, u.hard) for u in host.ulimits or []})
    return [{"type": "RLIMIT_" + name.upper(), "soft": soft, "hard": hard}
            for name, (soft, hard) in chosen.items()]


def _resources(host: HostConfig) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [{"allow": True, "access": "rwm"}] if host.privileged
                           else [dict(r) for r in _DEVICE_RULES]}
    memory: dict[str, Any] = {}
    if host.memory:
        memory["limit"] = host.memory
        swap = host.memory_swap or 0
        memory["swap"] = -1 if swap == -1 else (swap or 2 * host.memory)
    if host.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if host.nano_cpus:
        cpu["period"] = 100_000
        cpu["quota"] = host.nano_cpus * 100_000 // 1_000_000_000
    elif host.cpu_quota:
        cpu["quota"] = host.cpu_quota
        cpu["period"] = host.cpu_period or 100_000
    if host.cpu_shares:
        cpu["shares"] = host.cpu_shares
    if host.cpuset_cpus:
        cpu["cpus"] = host.cpuset_cpus
    if cpu:
        res["cpu"] = cpu
    if host.pids_limit and host.pids_limit > 0:
        res["pids"] = {"limit": host.pids_limit}
    return res
