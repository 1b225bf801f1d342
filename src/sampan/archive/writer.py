"""Writing a layer tar from a container's changes (for commit and export).

The tar is what Docker writes: PAX format, numeric owners, whole-second mtimes, hardlinks
inside the layer as link entries, deletions as `.wh.` files and replaced directories as
`.wh..wh..opq`, so that any engine unpacks it back to the same tree.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from ..oci.image import new_hash
from .changes import DELETED, Change
from .unpack import WHITEOUT_OPAQUE, WHITEOUT_PREFIX, is_opaque, is_whiteout

ENTRY, WHITEOUT, OPAQUE = "entry", "whiteout", "opaque"
# Host-specific or overlay-internal attributes never go into a layer.
_SKIP_XATTRS = ("trusted.overlay.", "security.selinux")


@dataclass(frozen=True)
class Owners:
    """Host ids back to a container's (--userns-remap): (container, host, size) ranges.
    Ids outside them are written as they are."""

    uids: tuple[tuple[int, int, int], ...]
    gids: tuple[tuple[int, int, int], ...]

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        return _back(self.uids, uid), _back(self.gids, gid)


def _back(ranges: tuple[tuple[int, int, int], ...], value: int) -> int:
    for container, host, size in ranges:
        if host <= value < host + size:
            return container + value - host
    return value


@dataclass(frozen=True)
class LayerEntry:
    rel: str  # path relative to the layer root
    kind: str  # ENTRY (the file at source), WHITEOUT (rel deleted), OPAQUE (rel replaced)
    source: str = ""
    owners: Owners | None = None  # the source's ids are a remapped container's


def _walk(root: str, upper: bool, owners: Owners | None = None) -> Iterator[LayerEntry]:
    def walk(rel: str) -> Iterator[LayerEntry]:
        directory = os.path.join(root, rel) if rel else root
        with os.scandir(directory) as scan:
            entries = sorted((e.name, e.stat(follow_symlinks=False)) for e in scan)
        for name, st in entries:
            child = f"{rel}/{name}" if rel else name
            path = os.path.join(directory, name)
            if upper and is_whiteout(st):
                yield LayerEntry(child, WHITEOUT)
                continue
            yield LayerEntry(child, ENTRY, path, owners)
            if stat.S_ISDIR(st.st_mode):
                if upper and is_opaque(path):
                    yield LayerEntry(child, OPAQUE, path, owners)
                yield from walk(child)

    return walk("")


def upper_entries(upper: str, owners: Owners | None = None) -> Iterator[LayerEntry]:
    """The entries of an overlayfs upper directory, parents before children."""
    return _walk(upper, upper=True, owners=owners)


def tree_entries(root: str) -> Iterator[LayerEntry]:
    """Every entry below ``root`` as it is (a mounted root filesystem, for `export`)."""
    return _walk(root, upper=False)


def change_entries(root: str, changes: Sequence[Change]) -> Iterator[LayerEntry]:
    """The entries for ``changes`` of the full tree ``root`` (plain-copy snapshots)."""
    for change in sorted(changes):
        rel = change.path.lstrip("/")
        if change.kind == DELETED:
            yield LayerEntry(rel, WHITEOUT)
        else:
            yield LayerEntry(rel, ENTRY, os.path.join(root, rel))


class _HashingWriter:
    def __init__(self, out: BinaryIO, algorithm: str) -> None:
        self._out = out
        self.hash = new_hash(algorithm)
        self.count = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.count += len(data)
        self._out.write(data)
        return len(data)


def _tarinfo(entry: LayerEntry, links: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    st = os.lstat(entry.source)
    info = tarfile.TarInfo(entry.rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    if entry.owners is not None:
        info.uid, info.gid = entry.owners.to_container(st.st_uid, st.st_gid)
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
        else:
            links[key] = entry.rel
            info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(entry.source)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None  # a socket: Docker leaves them out of layers and exports too
    try:
        names = os.listxattr(entry.source, follow_symlinks=False)
    except OSError:
        names = []
    headers: dict[str, str] = {}
    for name in names:
        if not name.startswith(_SKIP_XATTRS):
            value = os.getxattr(entry.source, name, follow_symlinks=False)
            headers[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    info.pax_headers = headers
    return info


def write_layer(entries: Iterable[LayerEntry], out: BinaryIO,
                algorithm: str = "sha256") -> tuple[str, int]:
    """Write the layer tar to ``out``; its diff ID and length."""
    hashing = _HashingWriter(out, algorithm)
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        tar.copybufsize = 1 << 20
        for entry in entries:
            parent, _, name = entry.rel.rpartition("/")
            if entry.kind == ENTRY:
                info = _tarinfo(entry, links)
                if info is None:
                    continue
                if info.type == tarfile.REGTYPE:
                    with open(entry.source, "rb") as source:
                        tar.addfile(info, source)
                else:
                    tar.addfile(info)
                continue
            if entry.kind == OPAQUE:
                marker = f"{entry.rel}/{WHITEOUT_OPAQUE}"
            else:
                marker = f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name
            info = tarfile.TarInfo(marker)
            info.mode, info.uname, info.gname = 0o600, "", ""
            tar.addfile(info)
    return f"{hashing.hash.name}:{hashing.hash.hexdigest()}", hashing.count
