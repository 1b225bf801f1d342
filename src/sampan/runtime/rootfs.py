"""Building the container's filesystem view inside its new mount namespace.

Runs in the container's init before pivot_root (mounts, devices) and after it (masked and
read-only paths, read-only root). Every mount target is resolved inside the rootfs with
symlinks evaluated against the rootfs, never the host, so an image cannot redirect a mount
onto the host's filesystem.
"""

from __future__ import annotations

import errno
import os
import stat

from ..kernel import syscalls as k
from ..oci.spec import Device, Mount, Spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# option → (flag, set?) as runc's parseMountOptions.
_FLAGS: dict[str, tuple[int, bool]] = {
    "async": (k.MS_SYNCHRONOUS, False),
    "atime": (k.MS_NOATIME, False),
    "bind": (k.MS_BIND, True),
    "defaults": (0, False),
    "dev": (k.MS_NODEV, False),
    "diratime": (k.MS_NODIRATIME, False),
    "dirsync": (k.MS_DIRSYNC, True),
    "exec": (k.MS_NOEXEC, False),
    "mand": (k.MS_MANDLOCK, True),
    "noatime": (k.MS_NOATIME, True),
    "nodev": (k.MS_NODEV, True),
    "nodiratime": (k.MS_NODIRATIME, True),
    "noexec": (k.MS_NOEXEC, True),
    "nomand": (k.MS_MANDLOCK, False),
    "norelatime": (k.MS_RELATIME, False),
    "nostrictatime": (k.MS_STRICTATIME, False),
    "nosuid": (k.MS_NOSUID, True),
    "nosymfollow": (k.MS_NOSYMFOLLOW, True),
    "rbind": (k.MS_BIND | k.MS_REC, True),
    "relatime": (k.MS_RELATIME, True),
    "remount": (k.MS_REMOUNT, True),
    "ro": (k.MS_RDONLY, True),
    "rw": (k.MS_RDONLY, False),
    "strictatime": (k.MS_STRICTATIME, True),
    "suid": (k.MS_NOSUID, False),
    "sync": (k.MS_SYNCHRONOUS, True),
    "lazytime": (k.MS_LAZYTIME, True),
    "nolazytime": (k.MS_LAZYTIME, False),
}
PROPAGATION = {
    "private": k.MS_PRIVATE, "rprivate": k.MS_PRIVATE | k.MS_REC,
    "shared": k.MS_SHARED, "rshared": k.MS_SHARED | k.MS_REC,
    "slave": k.MS_SLAVE, "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE, "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}
# Options sampan accepts and handles itself rather than passing to the filesystem.
_EXTENSIONS = {"tmpcopyup"}


class MountOptions:
    """A mount's options split into flags, propagation changes and filesystem data."""

    def __init__(self, options: Iterable[str]) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.data: list[str] = []
        self.extensions: set[str] = set()
        for opt in options:
            if opt in _FLAGS:
                flag, on = _FLAGS[opt]
                self.flags = (self.flags | flag) if on else (self.flags & ~flag)
            elif opt in PROPAGATION:
                self.propagation.append(PROPAGATION[opt])
            elif opt in _EXTENSIONS:
                self.extensions.add(opt)
            elif opt in ("idmap", "ridmap"):
                raise OSError(errno.EINVAL, f"mount option {opt!r} is not supported")
            else:
                self.data.append(opt)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & k.MS_BIND)


def secure_join(root: str, path: str) -> str:
    """``root``/``path`` with every symlink resolved as if ``root`` were ``/``.

    The result always lies under ``root``: ``..`` and absolute link targets are clamped at
    the rootfs, as filepath-securejoin does for runc.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mkdir_all(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _create_target(target: str, source_is_dir: bool) -> None:
    """Make the mount point: a directory, or an empty file for a file bind mount."""
    if source_is_dir:
        _mkdir_all(target)
        return
    _mkdir_all(os.path.dirname(target))
    if not os.path.lexists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


_STATVFS_FLAGS = (
    (os.ST_RDONLY, k.MS_RDONLY), (os.ST_NOSUID, k.MS_NOSUID), (os.ST_NODEV, k.MS_NODEV),
    (os.ST_NOEXEC, k.MS_NOEXEC), (os.ST_NOATIME, k.MS_NOATIME),
    (os.ST_NODIRATIME, k.MS_NODIRATIME), (os.ST_RELATIME, k.MS_RELATIME),
)


def _locked_flags(path: str) -> int:
    """Flags a remount inside a user namespace must keep (the kernel locks them)."""
    vfs = os.statvfs(path).f_flag
    return sum(ms for st, ms in _STATVFS_FLAGS if vfs & st and ms != k.MS_RDONLY)


def remount_bind(target: str, flags: int) -> None:
    """Apply ro/nosuid/... to a bind mount (the first bind ignores them)."""
    base = k.MS_BIND | k.MS_REMOUNT
    try:
        k.mount(None, target, None, base | flags)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise
        k.mount(None, target, None, base | flags | _locked_flags(target))


def mount_entry(rootfs: str, m: Mount, cgroup_mounts: list[tuple[str, str]]) -> None:
    """Mount one entry of config.json's ``mounts`` under ``rootfs``."""
    opts = MountOptions(m.options or [])
    fstype = m.type or ("bind" if opts.is_bind else "")
    target = secure_join(rootfs, m.destination)
    if fstype == "bind" or opts.is_bind:
        source = m.source or ""
        if not os.path.exists(source):
            raise OSError(errno.ENOENT, f"bind source {source!r} does not exist", m.destination)
        _create_target(target, os.path.isdir(source))
        k.mount(source, target, None, k.MS_BIND | (opts.flags & k.MS_REC))
        remount_flags = opts.flags & ~(k.MS_BIND | k.MS_REC | k.MS_REMOUNT)
        if remount_flags:
            remount_bind(target, remount_flags)
    elif fstype == "cgroup":
        _mount_cgroups(target, opts, cgroup_mounts)
    else:
        _mkdir_all(target)
        if "tmpcopyup" in opts.extensions and fstype == "tmpfs":
            _tmpfs_copyup(target, opts)
        else:
            _mount_fs(m.source or fstype, target, fstype, opts)
    for prop in opts.propagation:
        k.mount(None, target, None, prop)


def _mount_fs(source: str, target: str, fstype: str, opts: MountOptions) -> None:
    data = ",".join(opts.data) or None
    try:
        k.mount(source, target, fstype, opts.flags, data)
    except OSError as exc:
        # mqueue and sysfs cannot be mounted in a user namespace that does not own the
        # ipc/net namespace; runc falls back to a bind of the host's, so do we.
        if exc.errno in (errno.EPERM, errno.EBUSY) and fstype in ("sysfs", "mqueue"):
            host = {"sysfs": "/sys", "mqueue": "/dev/mqueue"}[fstype]
            k.mount(host, target, None, k.MS_BIND | k.MS_REC)
            remount_bind(target, opts.flags)
        else:
            raise


def _tmpfs_copyup(target: str, opts: MountOptions) -> None:
    """Mount a tmpfs over ``target`` that starts with what was there (runc's tmpcopyup)."""
    import shutil
    import tempfile

    staging = tempfile.mkdtemp(prefix="sampan-copyup-")
    try:
        _mount_fs("tmpfs", staging, "tmpfs", opts)
        shutil.copytree(target, staging, symlinks=True, dirs_exist_ok=True)
        k.mount(staging, target, None, k.MS_MOVE)
    finally:
        os.rmdir(staging)


def _mount_cgroups(target: str, opts: MountOptions,
                   cgroup_mounts: list[tuple[str, str]]) -> None:
    """The container's own cgroups at /sys/fs/cgroup.

    ``cgroup_mounts`` lists (name, host directory of the container's cgroup) per hierarchy;
    a single entry named "" means a pure cgroup v2 host. With a cgroup namespace the
    kernel shows the container's cgroup as the root, so a fresh mount is used; otherwise
    the container's own directories are bind-mounted. The tmpfs holding the v1
    hierarchies stays writable, as under runc.
    """
    _mkdir_all(target)
    ro = opts.flags & k.MS_RDONLY
    base = k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC
    if len(cgroup_mounts) == 1 and cgroup_mounts[0][0] == "":
        try:
            k.mount("cgroup2", target, "cgroup2", base | ro)
        except OSError:
            k.mount(cgroup_mounts[0][1], target, None, k.MS_BIND | k.MS_REC)
            remount_bind(target, base | ro)
        return
    k.mount("tmpfs", target, "tmpfs", base, "mode=755")
    for name, host_dir in cgroup_mounts:
        sub = os.path.join(target, name)
        _mkdir_all(sub)
        k.mount(host_dir, sub, None, k.MS_BIND | k.MS_REC)
        remount_bind(sub, base | ro)


def create_devices(rootfs: str, devices: Iterable[Device], bind: bool) -> None:
    """mknod each device, or bind the host's node where mknod is not allowed.

    mknod fails in a user namespace and under a devices cgroup that denies it (as the one
    this runtime may itself run in); like runc, fall back to a bind mount of the host node.
    """
    old_umask = os.umask(0)
    made = set()
    try:
        for dev in devices:
            target = secure_join(rootfs, dev.path)
            parent = os.path.dirname(target)
            if parent not in made:  # (most are in /dev)
                _mkdir_all(parent)
                made.add(parent)
            if not bind:
                try:
                    _mknod(target, dev)
                    continue
                except PermissionError:
                    pass
            _create_target(target, False)
            k.mount(dev.path, target, None, k.MS_BIND)
    finally:
        os.umask(old_umask)


def _mknod(target: str, dev: Device) -> None:
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dev.type]
    mode = kind | ((dev.file_mode if dev.file_mode is not None else 0o666) & 0o7777)
    if os.path.lexists(target):
        os.unlink(target)
    os.mknod(target, mode, os.makedev(dev.major or 0, dev.minor or 0))
    os.chown(target, dev.uid or 0, dev.gid or 0)


def dev_symlinks(rootfs: str) -> None:
    links = [("/proc/self/fd", "dev/fd"), ("/proc/self/fd/0", "dev/stdin"),
             ("/proc/self/fd/1", "dev/stdout"), ("/proc/self/fd/2", "dev/stderr")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "dev/core"))
    for src, dst in links:
        path = os.path.join(rootfs, dst)
        if not os.path.lexists(path):
            os.symlink(src, path)
    ptmx = os.path.join(rootfs, "dev/ptmx")
    if os.path.lexists(ptmx):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)
    os.makedirs(os.path.join(rootfs, "dev/shm"), exist_ok=True)


def make_parent_mount_private(path: str) -> None:
    """Make the mount that ``path`` lies on private, if it is shared."""
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mountpoint = fields[4]
            inside = path == mountpoint or path.startswith(mountpoint.rstrip("/") + "/")
            if inside and len(mountpoint) >= len(best):
                best = mountpoint
                shared = any(opt.startswith("shared:") for opt in fields[6:fields.index("-")])
    if shared:
        k.mount(None, best, None, k.MS_PRIVATE)


def pivot_into(rootfs: str) -> None:
    """pivot_root into rootfs and detach the old root, as runc does (no temp directory)."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        k.pivot_root(".", ".")
        os.fchdir(old)
        k.mount(None, ".", None, k.MS_SLAVE | k.MS_REC)
        k.umount(".", k.MNT_DETACH)
    finally:
        os.close(old)
        os.close(new)
    os.chdir("/")


def move_into(rootfs: str) -> None:
    """--no-pivot: move the rootfs over / and chroot (for ramdisk roots)."""
    os.chdir(rootfs)
    k.mount(rootfs, "/", None, k.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def mask_paths(paths: Iterable[str]) -> None:
    for path in paths:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                k.mount("tmpfs", path, "tmpfs", k.MS_RDONLY)
            else:
                k.mount("/dev/null", path, None, k.MS_BIND)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise


def readonly_paths(paths: Iterable[str]) -> None:
    for path in paths:
        try:
            k.mount(path, path, None, k.MS_BIND | k.MS_REC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise
        # Keep the nosuid/nodev/noexec the path already has, as runc does.
        keep = _locked_flags(path) & (k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC)
        remount_bind(path, k.MS_RDONLY | keep)


def has_dev_mount(spec: Spec) -> bool:
    """True when config.json bind-mounts /dev itself (then no devices are created)."""
    return any(m.destination.rstrip("/") == "/dev" and
               MountOptions(m.options or []).is_bind for m in spec.mounts or [])
