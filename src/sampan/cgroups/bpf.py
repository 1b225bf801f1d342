"""bpf(2) for the cgroup v2 device filter: load a program, attach it, replace old ones.

Errors are OSError naming the command and its target.
"""

from __future__ import annotations

import os
import struct

from ..kernel.syscalls import SYS_BPF, _check, address, syscall

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


def _bpf(cmd: int, attr: bytearray, what: str) -> int:
    return _check(syscall(SYS_BPF, cmd, attr, _ATTR_SIZE), what)


def load_device_program(insns: bytes) -> int:
    """BPF_PROG_LOAD a cgroup device program; on failure the verifier's log is in the error."""
    try:
        return _load(insns, None)
    except OSError:
        log = bytearray(_LOG_SIZE)
        try:
            return _load(insns, log)
        except OSError as exc:
            verifier = log.split(b"\0", 1)[0].decode(errors="replace").strip()
            raise OSError(exc.errno, f"{exc.strerror}: {verifier}") from None


def _load(insns: bytes, log: bytearray | None) -> int:
    lic = b"Apache"  # NUL-terminated, as every bytes object is
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("<IIQQIIQII16s", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                     address(insns), address(lic), 1 if log else 0,
                     len(log) if log else 0, address(log) if log else 0,
                     0, 0, b"sampan_dev")  # kern_version, prog_flags, prog_name
    return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")


def query_device_programs(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to this very cgroup (not its ancestors)."""
    ids = bytearray(4 * _MAX_PROGS)
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0,
                     address(ids), _MAX_PROGS)
    _bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
    (count,) = struct.unpack_from("<I", attr, 24)
    return list(struct.unpack_from(f"<{count}I", ids))


def attach_device_program(cgroup_fd: int, prog_fd: int) -> None:
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("<IIII", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
    _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)")


def detach_device_program(cgroup_fd: int, prog_id: int) -> None:
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("<I", attr, 0, prog_id)
    prog_fd = _bpf(BPF_PROG_GET_FD_BY_ID, attr, f"bpf(BPF_PROG_GET_FD_BY_ID, {prog_id})")
    try:
        attr = bytearray(_ATTR_SIZE)
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
