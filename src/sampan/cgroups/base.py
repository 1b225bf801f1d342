"""What both cgroup versions share: the manager interface, careful file I/O and teardown.

Every failure surfaces as CgroupError whose message names the spec field (when one is being
applied) and the cgroup file, so that a user can tell which setting the kernel refused.
"""

from __future__ import annotations

import errno
import os
import time
from abc import ABC, abstractmethod

from ..kernel import signals as signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any, ClassVar

    from ..oci.spec import Resources


# How long destroy() waits for dying processes to leave before giving up on a directory.
DESTROY_TIMEOUT = 10.0
# How long freeze() waits for every task to reach the frozen state.
FREEZE_TIMEOUT = 10.0

_HINTS = {
    errno.EBUSY: "the kernel refused while the cgroup is in use",
    errno.EINVAL: "the kernel rejected the value",
    errno.ENOENT: "no such file (controller not enabled or not supported by this kernel)",
    errno.EOPNOTSUPP: "not supported by this kernel, cgroup or device",
    errno.ENOSPC: "no space (limit exceeded or no cpus/mems set)",
}


class CgroupError(Exception):
    """A cgroup could not be set up, changed or read; the message names the field or file.

    ``errno`` is the kernel's error number when a file operation failed.
    """

    def __init__(self, message: str, err: int | None = None) -> None:
        super().__init__(message)
        self.errno = err


def _prefix(field: str | None) -> str:
    return f"{field}: " if field else ""


def describe(exc: OSError) -> str:
    """strerror plus a short hint of what the errno usually means for cgroup files."""
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = _HINTS.get(exc.errno or 0)
    return f"{text} ({hint})" if hint else text


def read_file(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write_file(path: str, value: str, field: str | None = None) -> None:
    """One write(2) of value to a cgroup file (the kernel parses each write on its own)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"{_prefix(field)}cannot open {path}: {describe(exc)}",
                          exc.errno) from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise CgroupError(
            f"{_prefix(field)}cannot write {value!r} to {path}: {describe(exc)}",
            exc.errno) from None
    finally:
        os.close(fd)


def read_keyed(path: str) -> dict[str, int]:
    """A flat keyed file ("key value" per line, e.g. memory.events, cpu.stat)."""
    out: dict[str, int] = {}
    for line in read_file(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def read_number(path: str, unlimited: int) -> int:
    """A single-number file where "max" means no limit (reported as ``unlimited``)."""
    text = read_file(path)
    return unlimited if text == "max" else int(text)


def read_procs(directory: str) -> list[int]:
    try:
        text = read_file(os.path.join(directory, "cgroup.procs"))
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def make_dirs(root: str, rel: str,
              level: Callable[[str, bool, bool], None] | None = None) -> None:
    """mkdir root/rel one level at a time, calling level(dir, made_here, is_leaf) for each.

    Retried when a parent vanishes between two mkdirs (a concurrent destroy() pruning the
    shared parent of the default path).
    """
    parts = rel.strip("/").split("/")
    for attempt in range(5):
        current = root
        try:
            for i, part in enumerate(parts):
                current = os.path.join(current, part)
                try:
                    os.mkdir(current, 0o755)
                    made = True
                except FileExistsError:
                    made = False
                if level is not None:
                    level(current, made, i == len(parts) - 1)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise CgroupError(f"cannot create {current}: its parent keeps "
                                  "disappearing") from None
        except OSError as exc:
            raise CgroupError(f"cannot create {current}: {describe(exc)}", exc.errno) from None


def walk_dirs(top: str) -> Iterator[str]:
    """top and every cgroup below it, deepest first (the order rmdir needs)."""
    for parent, _subdirs, _files in os.walk(top, topdown=False):
        yield parent


class Cgroup(ABC):
    """One container's cgroup, in every hierarchy it lives in.

    ``dirs`` maps a controller (v1: "memory", "cpu", "name=systemd", "unified"; v2: "") to
    its directory. ``prune`` is how many empty parent directories destroy() may remove too
    (the shared "sampan" parent of the default path).
    """

    version: ClassVar[int]

    def __init__(self, dirs: Mapping[str, str], prune: int = 0) -> None:
        self._paths = dict(dirs)
        self._prune = prune

    @property
    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def directories(self) -> list[str]:
        """Each directory once (co-mounted v1 controllers share one)."""
        return list(dict.fromkeys(self._paths.values()))

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.directories())

    @abstractmethod
    def create(self) -> None:
        """Make the directories (and whatever a task needs before it can join)."""

    @abstractmethod
    def set(self, resources: Resources | None) -> None:
        """Write linux.resources; also used by `update` on a running container."""

    @abstractmethod
    def freeze(self) -> None: ...

    @abstractmethod
    def thaw(self) -> None: ...

    @abstractmethod
    def is_frozen(self) -> bool: ...

    @abstractmethod
    def oom_kills(self) -> int: ...

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Usage in the shape of runc's `events --stats` data."""

    @abstractmethod
    def mount_sources(self) -> list[tuple[str, str]]:
        """(name under /sys/fs/cgroup, host directory) per hierarchy; ("", dir) on pure v2."""

    @abstractmethod
    def _kill_file(self) -> str | None:
        """A cgroup.kill file that SIGKILLs the whole tree at once, where there is one."""

    def apply(self, pid: int) -> None:
        """Move pid into every hierarchy (the kernel's cgroup.procs takes the whole process)."""
        for directory in self.directories():
            path = os.path.join(directory, "cgroup.procs")
            for attempt in range(10):
                try:
                    write_file(path, str(pid))
                    break
                except CgroupError as exc:
                    # EINVAL can mean the task is still being forked (TASK_NEW): retry briefly.
                    if exc.errno != errno.EINVAL or attempt == 9 or not _pid_alive(pid):
                        raise
                    time.sleep(0.02)

    def pids(self) -> list[int]:
        """Every process in the container's cgroups, sub-cgroups included."""
        found: set[int] = set()
        for directory in self.directories():
            if os.path.isdir(directory):
                for sub in walk_dirs(directory):
                    found.update(read_procs(sub))
        return sorted(found)

    def kill(self, sig: int) -> None:
        """Signal every process; SIGKILL goes through cgroup.kill where the kernel has it.

        A cgroup that is gone has no processes: nothing to do.
        """
        if not self.exists():
            return
        kill_file = self._kill_file() if sig == signal.SIGKILL else None
        if kill_file is not None:
            write_file(kill_file, "1")
            return
        self._signal_all(sig)

    def _signal_all(self, sig: int) -> None:
        seen: set[int] = set()
        # A SIGKILL sweep repeats while new pids appear (forks racing the first pass).
        for _ in range(100):
            new = [p for p in self.pids() if p not in seen]
            if not new:
                return
            for pid in new:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            seen.update(new)
            if sig != signal.SIGKILL:
                return

    def destroy(self) -> None:
        """rmdir everything (sub-cgroups first), waiting while exiting processes leave.

        Idempotent: directories already gone are fine. Raises CgroupError naming what could
        not be removed (and the pids still there) after DESTROY_TIMEOUT.
        """
        deadline = time.monotonic() + DESTROY_TIMEOUT
        failures = []
        for directory in self.directories():
            error = _remove_tree(directory, deadline)
            if error:
                failures.append(error)
                continue
            parent = directory
            for _ in range(self._prune):
                parent = os.path.dirname(parent)
                try:
                    os.rmdir(parent)
                except OSError:
                    break  # still used by another container (or gone): leave it
        if failures:
            raise CgroupError("cannot remove cgroup: " + "; ".join(failures))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_tree(top: str, deadline: float) -> str | None:
    try:  # the usual case, no sub-cgroup and no process: one rmdir, no walk of the files
        os.rmdir(top)
        return None
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            return f"{top}: {describe(exc)}"
    delay = 0.005
    while True:
        busy = None
        for directory in walk_dirs(top) if os.path.isdir(top) else ():
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    return f"{directory}: {describe(exc)}"
                busy = directory
                break
        if busy is None:
            return None
        if time.monotonic() > deadline:
            left = read_procs(busy)
            return f"{busy}: still busy after {DESTROY_TIMEOUT:.0f}s (pids {left})"
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
