"""The thin layer of kernel calls Python's os module lacks (3.11 has no unshare or setns).

Every function raises OSError with errno and a message naming the call and its target,
so that callers higher up can turn it into a clear error for the user. The calls go through
``syscall`` (the C extension ``_syscall``, or the same on ctypes where it was not built),
with the kernel's own numbers for this machine's architecture.
"""

from __future__ import annotations

import os
import struct

try:  # built by setup.py (scripts/install.sh has the compiler): no ctypes at start-up
    from ._syscall import address, getcpu, syscall
except ImportError:  # an install without a C compiler: about 4 ms more per runtime start
    from ._ctypes_syscall import address, getcpu, syscall

__all__ = ["address", "getcpu", "syscall"]

# Namespace clone flags (linux/sched.h).
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
# The file under /proc/<pid>/ns/ for each namespace type.
NAMESPACE_FILES = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
    "user": "user", "cgroup": "cgroup", "time": "time",
}

# mount(2) flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# System call numbers (asm/unistd.h), where the architectures differ.
_NUMBERS = {
    #            x86_64 aarch64
    "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41),
    "unshare": (272, 97), "setns": (308, 268), "sethostname": (170, 161),
    "setdomainname": (171, 162), "prctl": (157, 167), "personality": (135, 92),
    "capget": (125, 90), "capset": (126, 91), "fstatfs": (138, 44), "seccomp": (317, 277),
    "bpf": (321, 280), "prlimit64": (302, 261),
}
_ARCH = {"x86_64": 0, "aarch64": 1}.get(os.uname().machine, -1)


def _nr(name: str) -> int:
    return _NUMBERS[name][_ARCH] if _ARCH >= 0 else -1  # -1: ENOSYS


SYS_MOUNT, SYS_UMOUNT2, SYS_PIVOT_ROOT = _nr("mount"), _nr("umount2"), _nr("pivot_root")
SYS_UNSHARE, SYS_SETNS, SYS_PRCTL = _nr("unshare"), _nr("setns"), _nr("prctl")
SYS_SETHOSTNAME, SYS_SETDOMAINNAME = _nr("sethostname"), _nr("setdomainname")
SYS_PERSONALITY, SYS_CAPGET, SYS_CAPSET = _nr("personality"), _nr("capget"), _nr("capset")
SYS_FSTATFS, SYS_SECCOMP, SYS_BPF = _nr("fstatfs"), _nr("seccomp"), _nr("bpf")
SYS_PRLIMIT64 = _nr("prlimit64")
# The same on every architecture (the numbers added since 5.x are common).
SYS_PIDFD_SEND_SIGNAL = 424
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_FSOPEN = 430
SYS_FSCONFIG = 431
SYS_FSMOUNT = 432
SYS_PIDFD_OPEN = 434
SYS_OPENAT2 = 437
SYS_MOUNT_SETATTR = 442


def _check(result: int, what: str, target: str | None = None) -> int:
    """``result`` of ``syscall``; a negative one (-errno) raised as OSError."""
    if result < 0:
        msg = f"{what}: {os.strerror(-result)}"
        raise OSError(-result, msg, target) if target else OSError(-result, msg)
    return result


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(syscall(SYS_MOUNT, _b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount {source or fstype or ''} on", target)


def umount(target: str, flags: int = 0) -> None:
    _check(syscall(SYS_UMOUNT2, _b(target), flags), "umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root", new_root)


def unshare(flags: int) -> None:
    _check(syscall(SYS_UNSHARE, flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(syscall(SYS_SETNS, fd, nstype), "setns")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(syscall(SYS_SETHOSTNAME, raw, len(raw)), "sethostname", name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(syscall(SYS_SETDOMAINNAME, raw, len(raw)), "setdomainname", name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(syscall(SYS_PRCTL, option, arg2, arg3, arg4, arg5), f"prctl({option})")


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_keepcaps(on: bool) -> None:
    prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def set_name(name: str) -> None:
    """The process's comm (what ps and top show; 15 bytes at most)."""
    _check(syscall(SYS_PRCTL, PR_SET_NAME, name.encode()[:15]), f"prctl({PR_SET_NAME})")


def personality(persona: int) -> None:
    _check(syscall(SYS_PERSONALITY, persona), "personality")


def pidfd_open(pid: int) -> int:
    return _check(syscall(SYS_PIDFD_OPEN, pid, 0), "pidfd_open", str(pid))


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    _check(syscall(SYS_PIDFD_SEND_SIGNAL, pidfd, sig, None, 0), "pidfd_send_signal")


_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# struct __user_cap_header_struct, then two struct __user_cap_data_struct (the low and
# high 32 bits of each set)
_CAP_HEADER = struct.Struct("=Ii")
_CAP_DATA = struct.Struct("=6I")


def _cap_header(pid: int) -> bytearray:
    """Writable: the kernel writes its own version there when it refuses ours."""
    return bytearray(_CAP_HEADER.pack(_LINUX_CAPABILITY_VERSION_3, pid))


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    data = bytearray(_CAP_DATA.size)
    _check(syscall(SYS_CAPGET, _cap_header(pid), data), "capget")
    e0, p0, i0, e1, p1, i1 = _CAP_DATA.unpack(data)
    return e0 | e1 << 32, p0 | p1 << 32, i0 | i1 << 32


def capset(effective: int, permitted: int, inheritable: int) -> None:
    low, high = 0xFFFFFFFF, 32
    data = _CAP_DATA.pack(effective & low, permitted & low, inheritable & low,
                          effective >> high & low, permitted >> high & low,
                          inheritable >> high & low)
    _check(syscall(SYS_CAPSET, _cap_header(0), data), "capset")


# Resource limits (asm-generic/resource.h) by the names the OCI spec gives them; the
# resource module would be one more shared library to load on each start.
RLIMITS = {name: number for number, name in enumerate((
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"))}
RLIM_INFINITY = 2**64 - 1
_RLIMIT = struct.Struct("=QQ")


def prlimit(resource: int, new: tuple[int, int] | None = None) -> tuple[int, int]:
    """This process's (soft, hard) limit of ``resource``, as it was before ``new`` (if
    given) was set. Limits are unsigned (RLIM_INFINITY is 2**64-1); a negative one given
    is taken as its bits, so -1 is infinity, as in the resource module."""
    limits = None if new is None else _RLIMIT.pack(*(v & RLIM_INFINITY for v in new))
    old = bytearray(_RLIMIT.size)
    _check(syscall(SYS_PRLIMIT64, 0, resource, limits, old), f"prlimit({resource})")
    soft, hard = _RLIMIT.unpack(old)
    return soft, hard
