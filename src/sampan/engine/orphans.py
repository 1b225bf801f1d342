"""Reaping the container processes sampand adopts.

sampand is a child subreaper, so that the monitors (which double-fork) become its children
and it learns when they exit. A monitor that dies before its container (killed, or out of
memory) hands the container's init to sampand as well; the engine then tears the container
down, and its init, killed, would stay a zombie for as long as sampand runs: subprocess and
asyncio wait only for the pids they started. Adopted processes are told apart by their pid
namespace: sampand starts nothing in a nested one itself, while a container's init is pid 1
of its own. Reaping is driven by SIGCHLD, which the kernel sends for adopted children too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)


def _children() -> list[int]:
    """Our children, from every thread's list (the kernel hands orphans to any of them)."""
    pids: list[int] = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids += (int(p) for p in f.read().split())
        except OSError:  # a thread that just ended
            continue
    return pids


def adopted_zombies(known: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Children that are zombies and belong to a nested pid namespace; ``known`` pids (the
    monitors: hundreds with as many containers) are not looked at."""
    found = []
    for pid in _children():
        if pid in known:
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if fields.get("State", "").split()[:1] == ["Z"] and \
                len(fields.get("NSpid", "").split()) > 1:
            found.append(pid)
    return found


def reap_adopted(known: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Reap what ``adopted_zombies`` finds; the pids reaped. Nothing else waits for them
    (none is a pid we started), so no one else's exit status is taken."""
    reaped = []
    for pid in adopted_zombies(known):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.append(pid)
        except ChildProcessError:
            continue
    if reaped:
        log.info("reaped %d process(es) adopted from containers: %s", len(reaped),
                 " ".join(map(str, reaped)))
    return reaped


def watch(loop: asyncio.AbstractEventLoop,
          known: Callable[[], set[int]] = set) -> Callable[[], None]:
    """Reap adopted zombies on every SIGCHLD (and once now), skipping the ``known()``
    children; returns the function that stops it."""

    def reap() -> None:
        reap_adopted(known())

    loop.add_signal_handler(signal.SIGCHLD, reap)
    reap()

    def stop() -> None:
        loop.remove_signal_handler(signal.SIGCHLD)

    return stop
