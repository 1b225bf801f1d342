"""seccomp filters compiled from OCI profiles, loaded for real in forked children.

Each test forks a child that loads the filter, tries some syscalls and reports what
happened through a pipe as JSON, so the parent checks the kernel's real behaviour.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import signal
import tempfile
import traceback
from collections.abc import Callable, Iterator

import pytest

from sampan.kernel import seccomp
from sampan.kernel.seccomp_bpf import BpfFilter, compile_cached, fingerprint
from sampan.oci.spec import Seccomp, SeccompArg, SeccompSyscall

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
SYS_PERSONALITY = 135  # x86_64
PR_SET_NO_NEW_PRIVS = 38
PERSONALITY_QUERY = 0xFFFFFFFF

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64",
                                reason="syscall numbers in these tests are x86_64's")


def _errno_of(fn: Callable[[], object]) -> int:
    """0 if ``fn`` succeeds, else the errno of the OSError it raised."""
    try:
        fn()
    except OSError as exc:
        return exc.errno or -1
    return 0


def _lseek(fd: int, offset: int, whence: int) -> int:
    """lseek(2), returning 0 or the errno."""
    return _errno_of(lambda: os.lseek(fd, offset, whence))


def _personality(persona: int) -> int:
    """personality(2) through syscall(2), so glibc adds nothing; returns 0 or the errno."""
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(SYS_PERSONALITY), ctypes.c_ulong(persona))
    return ctypes.get_errno() if rc == -1 else 0


def _run(filt: seccomp.Filter | BpfFilter, probe: Callable[[], object]) -> tuple[int, object]:
    """Fork, load ``filt`` in the child, run ``probe``; return (wait status, its result)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS would dump core
            _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            filt.load()
            os.write(w, json.dumps({"result": probe()}).encode())
        except BaseException:
            code = 1
            with contextlib.suppress(BaseException):
                os.write(w, json.dumps({"error": traceback.format_exc()}).encode())
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    report = json.loads(data) if data else {}
    assert "error" not in report, report["error"]
    return status, report.get("result")


def _result(filt: seccomp.Filter | BpfFilter, probe: Callable[[], object]) -> object:
    """Run ``probe`` under ``filt`` and insist the child exited cleanly."""
    status, result = _run(filt, probe)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    return result


@pytest.fixture
def scratch() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        yield d


def _mkdir_probe(base: str) -> Callable[[], object]:
    return lambda: _errno_of(lambda: os.mkdir(os.path.join(base, "d")))


MKDIR = ["mkdir", "mkdirat"]


def test_public_names() -> None:
    assert "SCMP_ACT_ERRNO" in seccomp.ACTIONS and "SCMP_ACT_KILL_PROCESS" in seccomp.ACTIONS
    assert "SCMP_ACT_NOTIFY" not in seccomp.ACTIONS
    assert set(seccomp.OPERATORS) == {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",
                                      "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                                      "SCMP_CMP_MASKED_EQ"}
    assert {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
            "SCMP_ARCH_RISCV64"} <= set(seccomp.ARCHES)
    assert set(seccomp.FLAGS) <= {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}
    assert "SECCOMP_FILTER_FLAG_TSYNC" in seccomp.FLAGS


def test_errno_default_eperm(scratch: str) -> None:
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(MKDIR, "SCMP_ACT_ERRNO")]))
    assert _result(filt, _mkdir_probe(scratch)) == errno.EPERM
    assert not os.path.exists(os.path.join(scratch, "d"))
    # The same mkdir works without the filter, so it was the filter that refused it.
    os.mkdir(os.path.join(scratch, "d"))


def test_errno_ret_custom(scratch: str) -> None:
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(MKDIR, "SCMP_ACT_ERRNO", errno_ret=errno.ENOSYS)]))
    assert _result(filt, _mkdir_probe(scratch)) == errno.ENOSYS


def test_argument_eq() -> None:
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(["personality"], "SCMP_ACT_ERRNO",
                       args=[SeccompArg(0, PERSONALITY_QUERY, "SCMP_CMP_EQ")])]))
    assert _result(filt, lambda: [_personality(PERSONALITY_QUERY), _personality(0)]) == [
        errno.EPERM, 0]


def test_argument_masked_eq() -> None:
    # lseek's whence (arg 2) with mask 3 == 2: SEEK_END (2) and 6 are refused; SEEK_SET,
    # SEEK_CUR and SEEK_DATA (3) are not.
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(["lseek"], "SCMP_ACT_ERRNO", errno_ret=errno.EACCES,
                       args=[SeccompArg(2, 3, "SCMP_CMP_MASKED_EQ", 2)])]))

    def probe() -> object:
        fd = os.open("/proc/self/status", os.O_RDONLY)
        return [_lseek(fd, 0, w) for w in (0, 1, 2, 6)]

    assert _result(filt, probe) == [0, 0, errno.EACCES, errno.EACCES]


def test_conditions_on_distinct_args_are_anded() -> None:
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(["lseek"], "SCMP_ACT_ERRNO", args=[
            SeccompArg(1, 5, "SCMP_CMP_EQ"), SeccompArg(2, os.SEEK_SET, "SCMP_CMP_EQ")])]))

    def probe() -> object:
        fd = os.open("/proc/self/status", os.O_RDONLY)
        return [_lseek(fd, off, w)
                for off, w in ((5, os.SEEK_SET), (5, os.SEEK_CUR), (0, os.SEEK_SET))]

    assert _result(filt, probe) == [errno.EPERM, 0, 0]


def test_conditions_on_same_arg_are_ored() -> None:
    # runc's rule: a repeated argument index gives one rule per condition.
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(["lseek"], "SCMP_ACT_ERRNO", args=[
            SeccompArg(2, os.SEEK_CUR, "SCMP_CMP_EQ"),
            SeccompArg(2, os.SEEK_END, "SCMP_CMP_EQ")])]))

    def probe() -> object:
        fd = os.open("/proc/self/status", os.O_RDONLY)
        return [_lseek(fd, 0, w)
                for w in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END)]

    assert _result(filt, probe) == [0, errno.EPERM, errno.EPERM]


def test_default_errno_with_allow_list(scratch: str) -> None:
    allowed = ["write", "exit_group", "exit", "brk", "mmap", "munmap", "mremap", "madvise",
               "futex", "rt_sigprocmask", "rt_sigaction", "getpid"]
    filt = seccomp.compile(Seccomp("SCMP_ACT_ERRNO", syscalls=[
        SeccompSyscall(allowed, "SCMP_ACT_ALLOW")]))

    def probe() -> object:
        return [os.getpid(), _errno_of(lambda: os.mkdir(os.path.join(scratch, "d"))),
                _errno_of(lambda: os.open("/dev/null", os.O_RDONLY))]

    status, result = _run(filt, probe)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert isinstance(result, list)
    assert result[1:] == [errno.EPERM, errno.EPERM]
    assert result[0] > 0


def test_default_errno_ret() -> None:
    allowed = ["write", "exit_group", "exit", "brk", "mmap", "munmap", "futex",
               "rt_sigprocmask", "rt_sigaction"]
    filt = seccomp.compile(Seccomp("SCMP_ACT_ERRNO", default_errno_ret=errno.ENOSYS,
                                   syscalls=[SeccompSyscall(allowed, "SCMP_ACT_ALLOW")]))
    assert _result(filt, lambda: _errno_of(lambda: os.open("/dev/null", 0))) == errno.ENOSYS


def test_kill_process_kills_with_sigsys(scratch: str) -> None:
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(MKDIR, "SCMP_ACT_KILL_PROCESS")]))
    status, result = _run(filt, _mkdir_probe(scratch))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, status
    assert result is None
    assert not os.path.exists(os.path.join(scratch, "d"))


def test_unknown_syscall_names_are_skipped(scratch: str) -> None:
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(["no_such_syscall_at_all", *MKDIR], "SCMP_ACT_ERRNO"),
        # known to libseccomp but absent on x86_64: a pseudo number, also harmless
        SeccompSyscall(["socketcall"], "SCMP_ACT_ERRNO")]))
    assert _result(filt, _mkdir_probe(scratch)) == errno.EPERM


def test_rule_with_default_action_is_skipped(scratch: str) -> None:
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(["getpid"], "SCMP_ACT_ALLOW"),
        SeccompSyscall(MKDIR, "SCMP_ACT_ERRNO", errno_ret=errno.EROFS)]))
    assert _result(filt, _mkdir_probe(scratch)) == errno.EROFS
    # ERRNO(EPERM) equals a default of ERRNO without errnoRet: skipped, not an error.
    seccomp.compile(Seccomp("SCMP_ACT_ERRNO", syscalls=[
        SeccompSyscall(["getpid"], "SCMP_ACT_ERRNO", errno_ret=errno.EPERM),
        SeccompSyscall(["write"], "SCMP_ACT_ALLOW")])).release()


def test_architectures_and_flags(scratch: str) -> None:
    base = Seccomp("SCMP_ACT_ALLOW", syscalls=[SeccompSyscall(MKDIR, "SCMP_ACT_ERRNO")])
    multi = Seccomp("SCMP_ACT_ALLOW", architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                                     "SCMP_ARCH_X32"],
                    flags=list(seccomp.FLAGS),
                    syscalls=[SeccompSyscall(MKDIR, "SCMP_ACT_ERRNO")])
    with seccomp.compile(base) as one, seccomp.compile(multi) as three:
        assert len(three.export_bpf()) > len(one.export_bpf())
        assert _result(three, _mkdir_probe(scratch)) == errno.EPERM


def test_export_bpf() -> None:
    with seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
            SeccompSyscall(MKDIR, "SCMP_ACT_ERRNO")])) as filt:
        bpf = filt.export_bpf()
    assert bpf and len(bpf) % 8 == 0


def test_many_rules_use_tree_optimisation() -> None:
    names = ["read", "write", "close", "fstat", "lseek", "mmap", "mprotect", "munmap",
             "brk", "rt_sigaction", "rt_sigprocmask", "ioctl", "pread64", "pwrite64",
             "readv", "writev", "access", "pipe", "select", "sched_yield", "mremap",
             "msync", "mincore", "madvise", "dup", "dup2", "pause", "nanosleep", "getpid",
             "socket", "connect", "accept", "sendto", "recvfrom", "exit_group", "futex"]
    filt = seccomp.compile(Seccomp("SCMP_ACT_ERRNO", syscalls=[
        SeccompSyscall(names, "SCMP_ACT_ALLOW")]))
    assert _result(filt, lambda: [os.getpid() > 0,
                                  _errno_of(lambda: os.open("/dev/null", 0))]) == [
        True, errno.EPERM]


def test_status_shows_filter_mode() -> None:
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(MKDIR, "SCMP_ACT_ERRNO")]))
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            os.close(go_w)
            filt.load()
            os.write(ready_w, b"1")
            os.read(go_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    try:
        assert os.read(ready_r, 1) == b"1"
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    finally:
        os.close(go_w)
        os.close(ready_r)
        _, status = os.waitpid(pid, 0)
    assert fields["Seccomp"] == "2"
    assert fields.get("Seccomp_filters", "1") == "1"
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_load_failure_is_oserror() -> None:
    # Without CAP_SYS_ADMIN and without no_new_privs the kernel refuses the filter.
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(MKDIR, "SCMP_ACT_ERRNO")]))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.setresuid(65534, 65534, 65534)
            try:
                filt.load()
                os.write(w, b"loaded")
            except OSError as exc:
                os.write(w, f"{exc.errno}:{exc.strerror}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = os.read(r, 4096).decode()
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert data.startswith(f"{errno.EACCES}:loading seccomp filter: "), data


@pytest.mark.parametrize(("spec", "message"), [
    (Seccomp("SCMP_ACT_FOO"), 'linux.seccomp.defaultAction: unknown action "SCMP_ACT_FOO"'),
    (Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(["getpid"], "SCMP_ACT_ERRNO"),
        SeccompSyscall(["getpid"], "SCMP_ACT_ERRNO"),
        SeccompSyscall(["getpid"], "SCMP_ACT_ERRNO"),
        SeccompSyscall(["getpid"], "SCMP_ACT_FOO")]),
     'linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"'),
    (Seccomp("SCMP_ACT_ALLOW", syscalls=[SeccompSyscall(["lseek"], "SCMP_ACT_ERRNO", args=[
        SeccompArg(0, 1, "SCMP_CMP_EQ"), SeccompArg(1, 1, "SCMP_CMP_ABOUT")])]),
     'linux.seccomp.syscalls[0].args[1].op: unknown operator "SCMP_CMP_ABOUT"'),
    (Seccomp("SCMP_ACT_ALLOW", syscalls=[SeccompSyscall(["lseek"], "SCMP_ACT_ERRNO", args=[
        SeccompArg(6, 1, "SCMP_CMP_EQ")])]),
     "linux.seccomp.syscalls[0].args[0].index: 6 is out of range 0..5"),
    (Seccomp("SCMP_ACT_ALLOW", syscalls=[SeccompSyscall(["lseek"], "SCMP_ACT_ERRNO", args=[
        SeccompArg(0, 1 << 64, "SCMP_CMP_EQ")])]),
     "linux.seccomp.syscalls[0].args[0].value: "),
    (Seccomp("SCMP_ACT_ALLOW", architectures=["SCMP_ARCH_X86", "SCMP_ARCH_VAX"]),
     'linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_VAX"'),
    (Seccomp("SCMP_ACT_ALLOW", flags=["SECCOMP_FILTER_FLAG_BOGUS"]),
     'linux.seccomp.flags[0]: unsupported flag "SECCOMP_FILTER_FLAG_BOGUS"'),
    (Seccomp("SCMP_ACT_ALLOW", default_errno_ret=1),
     "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW takes no errno return code"),
    (Seccomp("SCMP_ACT_ALLOW", syscalls=[SeccompSyscall(["getpid"], "SCMP_ACT_KILL",
                                                        errno_ret=1)]),
     "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL takes no errno return code"),
    (Seccomp("SCMP_ACT_ALLOW", syscalls=[SeccompSyscall(["getpid"], "SCMP_ACT_ERRNO",
                                                        errno_ret=1 << 16)]),
     "linux.seccomp.syscalls[0].errnoRet: 65536 is out of range"),
    (Seccomp("SCMP_ACT_ALLOW", syscalls=[SeccompSyscall([], "SCMP_ACT_ERRNO")]),
     "linux.seccomp.syscalls[0].names: "),
    (Seccomp("SCMP_ACT_ALLOW", syscalls=[SeccompSyscall(["getpid"], "SCMP_ACT_NOTIFY")]),
     "linux.seccomp: SCMP_ACT_NOTIFY is not supported"),
    (Seccomp("SCMP_ACT_NOTIFY"), "linux.seccomp: SCMP_ACT_NOTIFY is not supported"),
    (Seccomp("SCMP_ACT_ALLOW", listener_metadata="x"),
     "linux.seccomp.listenerMetadata: "),
])
def test_bad_profiles_name_the_field(spec: Seccomp, message: str) -> None:
    with pytest.raises(ValueError) as info:
        seccomp.compile(spec)
    assert str(info.value).startswith(message), str(info.value)


def test_release_is_idempotent() -> None:
    filt = seccomp.compile(Seccomp("SCMP_ACT_ALLOW"))
    filt.release()
    filt.release()


# The BPF cache: a profile seen before is installed from its stored program -----------------

def _deny_mkdir(errno_ret: int = errno.EPERM) -> Seccomp:
    return Seccomp(default_action="SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(names=MKDIR, action="SCMP_ACT_ERRNO", errno_ret=errno_ret)])


def test_cached_program_is_libseccomp_s_and_enforced(scratch: str) -> None:
    cache = os.path.join(scratch, "cache")
    first = compile_cached(_deny_mkdir(), cache)
    with seccomp.compile(_deny_mkdir()) as direct:
        assert first.program == direct.export_bpf()
    assert os.listdir(cache) == [fingerprint(_deny_mkdir()) + ".bpf"]
    assert os.stat(cache).st_mode & 0o777 == 0o700
    again = compile_cached(_deny_mkdir(), cache)
    assert again.program == first.program
    assert _result(again, _mkdir_probe(scratch)) == errno.EPERM
    # Another errno is another profile, with a program of its own.
    other = compile_cached(_deny_mkdir(errno.EACCES), cache)
    assert len(os.listdir(cache)) == 2
    assert _result(other, _mkdir_probe(scratch)) == errno.EACCES


def test_cache_open_to_others_or_corrupt_is_not_trusted(scratch: str) -> None:
    cache = os.path.join(scratch, "cache")
    os.mkdir(cache, 0o777)
    os.chmod(cache, 0o777)
    allow_all = compile_cached(Seccomp(default_action="SCMP_ACT_ALLOW"), None).program
    planted = os.path.join(cache, fingerprint(_deny_mkdir()) + ".bpf")
    with open(planted, "wb") as f:
        f.write(allow_all)  # a program someone else could have put there
    filt = compile_cached(_deny_mkdir(), cache)
    assert _result(filt, _mkdir_probe(scratch)) == errno.EPERM
    os.chmod(cache, 0o700)
    with open(planted, "wb") as f:
        f.write(b"\x00" * 7)  # not a program: rebuilt and replaced
    assert _result(compile_cached(_deny_mkdir(), cache), _mkdir_probe(scratch)) == errno.EPERM
    assert os.path.getsize(planted) % 8 == 0 and os.path.getsize(planted) > 8


def test_bad_profile_is_still_named_with_a_cache(scratch: str) -> None:
    bad = Seccomp(default_action="SCMP_ACT_ALLOW", syscalls=[
        SeccompSyscall(names=["mkdir"], action="SCMP_ACT_NOPE")])
    with pytest.raises(ValueError, match=r"syscalls\[0\]\.action"):
        compile_cached(bad, os.path.join(scratch, "cache"))
    assert os.listdir(os.path.join(scratch, "cache")) == []
