"""What the runtime hands to the processes it forks, and the forks themselves.

The children's code (init.py, with rootfs and hooks) is imported in the children:
a container's init loads it while the runtime creates the cgroup, in parallel, instead of
the runtime loading it before the fork, where every start waits for it.
"""

from __future__ import annotations

import os

from ..kernel import syscalls as k
from ..oci.record import field, record
from .affinity import fork_apart

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ..kernel.caps import CapabilitySet
    from ..kernel.seccomp_bpf import BpfFilter
    from ..oci.spec import Process, Spec
    from .channel import Channel


@record
class InitContext:
    """Everything the children need, prepared by the runtime before fork."""

    spec: Spec
    process: Process
    channel: Channel
    rootfs: str = ""
    fifo_fd: int = -1  # O_PATH fd of exec.fifo; -1 for exec (no wait for start)
    console_fd: int = -1  # connected --console-socket; -1 = send the pty to the runtime
    no_pivot: bool = False
    cgroup_mounts: list[tuple[str, str]] = field(default_factory=list)
    join: dict[str, str] = field(default_factory=dict)  # namespace type → path to setns
    new_namespaces: int = 0  # CLONE_* flags to unshare
    userns: bool = False
    seccomp_filter: BpfFilter | None = None
    capabilities: CapabilitySet | None = None
    state: dict[str, object] = field(default_factory=dict)  # for createContainer hooks
    is_exec: bool = False
    placed_late: bool = False  # the runtime places stage 2 in the cgroup while it sets up
    cgroup_pending: bool = False  # ... and creates the cgroup then: wait for "created"


def single_fork(ctx: InitContext) -> bool:
    """Whether the runtime may fork the container's init itself (fork_init): no stage 1
    is needed, and the cgroup is set up while the init builds the rootfs."""
    return (not ctx.is_exec and not ctx.userns and ctx.placed_late
            and not ctx.join.keys() & {"pid", "time", "user"}
            and not ctx.new_namespaces & k.CLONE_NEWTIME)


def fork_init(ctx: InitContext, runtime_end: Channel) -> int:
    """Fork the container's init straight from the runtime; its pid. (The init closes the
    runtime's ``runtime_end`` of the channel, so that it sees the runtime go away.)

    A new PID namespace is unshared for the runtime's children only (unshare(2) with
    CLONE_NEWPID leaves the caller where it is), the fork makes the init its PID 1, and
    the runtime then goes back to its own namespace for any later children.
    """
    own = -1
    if ctx.new_namespaces & k.CLONE_NEWPID:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if own >= 0:
            k.unshare(k.CLONE_NEWPID)
        pid = fork_apart()
        if pid == 0:
            _in_child(ctx, runtime_end, stage1=False)
        return pid
    finally:
        if own >= 0:
            try:
                k.setns(own, k.CLONE_NEWPID)
            finally:
                os.close(own)


def fork_stage1(ctx: InitContext, runtime_end: Channel) -> int:
    """Fork stage 1 (init.run_stage1), which enters the namespaces and forks the init."""
    pid = fork_apart()
    if pid == 0:
        _in_child(ctx, runtime_end, stage1=True)
    return pid


def _in_child(ctx: InitContext, runtime_end: Channel, *, stage1: bool) -> NoReturn:
    """In a forked child: init.py's entry, which reports its own failures and exits. The
    module is loaded here; should that fail (a broken installation), or anything still get
    out of the entry, the child exits too instead of going on in the runtime's code."""
    try:
        try:
            from . import init
        except BaseException as exc:
            os.write(2, f"sampan-runtime: cannot start the container's init: {exc}\n".encode())
            raise
        (init.run_stage1 if stage1 else init.run_init)(ctx, runtime_end)
    finally:
        os._exit(1)
