"""The launcher's warm-up helper (scripts/sampan-runtime.c, warm_cgroup_lock): a child
that keeps the kernel's cgroup lock ready while Python starts. Once the container's init
is placed it has nothing left to do: the runtime kills it there and reaps it once the
container has started (foreground.wait) or before it exits (the script), not in between,
where the init waits for the runtime (the helper may be inside a write to cgroup.procs
that waits for a grace period, and a kill takes effect after it). Unreaped, its zombie
would stay under a foreground `run` for the container's lifetime, or pass to a subreaper
above (conmon, sampand) that does not know it."""

from __future__ import annotations

import os

from ..kernel.signals import SIGKILL

ENV = "_SAMPAN_RUNTIME_WARMUP"  # the helper's pid, set by the launcher for this process
_helper = os.environ.pop(ENV, "")  # (not for the container, hooks or anything we start)
_killed = 0  # its pid once killed, until reaped


def kill() -> None:
    """Kill the helper, if this process has one; a no-op after the first call."""
    global _helper, _killed
    pid, _helper = _helper, ""
    if not pid.isdigit():
        return
    try:
        with open(f"/proc/{pid}/stat") as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
        if parent == os.getpid():  # our own child, so its pid cannot have been reused
            os.kill(int(pid), SIGKILL)
            _killed = int(pid)
    except (OSError, ValueError, IndexError):
        pass


def release() -> None:
    """Kill the helper if that is still to do, and reap it."""
    global _killed
    kill()
    pid, _killed = _killed, 0
    if pid:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
