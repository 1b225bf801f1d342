"""The second half of CVE-2019-5736: the runtime's own executable must never be reachable,
writable, from inside a container.

A process that enters a container and then execs the container's program can be made to
exec *itself*: a program whose ``#!`` line (or a symlink) names ``/proc/self/exe`` makes
the kernel run the current executable, here the host's Python interpreter, inside the
container, where an image's own ld.so and libc run code in it. That process is dumpable
again after execve, so the container's root could open its /proc/<pid>/exe read-only and,
once it has exited, reopen the host's interpreter for writing through /proc/self/fd.

runc's answer, taken here: the commands that enter a container (create, run, exec) first
re-execute the interpreter from a copy nobody can write, so that every stage's
/proc/self/exe, and whatever the container's program turns it into, is that copy. As
runc 1.2, the copy is preferably the interpreter seen through a detached overlayfs mount
with no upper layer (nothing to copy, and no remount can ever make it writable); where
overlayfs cannot be mounted (no CAP_SYS_ADMIN), it is a sealed memfd (memfd_create with
F_SEAL_WRITE, GROW, SHRINK and SEAL), as runc 1.1. Arguments and environment are kept,
so the second start is the first one again.

The installed ``sampan-runtime`` is a C launcher (scripts/sampan-runtime.c) that makes the
overlay view itself and starts the interpreter from it: then ``ensure_protected_exe`` finds
the executable protected and the script's first start is its only one.
"""

from __future__ import annotations

import fcntl
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
NAME = "sampan-runtime"
OVERLAYFS_MAGIC = 0x794C7630
# Set across the re-exec: a copy that is then not seen as protected is an error, never a
# loop of re-executions.
_MARK = "_SAMPAN_RUNTIME_PROTECTED"


class ExeError(OSError):
    """No protected copy of the interpreter could be made or recognised."""


def exe_is_protected(path: str = "/proc/self/exe") -> bool:
    """Whether the executable is a sealed memfd, or on a read-only overlayfs."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            if fcntl.fcntl(fd, fcntl.F_GET_SEALS) & SEALS == SEALS:
                return True
        except OSError:  # EINVAL: not a memfd
            pass
        return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY) and _fs_type(fd) == OVERLAYFS_MAGIC
    finally:
        os.close(fd)


def _fs_type(fd: int) -> int:
    from ..kernel.syscalls import SYS_FSTATFS, syscall

    buf = bytearray(120)  # struct statfs, f_type first
    if syscall(SYS_FSTATFS, fd, buf) != 0:
        return 0
    return int.from_bytes(buf[:8], "little") & 0xFFFFFFFF


def overlay_view() -> int:
    """An O_PATH fd of the running interpreter through a detached overlayfs whose layers
    are its directory and an empty tmpfs: read-only for good, nothing copied."""
    from ..kernel import mountapi

    exe = os.path.realpath("/proc/self/exe")
    empty_fs = mountapi.FsContext("tmpfs")
    try:
        empty = empty_fs.detached()
    finally:
        empty_fs.close()
    overlay = mountapi.FsContext("overlay")
    try:
        overlay.set_string("lowerdir+", os.path.dirname(exe))
        overlay.set_fd("lowerdir+", empty)
        mnt = overlay.detached()
    finally:
        overlay.close()
        os.close(empty)
    try:
        return os.open(os.path.basename(exe), os.O_PATH | os.O_CLOEXEC, dir_fd=mnt)
    finally:
        os.close(mnt)


def sealed_copy() -> int:
    """A sealed memfd (close-on-exec) holding a copy of the running interpreter."""
    src = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.memfd_create(NAME, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            size = os.fstat(src).st_size
            offset = 0
            while offset < size:
                sent = os.sendfile(fd, src, offset, size - offset)
                if sent == 0:
                    raise ExeError(f"copying the interpreter: short copy at {offset}")
                offset += sent
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
        except BaseException:
            os.close(fd)
            raise
    finally:
        os.close(src)
    return fd


def protected_copy() -> int:
    try:
        return overlay_view()
    except OSError:
        return sealed_copy()


# runc's global flags that take a value (cli/runtime.py's _GLOBAL; a test keeps them in
# step): what ``entering`` skips to find the command.
VALUE_FLAGS = ("--root", "--log", "--log-format", "--rootless", "--criu")
ENTERING = ("create", "run", "exec")


def entering(argv: list[str]) -> bool:
    """Whether the command line (without the program) is one whose processes enter a
    container; read before the command-line parser is even imported, so that the re-exec
    below happens as early in the first start as it can."""
    args = iter(argv)
    for arg in args:
        if arg == "--":
            return next(args, "") in ENTERING
        if arg.startswith("-"):
            if arg in VALUE_FLAGS:
                next(args, None)
            continue
        return arg in ENTERING
    return False


def ensure_protected_exe() -> None:
    """Return only when running from a protected copy; otherwise re-execute from one."""
    if exe_is_protected():
        os.environ.pop(_MARK, None)
        return
    if os.environ.get(_MARK):
        raise ExeError("re-executed from a protected copy of the interpreter, but "
                       "/proc/self/exe is neither a sealed memfd nor read-only")
    _reexec(protected_copy())


def _reexec(fd: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(os.environ)
    env[_MARK] = "1"
    # orig_argv: the interpreter's own arguments (its path first, so that the venv and
    # sys.executable come out the same), then the script's.
    os.execve(fd, sys.orig_argv, env)
