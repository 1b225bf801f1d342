"""Container records: each one readable, its image, its pin and its writable layer there;
directories without a record (a create that died) and records' temp files."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import suppress
from functools import partial

from ..engine.record import Container
from ..engine.store import RECORD
from ..snapshots import ACTIVE
from .report import ERROR, ORPHAN, Report
from .scope import Scope


def records_dir(scope: Scope) -> str:
    return os.path.join(scope.data_root, "containers")


def load_records(root: str) -> list[Container]:
    """The readable records under ``root``, read only (the engine's loader also deletes)."""
    out = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        with suppress(OSError, ValueError, TypeError), \
                open(os.path.join(root, name, RECORD)) as f:
            out.append(Container.from_json(json.load(f)))
    return out


def _has_mount(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].startswith(path.rstrip("/") + "/") or
                   line.split()[4] == path for line in f)


def check(scope: Scope, report: Report) -> None:
    store = scope.images
    root = records_dir(scope)
    records = {c.id: c for c in scope.containers()}
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name)
        tmp = os.path.join(path, RECORD + ".tmp")
        if os.path.exists(tmp) and scope.old_path(tmp):
            report.add("containers", "temp-file", ORPHAN, tmp, "an interrupted record write",
                       partial(os.unlink, tmp))
        if name in records or not scope.old_path(path):
            continue
        if os.path.exists(os.path.join(path, RECORD)):
            report.add("containers", "unreadable-record", ERROR, name,
                       f"{os.path.join(path, RECORD)} cannot be read")
        elif not _has_mount(path):
            report.add("containers", "orphan-directory", ORPHAN, path,
                       "a container directory without a record (a create that never "
                       "finished)", partial(_rmtree_unless_record, path))
    pins = {(r["image_id"], r["holder"]) for r in store.db.query(
        "SELECT image_id, holder FROM image_users")}
    for c in records.values():
        report.count("containers")
        short = c.id[:12]
        if store.db.image(c.image_id) is None:
            report.add("containers", "missing-image", ERROR, c.id,
                       f"container {short} ({c.name}): its image {c.image_id} is gone")
        elif (c.image_id, c.id) not in pins:
            report.add("containers", "missing-pin", ERROR, c.id,
                       f"container {short}: its image is not marked as in use (rmi would "
                       "remove it)", partial(store.pin, c.image_id, c.id))
        directory = os.path.join(root, c.id)
        rootfs = os.path.join(directory, "rootfs")
        if not os.path.isdir(rootfs):
            report.add("containers", "missing-rootfs-dir", ERROR, c.id,
                       f"container {short}: its root filesystem's mount point is gone",
                       partial(os.mkdir, rootfs, 0o755))
        if c.state.running and not os.path.exists(os.path.join(directory, "config.json")):
            report.add("containers", "missing-bundle", ERROR, c.id,
                       f"container {short} runs, but its bundle's config.json is gone")
        if not store.snapshots.exists(c.id):
            report.add("containers", "missing-snapshot", ERROR, c.id,
                       f"container {short} ({c.name}): its writable layer is gone")
        elif store.snapshots.stat(c.id).kind != ACTIVE:
            report.add("containers", "bad-snapshot", ERROR, c.id,
                       f"container {short}: its snapshot is not a writable one")


def _rmtree_unless_record(path: str) -> None:
    if not os.path.exists(os.path.join(path, RECORD)):
        shutil.rmtree(path)
