"""The launcher's warm-up helper (scripts/sampan-runtime.c, warm_cgroup_lock): a child
that keeps the kernel's cgroup lock ready while Python starts. Once the container's init
is placed it has nothing left to do, so the runtime ends it and reaps it there: otherwise
its zombie would stay under a foreground `run` for the container's lifetime, or pass to a
subreaper above (conmon, sampand) that does not know it."""

from __future__ import annotations

import os

from ..kernel.signals import SIGKILL

ENV = "_SAMPAN_RUNTIME_WARMUP"  # the helper's pid, set by the launcher for this process
_helper = os.environ.pop(ENV, "")  # (not for the container, hooks or anything we start)


def release() -> None:
    """Kill and reap the helper, if this process has one; a no-op after the first call."""
    global _helper
    pid, _helper = _helper, ""
    if not pid.isdigit():
        return
    try:
        with open(f"/proc/{pid}/stat") as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
        if parent == os.getpid():  # our own child, so its pid cannot have been reused
            os.kill(int(pid), SIGKILL)
            os.waitpid(int(pid), 0)
    except (OSError, ValueError, IndexError):
        pass
