"""From an image config to an OCI runtime config.

Docker's rules: arguments replace Cmd but keep the Entrypoint (an explicit entrypoint drops
the image's Cmd); the environment is the image's, overridden key by key, with PATH and HOME
filled in when missing; the user (``name``, ``uid``, ``name:group``, ``uid:gid``) resolves
through the image's own /etc/passwd and /etc/group, as runc's GetExecUser does, with the
supplementary groups that list the user. The rest of the spec is runc's template with
Docker's security defaults (capabilities, masked and read-only paths); what the runtime has
no use for (exposed ports, volumes, stop signal, healthcheck, labels) is handed back for the
engine.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..oci.defaults import (
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    DOCKER_DEFAULT_CAPS,
    default_spec,
)
from ..oci.image import HealthConfig, ImageConfig
from ..oci.spec import Capabilities, Root, Spec, User, parse_spec, validate
from ..runtime.rootfs import secure_join

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STOP_SIGNAL = "SIGTERM"
_MAX_ID = 2**31 - 1


class ImageConfigError(ValueError):
    """The image config (or an override) cannot make a process."""


@dataclass
class ExecUser:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""

    def to_spec(self) -> User:
        """The OCI user as Docker writes it: the primary group leads the additional ones
        (moby's getUser), so that a process keeps its own group after setgroups(2)."""
        return User(uid=self.uid, gid=self.gid,
                    additional_gids=[self.gid, *self.additional_gids],
                    username=self.name or None)


@dataclass
class ProcessConfig:
    args: list[str]
    env: list[str]
    cwd: str
    user: ExecUser


def _read_db(rootfs: str, path: str) -> list[list[str]] | None:
    """The colon-separated entries of /etc/passwd or /etc/group inside ``rootfs``."""
    try:
        with open(secure_join(rootfs, path), encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return [line.split(":") for line in lines if line.strip() and not line.startswith("#")]


def _int(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        if value > _MAX_ID:
            raise ImageConfigError(f"id {text} is out of range (0 to {_MAX_ID})")
        return value
    return None


def _field(entry: list[str], index: int) -> str:
    return entry[index] if len(entry) > index else ""


def resolve_user(rootfs: str, spec: str, group_add: Sequence[str] = ()) -> ExecUser:
    """``user[:group]`` as runc resolves it in ``rootfs``; ``group_add`` as --group-add."""
    user_arg, _, group_arg = spec.partition(":")
    passwd = _read_db(rootfs, "/etc/passwd")
    groups = _read_db(rootfs, "/etc/group")
    uid_arg = _int(user_arg)
    result = ExecUser(uid=0, gid=0)
    match = None
    for entry in passwd or []:
        uid = _int(_field(entry, 2)) if _field(entry, 2).isdigit() else None
        if (user_arg == "" and uid == 0) or (uid_arg is not None and uid == uid_arg) or \
                (uid_arg is None and user_arg and entry[0] == user_arg):
            match = entry
            break
    if match is not None:
        result.name = match[0]
        result.uid = _int(_field(match, 2)) or 0
        result.gid = _int(_field(match, 3)) or 0
        result.home = _field(match, 5) or "/"
    elif user_arg and uid_arg is None:
        reason = "no matching entries in passwd file" if passwd is not None \
            else "no passwd file in the image"
        raise ImageConfigError(f"unable to find user {user_arg}: {reason}")
    elif uid_arg is not None:
        result.uid = uid_arg
    if group_arg:
        gid_arg = _int(group_arg)
        found = next((g for g in groups or []
                      if (gid_arg is not None and _int(_field(g, 2)) == gid_arg)
                      or (gid_arg is None and g[0] == group_arg)), None)
        if found is not None:
            result.gid = _int(_field(found, 2)) or 0
        elif gid_arg is not None:
            result.gid = gid_arg
        else:
            raise ImageConfigError(f"unable to find group {group_arg}: no matching entries in "
                                   "group file")
    elif result.name:
        # Supplementary groups only in the implicit form (runc's rule).
        result.additional_gids = [
            _int(_field(g, 2)) or 0 for g in groups or []
            if result.name in _field(g, 3).split(",") and _field(g, 2).isdigit()]
    for extra in group_add:
        found = next((g for g in groups or [] if extra in (g[0], _field(g, 2))), None)
        gid = _int(_field(found, 2)) if found is not None else _int(extra)
        if gid is None:
            raise ImageConfigError(f"unable to find group {extra}")
        if gid not in result.additional_gids:
            result.additional_gids.append(gid)
    return result


def _merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in (*base, *overrides):
        key, sep, _ = item.partition("=")
        if not key:
            raise ImageConfigError(f"invalid environment variable {item!r}: empty name")
        if sep:
            merged.pop(key, None)  # the override's position, as Docker orders it
            merged[key] = item
        else:
            merged.pop(key, None)  # "KEY" alone unsets it
    return list(merged.values())


def process_config(config: ImageConfig, rootfs: str, *, cmd: Sequence[str] | None = None,
                   entrypoint: Sequence[str] | None = None, env: Sequence[str] = (),
                   user: str | None = None, workdir: str | None = None,
                   group_add: Sequence[str] = ()) -> ProcessConfig:
    """The process of a container of ``config`` whose root filesystem is at ``rootfs``."""
    image = config.config
    image_entrypoint = list(image.entrypoint or []) if image else []
    image_cmd = list(image.cmd or []) if image else []
    if entrypoint is not None:
        args = [*entrypoint, *(cmd if cmd is not None else [])]
    else:
        args = [*image_entrypoint, *(cmd if cmd is not None else image_cmd)]
    if not args:
        raise ImageConfigError("no command specified")
    cwd = workdir or (image.working_dir if image else None) or "/"
    if not cwd.startswith("/"):
        raise ImageConfigError(f"the working directory {cwd!r} is not an absolute path")
    exec_user = resolve_user(rootfs, user if user is not None else
                             (image.user or "") if image else "", group_add)
    merged = _merge_env(list(image.env or []) if image else [], env)
    keys = {item.partition("=")[0] for item in merged}
    if "PATH" not in keys:
        merged.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOME" not in keys:
        merged.append(f"HOME={exec_user.home}")
    return ProcessConfig(args=args, env=merged, cwd=posixpath.normpath(cwd), user=exec_user)



@dataclass
class EngineConfig:
    """What an image asks of the engine rather than of the runtime."""

    exposed_ports: list[str]  # "8080/tcp", sorted
    volumes: list[str]  # container paths, sorted
    stop_signal: str
    stop_timeout: int | None
    healthcheck: HealthConfig | None
    labels: dict[str, str]


@dataclass
class RuntimeConfig:
    spec: Spec
    engine: EngineConfig


def runtime_config(config: ImageConfig, rootfs: str, *, hostname: str | None = None,
                   cmd: Sequence[str] | None = None, entrypoint: Sequence[str] | None = None,
                   env: Sequence[str] = (), user: str | None = None,
                   workdir: str | None = None, group_add: Sequence[str] = (),
                   terminal: bool = False) -> RuntimeConfig:
    """The OCI runtime config of a container of ``config`` whose root filesystem is
    mounted at ``rootfs``, with Docker's defaults, and what the engine keeps."""
    proc = process_config(config, rootfs, cmd=cmd, entrypoint=entrypoint, env=env, user=user,
                          workdir=workdir, group_add=group_add)
    spec = parse_spec(default_spec())
    assert spec.process is not None and spec.linux is not None
    spec.process.args, spec.process.env, spec.process.cwd = proc.args, proc.env, proc.cwd
    spec.process.user = proc.user.to_spec()
    spec.process.terminal = terminal
    spec.process.capabilities = Capabilities(bounding=list(DOCKER_DEFAULT_CAPS),
                                             effective=list(DOCKER_DEFAULT_CAPS),
                                             permitted=list(DOCKER_DEFAULT_CAPS))
    spec.process.rlimits = None  # Docker leaves the daemon's limits in place
    spec.process.no_new_privileges = False
    spec.root = Root(path=rootfs, readonly=False)
    spec.hostname = hostname
    spec.linux.masked_paths = list(DEFAULT_MASKED_PATHS)
    spec.linux.readonly_paths = list(DEFAULT_READONLY_PATHS)
    validate(spec)
    image = config.config
    engine = EngineConfig(
        exposed_ports=sorted((image.exposed_ports or {}) if image else {}),
        volumes=sorted((image.volumes or {}) if image else {}),
        stop_signal=(image.stop_signal if image else None) or DEFAULT_STOP_SIGNAL,
        stop_timeout=image.stop_timeout if image else None,
        healthcheck=image.healthcheck if image else None,
        labels=dict((image.labels or {}) if image else {}))
    return RuntimeConfig(spec=spec, engine=engine)
