"""The thin layer of kernel calls Python's os module lacks (3.11 has no unshare or setns).

Every function raises OSError with errno and a message naming the call and its target,
so that callers higher up can turn it into a clear error for the user.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

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

# x86-64 syscall numbers for calls glibc 2.36 does not wrap.
SYS_PIVOT_ROOT = 155
SYS_CAPGET = 125
SYS_CAPSET = 126
SYS_PIDFD_OPEN = 434
SYS_PIDFD_SEND_SIGNAL = 424

_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _check(result: int, what: str, target: str | None = None) -> int:
    if result == -1:
        err = ctypes.get_errno()
        msg = f"{what}: {os.strerror(err)}"
        raise OSError(err, msg, target) if target else OSError(err, msg)
    return result


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags),
                       _b(data)), f"mount {source or fstype or ''} on", target)


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root", new_root)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname", name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)), "setdomainname", name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), f"prctl({option})")


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
    buf = ctypes.create_string_buffer(name.encode()[:15])
    prctl(PR_SET_NAME, ctypes.addressof(buf))


def personality(persona: int) -> None:
    _check(_libc.personality(ctypes.c_ulong(persona)), "personality")


def pidfd_open(pid: int) -> int:
    return _check(_syscall(SYS_PIDFD_OPEN, pid, 0), "pidfd_open", str(pid))


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    _check(_syscall(SYS_PIDFD_SEND_SIGNAL, pidfd, sig, None, 0), "pidfd_send_signal")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_syscall(SYS_CAPGET, ctypes.byref(hdr), data), "capget")
    return tuple(
        getattr(data[0], f) | (getattr(data[1], f) << 32)
        for f in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall(SYS_CAPSET, ctypes.byref(hdr), data), "capset")
