"""bpf(2) for the cgroup v2 device filter: load a program, attach it, replace old ones.

A thin ctypes layer like sampan.kernel.syscalls (it belongs there; kept here while the
cgroups package is the only user). Errors are OSError naming the command and its target.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_NR_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

_ATTR_SIZE = 128  # larger than every layout used here; the kernel wants the tail zeroed
_LOG_SIZE = 1 << 16
_MAX_PROGS = 64  # the kernel's limit of programs per cgroup and attach type


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        raise OSError(0, f"bpf: unknown syscall number on {platform.machine()}")
    result = _libc.syscall(ctypes.c_long(nr), ctypes.c_long(cmd), attr,
                           ctypes.c_long(_ATTR_SIZE))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(result)


def load_device_program(insns: bytes) -> int:
    """BPF_PROG_LOAD a cgroup device program; on failure the verifier's log is in the error."""
    try:
        return _load(insns, None)
    except OSError:
        log = ctypes.create_string_buffer(_LOG_SIZE)
        try:
            return _load(insns, log)
        except OSError as exc:
            verifier = log.value.decode(errors="replace").strip()
            raise OSError(exc.errno, f"{exc.strerror}: {verifier}") from None


def _load(insns: bytes, log: ctypes.Array[ctypes.c_char] | None) -> int:
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"Apache")
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIQQIIQII16s", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                     ctypes.addressof(code), ctypes.addressof(lic), 1 if log else 0,
                     len(log) if log else 0, ctypes.addressof(log) if log else 0,
                     0, 0, b"sampan_dev")  # kern_version, prog_flags, prog_name
    return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")


def query_device_programs(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to this very cgroup (not its ancestors)."""
    ids = (ctypes.c_uint32 * _MAX_PROGS)()
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0,
                     ctypes.addressof(ids), _MAX_PROGS)
    _bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
    (count,) = struct.unpack_from("<I", attr, 24)
    return list(ids[:count])


def attach_device_program(cgroup_fd: int, prog_fd: int) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIII", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
    _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)")


def detach_device_program(cgroup_fd: int, prog_id: int) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<I", attr, 0, prog_id)
    prog_fd = _bpf(BPF_PROG_GET_FD_BY_ID, attr, f"bpf(BPF_PROG_GET_FD_BY_ID, {prog_id})")
    try:
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        struct.pack_into("<III", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE)
        _bpf(BPF_PROG_DETACH, attr, "bpf(BPF_PROG_DETACH, BPF_CGROUP_DEVICE)")
    finally:
        os.close(prog_fd)


def replace_device_filter(cgroup_dir: str, insns: bytes) -> None:
    """Attach a new device program to cgroup_dir, then detach the ones it replaces.

    The new program is attached first so that the cgroup is never without a filter.
    """
    dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = query_device_programs(dir_fd)
        prog_fd = load_device_program(insns)
        try:
            attach_device_program(dir_fd, prog_fd)
        finally:
            os.close(prog_fd)  # the attachment holds its own reference
        for prog_id in old:
            detach_device_program(dir_fd, prog_id)
    finally:
        os.close(dir_fd)
