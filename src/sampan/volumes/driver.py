"""The local volume driver: each volume a directory ``<root>/<name>`` holding its record
(``volume.json``) and its data (``_data``), as dockerd lays them out.

Create and remove are atomic: a volume is assembled in a hidden directory and renamed into
place, and renamed out of the way before it is deleted, so a daemon killed at any moment
leaves a whole volume or none (the hidden leftovers are cleared at the next start). A
volume made with options (``type``, ``device``, ``o``) is a filesystem mounted on
``_data`` while at least one container uses it, as docker's local driver does; nothing is
ever deleted while anything is still mounted under a volume (a bind of a host directory
must never be emptied by ``volume rm``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from contextlib import suppress

from .errors import InvalidVolume, VolumeError, VolumeNotFound
from .record import DRIVER, Volume, now_rfc3339

RECORD = "volume.json"
DATA = "_data"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_VALID_OPTIONS = ("type", "o", "device", "size")
_REQUIRED = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


def check_name(name: str) -> None:
    """Docker's local volume names (its messages, so clients see what they know)."""
    if len(name) == 1:
        raise InvalidVolume("volume name is too short, names should be at least two "
                            "alphanumeric characters")
    if not _NAME_RE.match(name):
        raise InvalidVolume(f'"{name}" includes invalid characters for a local volume name, '
                            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended '
                            "to pass a host directory, use absolute path")


def check_options(options: dict[str, str] | None) -> None:
    """The local driver's options: type/device/o together, size only with quotas."""
    if not options:
        return
    for key in options:
        if key not in _VALID_OPTIONS:
            raise InvalidVolume(f'invalid option: "{key}"')
    if options.get("size") not in (None, "", "0"):
        raise InvalidVolume("quota size requested but no quota support")
    for key, needed in _REQUIRED.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise InvalidVolume(f'missing required option: "{other}"')


def _unescape(field: str) -> str:
    """A mountinfo path: spaces, tabs, newlines and backslashes are octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` in our mount namespace, deepest first."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [_unescape(line.split()[4]) for line in f]
    found = {p for p in points if p == path or p.startswith(path.rstrip("/") + "/")}
    return sorted(found, key=len, reverse=True)


def is_mounted(path: str) -> bool:
    """Whether ``path`` is a mount point (a bind from the same filesystem too, which
    ``os.path.ismount`` cannot tell)."""
    return os.path.realpath(path) in mounts_under(path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalDriver:
    name = DRIVER

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self._volumes: dict[str, Volume] = {}
        self._active: dict[str, set[str]] = {}  # volume → refs holding its mount
        self._load()

    # Paths ---------------------------------------------------------------------------------

    def dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def data(self, name: str) -> str:
        return os.path.join(self.root, name, DATA)

    # Store ---------------------------------------------------------------------------------

    def _load(self) -> None:
        for entry in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, entry)
            if entry.startswith("."):  # a create or remove cut short
                if not mounts_under(path):
                    shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                with open(os.path.join(path, RECORD)) as f:
                    self._volumes[entry] = Volume.from_json(json.load(f), self.data(entry))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not ours, or unreadable: left alone, never deleted

    def get(self, name: str) -> Volume:
        try:
            return self._volumes[name]
        except KeyError:
            raise VolumeNotFound(f"get {name}: no such volume") from None

    def exists(self, name: str) -> bool:
        return name in self._volumes

    def all(self) -> list[Volume]:
        return sorted(self._volumes.values(), key=lambda v: v.name)

    def create(self, name: str, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> tuple[Volume, bool]:
        """The volume ``name`` (made now if new: True as the second value)."""
        if name in self._volumes:
            return self._volumes[name], False
        check_name(name)
        check_options(options)
        volume = Volume(name=name, created_at=now_rfc3339(), mountpoint=self.data(name),
                        labels=labels, options=options)
        staging = os.path.join(self.root, f".new-{secrets.token_hex(8)}")
        os.mkdir(staging, 0o701)
        try:
            os.mkdir(os.path.join(staging, DATA), 0o755)
            with open(os.path.join(staging, RECORD), "w") as f:
                json.dump(volume.to_json(), f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(staging, self.dir(name))
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise VolumeError(f"create {name}: {exc.strerror or exc}") from None
        _fsync_dir(self.root)
        self._volumes[name] = volume
        return volume, True

    def remove(self, name: str) -> None:
        """Delete the volume and its data; refused while anything is mounted in it."""
        self.get(name)
        self._active.pop(name, None)
        self._unmount(name)
        if mounts_under(self.dir(name)):
            raise VolumeError(f"remove {name}: the volume is still mounted")
        trash = os.path.join(self.root, f".rm-{secrets.token_hex(8)}")
        try:
            os.rename(self.dir(name), trash)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise VolumeError(f"remove {name}: {exc.strerror or exc}") from None
        _fsync_dir(self.root)
        del self._volumes[name]
        shutil.rmtree(trash, ignore_errors=True)

    # Mount ---------------------------------------------------------------------------------

    def needs_mount(self, name: str) -> bool:
        options = self.get(name).options or {}
        return bool(options.get("type") or options.get("device"))

    def mount(self, name: str, ref: str) -> str:
        """The volume's data path, with its filesystem mounted there first if it has one."""
        path = self.data(name)
        if self.needs_mount(name) and not is_mounted(path):
            self._mount_options(name, path)
        self._active.setdefault(name, set()).add(ref)
        return path

    def unmount(self, name: str, ref: str) -> None:
        """Drop ``ref``; the last one out unmounts the volume's filesystem."""
        refs = self._active.get(name)
        if refs is not None:
            refs.discard(ref)
            if refs:
                return
            del self._active[name]
        if name in self._volumes:
            self._unmount(name)

    def _mount_options(self, name: str, path: str) -> None:
        from ..kernel import syscalls as k
        from ..runtime.rootfs import MountOptions, remount_bind

        options = self.get(name).options or {}
        opts = MountOptions([o for o in (options.get("o") or "").split(",") if o])
        try:
            k.mount(options.get("device") or "none", path, options.get("type") or "none",
                    opts.flags & ~k.MS_RDONLY if opts.is_bind else opts.flags,
                    ",".join(opts.data) or None)
            if opts.is_bind and opts.flags & k.MS_RDONLY:
                remount_bind(path, opts.flags & ~(k.MS_BIND | k.MS_REC))
        except OSError as exc:
            with suppress(OSError):
                if is_mounted(path):
                    k.umount(path, k.MNT_DETACH)
            raise VolumeError(f"error while mounting volume '{path}': failed to mount local "
                              f"volume: {exc.strerror or exc}") from None

    def _unmount(self, name: str) -> None:
        from ..kernel import syscalls as k

        path = self.data(name)
        if self.needs_mount(name) and is_mounted(path):
            try:
                k.umount(path, 0)
            except OSError:
                k.umount(path, k.MNT_DETACH)

    def active(self, name: str) -> bool:
        return bool(self._active.get(name))
