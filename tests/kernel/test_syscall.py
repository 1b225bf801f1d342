"""The two implementations of the kernel layer's one primitive, checked alike.

`sampan.kernel._syscall` (C, built at install) and `_ctypes_syscall` (its stand-in where no
compiler was at hand) must agree: results, -errno on failure, strings, writable buffers,
negative and above-LONG_MAX integers, and pointers inside structs (``address``). Calls that
change the process (namespaces, seccomp) run in a forked child.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable
from types import ModuleType

import pytest

from sampan.kernel import _ctypes_syscall, _syscall
from sampan.kernel import syscalls as k

BACKENDS = [pytest.param(_syscall, id="c"), pytest.param(_ctypes_syscall, id="ctypes")]


def _status(field: str, pid: str = "self") -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(field + ":"))


def _in_child(fn: Callable[[], bytes]) -> bytes:
    """fn's bytes, run in a forked child (exit status 0 when it returned)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 1
        try:
            os.write(w, fn())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    assert os.waitpid(pid, 0)[1] == 0
    return out


@pytest.mark.parametrize("sys", BACKENDS)
def test_result_and_errno(sys: ModuleType) -> None:
    assert sys.syscall(k.SYS_PRCTL, k.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == \
        int(_status("NoNewPrivs"))
    assert sys.syscall(k.SYS_UMOUNT2, b"/nonexistent/sampan-test", 0) == -errno.ENOENT
    # a capability number with every bit set: passed as its bits, refused by the kernel
    assert sys.syscall(k.SYS_PRCTL, k.PR_CAPBSET_READ, 2**64 - 1) == -errno.EINVAL


@pytest.mark.parametrize("sys", BACKENDS)
def test_writable_buffer_and_negative_fd(sys: ModuleType, tmp_path: object) -> None:
    data = bytearray(24)
    header = bytearray(struct.pack("=Ii", 0x20080522, 0))
    assert sys.syscall(k.SYS_CAPGET, header, data) == 0
    eff_low, _, _, eff_high, _, _ = struct.unpack("=6I", data)
    assert eff_low | eff_high << 32 == int(_status("CapEff"), 16)
    path = os.path.join(str(tmp_path), "file")
    with open(path, "w") as f:
        f.write("x")
    how = struct.pack("=3Q", os.O_RDONLY | os.O_CLOEXEC, 0, 0)
    fd = sys.syscall(k.SYS_OPENAT2, -100, os.fsencode(path), how, len(how))  # AT_FDCWD
    assert fd >= 0
    try:
        assert os.read(fd, 1) == b"x"
    finally:
        os.close(fd)


@pytest.mark.parametrize("sys", BACKENDS)
def test_strings_reach_the_kernel(sys: ModuleType) -> None:
    def rename_host() -> bytes:
        assert sys.syscall(k.SYS_UNSHARE, k.CLONE_NEWUTS) == 0
        name = b"sampan-syscall"
        assert sys.syscall(k.SYS_SETHOSTNAME, name, len(name)) == 0
        return os.uname().nodename.encode()

    assert _in_child(rename_host) == b"sampan-syscall"
    assert os.uname().nodename != "sampan-syscall"


@pytest.mark.parametrize("sys", BACKENDS)
def test_address_points_into_a_struct(sys: ModuleType) -> None:
    """A seccomp filter's program reached through struct sock_fprog's pointer."""
    def filtered() -> bytes:
        # one instruction, BPF_RET | BPF_K with SECCOMP_RET_ALLOW: installed, it lets the
        # process go on as before
        program = struct.pack("=HBBI", 0x06, 0, 0, 0x7FFF0000)
        fprog = struct.pack("=HxxxxxxQ", 1, sys.address(program))
        assert sys.syscall(k.SYS_PRCTL, k.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        assert sys.syscall(k.SYS_SECCOMP, 1, 0, fprog) == 0  # SECCOMP_SET_MODE_FILTER
        return _status("Seccomp").encode()

    assert _in_child(filtered) == b"2"


@pytest.mark.parametrize("sys", BACKENDS)
def test_bad_arguments_are_type_errors(sys: ModuleType) -> None:
    with pytest.raises(TypeError):
        sys.syscall(k.SYS_UMOUNT2, "/a/str/is/not/bytes", 0)
    with pytest.raises(TypeError):
        sys.syscall(k.SYS_PRCTL, 1, 2, 3, 4, 5, 6, 7)


@pytest.mark.parametrize("sys", BACKENDS)
def test_getcpu_is_the_cpu_we_run_on(sys: ModuleType) -> None:
    allowed = os.sched_getaffinity(0)
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})  # the call moves us there before it returns
            assert sys.getcpu() == cpu
    finally:
        os.sched_setaffinity(0, allowed)


def test_the_kernel_layer_uses_the_c_extension() -> None:
    """install.sh builds it: a silent fall-back to ctypes would cost every start 4 ms."""
    assert k.syscall is _syscall.syscall
