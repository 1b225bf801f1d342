"""Snapshots: rows against directories, and rows nothing needs any more (a layer being
unpacked or built when sampand died, a container's writable layer whose record is gone,
a committed layer no image or cache step uses)."""

from __future__ import annotations

import os
import re
import shutil
from functools import partial

from ..snapshots import ACTIVE, COMMITTED, Info
from .report import ERROR, ORPHAN, Report
from .scope import Scope
from .used import Used

CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
IN_FLIGHT = ("extract-", "build-")  # image unpacks, build steps and their views


def _mounted_below(path: str) -> bool:
    return os.path.ismount(path) or any(
        os.path.ismount(os.path.join(path, d)) for d in ("fs", "merged"))


def _why_orphan(scope: Scope, info: Info, used: Used, containers: set[str]) -> str | None:
    if info.key.startswith(IN_FLIGHT):
        return "a layer unpack or build step that never finished"
    if info.kind == COMMITTED:
        return None if info.key in used.chains else "a layer no image or build-cache step uses"
    if info.kind == ACTIVE and CONTAINER_ID.match(info.key):
        return None if info.key in containers else \
            "a container's writable layer whose container record is gone"
    return "a snapshot nothing names"


def check(scope: Scope, used: Used, report: Report) -> None:
    snaps = scope.images.snapshots
    infos = snaps.walk()
    containers = scope.container_ids()
    report.count("snapshots", len(infos))
    by_key = {i.key: i for i in infos}
    for info in infos:
        if not os.path.isdir(snaps.fs(info)):
            report.add("snapshots", "missing-directory", ERROR, info.key,
                       f"its directory {info.directory} is missing")
    doomed: dict[str, str] = {}
    for info in infos:
        why = _why_orphan(scope, info, used, containers)
        if why and scope.old(info.created) and not _mounted_below(info.directory):
            doomed[info.key] = why
    # A snapshot something kept builds on is needed, whatever its own name says.
    for info in infos:
        if info.key not in doomed:
            parent = info.parent
            while parent is not None and parent in by_key:
                doomed.pop(parent, None)
                parent = by_key[parent].parent
    depth = {k: len(snaps.parents(by_key[k])) for k in doomed}
    for key in sorted(doomed, key=lambda k: depth[k], reverse=True):  # children first
        report.add("snapshots", "orphan-snapshot", ORPHAN, key, doomed[key],
                   partial(_remove, scope, key))
    known = {os.path.basename(i.directory) for i in infos}
    base = os.path.join(snaps.root, "snapshots")
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name)
        if name in known or not scope.old_path(path) or _mounted_below(path):
            continue
        report.add("snapshots", "orphan-directory", ORPHAN, path,
                   "a snapshot directory no snapshot record names (half made or half "
                   "removed)", partial(_rmtree_unless_known, scope, path))


def _remove(scope: Scope, key: str) -> None:
    if CONTAINER_ID.match(key) and key in scope.container_ids():
        return  # a container created since the check looked
    snaps = scope.images.snapshots
    if snaps.exists(key):
        snaps.remove(key)


def _rmtree_unless_known(scope: Scope, path: str) -> None:
    snaps = scope.images.snapshots
    if os.path.basename(path) not in {os.path.basename(i.directory) for i in snaps.walk()}:
        shutil.rmtree(path)
