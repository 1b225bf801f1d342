"""Keeps the kernel's cgroup migration lock ready while containers start.

Moving a process into a cgroup takes the kernel's global ``cgroup_threadgroup_rwsem`` for
writing; when nobody has for a while, the writer first waits an RCU grace period (10-15 ms
here) for the readers to switch to their slow path, and the lock switches back one grace
period after the last writer. The runtime's placement of a container's init pays that wait
on every start that follows a quiet spell. sampan-runtime's launcher avoids it with a
helper process (scripts/sampan-runtime.c); in the engine, while a start is under way, a
thread moves the daemon into its own cgroup (a move to where it already is) every 2 ms:
the first move waits out the grace period while the daemon mounts the rootfs and writes
the spec, and the lock is ready when the runtime places the init. The kernel's
``favordynmods`` cgroup mount option would keep it ready for good, but the hierarchies are
the host's to mount.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .paths import below_mount, cgroup_mounts, own_cgroups

INTERVAL = 0.002  # within one grace period of the last move, so the lock never cools


def own_procs_file() -> str | None:
    """cgroup.procs of this process's cgroup: in the v2 hierarchy if there is one, else in
    the first v1 hierarchy (the lock is one for all of them)."""
    own = own_cgroups()
    mounts = sorted(cgroup_mounts(), key=lambda m: -m.version)
    for m in mounts:
        key = "" if m.version == 2 else next(
            (c for c in m.controllers if c in own), None)
        if key is None or key not in own:
            continue
        path = os.path.join(m.mountpoint, below_mount(m, own[key], ""), "cgroup.procs")
        if os.path.exists(path):
            return path
    return None


class LockWarmer:
    """``with warmer.held():`` around a container's start; one thread for all starts."""

    def __init__(self, procs_file: str | None = None) -> None:
        self.procs_file = procs_file
        self._mutex = threading.Lock()
        self._users = 0
        self._stop: threading.Event | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._mutex:
            self._users += 1
            if self._stop is None:
                self._stop = threading.Event()
                threading.Thread(target=self._run, args=(self._stop,), daemon=True,
                                 name="sampan-cgroup-lock").start()
        try:
            yield
        finally:
            with self._mutex:
                self._users -= 1
                if not self._users and self._stop is not None:
                    self._stop.set()
                    self._stop = None

    def _run(self, stop: threading.Event) -> None:
        # found once: a daemon stays in its cgroup (mountinfo is not read per start)
        path = self.procs_file = self.procs_file or own_procs_file()
        if path is None:
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            while not stop.is_set():
                os.write(fd, b"0")
                stop.wait(INTERVAL)
        except OSError:  # not allowed here (a cgroup namespace, a read-only hierarchy)
            pass
        finally:
            os.close(fd)
