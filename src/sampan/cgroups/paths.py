"""Where a container's cgroup goes: linux.cgroupsPath, the mounts, this process's cgroup.

* absolute path ("/a/b"): below each hierarchy's mount root;
* relative path ("a/b") and the default ("sampan/<id>"): below this process's own cgroup in
  each hierarchy (/proc/self/cgroup), so that a runtime started inside a supervisor's cgroup
  keeps its containers inside that cgroup's accounting;
* systemd style ("slice:prefix:name"): /<expanded slice>/<prefix>-<name>.scope, laid out by
  hand on cgroupfs (no systemd involved).
"""

from __future__ import annotations

import os

from ..oci.record import record
from .base import CgroupError

CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "sampan"
FIELD = "linux.cgroupsPath"
V1_CONTROLLERS = frozenset({
    "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls",
    "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc",
})


@record
class Mount:
    mountpoint: str
    root: str  # the directory of the hierarchy shown at mountpoint
    version: int
    controllers: tuple[str, ...]  # v1: "memory", "name=systemd"...; v2: ()


@record
class Placement:
    path: str  # absolute ("/x/y": below the mount root) or relative (below our own cgroup)
    prune: int  # empty parents destroy() may remove


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (\\040 for a space); no re: this runs on every start."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        chunk = field[i + 1:i + 4]
        if field[i] == "\\" and len(chunk) == 3 and all(c in "01234567" for c in chunk):
            out.append(chr(int(chunk, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _systemd_parts(cgroups_path: str) -> list[str] | None:
    """"slice:prefix:name" (runc's systemd form: no "/", a name) split in three."""
    parts = cgroups_path.split(":")
    if "/" in cgroups_path or len(parts) != 3 or not parts[2]:
        return None
    return parts


def cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every cgroup and cgroup2 mount, the first of each hierarchy (bind mounts come later)."""
    mounts = []
    seen: set[tuple[str, ...]] = set()
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            fstype = rfields[0]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            if fstype == "cgroup2":
                controllers: tuple[str, ...] = ()
            else:
                opts = rfields[2].split(",") if len(rfields) > 2 else []
                controllers = tuple(o for o in opts
                                    if o in V1_CONTROLLERS or o.startswith("name="))
            key = controllers or ("",)
            if key in seen:
                continue
            seen.add(key)
            mounts.append(Mount(_unescape(fields[4]), _unescape(fields[3]),
                                2 if fstype == "cgroup2" else 1, controllers))
    return mounts


def own_cgroups(path: str = "/proc/self/cgroup") -> dict[str, str]:
    """This process's cgroup per controller ("" is the cgroup2 hierarchy)."""
    out = {}
    with open(path) as f:
        for line in f:
            _, controllers, cgroup = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = cgroup
    return out


def placement(cgroups_path: str | None, container_id: str) -> Placement:
    if not cgroups_path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise CgroupError(f"container id {container_id!r} cannot name a cgroup")
        return Placement(f"{DEFAULT_PARENT}/{container_id}", 1)
    systemd = _systemd_parts(cgroups_path)
    if systemd:
        return Placement(_systemd_path(*systemd), 0)
    parts = [p for p in cgroups_path.split("/") if p and p != "."]
    if ".." in parts:
        raise CgroupError(f"{FIELD}: {cgroups_path!r} must not contain '..'")
    if not parts:
        raise CgroupError(f"{FIELD}: {cgroups_path!r} names no cgroup")
    prefix = "/" if cgroups_path.startswith("/") else ""
    return Placement(prefix + "/".join(parts), 0)


def _systemd_path(slice_: str, prefix: str, name: str) -> str:
    """"system.slice:docker:abc" → "/system.slice/docker-abc.scope" (runc's layout)."""
    if name.endswith(".slice"):
        unit = name  # the container is a slice of its own
    else:
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return "/" + "/".join([*expand_slice(slice_ or "system.slice"), unit])


def expand_slice(slice_: str) -> list[str]:
    """systemd's nesting: "a-b-c.slice" lives at a.slice/a-b.slice/a-b-c.slice."""
    if slice_ == "-.slice":
        return []
    stem = slice_.removesuffix(".slice")
    if (not slice_.endswith(".slice") or not stem or stem.startswith("-")
            or stem.endswith("-") or "--" in stem):
        raise CgroupError(f"{FIELD}: {slice_!r} is not a valid systemd slice name")
    words = stem.split("-")
    return ["-".join(words[:i]) + ".slice" for i in range(1, len(words) + 1)]


def below_mount(mount: Mount, own: str, path: str) -> str:
    """The container's directory relative to the mount point."""
    if path.startswith("/"):
        return path.strip("/")
    # Our own cgroup is shown relative to the hierarchy's root; the mount may show a subtree.
    root = mount.root.rstrip("/")
    if root and (own == root or own.startswith(root + "/")):
        own = own[len(root):]
    return os.path.join(own.strip("/"), path).strip("/")
