"""docker's ``--userns-remap``: every container in a user namespace whose root is an
unprivileged host id from /etc/subuid and /etc/subgid, unless it asks for ``--userns=host``.

dockerd copies (and chowns) every image layer once per remapping. sampan keeps one copy:
the container's overlay takes its read-only layers as *idmapped* mounts (open_tree +
mount_setattr(MOUNT_ATTR_IDMAP) through a user namespace with the remapping), passed to
overlayfs by file descriptor, so the container sees its image's files owned by its own
root while the layers on disk keep the image's ids. The writable layer is not idmapped: it
belongs to the mapped range, so what the container writes is owned on the host by ids the
host gives nobody; the snapshot records the ranges, so that commit and a build's RUN write
their layers with the container's ids again. There is no copying fallback: a kernel or
filesystem that cannot idmap makes sampand refuse to start with the remapping (checked at
start), rather than copy or shift the shared layers.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..archive.writer import Owners
from .errors import EngineError, InvalidParameter

if TYPE_CHECKING:
    from ..snapshots import Snapshotter
    from ..snapshots.mount import Mount
    from .record import Container


SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
DEFAULT_USER = "dockremap"  # what ``default`` means, as in dockerd
DEFAULT_RANGE = 65536
FIRST_DEFAULT_ID = 100000


class RemapError(ValueError):
    """The remapping cannot be set up; the message names the key, users and files."""


@dataclass(frozen=True)
class IdRange:
    """One line of a uid_map: ``size`` ids from ``container`` up are ``host`` up."""

    container: int
    host: int
    size: int

    def to_json(self) -> dict[str, int]:
        return {"containerID": self.container, "hostID": self.host, "size": self.size}


def _to_host(ranges: tuple[IdRange, ...], value: int) -> int | None:
    for r in ranges:
        if r.container <= value < r.container + r.size:
            return r.host + value - r.container
    return None


@dataclass(frozen=True)
class IdMap:
    """The remapping: the user and group it came from, and their subordinate ranges laid
    end to end from container id 0 (as dockerd's idtools does)."""

    user: str
    group: str
    uids: tuple[IdRange, ...]
    gids: tuple[IdRange, ...]

    @property
    def root(self) -> tuple[int, int]:
        """The host uid and gid of the container's root."""
        return self.uids[0].host, self.gids[0].host

    def host_ids(self, uid: int, gid: int) -> tuple[int, int] | None:
        hu, hg = _to_host(self.uids, uid), _to_host(self.gids, gid)
        return None if hu is None or hg is None else (hu, hg)

    def owners(self) -> Owners:
        """The ranges as the layer writer takes them (host ids back to the container's)."""
        return Owners(tuple((r.container, r.host, r.size) for r in self.uids),
                      tuple((r.container, r.host, r.size) for r in self.gids))

    def oci(self) -> dict[str, list[dict[str, int]]]:
        """linux.uidMappings and linux.gidMappings."""
        return {"uidMappings": [r.to_json() for r in self.uids],
                "gidMappings": [r.to_json() for r in self.gids]}

    def map_lines(self, ranges: tuple[IdRange, ...]) -> str:
        return "".join(f"{r.container} {r.host} {r.size}\n" for r in ranges)


# Reading the configuration ----------------------------------------------------------------

def parse_value(value: str) -> tuple[str, str]:
    """``default`` or ``user[:group]`` → (user, group) names; the user must exist (except
    ``default``'s, which dockerd creates)."""
    user, _, group = value.partition(":")
    if user == "default":
        if group:
            raise RemapError("userns-remap: 'default' takes no group")
        return DEFAULT_USER, DEFAULT_USER
    if not user:
        raise RemapError(f"userns-remap: invalid value {value!r} (want default or "
                         "user[:group])")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise RemapError(f"userns-remap: no such user {user!r}") from None
    if group.isdigit():
        try:
            group = grp.getgrgid(int(group)).gr_name
        except KeyError:
            raise RemapError(f"userns-remap: no such group {group!r}") from None
    return entry.pw_name, group or entry.pw_name


def subordinate_ranges(path: str, name: str, number: int | None = None,
                       ) -> list[tuple[int, int]]:
    """The (start, count) ranges ``name`` (or its number) has in /etc/sub[ug]id, by start."""
    out = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RemapError(f"userns-remap: {path}: {exc.strerror}") from None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0].startswith("#"):
            continue
        if fields[0] != name and (number is None or fields[0] != str(number)):
            continue
        if not (fields[1].isdigit() and fields[2].isdigit()) or int(fields[2]) == 0:
            raise RemapError(f"userns-remap: {path}: invalid entry {line!r}")
        out.append((int(fields[1]), int(fields[2])))
    return sorted(out)


def _laid_out(ranges: list[tuple[int, int]]) -> tuple[IdRange, ...]:
    out, next_id = [], 0
    for start, count in ranges:
        out.append(IdRange(next_id, start, count))
        next_id += count
    return tuple(out)


def load_map(value: str, create: bool = False) -> IdMap:
    """The remapping ``value`` asks for; with ``create``, ``default``'s user and ranges are
    made when missing, as dockerd does at start."""
    user, group = parse_value(value)
    if user == DEFAULT_USER and create:
        ensure_default_user()
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        if user == DEFAULT_USER and not create:  # made at start
            return IdMap(user, group, (IdRange(0, FIRST_DEFAULT_ID, DEFAULT_RANGE),),
                         (IdRange(0, FIRST_DEFAULT_ID, DEFAULT_RANGE),))
        raise RemapError(f"userns-remap: no such user {user!r}") from None
    try:
        gid: int | None = grp.getgrnam(group).gr_gid
    except KeyError:
        gid = None
    uids = subordinate_ranges(SUBUID, user, uid)
    gids = subordinate_ranges(SUBGID, group, gid)
    if not uids:
        raise RemapError(f"userns-remap: no subordinate uid ranges found for user "
                         f"{user!r} in {SUBUID}")
    if not gids:
        raise RemapError(f"userns-remap: no subordinate gid ranges found for group "
                         f"{group!r} in {SUBGID}")
    return IdMap(user, group, _laid_out(uids), _laid_out(gids))


def ensure_default_user() -> None:
    """dockerd's ``default``: the system user ``dockremap`` (and its group), and a 65536-id
    range after every range already given out, in /etc/subuid and /etc/subgid."""
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        _run(["useradd", "-r", "-s", "/bin/false", DEFAULT_USER])
    for path, flag in ((SUBUID, "-v"), (SUBGID, "-w")):
        if subordinate_ranges(path, DEFAULT_USER):
            continue
        start = max([FIRST_DEFAULT_ID, *(s + c for s, c in _all_ranges(path))])
        _run(["usermod", flag, f"{start}-{start + DEFAULT_RANGE - 1}", DEFAULT_USER])


def _all_ranges(path: str) -> list[tuple[int, int]]:
    try:
        with open(path) as f:
            fields = [line.strip().split(":") for line in f]
    except FileNotFoundError:
        return []
    return [(int(f[1]), int(f[2])) for f in fields
            if len(f) == 3 and f[1].isdigit() and f[2].isdigit()]


def _run(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        raise RemapError(f"userns-remap: default: {argv[0]} is needed to create the "
                         f"{DEFAULT_USER} user")
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RemapError(f"userns-remap: default: {' '.join(argv)}: "
                         f"{result.stderr.strip()}")


def check_traversable(path: str, idmap: IdMap) -> None:
    """dockerd's check: every directory above the containers' must let the remapped root
    through, or every start would fail deep inside the runtime."""
    uid, gid = idmap.root
    path = os.path.abspath(path)
    while path != "/":
        path = os.path.dirname(path)
        st = os.stat(path)
        if st.st_mode & stat.S_IXOTH or (st.st_uid == uid and st.st_mode & stat.S_IXUSR) \
                or (st.st_gid == gid and st.st_mode & stat.S_IXGRP):
            continue
        raise RemapError(f"userns-remap: a directory in the data root's path ({path}) "
                         "restricts access to the remapped root uid/gid; please fix by "
                         "allowing 'o+x' permissions on existing directories")


# The engine's side ------------------------------------------------------------------------

class Remap:
    """The daemon's remapping in force: the checks on a new container, and what a start
    needs (the idmapped root filesystem, ownership of what the container writes to)."""

    def __init__(self, idmap: IdMap, containers_root: str) -> None:
        self.idmap = idmap
        self.containers_root = containers_root
        self._userns_fd = -1

    @classmethod
    def load(cls, value: str, data_root: str, snapshotter: str) -> Remap:
        if snapshotter != "overlayfs":
            raise RemapError(f"userns-remap: needs the overlayfs snapshotter (this data "
                             f"root uses {snapshotter}): image layers are shared through "
                             "idmapped overlay layers, never copied")
        idmap = load_map(value, create=True)
        containers = os.path.join(data_root, "containers")
        check_traversable(containers, idmap)
        os.makedirs(containers, mode=0o710, exist_ok=True)
        os.chown(containers, -1, idmap.root[1])  # the remapped root may pass (0710)
        remap = cls(idmap, containers)
        remap.probe()
        return remap

    def probe(self) -> None:
        """Fail at start, not at the first container's, when this kernel or filesystem
        cannot idmap the data root."""
        from ..kernel import mountapi

        try:
            os.close(mountapi.idmapped_clone(self.containers_root, self.userns_fd(), True))
        except OSError as exc:
            self.close()
            raise RemapError(f"userns-remap: idmapped mounts of {self.containers_root}: "
                             f"{exc.strerror or exc} (they need Linux 5.12 or later, and "
                             "overlayfs takes idmapped layers from 5.19)") from None

    @staticmethod
    def applies(host_config: dict[str, Any]) -> bool:
        return (host_config.get("UsernsMode") or "") != "host"

    def check(self, host_config: dict[str, Any]) -> None:
        """dockerd's refusals for a container in the remapped user namespace."""
        mode = host_config.get("UsernsMode") or ""
        if mode not in ("", "host"):
            raise InvalidParameter(f"HostConfig.UsernsMode: invalid USER mode: {mode}")
        if not self.applies(host_config):
            return
        if host_config.get("Privileged"):
            raise InvalidParameter("privileged mode is incompatible with user namespaces.  "
                                   "You must run the container in the host namespace when "
                                   "running privileged mode")
        if host_config.get("NetworkMode") == "host":
            raise InvalidParameter("cannot share the host's network namespace when user "
                                   "namespaces are enabled")
        if host_config.get("PidMode") == "host":
            raise InvalidParameter("cannot share the host PID namespace when user "
                                   "namespaces are enabled")

    def userns_fd(self) -> int:
        """A user namespace with the remapping, held for the idmapped mounts. Made by a
        short-lived ``unshare -U`` child (sampand itself never forks)."""
        if self._userns_fd < 0:
            self._userns_fd = _make_userns(self.idmap)
        return self._userns_fd

    def close(self) -> None:
        if self._userns_fd >= 0:
            os.close(self._userns_fd)
            self._userns_fd = -1

    # At start ------------------------------------------------------------------------

    def mount_rootfs(self, snapshots: Snapshotter, key: str, target: str,
                     mounts: list[Mount]) -> None:
        """The container's snapshot (its ``mounts``) at ``target``, its read-only layers
        idmapped; the snapshot remembers that its files carry the range's ids (for commit
        and build)."""
        os.chown(os.path.dirname(target), -1, self.idmap.root[1])  # 0710: let it pass
        snapshots.set_owners(key, self.idmap.owners())
        for m in mounts:
            if m.type == "overlay":
                self._mount_overlay(m, target)
            elif m.type == "bind":  # an image without layers: the writable layer alone
                _own_if_host_root(m.source, self.idmap.root)
                m.mount(target)
            else:
                raise EngineError(f"userns-remap: cannot remap a {m.type} root filesystem")

    def _mount_overlay(self, m: Mount, target: str) -> None:
        from ..kernel import mountapi

        options = dict(o.partition("=")[::2] for o in m.options)
        lowers = [p for p in options.pop("lowerdir", "").split(":") if p]
        upper = options.get("upperdir")
        if upper:
            _own_if_host_root(upper, self.idmap.root)
        fds = []
        ctx = mountapi.FsContext("overlay")
        try:
            for lower in lowers:
                fds.append(mountapi.idmapped_clone(lower, self.userns_fd(), readonly=True))
                ctx.set_fd("lowerdir+", fds[-1])
            for key, value in options.items():
                if key in ("ro", "rw"):
                    continue
                if value:
                    ctx.set_string(key, value)
                else:
                    ctx.set_flag(key)
            ctx.mount_at(target)
        except OSError as exc:
            raise EngineError(f"userns-remap: mounting the root filesystem with idmapped "
                              f"layers: {exc.strerror or exc}") from None
        finally:
            ctx.close()
            for fd in fds:
                os.close(fd)

    def own_container_files(self, c: Container, paths: list[str]) -> None:
        """What the container's root must be able to write: /etc/hosts and the like, and
        its volumes (dockerd makes them under the remapped root)."""
        from .mounts import mount_points

        for path in paths:
            _own_if_host_root(path, self.idmap.root)
        for mp in mount_points(c):
            if mp.type == "volume" and mp.source:
                _own_if_host_root(mp.source, self.idmap.root)


def _own_if_host_root(path: str, root: tuple[int, int]) -> None:
    st = os.lstat(path)
    if st.st_uid == 0 and st.st_gid == 0:
        os.lchown(path, *root)


def _make_userns(idmap: IdMap) -> int:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RemapError("userns-remap: unshare (util-linux) is needed")
    own = os.stat("/proc/self/ns/user").st_ino
    child = subprocess.Popen([unshare, "--user", "--", "sleep", "30"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{child.pid}/ns/user").st_ino == own:
            if child.poll() is not None or time.monotonic() > deadline:
                raise RemapError("userns-remap: could not make a user namespace")
            time.sleep(0.001)
        for name, ranges in (("uid_map", idmap.uids), ("gid_map", idmap.gids)):
            with open(f"/proc/{child.pid}/{name}", "w") as f:
                f.write(idmap.map_lines(ranges))
        return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RemapError(f"userns-remap: making the user namespace: {exc}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        child.wait()
