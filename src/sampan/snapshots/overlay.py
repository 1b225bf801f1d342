"""The overlayfs snapshotter: each committed snapshot holds one layer's files, and an active
snapshot is an overlay mount of its parents (read-only lower directories) plus its own upper
directory, as Docker's overlay2 and containerd's overlayfs snapshotters do."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import BinaryIO

from ..archive.changes import Change, overlay_changes
from ..archive.unpack import ApplyResult, apply_layer
from ..archive.writer import LayerEntry, upper_entries
from ..kernel import syscalls as k
from .base import ACTIVE, Info, SnapshotError, Snapshotter
from .mount import Mount

# mount(2) copies at most one page of option data.
_MAX_OPTIONS = 4095


class OverlaySnapshotter(Snapshotter):
    name = "overlayfs"

    def __init__(self, root: str) -> None:
        if any(c in os.path.abspath(root) for c in ":,"):
            raise SnapshotError(f"overlayfs snapshotter root {root!r} must not contain ':' "
                                "or ',' (they separate overlay mount options)")
        super().__init__(root)

    def _populate(self, directory: str, parent: Info | None) -> None:
        os.mkdir(os.path.join(directory, "fs"), 0o755)
        os.mkdir(os.path.join(directory, "work"), 0o700)

    def _lowers(self, parents: list[Info]) -> list[str]:
        return [self.fs(p) for p in parents]

    def _mounts(self, info: Info, parents: list[Info]) -> list[Mount]:
        lowers = self._lowers(parents)
        if info.kind == ACTIVE:
            if not lowers:
                return [Mount("bind", self.fs(info), ["rbind", "rw"])]
            options = ["index=off", f"workdir={os.path.join(info.directory, 'work')}",
                       f"upperdir={self.fs(info)}", f"lowerdir={':'.join(lowers)}"]
        else:
            if len(lowers) <= 1:
                return [Mount("bind", lowers[0] if lowers else self.fs(info), ["rbind", "ro"])]
            options = ["ro", "index=off", f"lowerdir={':'.join(lowers)}"]
        if len(",".join(options)) > _MAX_OPTIONS:
            raise SnapshotError(f"snapshot {info.key!r} has {len(lowers)} layers: too many for "
                                "one overlay mount's options")
        return [Mount("overlay", "overlay", options)]

    def _apply(self, info: Info, parents: list[Info], stream: BinaryIO) -> ApplyResult:
        lowers = self._lowers(parents)
        # The bottom layer has nothing below it to hide: its whiteouts simply delete.
        return apply_layer(stream, self.fs(info), overlay=bool(lowers), lowers=lowers)

    def _diff(self, info: Info, parents: list[Info]) -> list[Change]:
        return overlay_changes(self.fs(info), self._lowers(parents))

    def _entries(self, info: Info, parents: list[Info]) -> Iterable[LayerEntry]:
        return upper_entries(self.fs(info), self.owners(info))


def overlay_supported(root: str) -> bool:
    """Whether an overlay mount with upper and work directories under ``root`` works."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    probe = tempfile.mkdtemp(prefix="overlay-probe-", dir=root)
    try:
        for d in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(probe, d))
        p = lambda d: os.path.join(probe, d)  # noqa: E731
        try:
            k.mount("overlay", p("merged"), "overlay", 0,
                    f"lowerdir={p('lower')},upperdir={p('upper')},workdir={p('work')}")
        except OSError:
            return False
        k.umount(p("merged"))
        return True
    finally:
        shutil.rmtree(probe, ignore_errors=True)
