"""`run`/`create` flags and their translation to the create request (Config, HostConfig,
NetworkingConfig), as docker/cli's opts package does it."""

from __future__ import annotations

import os

from .flags import BOOL, INT, LIST, STR, Opt, Parsed, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CREATE_OPTS = [
    Opt("a,attach", LIST, "Attach to STDIN, STDOUT or STDERR"),
    Opt("add-host", LIST, "Add a custom host-to-IP mapping (host:ip)"),
    Opt("annotation", LIST), Opt("blkio-weight", INT),
    Opt("c,cpu-shares", INT, "CPU shares (relative weight)"),
    Opt("cap-add", LIST, "Add Linux capabilities"),
    Opt("cap-drop", LIST, "Drop Linux capabilities"),
    Opt("cgroup-parent", STR), Opt("cgroupns", STR), Opt("cidfile", STR),
    Opt("cpu-period", INT), Opt("cpu-quota", INT),
    Opt("cpus", STR, "Number of CPUs"), Opt("cpuset-cpus", STR), Opt("cpuset-mems", STR),
    Opt("device", LIST), Opt("dns", LIST, "Set custom DNS servers"),
    Opt("dns-option", LIST), Opt("dns-search", LIST), Opt("domainname", STR),
    Opt("entrypoint", STR, "Overwrite the default ENTRYPOINT of the image"),
    Opt("e,env", LIST, "Set environment variables"),
    Opt("env-file", LIST, "Read in a file of environment variables"),
    Opt("expose", LIST), Opt("group-add", LIST),
    Opt("health-cmd", STR, "Command to run to check health"),
    Opt("health-interval", STR), Opt("health-retries", INT),
    Opt("health-start-interval", STR), Opt("health-start-period", STR),
    Opt("health-timeout", STR), Opt("no-healthcheck"),
    Opt("h,hostname", STR, "Container host name"),
    Opt("init", help_="Run an init inside the container"),
    Opt("i,interactive", help_="Keep STDIN open even if not attached"),
    Opt("ip", STR), Opt("ip6", STR), Opt("ipc", STR), Opt("isolation", STR),
    Opt("l,label", LIST, "Set meta data on a container"), Opt("label-file", LIST),
    Opt("link", LIST), Opt("log-driver", STR), Opt("log-opt", LIST),
    Opt("mac-address", STR),
    Opt("m,memory", STR, "Memory limit"), Opt("memory-reservation", STR),
    Opt("memory-swap", STR), Opt("memory-swappiness", INT),
    Opt("mount", LIST, "Attach a filesystem mount to the container"),
    Opt("name", STR, "Assign a name to the container"),
    Opt("network,net", STR, "Connect a container to a network"),
    Opt("network-alias", LIST), Opt("oom-kill-disable"), Opt("oom-score-adj", INT),
    Opt("pid", STR), Opt("pids-limit", INT, "Tune container pids limit"),
    Opt("platform", STR), Opt("privileged", help_="Give extended privileges"),
    Opt("p,publish", LIST, "Publish a container's port(s) to the host"),
    Opt("P,publish-all", help_="Publish all exposed ports to random ports"),
    Opt("pull", STR, "Pull image before running (always, missing, never)", "missing"),
    Opt("q,quiet"), Opt("read-only", help_="Mount the container's root filesystem read only"),
    Opt("restart", STR, "Restart policy", "no"),
    Opt("rm", help_="Automatically remove the container when it exits"),
    Opt("runtime", STR), Opt("security-opt", LIST, "Security Options"),
    Opt("shm-size", STR), Opt("stop-signal", STR, "Signal to stop the container"),
    Opt("stop-timeout", INT, "Timeout (in seconds) to stop a container"),
    Opt("storage-opt", LIST), Opt("sysctl", LIST),
    Opt("tmpfs", LIST, "Mount a tmpfs directory"),
    Opt("t,tty", help_="Allocate a pseudo-TTY"),
    Opt("ulimit", LIST, "Ulimit options"),
    Opt("u,user", STR, "Username or UID (format: <name|uid>[:<group|gid>])"),
    Opt("userns", STR), Opt("uts", STR),
    Opt("v,volume", LIST, "Bind mount a volume"), Opt("volume-driver", STR),
    Opt("volumes-from", LIST),
    Opt("w,workdir", STR, "Working directory inside the container"),
]

RUN_OPTS = [*CREATE_OPTS, Opt("d,detach", help_="Run container in background"),
            Opt("detach-keys", STR), Opt("sig-proxy", default=True)]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
          "p": 1 << 50}


def ram_bytes(text: str, flag: str) -> int:
    """go-units RAMInBytes: "512m", "1.5g", "1024" (binary multiples)."""
    low = text.strip().lower()
    if low.endswith("ib"):
        low = low[:-2]
    elif low.endswith("b") and len(low) > 1 and low[-2] in _UNITS:
        low = low[:-1]
    unit = low[-1] if low and low[-1] in "bkmgtp" else ""
    number = low[:-1] if unit else low
    try:
        value = float(number)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "{flag}" flag: invalid size: '
                         f"'{text}'") from None
    if value < 0:
        raise UsageError(f'invalid argument "{text}" for "{flag}" flag: invalid size: '
                         f"'{text}'")
    return int(value * _UNITS[unit])


_DURATION_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}


def duration_ns(text: str, flag: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    total, i = 0.0, 0
    if text in ("0", ""):
        return 0
    while i < len(text):
        j = i
        while j < len(text) and (text[j].isdigit() or text[j] == "."):
            j += 1
        k = j
        while k < len(text) and not (text[k].isdigit() or text[k] == "."):
            k += 1
        unit = text[j:k]
        if j == i or unit not in _DURATION_UNITS:
            raise UsageError(f'invalid argument "{text}" for "{flag}" flag: time: invalid '
                             f'duration "{text}"')
        total += float(text[i:j]) * _DURATION_UNITS[unit]
        i = k
    return int(total)


def env_list(values: list[str] | None, files: list[str] | None) -> list[str]:
    """-e and --env-file as docker reads them: ``NAME`` alone takes our own value."""
    out: list[str] = []
    for path in files or []:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise UsageError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
        for line in lines:
            line = line.lstrip()
            if line and not line.startswith("#"):
                out.extend(_env_item(line))
    for item in values or []:
        out.extend(_env_item(item))
    return out


def _env_item(item: str) -> list[str]:
    if "=" in item:
        if item.startswith("="):
            raise UsageError(f'invalid argument "{item}" for "-e, --env" flag: invalid '
                             f"environment variable: {item}")
        return [item]
    return [f"{item}={os.environ[item]}"] if item in os.environ else []


def labels(values: list[str] | None, files: list[str] | None) -> dict[str, str]:
    items: list[str] = []
    for path in files or []:
        with open(path, encoding="utf-8") as f:
            items += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    items += values or []
    return {k: v for k, _, v in (i.partition("=") for i in items)}


def parse_ports(specs: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """-p specs: (ExposedPorts, PortBindings)."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs or []:
        proto = "tcp"
        body = spec
        if "/" in body:
            body, proto = body.rsplit("/", 1)
        ip = ""
        if body.startswith("["):
            end = body.index("]")
            ip, body = body[1:end], body[end + 2:]
        parts = body.split(":")
        if len(parts) == 3:
            ip, host, container = parts
        elif len(parts) == 2:
            host, container = parts
        elif len(parts) == 1:
            host, container = "", parts[0]
        else:
            raise UsageError(f'invalid argument "{spec}" for "-p, --publish" flag: '
                             f"invalid port format")
        cports = _port_range(container, spec)
        hports = _port_range(host, spec) if host else []
        if hports and len(hports) != len(cports) and len(hports) != 1:
            raise UsageError(f"invalid ranges specified for container and host Ports: {spec}")
        for n, cport in enumerate(cports):
            key = f"{cport}/{proto}"
            exposed[key] = {}
            if not hports:
                hp = ""
            elif len(hports) == len(cports):
                hp = str(hports[n])
            else:
                hp = host
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": hp})
    return exposed, bindings


def _port_range(text: str, spec: str) -> list[int]:
    try:
        low, _, high = text.partition("-")
        first, last = int(low), int(high or low)
    except ValueError:
        raise UsageError(f'invalid argument "{spec}" for "-p, --publish" flag: invalid '
                         f"containerPort: {text}") from None
    if not (0 < first <= last <= 65535):
        raise UsageError(f'invalid argument "{spec}" for "-p, --publish" flag: invalid '
                         f"port range {text}")
    return list(range(first, last + 1))


def parse_mount(spec: str) -> dict[str, Any]:
    """--mount type=bind,source=/a,target=/b,readonly (docker's opts.MountOpt)."""
    mount: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq and key in ("readonly", "ro", "volume-nocopy"):
            value = "true"
        truth = value.lower() in ("1", "true")
        if key == "type":
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = truth
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            mount.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "bind-recursive":
            mount.setdefault("BindOptions", {})["NonRecursive"] = value == "disabled"
        elif key == "volume-nocopy":
            mount.setdefault("VolumeOptions", {})["NoCopy"] = truth
        elif key == "volume-driver":
            mount.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {})["Name"] = \
                value
        elif key == "volume-label":
            k, _, v = value.partition("=")
            mount.setdefault("VolumeOptions", {}).setdefault("Labels", {})[k] = v
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            mount.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {}) \
                .setdefault("Options", {})[k] = v
        elif key == "volume-subpath":
            mount.setdefault("VolumeOptions", {})["Subpath"] = value
        elif key == "tmpfs-size":
            mount.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_bytes(value, "--mount")
        elif key == "tmpfs-mode":
            mount.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
        else:
            raise UsageError(f'invalid argument "{spec}" for "--mount" flag: unexpected '
                             f"key '{key}' in '{field}'")
    if "Target" not in mount:
        raise UsageError(f'invalid argument "{spec}" for "--mount" flag: target is '
                         "required")
    return mount


def _restart(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped", ""):
        raise UsageError(f"invalid restart policy {text}")
    try:
        return {"Name": name or "no", "MaximumRetryCount": int(count or 0)}
    except ValueError:
        raise UsageError(f"maximum retry count must be an integer: {count}") from None


def _ulimit(text: str) -> dict[str, Any]:
    name, _, limits = text.partition("=")
    soft, _, hard = limits.partition(":")
    try:
        return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit '
                         "argument") from None


def _security_opts(values: list[str] | None) -> list[str] | None:
    """seccomp=<file> is sent as the profile's content, as docker does."""
    out = []
    for opt in values or []:
        key, eq, value = opt.partition("=")
        if not eq:
            key, eq, value = opt.partition(":")
        if key == "seccomp" and value not in ("unconfined", "builtin", ""):
            try:
                with open(value, encoding="utf-8") as f:
                    content = f.read()
            except OSError as exc:
                raise UsageError(f"opening seccomp profile ({value}) failed: "
                                 f"{exc.strerror}") from None
            import json

            out.append("seccomp=" + json.dumps(json.loads(content),
                                               separators=(",", ":")))
        else:
            out.append(opt)
    return out or None


def build(p: Parsed, image: str, command: list[str], detach: bool) -> dict[str, Any]:
    """The create request's body."""
    interactive, tty = p.interactive, p.tty
    attach = [a.lower() for a in (p.attach or [])]
    if detach and attach:
        raise UsageError("conflicting options: cannot specify both --attach and --detach")
    if not detach and not attach:
        attach = ["stdout", "stderr"] + (["stdin"] if interactive else [])
    exposed, bindings = parse_ports(p.publish)
    for item in p.expose or []:
        port, _, proto = item.partition("/")
        for n in _port_range(port, item):
            exposed[f"{n}/{proto or 'tcp'}"] = {}
    binds: list[str] = []
    volumes: dict[str, Any] = {}
    for v in p.volume or []:
        if ":" in v.lstrip("/") and not v.startswith(":"):
            binds.append(v)
        else:
            volumes[v] = {}
    config: dict[str, Any] = {
        "Hostname": p.hostname or "", "Domainname": p.domainname or "",
        "User": p.user or "", "AttachStdin": "stdin" in attach,
        "AttachStdout": "stdout" in attach, "AttachStderr": "stderr" in attach,
        "Tty": tty, "OpenStdin": interactive,
        "StdinOnce": interactive and "stdin" in attach,
        "Env": env_list(p.env, p.env_file), "Cmd": command or None, "Image": image,
        "Volumes": volumes or None, "WorkingDir": p.workdir or "",
        "Entrypoint": None, "Labels": labels(p.label, p.label_file),
    }
    if exposed:
        config["ExposedPorts"] = exposed
    if p.entrypoint is not None:
        config["Entrypoint"] = [p.entrypoint] if p.entrypoint else [""]
    if p.stop_signal:
        config["StopSignal"] = p.stop_signal
    if p.stop_timeout is not None:
        config["StopTimeout"] = p.stop_timeout
    health = _healthcheck(p)
    if health:
        config["Healthcheck"] = health
    if p.mac_address:
        config["MacAddress"] = p.mac_address
    host: dict[str, Any] = {
        "Binds": binds or None, "NetworkMode": p.network or "default",
        "PortBindings": bindings, "RestartPolicy": _restart(p.restart or "no"),
        "AutoRemove": p.rm, "Privileged": p.privileged, "PublishAllPorts": p.publish_all,
        "ReadonlyRootfs": p.read_only, "CapAdd": p.cap_add, "CapDrop": p.cap_drop,
        "SecurityOpt": _security_opts(p.security_opt), "Dns": p.dns or [],
        "DnsOptions": p.dns_option or [], "DnsSearch": p.dns_search or [],
        "ExtraHosts": p.add_host, "GroupAdd": p.group_add,
        "Tmpfs": {k: v for k, _, v in (t.partition(":") for t in p.tmpfs)} if p.tmpfs
        else None,
        "Sysctls": {k: v for k, _, v in (s.partition("=") for s in p.sysctl)} if p.sysctl
        else None,
        "Ulimits": [_ulimit(u) for u in p.ulimit] if p.ulimit else None,
        "Mounts": [parse_mount(m) for m in p.mount] if p.mount else None,
        "VolumesFrom": p.volumes_from, "Links": p.link,
        "LogConfig": {"Type": p.log_driver or "",
                      "Config": dict(o.partition("=")[::2] for o in p.log_opt or [])},
        "IpcMode": p.ipc or "", "PidMode": p.pid or "", "UTSMode": p.uts or "",
        "UsernsMode": p.userns or "", "CgroupnsMode": p.cgroupns or "",
        "CgroupParent": p.cgroup_parent or "", "Runtime": p.runtime or "",
        "Init": True if p.init else None,
        "Memory": ram_bytes(p.memory, "-m, --memory") if p.memory else 0,
        "MemoryReservation": ram_bytes(p.memory_reservation, "--memory-reservation")
        if p.memory_reservation else 0,
        "MemorySwap": (-1 if p.memory_swap == "-1" else
                       ram_bytes(p.memory_swap, "--memory-swap")) if p.memory_swap else 0,
        "NanoCpus": _nano_cpus(p.cpus) if p.cpus else 0,
        "CpuShares": p.cpu_shares or 0, "CpuPeriod": p.cpu_period or 0,
        "CpuQuota": p.cpu_quota or 0, "CpusetCpus": p.cpuset_cpus or "",
        "CpusetMems": p.cpuset_mems or "", "BlkioWeight": p.blkio_weight or 0,
        "PidsLimit": p.pids_limit, "OomKillDisable": p.oom_kill_disable,
        "OomScoreAdj": p.oom_score_adj or 0,
        "ShmSize": ram_bytes(p.shm_size, "--shm-size") if p.shm_size else 0,
        "Devices": [_device(d) for d in p.device or []], "BlkioWeightDevice": [],
        "StorageOpt": dict(o.partition("=")[::2] for o in p.storage_opt)
        if p.storage_opt else None,
        "Annotations": dict(o.partition("=")[::2] for o in p.annotation)
        if p.annotation else None,
    }
    if p.memory_swappiness is not None:
        host["MemorySwappiness"] = p.memory_swappiness
    if p.restart not in (None, "", "no") and p.rm:
        raise UsageError("Conflicting options: --restart and --rm")
    networking: dict[str, Any] = {}
    if p.network and p.network not in ("host", "none", "bridge", "default") and \
            not p.network.startswith("container:"):
        endpoint: dict[str, Any] = {}
        if p.network_alias:
            endpoint["Aliases"] = p.network_alias
        if p.ip or p.ip6:
            endpoint["IPAMConfig"] = {"IPv4Address": p.ip or "", "IPv6Address": p.ip6 or ""}
        networking = {"EndpointsConfig": {p.network: endpoint}}
    return {**config, "HostConfig": host, "NetworkingConfig": networking}


def _nano_cpus(text: str) -> int:
    try:
        return round(float(text) * 1e9)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "--cpus" flag: failed to parse '
                         f"{text} as a rational number") from None


def _device(spec: str) -> dict[str, str]:
    parts = spec.split(":")
    host = parts[0]
    inside = parts[1] if len(parts) > 1 and parts[1] else host
    perms = parts[2] if len(parts) > 2 else "rwm"
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms}


def _healthcheck(p: Parsed) -> dict[str, Any] | None:
    if p.no_healthcheck:
        return {"Test": ["NONE"]}
    health: dict[str, Any] = {}
    if p.health_cmd:
        health["Test"] = ["CMD-SHELL", p.health_cmd]
    for flag, key in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                      ("health_start_period", "StartPeriod"),
                      ("health_start_interval", "StartInterval")):
        value = p.values.get(flag)
        if value:
            health[key] = duration_ns(value, "--" + flag.replace("_", "-"))
    if p.health_retries is not None:
        health["Retries"] = p.health_retries
    return health or None


__all__ = ["BOOL", "CREATE_OPTS", "RUN_OPTS", "build"]
