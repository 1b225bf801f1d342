"""Named network namespaces: made by the engine, bind-mounted on a file, joined by the runtime.

As ``ip netns add`` and dockerd's sandboxes: the namespace exists before the container's
process, so its veth, addresses and DNS socket are in place when the process starts, and
it outlives a daemon restart (the mount holds it). It is made by this thread alone
(unshare of a network namespace is per thread), bind-mounted, and the thread goes home:
no helper process is forked.
"""

from __future__ import annotations

import os
from contextlib import suppress

from sampan.kernel import syscalls
from sampan.network.netlink import CLONE_NEWNET


def create(path: str) -> str:
    """A fresh network namespace held by a bind mount on ``path`` (made here); the path."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.unshare(CLONE_NEWNET)
        try:
            syscalls.mount("/proc/thread-self/ns/net", path, None, syscalls.MS_BIND)
        finally:
            syscalls.setns(home, CLONE_NEWNET)
    except BaseException:
        with suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(home)
    return path


def delete(path: str) -> None:
    """Unmount and remove ``path``; the namespace goes with its last user (absent: no error)."""
    with suppress(OSError):
        syscalls.umount(path, syscalls.MNT_DETACH)
    with suppress(FileNotFoundError):
        os.unlink(path)


def exists(path: str) -> bool:
    """Whether ``path`` still holds a namespace (a mount of nsfs), not just the empty file."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False
