"""Seccomp filters as BPF programs, cached by what they were built from.

Building Docker's default profile with libseccomp takes about 13 ms of rule adding and
14 ms of BPF generation, on every container start, for the same few profiles. The BPF
program libseccomp generates depends only on the profile (and the architecture), so the
runtime keeps it in a cache directory under its state root, keyed by a hash of the
profile, and installs it with the seccomp(2) system call itself. A profile seen before
costs a file read; libseccomp is not even loaded. A profile not seen before is validated
and compiled by ``kernel.seccomp`` exactly as without the cache.

The cache directory must be owned by the runtime's user and closed to everyone else (a
program in it is trusted as the container's filter); otherwise it is not used.
"""

from __future__ import annotations

import os
import stat
import struct

from ..oci.spec import Seccomp
from .syscalls import SYS_SECCOMP, _check, address, syscall

try:  # the built-in module: hashlib loads OpenSSL, about 5 ms of the runtime's start-up
    from _sha2 import sha256  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # Python < 3.12
    from _sha256 import sha256  # type: ignore[import-not-found, no-redef, unused-ignore]

_SECCOMP_SET_MODE_FILTER = 1
# The spec's flags as seccomp(2) takes them.
_FLAG_BITS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_INSTRUCTION = 8  # bytes of one struct sock_filter
_SOCK_FPROG = struct.Struct("=HxxxxxxQ")  # struct sock_fprog: len, then a pointer


class BpfFilter:
    """A generated program, ready to install; ``load`` is one system call (it runs after
    fork, where the less Python does the better)."""

    def __init__(self, program: bytes, flags: int) -> None:
        if not program or len(program) % _INSTRUCTION or \
                len(program) // _INSTRUCTION > 0xFFFF:
            raise ValueError("seccomp: not a BPF program")
        self.program = program
        self.flags = flags
        # points into ``program``, which the filter keeps
        self._fprog = _SOCK_FPROG.pack(len(program) // _INSTRUCTION, address(program))

    def load(self) -> None:
        _check(syscall(SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, self.flags, self._fprog),
               "loading seccomp filter")


def fingerprint(spec: Seccomp) -> str:
    """A hash of every field that shapes the program (names, not resolved numbers)."""
    calls = [(c.names, c.action, c.errno_ret,
              [(a.index, a.value, a.op, a.value_two) for a in c.args or []])
             for c in spec.syscalls or []]
    text = repr((2, os.uname().machine, spec.default_action, spec.default_errno_ret,
                 spec.architectures, spec.flags, spec.listener_path, spec.listener_metadata,
                 calls))
    return str(sha256(text.encode()).hexdigest())


def _flags(spec: Seccomp) -> int:
    return sum(_FLAG_BITS.get(name, 0) for name in spec.flags or [])


def _private_dir(path: str) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        try:
            os.makedirs(path, mode=0o700)
        except OSError:
            return False
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def compile_cached(spec: Seccomp, cache_dir: str | None) -> BpfFilter:
    """The profile's program, from ``cache_dir`` when it was built before, else built by
    libseccomp (errors name the profile's field at fault) and stored there."""
    usable = cache_dir is not None and _private_dir(cache_dir)
    path = os.path.join(cache_dir, fingerprint(spec) + ".bpf") if usable and cache_dir else ""
    if path:
        try:
            with open(path, "rb") as f:
                return BpfFilter(f.read(), _flags(spec))
        except (OSError, ValueError):
            pass
    from . import seccomp

    with seccomp.compile(spec) as filt:
        program = filt.export_bpf()
    if path:
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(program)
            os.replace(tmp, path)
        except OSError:  # a cache that cannot be written only costs the next start
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return BpfFilter(program, _flags(spec))
