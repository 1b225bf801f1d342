"""The plain-copy snapshotter (containerd's "native"): for filesystems where overlayfs does
not work. Every snapshot is a full tree; a child starts as a copy of its parent (reflinked
where the filesystem can), so whiteouts are real deletions and `diff` compares two trees."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from typing import BinaryIO

from ..archive.changes import Change, tree_changes
from ..archive.unpack import ApplyResult, apply_layer
from ..archive.writer import LayerEntry, change_entries
from .base import ACTIVE, Info, SnapshotError, Snapshotter
from .mount import Mount


class NativeSnapshotter(Snapshotter):
    name = "native"

    def _populate(self, directory: str, parent: Info | None) -> None:
        target = os.path.join(directory, "fs")
        if parent is None:
            os.mkdir(target, 0o755)
            return
        # GNU cp keeps owners, modes, times, xattrs, hardlinks, devices and sparse files.
        done = subprocess.run(["cp", "-a", "--reflink=auto", "--", self.fs(parent), target],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise SnapshotError(f"copying snapshot {parent.key!r}: {done.stderr.strip()}")

    def _mounts(self, info: Info, parents: list[Info]) -> list[Mount]:
        return [Mount("bind", self.fs(info), ["rbind", "rw" if info.kind == ACTIVE else "ro"])]

    def _apply(self, info: Info, parents: list[Info], stream: BinaryIO) -> ApplyResult:
        return apply_layer(stream, self.fs(info), overlay=False)

    def _diff(self, info: Info, parents: list[Info]) -> list[Change]:
        return tree_changes(self.fs(parents[0]) if parents else None, self.fs(info))

    def _entries(self, info: Info, parents: list[Info]) -> Iterable[LayerEntry]:
        return change_entries(self.fs(info), self._diff(info, parents))
