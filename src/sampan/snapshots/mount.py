"""The mounts a snapshotter hands out, and mounting them (for the engine and the tests)."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from ..kernel import syscalls as k

_FLAGS = {"ro": k.MS_RDONLY, "nosuid": k.MS_NOSUID, "nodev": k.MS_NODEV,
          "noexec": k.MS_NOEXEC, "bind": k.MS_BIND, "rbind": k.MS_BIND | k.MS_REC}


@dataclass
class Mount:
    """One mount(2) call, as containerd describes it (type, source, fstab-like options)."""

    type: str
    source: str
    options: list[str] = field(default_factory=list)

    def split_options(self) -> tuple[int, str]:
        flags, data = 0, []
        for option in self.options:
            if option in _FLAGS:
                flags |= _FLAGS[option]
            elif option != "rw":
                data.append(option)
        return flags, ",".join(data)

    def mount(self, target: str) -> None:
        flags, data = self.split_options()
        if self.type == "bind":
            k.mount(self.source, target, None, flags | k.MS_BIND)
            if flags & k.MS_RDONLY:  # a bind mount ignores MS_RDONLY until remounted
                k.mount(None, target, None, flags | k.MS_BIND | k.MS_REMOUNT)
        else:
            k.mount(self.source, target, self.type, flags, data or None)


def volatile(mounts: list[Mount]) -> list[Mount]:
    """The overlay mounts made ``volatile`` (Linux 5.10): no sync of the upper filesystem
    on fsync nor at unmount, which syncs the whole host filesystem otherwise. The kernel
    then refuses ever to mount that upper directory again (work/incompat/volatile stays),
    so only for a writable layer thrown away with its one run: a `--rm` container's."""
    return [Mount(m.type, m.source, [*m.options, "volatile"]) if m.type == "overlay" else m
            for m in mounts]


def mount_all(mounts: list[Mount], target: str) -> None:
    for m in mounts:
        m.mount(target)


def unmount_all(target: str) -> None:
    """Unmount everything stacked on ``target``."""
    while True:
        try:
            k.umount(target)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return
            raise
