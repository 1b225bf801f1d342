"""The runtime-spec's ``linux.seccomp``, compiled with libseccomp through ctypes.

The filter is validated and built in the runtime before it forks, so that a bad profile is
reported as a clear error naming the offending field instead of a dying child. The forked
child then only calls :meth:`Filter.load`, which does one library call and nothing else:
after fork in a process that may have had threads, the less Python does, the safer.

libseccomp reports failures as negative errno values; they become ``ValueError`` when the
profile is at fault and ``OSError`` when the system is.

Behaviour follows runc (libcontainer/seccomp): unknown syscall names are skipped, rules
whose action equals the default action are dropped, ``SCMP_ACT_ERRNO`` and
``SCMP_ACT_TRACE`` default to EPERM, and a syscall with several conditions on the same
argument gets one rule per condition (OR) instead of one rule with all of them (AND).
"""

from __future__ import annotations

import ctypes
import errno
import os
from types import TracebackType

from ..oci.spec import Seccomp, SeccompArg, SeccompSyscall

_LIBRARY = "libseccomp.so.2"

# Actions (seccomp.h of libseccomp 2.5). KILL is the historic name of KILL_THREAD.
_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000
_ACT_NOTIFY = 0x7FC00000

_ACTION_VALUES = {
    "SCMP_ACT_KILL": _ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": _ACT_KILL_PROCESS,
    "SCMP_ACT_KILL_THREAD": _ACT_KILL_THREAD,
    "SCMP_ACT_TRAP": _ACT_TRAP,
    "SCMP_ACT_ERRNO": _ACT_ERRNO,
    "SCMP_ACT_TRACE": _ACT_TRACE,
    "SCMP_ACT_ALLOW": _ACT_ALLOW,
    "SCMP_ACT_LOG": _ACT_LOG,
}
# Only these actions carry a 16-bit return code (errnoRet in the spec).
_ACTIONS_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_NOTIFY = "SCMP_ACT_NOTIFY"

_OPERATOR_VALUES = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
_CMP_MASKED_EQ = 7

# enum scmp_filter_attr (libseccomp 2.5).
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_ATTR_CTL_OPTIMIZE = 8
_ATTR_API_SYSRAWRC = 9

# Spec flag -> libseccomp attribute. SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only makes
# sense with a notify listener (the kernel refuses it otherwise), and libseccomp 2.5 has
# no attribute for it, so it is not offered.
_FLAG_ATTRS = {
    "SECCOMP_FILTER_FLAG_TSYNC": _ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB,
}

# Architectures named by the spec (libseccomp 2.5) plus later ones; ARCHES keeps those the
# installed library resolves.
_ARCH_CANDIDATES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)

_NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name's "no such syscall"
_MAX_ARGS = 6  # a Linux syscall has at most six arguments
_MAX_RET = 0xFFFF  # the return code is the low 16 bits of the action
_MAX_U64 = (1 << 64) - 1
_OPTIMIZE_THRESHOLD = 32  # runc: binary-tree filter above 32 syscalls (2.5.4 bug with 0)


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _open_library() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(_LIBRARY)
    except OSError:
        return None
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_add.restype = ctypes.c_int
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_attr_set.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_load.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    return lib


_lib = _open_library()


def _arch_token(name: str) -> int:
    """libseccomp's token for a spec architecture name, 0 if unknown."""
    if _lib is None or not name.startswith("SCMP_ARCH_"):
        return 0
    return int(_lib.seccomp_arch_resolve_name(name[len("SCMP_ARCH_"):].lower().encode()))


def _supported_flags() -> tuple[str, ...]:
    """The flags that this libseccomp and kernel accept, probed on a throwaway filter."""
    if _lib is None:
        return ()
    ctx = _lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        return ()
    try:
        return tuple(flag for flag, attr in _FLAG_ATTRS.items()
                     if _lib.seccomp_attr_set(ctx, attr, 1) == 0)
    finally:
        _lib.seccomp_release(ctx)


# NOTIFY needs a listener socket and an agent hand-off that the runtime does not do.
ACTIONS: tuple[str, ...] = tuple(_ACTION_VALUES)
OPERATORS: tuple[str, ...] = tuple(_OPERATOR_VALUES)
ARCHES: tuple[str, ...] = tuple(a for a in _ARCH_CANDIDATES if _arch_token(a))
FLAGS: tuple[str, ...] = _supported_flags()


class Filter:
    """A compiled filter: a libseccomp context, built in the parent, loaded in the child."""

    def __init__(self, ctx: int) -> None:
        self._ctx: int | None = ctx

    def load(self) -> None:
        """Install the filter on the calling process (kept tiny: it runs after fork)."""
        assert _lib is not None and self._ctx is not None, "seccomp filter released"
        rc = _lib.seccomp_load(self._ctx)
        if rc < 0:
            raise OSError(-rc, "loading seccomp filter: " + os.strerror(-rc))

    def export_bpf(self) -> bytes:
        """The BPF program the filter compiles to (8 bytes per instruction), for debugging."""
        assert _lib is not None and self._ctx is not None, "seccomp filter released"
        fd = os.memfd_create("sampan-seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = _lib.seccomp_export_bpf(self._ctx, fd)
            if rc < 0:
                raise OSError(-rc, "exporting seccomp filter: " + os.strerror(-rc))
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Free the libseccomp context; the filter cannot be loaded afterwards."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None and _lib is not None:
            _lib.seccomp_release(ctx)

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _action(name: str, errno_ret: int | None, field: str, ret_field: str) -> int:
    """The libseccomp action value for a spec action and its optional errnoRet."""
    if name == _NOTIFY:
        raise ValueError("linux.seccomp: SCMP_ACT_NOTIFY is not supported")
    if name not in _ACTION_VALUES:
        raise ValueError(f'linux.seccomp.{field}: unknown action "{name}"')
    value = _ACTION_VALUES[name]
    if name not in _ACTIONS_WITH_ERRNO:
        if errno_ret is not None:
            raise ValueError(f"linux.seccomp.{ret_field}: {name} takes no errno return code")
        return value
    if errno_ret is None:
        errno_ret = errno.EPERM
    elif not 0 <= errno_ret <= _MAX_RET:
        raise ValueError(f"linux.seccomp.{ret_field}: {errno_ret} is out of range "
                         f"0..{_MAX_RET}")
    return value | errno_ret


def _condition(arg: SeccompArg, field: str) -> _ArgCmp:
    """One argument comparison; MASKED_EQ takes value as the mask and valueTwo as datum."""
    if not 0 <= arg.index < _MAX_ARGS:
        raise ValueError(f"linux.seccomp.{field}.index: {arg.index} is out of range "
                         f"0..{_MAX_ARGS - 1}")
    op = _OPERATOR_VALUES.get(arg.op)
    if op is None:
        raise ValueError(f'linux.seccomp.{field}.op: unknown operator "{arg.op}"')
    if not 0 <= arg.value <= _MAX_U64:
        raise ValueError(f"linux.seccomp.{field}.value: {arg.value} is not a uint64")
    if not 0 <= arg.value_two <= _MAX_U64:
        raise ValueError(f"linux.seccomp.{field}.valueTwo: {arg.value_two} is not a uint64")
    datum_b = arg.value_two if op == _CMP_MASKED_EQ else 0
    return _ArgCmp(arg.index, op, arg.value, datum_b)


class _Rule:
    """A validated syscalls[] entry: its action and the condition groups to add."""

    def __init__(self, call: SeccompSyscall, field: str) -> None:
        if not call.names:
            raise ValueError(f"linux.seccomp.{field}.names: must name at least one syscall")
        for j, name in enumerate(call.names):
            if not name:
                raise ValueError(f"linux.seccomp.{field}.names[{j}]: empty syscall name")
        self.field = field
        self.names = call.names
        self.action = _action(call.action, call.errno_ret, f"{field}.action",
                              f"{field}.errnoRet")
        args = call.args or []
        conds = [_condition(a, f"{field}.args[{k}]") for k, a in enumerate(args)]
        indexes = [a.index for a in args]
        # runc: conditions on distinct arguments are ANDed in one rule; if an argument
        # repeats, each condition becomes a rule of its own.
        if len(set(indexes)) == len(indexes):
            self.groups = [conds]
        else:
            self.groups = [[c] for c in conds]


def _validate(spec: Seccomp) -> tuple[int, list[int], list[tuple[str, int]], list[_Rule]]:
    """Check every field before libseccomp sees any of it."""
    default = _action(spec.default_action, spec.default_errno_ret, "defaultAction",
                      "defaultErrnoRet")
    arches = []
    for i, name in enumerate(spec.architectures or []):
        token = _arch_token(name)
        if not token:
            raise ValueError(f'linux.seccomp.architectures[{i}]: unknown architecture "{name}"')
        arches.append(token)
    flags = []
    for i, name in enumerate(spec.flags or []):
        if name not in _FLAG_ATTRS:
            raise ValueError(f'linux.seccomp.flags[{i}]: unsupported flag "{name}"')
        flags.append((name, _FLAG_ATTRS[name]))
    if spec.listener_metadata and not spec.listener_path:
        raise ValueError("linux.seccomp.listenerMetadata: set without listenerPath")
    rules = [_Rule(call, f"syscalls[{i}]") for i, call in enumerate(spec.syscalls or [])]
    return default, arches, flags, rules


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise ValueError(f"linux.seccomp.{what}: {os.strerror(-rc)}")


def compile(spec: Seccomp) -> Filter:
    """Validate ``spec`` and build its filter; ValueError names the field at fault."""
    default, arches, flags, rules = _validate(spec)
    if _lib is None:
        raise OSError(errno.ENOENT, f"seccomp: {_LIBRARY} is not installed")
    ctx = _lib.seccomp_init(default)
    if not ctx:
        raise ValueError(f"linux.seccomp.defaultAction: {spec.default_action} is not "
                         "supported by libseccomp or the kernel")
    filt = Filter(ctx)
    try:
        _build(ctx, default, arches, flags, rules)
    except BaseException:
        filt.release()
        raise
    return filt


def _build(ctx: int, default: int, arches: list[int],
           flags: list[tuple[str, int]], rules: list[_Rule]) -> None:
    assert _lib is not None
    # Real kernel errnos from seccomp_load instead of a blanket ECANCELED (2.5 and later).
    _lib.seccomp_attr_set(ctx, _ATTR_API_SYSRAWRC, 1)
    # The runtime sets no_new_privs itself, at the point the spec says.
    _check(_lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0), "noNewPrivs")
    for i, token in enumerate(arches):
        rc = _lib.seccomp_arch_add(ctx, token)
        if rc != -errno.EEXIST:
            _check(rc, f"architectures[{i}]")
    for i, (name, attr) in enumerate(flags):
        rc = _lib.seccomp_attr_set(ctx, attr, 1)
        if rc < 0:
            raise ValueError(f"linux.seccomp.flags[{i}]: {name} not supported: "
                             f"{os.strerror(-rc)}")
    if sum(len(r.names) for r in rules) > _OPTIMIZE_THRESHOLD:
        _lib.seccomp_attr_set(ctx, _ATTR_CTL_OPTIMIZE, 2)  # only a speed-up: ignore failure
    for rule in rules:
        if rule.action == default:
            continue  # libseccomp refuses a rule that repeats the default action
        for j, name in enumerate(rule.names):
            nr = _lib.seccomp_syscall_resolve_name(name.encode())
            if nr == _NR_SCMP_ERROR:
                continue  # unknown to libseccomp: a newer syscall than it knows, like runc
            for group in rule.groups:
                array = (_ArgCmp * len(group))(*group)
                rc = _lib.seccomp_rule_add_array(ctx, rule.action, nr, len(group), array)
                if rc < 0:
                    raise ValueError(f"linux.seccomp.{rule.field}.names[{j}]: adding rule "
                                     f'for "{name}": {os.strerror(-rc)}')
