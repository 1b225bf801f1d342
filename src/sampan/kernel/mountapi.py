"""The new mount API (open_tree, mount_setattr, fsopen, fsconfig, fsmount, move_mount).

Used for idmapped mounts: a clone of a directory whose ownership is shown (and written)
through a user namespace's id mapping. An overlay built from such detached clones, passed
to it by file descriptor, holds the layers in the container's ids without copying them and
without any mount other than the overlay itself appearing in the host's mount table.
"""

from __future__ import annotations

import os
import struct

from .syscalls import (
    SYS_FSCONFIG,
    SYS_FSMOUNT,
    SYS_FSOPEN,
    SYS_MOUNT_SETATTR,
    SYS_MOVE_MOUNT,
    SYS_OPEN_TREE,
    _check,
    syscall,
)

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_IDMAP = 0x00100000
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
MOVE_MOUNT_F_EMPTY_PATH = 4
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_SET_FD = 5
FSCONFIG_CMD_CREATE = 6


# struct mount_attr: attr_set, attr_clr, propagation, userns_fd
_MOUNT_ATTR = struct.Struct("=4Q")


def open_tree_clone(path: str, recursive: bool = False) -> int:
    """A detached copy of the mount at ``path`` (an fd; closing it unmounts the copy)."""
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    return _check(syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(path), flags),
                  "open_tree", path)


def set_idmap(tree_fd: int, userns_fd: int, readonly: bool = False) -> None:
    """Make the detached mount ``tree_fd`` idmapped through the user namespace."""
    attr = _MOUNT_ATTR.pack(MOUNT_ATTR_IDMAP | (MOUNT_ATTR_RDONLY if readonly else 0), 0, 0,
                            userns_fd)
    _check(syscall(SYS_MOUNT_SETATTR, tree_fd, b"", AT_EMPTY_PATH, attr, len(attr)),
           "mount_setattr(MOUNT_ATTR_IDMAP)")


def idmapped_clone(path: str, userns_fd: int, readonly: bool = False) -> int:
    fd = open_tree_clone(path)
    try:
        set_idmap(fd, userns_fd, readonly)
    except BaseException:
        os.close(fd)
        raise
    return fd


class FsContext:
    """An fsopen(2) context: options set one by one, then created and mounted."""

    def __init__(self, fstype: str) -> None:
        self.fstype = fstype
        self.fd = _check(syscall(SYS_FSOPEN, fstype.encode(), FSOPEN_CLOEXEC),
                         "fsopen", fstype)

    def set_string(self, key: str, value: str) -> None:
        self._config(FSCONFIG_SET_STRING, key, os.fsencode(value), 0)

    def set_flag(self, key: str) -> None:
        self._config(FSCONFIG_SET_FLAG, key, None, 0)

    def set_fd(self, key: str, fd: int) -> None:
        self._config(FSCONFIG_SET_FD, key, None, fd)

    def _config(self, cmd: int, key: str | None, value: bytes | None, aux: int) -> None:
        _check(syscall(SYS_FSCONFIG, self.fd, cmd, None if key is None else key.encode(),
                       value, aux), f"fsconfig {self.fstype} {key or 'create'}")

    def detached(self) -> int:
        """Create the filesystem; a detached mount of it (an fd, gone once closed)."""
        self._config(FSCONFIG_CMD_CREATE, None, None, 0)
        return _check(syscall(SYS_FSMOUNT, self.fd, FSMOUNT_CLOEXEC, 0), "fsmount",
                      self.fstype)

    def mount_at(self, target: str) -> None:
        """Create the filesystem and attach it at ``target``."""
        mnt = self.detached()
        try:
            move_mount(mnt, target)
        finally:
            os.close(mnt)

    def close(self) -> None:
        os.close(self.fd)


def move_mount(tree_fd: int, target: str) -> None:
    _check(syscall(SYS_MOVE_MOUNT, tree_fd, b"", AT_FDCWD, os.fsencode(target),
                   MOVE_MOUNT_F_EMPTY_PATH), "move_mount", target)
