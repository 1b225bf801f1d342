"""The CPU affinity of the processes the runtime forks, from the fork until they are in
the container's cgroup, and after it.

After the fork: the kernel queues a forked child on its parent's CPU, and the runtime goes
on working there (it makes the cgroup while the init builds the rootfs). On an idle
machine the child then waited for the next load balance, about 2 ms at this kernel's
250 Hz, while another CPU idled (bench: 7 % of a `run`). ``fork_apart`` gives the child
the CPUs other than ours at once; a child of the runtime keeps that mask only until it is
placed in the container's cgroup.

Once placed (``final``): what runc 1.2 does and the runtime spec's
process.execCPUAffinity asks. An `exec` with ``final`` gets those CPUs; one with
``initial`` alone keeps what the kernel made of it ("SHOULD NOT change"); anything else
(the init, a plain `exec`) is reset to every CPU, which the kernel narrows to the cgroup's
cpuset: a runtime started under taskset does not pin the container to its CPUs.
"""

from __future__ import annotations

import errno
import os

from ..kernel.syscalls import getcpu
from ..oci.spec import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..oci.spec import Process

# Every CPU the kernel could have (runc fills its mask so): it keeps those that exist and
# that the cgroup's cpuset allows.
ALL_CPUS = range(max(1024, os.cpu_count() or 1))


def fork_apart() -> int:
    """os.fork(), the child queued on the CPUs we may use other than the one we are on."""
    allowed = os.sched_getaffinity(0)
    pid = os.fork()
    if pid and len(allowed) > 1:
        # no system call before this one: the return from one is where the kernel may
        # switch to the child it has just queued here
        allowed.discard(getcpu())
        try:
            os.sched_setaffinity(pid, allowed)
        except OSError:
            pass  # (exited already: its error comes over the channel)
    return pid


def parse_cpus(text: str, field: str) -> set[int]:
    """A CPU list as the runtime spec and cpuset write it: "0-3,7"."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            low = int(first)
            high = int(last) if dash else low
            if low < 0 or high < low:
                raise ValueError(part)
            cpus.update(range(low, high + 1))
    except ValueError:
        raise ConfigError(f"{field}: {text!r} is not a CPU list (such as 0-3,7)") from None
    return cpus


def requested(proc: Process, is_exec: bool) -> tuple[set[int] | None, Iterable[int] | None]:
    """(initial, final) for a process: the CPUs to put it on after the fork (None: apart),
    and once it is in the container's cgroup (None: leave it). Read before the fork, so
    that a malformed list fails before anything is started."""
    affinity = proc.exec_cpu_affinity if is_exec else None
    initial = final = None
    if affinity and affinity.initial:
        initial = parse_cpus(affinity.initial, "process.execCPUAffinity.initial")
    if affinity and affinity.final:
        final = parse_cpus(affinity.final, "process.execCPUAffinity.final")
    elif initial is None:
        return None, ALL_CPUS
    return initial, final


def apply(pid: int, cpus: Iterable[int], field: str) -> None:
    """Set a child's CPUs; a list of which none may be used (offline, outside the cpuset)
    is the config's error."""
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as exc:
        if exc.errno != errno.EINVAL or cpus is ALL_CPUS:
            raise  # (ESRCH: the child is gone, and has said why over the channel)
        raise ConfigError(f"{field}: none of these CPUs can run the process here") from None
