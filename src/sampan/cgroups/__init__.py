"""Container cgroups on cgroup v1 (incl. the hybrid layout) and cgroup v2.

    cg = open_cgroup(spec.linux.cgroups_path, container_id)
    cg.create(); cg.set(resources); cg.apply(pid) ... cg.destroy()

open_cgroup picks the version from the host: /sys/fs/cgroup itself a cgroup2 mount is the
unified layout (CgroupV2); anything else is v1, joined with the cgroup2 mount as well when
there is one (the hybrid layout). Importing the package reads no file and loads only small
pure-Python modules; open_cgroup loads the one of v1 and v2 the host has (bpf(2) comes when
a v2 device filter is set): the runtime's start path imports it.
"""

from __future__ import annotations

from .base import Cgroup, CgroupError
from .paths import CGROUP_ROOT, below_mount, cgroup_mounts, own_cgroups, placement

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from .v1 import CgroupV1
    from .v2 import CgroupV2

__all__ = ["Cgroup", "CgroupError", "CgroupV1", "CgroupV2", "open_cgroup", "unified_mode"]


def __getattr__(name: str) -> object:
    """CgroupV1 and CgroupV2 on first use: a host needs one of them."""
    if name == "CgroupV1":
        from .v1 import CgroupV1
        return CgroupV1
    if name == "CgroupV2":
        from .v2 import CgroupV2
        return CgroupV2
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def unified_mode() -> bool:
    """True on a pure cgroup v2 host."""
    return any(m.version == 2 and m.mountpoint == CGROUP_ROOT for m in cgroup_mounts())


def open_cgroup(cgroups_path: str | None, container_id: str, *,
                paths: Mapping[str, str] | None = None) -> Cgroup:
    """The container's cgroup (not created yet: see Cgroup.create).

    ``paths`` are the directories recorded when the container was created (Cgroup.paths):
    later commands pass them so that a relative cgroupsPath, resolved against the cgroup of
    the process that ran `create`, is not resolved again against their own.
    """
    where = placement(cgroups_path, container_id)
    mounts = cgroup_mounts()
    own = own_cgroups()
    v2 = [m for m in mounts if m.version == 2]
    if any(m.mountpoint == CGROUP_ROOT for m in v2):
        from .v2 import CgroupV2

        mount = next(m for m in v2 if m.mountpoint == CGROUP_ROOT)
        rel = below_mount(mount, own.get("", "/"), where.path)
        if paths and "" in paths:
            rel = _recorded(paths, "", mount.mountpoint)
        return CgroupV2(mount.mountpoint, rel, prune=where.prune)
    from .v1 import UNIFIED, CgroupV1

    mountpoints: dict[str, str] = {}
    rels: dict[str, str] = {}
    for mount in mounts:
        keys = mount.controllers if mount.version == 1 else (UNIFIED,)
        own_key = keys[0] if mount.version == 1 else ""
        rel = below_mount(mount, own.get(own_key, "/"), where.path)
        for key in keys:
            mountpoints[key] = mount.mountpoint
            rels[key] = _recorded(paths, key, mount.mountpoint) if paths and key in paths \
                else rel
    if not mountpoints:
        raise CgroupError("no cgroup hierarchy is mounted (see /proc/self/mountinfo)")
    return CgroupV1(mountpoints, rels, prune=where.prune)


def _recorded(paths: Mapping[str, str], key: str, mountpoint: str) -> str:
    directory = paths.get(key, "")
    if not directory.startswith(mountpoint.rstrip("/") + "/"):
        raise CgroupError(f"recorded cgroup path {directory!r} for {key or 'cgroup2'!r} is "
                          f"not below {mountpoint}")
    return directory[len(mountpoint):]
