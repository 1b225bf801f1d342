"""Checking a data root while no sampand uses it (``sampan system check --offline``):
the exec root's daemon lock is taken first, so a running sampand is never raced."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..engine.daemonconfig import DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT
from ..engine.spec import CGROUP_PARENT
from .containers import load_records
from .scope import Scope

LOCK = "sampand.lock"  # cli/daemon.py holds it for sampand's lifetime


class DaemonRunning(Exception):
    """A sampand holds the exec root: check through it instead."""


@contextmanager
def _daemon_lock(exec_root: str) -> Iterator[None]:
    os.makedirs(exec_root, mode=0o711, exist_ok=True)
    fd = os.open(os.path.join(exec_root, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DaemonRunning(f"sampand is running with exec root {exec_root}: run the "
                                "check through it (without --offline)") from None
        yield
    finally:
        os.close(fd)


def _snapshotter(data_root: str) -> str | None:
    """The backend whose directory holds snapshots (sampand chose it when it started)."""
    base = os.path.join(data_root, "snapshots")
    for name in ("overlayfs", "native"):
        if os.path.exists(os.path.join(base, name, "metadata.db")):
            return name
    return None


def _bridge(data_root: str) -> str:
    from .. import statefile
    from ..network.bridge import DEFAULT_BRIDGE

    doc = statefile.load(os.path.join(data_root, "network", "networks.json")) or {}
    for net in (doc.get("networks") or {}).values():
        if net.get("name") == "bridge" and net.get("bridge"):
            return str(net["bridge"])
    return DEFAULT_BRIDGE


@contextmanager
def offline(data_root: str = DEFAULT_DATA_ROOT, exec_root: str = DEFAULT_EXEC_ROOT,
            cgroup_parent: str = CGROUP_PARENT, bridge: str | None = None) -> Iterator[Scope]:
    """A Scope over ``data_root`` with sampand's lock held; DaemonRunning if it is held."""
    from ..engine.networking import Networking
    from ..images import ImageStore

    data_root, exec_root = os.path.abspath(data_root), os.path.abspath(exec_root)
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"data root {data_root} does not exist")
    with _daemon_lock(exec_root):
        images = ImageStore(data_root, _snapshotter(data_root))
        try:
            records = os.path.join(data_root, "containers")
            yield Scope(data_root=data_root, exec_root=exec_root, cgroup_parent=cgroup_parent,
                        images=images, containers=lambda: load_records(records),
                        network=Networking(data_root, exec_root,
                                           bridge=bridge or _bridge(data_root)))
        finally:
            images.close()
