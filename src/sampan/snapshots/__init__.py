"""Snapshotters: where image layers are unpacked and container root filesystems live."""

from __future__ import annotations

import os

from .base import (
    ACTIVE,
    COMMITTED,
    VIEW,
    Info,
    SnapshotError,
    SnapshotExists,
    SnapshotNotFound,
    Snapshotter,
    Usage,
)
from .mount import Mount, mount_all, unmount_all, volatile
from .native import NativeSnapshotter
from .overlay import OverlaySnapshotter, overlay_supported

BACKENDS: dict[str, type[Snapshotter]] = {
    OverlaySnapshotter.name: OverlaySnapshotter,
    NativeSnapshotter.name: NativeSnapshotter,
}


def open_snapshotter(root: str, name: str | None = None) -> Snapshotter:
    """The snapshotter ``name`` under ``root``/<name>; by default overlayfs where it works."""
    if name is None:
        name = (OverlaySnapshotter.name
                if overlay_supported(os.path.join(root, OverlaySnapshotter.name))
                else NativeSnapshotter.name)
    backend = BACKENDS.get(name)
    if backend is None:
        raise SnapshotError(f"unknown snapshotter {name!r} (known: {', '.join(BACKENDS)})")
    return backend(os.path.join(root, name))


__all__ = ["ACTIVE", "BACKENDS", "COMMITTED", "VIEW", "Info", "Mount", "NativeSnapshotter",
           "OverlaySnapshotter", "SnapshotError", "SnapshotExists", "SnapshotNotFound",
           "Snapshotter", "Usage", "mount_all", "open_snapshotter", "overlay_supported",
           "unmount_all", "volatile"]
