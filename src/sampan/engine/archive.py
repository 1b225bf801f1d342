"""`docker cp`: stat, read and write paths in a container's filesystem.

A running container is reached through ``/proc/<pid>/root``, so what it has mounted in its
own mount namespace (volumes, binds, tmpfs) is seen as it sees it; a stopped one through
its snapshot, mounted at ``<dir>/rootfs`` for the time of the operation (under the
container's lock, so a start waits). Paths are resolved by the kernel inside that root
(openat2 with RESOLVE_IN_ROOT), and the tar is read or written by a helper chrooted there
(``archive.chroot``): neither a symlink nor ``..`` leads to the host's files, whatever the
container does meanwhile.

Path semantics are moby's: the last element of a path is not followed (a symlink is
reported with its target resolved in the container) unless the path ends in ``/`` or
``/.``; an extraction point must be a directory, followed through symlinks.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import logging
import os
import posixpath
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from ..errors import StatusError
from ..images import ImageConfigError, resolve_user
from ..kernel import syscalls as k
from ..kernel.resolve import open_in_root
from ..runtime.rootfs import secure_join
from ..snapshots import mount_all, unmount_all
from .containers import Containers
from .errors import Conflict, EngineError, InvalidParameter, NotFound
from .record import Container, rfc3339

log = logging.getLogger("sampand")

# Go's os.FileMode type bits, which the stat header carries.
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE = 1 << 31, 1 << 27, 1 << 26, 1 << 25
_GO_SOCKET, _GO_SETUID, _GO_SETGID, _GO_CHAR, _GO_STICKY = (
    1 << 24, 1 << 23, 1 << 22, 1 << 21, 1 << 20)


class Forbidden(EngineError):
    status = 403


def go_mode(mode: int) -> int:
    """A stat mode as Go's os.FileMode (what docker's CLI decodes)."""
    out = mode & 0o777
    kind = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFIFO: _GO_PIPE,
            stat.S_IFSOCK: _GO_SOCKET, stat.S_IFBLK: _GO_DEVICE,
            stat.S_IFCHR: _GO_DEVICE | _GO_CHAR}.get(kind, 0)
    for bit, go in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID),
                    (stat.S_ISVTX, _GO_STICKY)):
        if mode & bit:
            out |= go
    return out


def container_path(path: str) -> str:
    """``path`` made absolute and clean, keeping a trailing ``/`` or ``/.`` (moby's
    PreserveTrailingDotOrSeparator), which decide whether the last element is followed."""
    clean = posixpath.normpath("/" + path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if path.endswith("/.") and not clean.endswith("/."):
        return clean.rstrip("/") + "/."
    if path.endswith("/") and not clean.endswith("/"):
        return clean + "/"
    return clean


def go_base(path: str) -> str:
    """Go's filepath.Base: trailing slashes dropped, "/" for the root."""
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


@dataclass(frozen=True)
class PathStat:
    """Docker's ContainerPathStat."""

    name: str
    size: int
    mode: int  # Go os.FileMode
    mtime: str
    link_target: str

    def header(self) -> str:
        """The X-Docker-Container-Path-Stat header: base64 of the JSON."""
        doc = {"name": self.name, "size": self.size, "mode": self.mode, "mtime": self.mtime,
               "linkTarget": self.link_target}
        return base64.b64encode(json.dumps(doc).encode()).decode()


def _create_if_missing(target: str, directory: bool) -> None:
    """moby's fileutils.CreateIfNotExists: the mount point a bind needs (``target`` is
    already resolved inside the root, so its missing part has no symlink)."""
    if os.path.lexists(target):
        return
    if directory:
        os.makedirs(target, mode=0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o755))


class ContainerFiles:
    def __init__(self, containers: Containers) -> None:
        self.containers = containers

    @asynccontextmanager
    async def root(self, c: Container) -> AsyncIterator[str]:
        """The container's root directory, held open: ``/proc/self/fd/<n>``, which the
        chrooted helper inherits (so a path never names another directory meanwhile)."""
        if c.state.running and c.state.pid:
            fd = _running_root(c)
            try:
                yield f"/proc/self/fd/{fd}"
            finally:
                os.close(fd)
            return
        live = self.containers._live_of(c)  # the container's own lock
        async with live.lock:
            if c.state.running and c.state.pid:  # started while we waited
                async with self.root(c) as root:
                    yield root
                return
            rootfs = os.path.join(self.containers.directory(c), "rootfs")
            mounted_here = not c.mounted
            if mounted_here:
                mounts = self.containers.images.snapshots.mounts(c.id)
                await asyncio.to_thread(mount_all, mounts, rootfs)
            volumes: tuple[list[str], list[str]] = ([], [])
            try:
                if mounted_here:
                    volumes = await asyncio.to_thread(self._mount_volumes, c, rootfs)
                fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    yield f"/proc/self/fd/{fd}"
                finally:
                    os.close(fd)
            finally:
                if mounted_here:
                    await asyncio.to_thread(self._unmount_volumes, c, *volumes)
                    await asyncio.to_thread(unmount_all, rootfs)

    def _mount_volumes(self, c: Container, rootfs: str) -> tuple[list[str], list[str]]:
        """A stopped container's volumes and binds, mounted where it would see them, as
        dockerd's mountVolumes does for `cp`: a mount point its filesystem lacks is made
        (a directory, or an empty file for a bound file; it stays in the container's
        layer, as with dockerd), the mounts private so that their unmounting reaches
        nothing else: (the targets mounted, the volumes held)."""
        from .mounts import mount_points

        service = self.containers.mounts
        done: list[str] = []
        held: list[str] = []
        for mp in sorted(mount_points(c), key=lambda m: m.destination.count("/")):
            if mp.type not in ("volume", "bind"):
                continue
            target = secure_join(rootfs, mp.destination)
            try:
                source = mp.source
                if mp.type == "volume":
                    if service is None:
                        continue
                    source = service.volumes.mount(mp.name, c.id)
                    held.append(mp.name)
                if not os.path.exists(source):
                    continue
                _create_if_missing(target, os.path.isdir(source))
                flags = k.MS_BIND | (0 if mp.non_recursive else k.MS_REC)
                k.mount(source, target, None, flags)
                done.append(target)
                k.mount(None, target, None, k.MS_PRIVATE | k.MS_REC)
                if not mp.rw:
                    k.mount(None, target, None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY)
            except (OSError, StatusError) as exc:
                log.warning("cp: mounting %s of %s: %s", mp.destination, c.id[:12], exc)
        return done, held

    def _unmount_volumes(self, c: Container, targets: list[str], held: list[str]) -> None:
        for target in reversed(targets):
            with suppress(OSError):
                k.umount(target, k.MNT_DETACH)
        service = self.containers.mounts
        if service is None:
            return
        for name in held:
            with suppress(OSError, StatusError):
                service.volumes.unmount(name, c.id)

    # Stat ---------------------------------------------------------------------------------

    def stat(self, root: str, c: Container, ref: str, path: str) -> PathStat:
        """moby's StatPath: the last element not followed, a link's target resolved."""
        abs_path = container_path(path)
        parent, base = posixpath.split(abs_path)
        rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            dirfd = self._open(rootfd, parent, os.O_PATH | os.O_DIRECTORY, ref, path)
            try:
                st = os.stat(base or ".", dir_fd=dirfd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                raise self._missing(ref, path) from None
            finally:
                os.close(dirfd)
        finally:
            os.close(rootfd)
        target = ""
        if stat.S_ISLNK(st.st_mode):
            resolved = secure_join(root, abs_path)
            target = "/" + os.path.relpath(resolved, root).removeprefix(".").lstrip("/")
        return PathStat(name=go_base(abs_path), size=st.st_size, mode=go_mode(st.st_mode),
                        mtime=rfc3339(st.st_mtime_ns), link_target=target)

    def _open(self, rootfd: int, path: str, flags: int, ref: str, asked: str) -> int:
        for _ in range(8):  # EAGAIN/EXDEV: a rename raced the lookup; the kernel asks to retry
            try:
                return open_in_root(rootfd, path, flags)
            except (FileNotFoundError, NotADirectoryError):
                raise self._missing(ref, asked) from None
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EXDEV):
                    raise EngineError(f"{asked}: {exc.strerror}") from None
        raise EngineError(f"{asked}: the path kept changing while it was resolved")

    @staticmethod
    def _missing(ref: str, path: str) -> NotFound:
        return NotFound(f"Could not find the file {path} in container {ref}")

    # Read ---------------------------------------------------------------------------------

    async def get(self, ref: str, path: str) -> tuple[PathStat, AsyncIterator[bytes]]:
        """The stat of ``path`` and its tar, streamed from the chrooted helper.

        The returned iterator holds the container's root until it is exhausted or closed.
        """
        c = self.containers.get(ref)
        context = self.root(c)
        root = await context.__aenter__()
        try:
            info = self.stat(root, c, ref, path)
            skip = [arg for point in _kernel_mounts(c) for arg in ("--skip", point)]
            proc = await _helper("get", root, container_path(path), info.name, *skip)
        except BaseException:
            await context.__aexit__(*sys.exc_info())
            raise
        self.containers.on_change("archive-path", c)
        return info, self._stream(proc, context)

    @staticmethod
    async def _stream(proc: asyncio.subprocess.Process, context: object) -> AsyncIterator[bytes]:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            while chunk := await proc.stdout.read(1 << 20):
                yield chunk
            errors = await proc.stderr.read()
            if await proc.wait() != 0:
                raise EngineError(_last_line(errors) or "reading the container's files failed")
        finally:
            if proc.returncode is None:
                with suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            await context.__aexit__(None, None, None)  # type: ignore[attr-defined]

    # Write --------------------------------------------------------------------------------

    async def put(self, ref: str, path: str, body: AsyncIterator[bytes], *,
                  copy_uid_gid: bool = False, no_overwrite_dir_non_dir: bool = False) -> None:
        """Unpack the tar ``body`` into the directory ``path`` (followed through links)."""
        c = self.containers.get(ref)
        abs_path = container_path(path)
        async with self.root(c) as root:
            rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fd = self._open(rootfd, abs_path, os.O_PATH, ref, path)
                try:
                    st, root_st = os.fstat(fd), os.fstat(rootfd)
                finally:
                    os.close(fd)
            finally:
                os.close(rootfd)
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidParameter("extraction point is not a directory")
            if c.host_config.get("ReadonlyRootfs") and st.st_dev == root_st.st_dev:
                raise Forbidden("container rootfs is marked read-only")
            args = [abs_path]
            if copy_uid_gid and c.config.get("User"):
                try:
                    user = resolve_user(root, str(c.config["User"]))
                except ImageConfigError as exc:
                    raise InvalidParameter(str(exc)) from None
                args += ["--owner", f"{user.uid}:{user.gid}"]
            if no_overwrite_dir_non_dir:
                args.append("--no-overwrite-dir-non-dir")
            proc = await _helper("put", root, *args, stdin=True)
            await _feed(proc, body)
            errors = await proc.stderr.read() if proc.stderr else b""
            if await proc.wait() != 0:
                raise InvalidParameter(_last_line(errors) or "extracting the archive failed")
        self.containers.on_change("extract-to-dir", c)


# Kernel filesystems a running container has mounted: their files are not the container's
# (dockerd, reading the container's own root filesystem, never sees them either).
_KERNEL_FS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs",
                        "debugfs", "tracefs", "bpf", "fusectl", "configfs", "pstore"})


def _kernel_mounts(c: Container) -> list[str]:
    """Where the running container ``c`` has kernel filesystems mounted (its own paths)."""
    if not (c.state.running and c.state.pid):
        return []
    try:
        with open(f"/proc/{c.state.pid}/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) > 4 and after.split()[:1] and after.split()[0] in _KERNEL_FS:
            points.append(fields[4].encode().decode("unicode_escape"))
    return points


def _running_root(c: Container) -> int:
    """An fd of ``/proc/<pid>/root`` of the running container ``c``, made sure to be its:
    a pid the container left and another process took would lead to the host's root. A
    pidfd pins the process; it is in the container's cgroup; it still runs after the open."""
    pid = c.state.pid
    try:
        pidfd = k.pidfd_open(pid)
    except OSError:
        raise Conflict(f"Container {c.id} is not running") from None
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            if c.id not in f.read():
                raise Conflict(f"Container {c.id} is not running")
        fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            k.pidfd_send_signal(pidfd, 0)
        except OSError:
            os.close(fd)
            raise Conflict(f"Container {c.id} is not running") from None
        return fd
    except FileNotFoundError:
        raise Conflict(f"Container {c.id} is not running") from None
    finally:
        os.close(pidfd)


def _last_line(data: bytes) -> str:
    lines = data.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


async def _helper(mode: str, root: str, *args: str,
                  stdin: bool = False) -> asyncio.subprocess.Process:
    held = (int(root.rsplit("/", 1)[1]),) if root.startswith("/proc/self/fd/") else ()
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sampan.archive.chroot", mode, root, *args, pass_fds=held,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if not stdin else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)


async def _feed(proc: asyncio.subprocess.Process, body: AsyncIterator[bytes]) -> None:
    """Copy the request body to the helper's stdin (it may stop reading on an error)."""
    assert proc.stdin is not None
    try:
        async for chunk in body:
            proc.stdin.write(chunk)
            await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    except BaseException:
        with suppress(ProcessLookupError):
            proc.kill()
        raise
    finally:
        with suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.close()
