"""openat2(2) with RESOLVE_IN_ROOT: open a path as if a directory were ``/``.

Every ``..`` and every symlink (absolute ones too) is resolved inside that directory, by
the kernel and in one call, so a container's files can be reached from the daemon without
a symlink or a ``..`` ever leading to the host's (Linux 5.6 and later).
"""

from __future__ import annotations

import os
import struct

from .syscalls import SYS_OPENAT2, _check, syscall

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_OPEN_HOW = struct.Struct("=3Q")  # struct open_how: flags, mode, resolve


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """A new fd for ``path`` below ``dirfd``, resolved as ``resolve`` says; OSError else."""
    how = _OPEN_HOW.pack(flags | os.O_CLOEXEC, mode, resolve)
    return _check(syscall(SYS_OPENAT2, dirfd, os.fsencode(path), how, len(how)), "openat2",
                  path)


def open_in_root(rootfd: int, path: str, flags: int = os.O_PATH) -> int:
    """``path`` opened inside the root ``rootfd``: symlinks and ``..`` stay inside it,
    magic links (/proc/<pid>/fd/...) are refused."""
    return openat2(rootfd, path.lstrip("/") or ".", flags,
                   RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
