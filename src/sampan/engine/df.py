"""Disk usage as `docker system df` shows it: layers, images, containers' writable layers.

A container's SizeRw is what its own layer adds (the files it created or changed, as
Docker's overlay2 driver counts the upper directory), SizeRootFs that plus its image. An
image's SharedSize is the part of its layers other images use too.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..archive.changes import DELETED
from ..images import ImageStore
from ..snapshots import SnapshotError
from ..volumes.service import VolumeService
from . import views
from .record import Container


@dataclass(frozen=True)
class ContainerSize:
    rw: int
    root_fs: int


def container_size(images: ImageStore, c: Container) -> ContainerSize:
    """SizeRw and SizeRootFs of ``c`` (zero for a layer that cannot be read)."""
    snapshots = images.snapshots
    rw = 0
    try:
        top = snapshots.fs(snapshots.stat(c.id))
        for change in snapshots.diff(c.id):
            if change.kind == DELETED:
                continue
            try:
                st = os.lstat(os.path.join(top, change.path.lstrip("/")))
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                rw += st.st_size
    except (SnapshotError, OSError):
        pass
    record = images.db.image(c.image_id)
    return ContainerSize(rw=rw, root_fs=rw + (record.size if record else 0))


def add_sizes(images: ImageStore, containers: list[Container],
              items: list[dict[str, Any]]) -> None:
    """SizeRw and SizeRootFs added to the list items of ``containers`` (`ps -s`)."""
    for c, item in zip(containers, items, strict=True):
        size = container_size(images, c)
        item.update(SizeRw=size.rw, SizeRootFs=size.root_fs)


def tree_size(path: str) -> int:
    """Bytes of the regular files under ``path`` (links not followed, one filesystem)."""
    total = 0
    try:
        device = os.lstat(path).st_dev
    except OSError:
        return 0
    for top, dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
        dirs[:] = [d for d in dirs if _same_device(os.path.join(top, d), device)]
    return total


def _same_device(path: str, device: int) -> bool:
    try:
        return os.lstat(path).st_dev == device
    except OSError:
        return False


def usage(images: ImageStore, containers: list[Container], types: set[str],
          volumes: VolumeService | None = None) -> dict[str, Any]:
    """GET /system/df; ``types`` are the parts asked for (all when empty)."""
    out: dict[str, Any] = {}

    def want(kind: str) -> bool:
        return not types or kind in types

    if want("image"):
        layers = {im.id: images.db.layers(im.id) for im in images.db.images()}
        users = Counter(la.chain_id for chain in layers.values() for la in chain)
        sizes = {la.chain_id: la.size for chain in layers.values() for la in chain}
        out["LayersSize"] = sum(sizes.values())
        listed = images.list_images()
        for item in listed:
            item["SharedSize"] = sum(la.size for la in layers.get(item["Id"], [])
                                     if users[la.chain_id] > 1)
        out["Images"] = listed
    if want("container"):
        items = [views.summary(c) for c in containers]
        add_sizes(images, containers, items)
        out["Containers"] = items
    if want("volume"):
        out["Volumes"] = [] if volumes is None else [
            {**v.to_api(), "UsageData": {"Size": tree_size(v.mountpoint),
                                         "RefCount": len(volumes.users(v.name))}}
            for v in volumes.find()]
    if want("build-cache"):
        out["BuildCache"] = []
    return out
