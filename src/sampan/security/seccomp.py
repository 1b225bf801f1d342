"""Docker's seccomp profiles (its JSON format) → the runtime spec's ``linux.seccomp``.

``seccomp_default.json`` is moby's default profile (profiles/seccomp/default.json): an
allow-list with errno EPERM for everything else, ``personality`` and ``socket`` allowed
only with certain arguments, namespace-creating ``clone`` flags refused and ``clone3``
answered ENOSYS (so libcs fall back to ``clone``) unless the container has
CAP_SYS_ADMIN, and groups of calls allowed only with the capability they need. As moby
does, the profile is filtered for this machine's architecture, the kernel version and the
container's bounding capabilities when the spec is made; the runtime compiles what is left.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..oci.decode import DecodeError, decode

DEFAULT_PROFILE = os.path.join(os.path.dirname(__file__), "seccomp_default.json")
ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
           "SCMP_ACT_NOTIFY")
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
# uname -m → libseccomp's native arch name (what includes/excludes.arches use) and the
# spec's architecture token.
_NATIVE = {"x86_64": "amd64", "i386": "x86", "i686": "x86", "aarch64": "arm64",
           "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "ppc64": "ppc64",
           "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64"}
_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "x86": "SCMP_ARCH_X86", "arm64": "SCMP_ARCH_AARCH64",
              "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE",
              "ppc64": "SCMP_ARCH_PPC64", "s390x": "SCMP_ARCH_S390X",
              "riscv64": "SCMP_ARCH_RISCV64", "mips64": "SCMP_ARCH_MIPS64"}


class ProfileError(ValueError):
    """A profile that cannot be used; the message says which part."""


@dataclass
class Arg:
    index: int = 0
    value: int = 0
    value_two: int = field(default=0, metadata={"json": "valueTwo"})
    op: str = ""


@dataclass
class Filter:
    """includes/excludes: the entry applies only (or never) on these arches, with these
    capabilities, from this kernel version."""

    arches: list[str] | None = None
    caps: list[str] | None = None
    min_kernel: str | None = field(default=None, metadata={"json": "minKernel"})


@dataclass
class Syscall:
    name: str | None = None
    names: list[str] | None = None
    action: str = ""
    errno_ret: int | None = field(default=None, metadata={"json": "errnoRet"})
    args: list[Arg] | None = None
    comment: str | None = None
    includes: Filter | None = None
    excludes: Filter | None = None


@dataclass
class ArchMap:
    architecture: str = ""
    sub_architectures: list[str] | None = field(default=None,
                                                metadata={"json": "subArchitectures"})


@dataclass
class Profile:
    default_action: str = field(default="", metadata={"json": "defaultAction"})
    default_errno_ret: int | None = field(default=None, metadata={"json": "defaultErrnoRet"})
    architectures: list[str] | None = None
    arch_map: list[ArchMap] | None = field(default=None, metadata={"json": "archMap"})
    flags: list[str] | None = None
    listener_path: str | None = field(default=None, metadata={"json": "listenerPath"})
    listener_metadata: str | None = field(default=None, metadata={"json": "listenerMetadata"})
    syscalls: list[Syscall] | None = None


def parse(text: str | bytes) -> Profile:
    """A profile in docker's format; ProfileError says what is wrong with it."""
    try:
        raw = json.loads(text)
        profile = decode(Profile, raw)
    except (ValueError, DecodeError) as exc:
        raise ProfileError(f"Decoding seccomp profile failed: {exc}") from None
    _check(profile)
    return profile


def _check(p: Profile) -> None:
    if p.architectures and p.arch_map:
        raise ProfileError("'architectures' and 'archMap' were specified in the seccomp "
                           "profile, use either 'architectures' or 'archMap'")
    if p.default_action and p.default_action not in ACTIONS:
        raise ProfileError(f"seccomp profile: defaultAction: unknown action "
                           f"{p.default_action!r}")
    for i, call in enumerate(p.syscalls or []):
        where = f"seccomp profile: syscalls[{i}]"
        if call.name and call.names:
            raise ProfileError("'name' and 'names' were specified in the seccomp profile, "
                               "use either 'name' or 'names'")
        if not call.name and not call.names:
            raise ProfileError(f"{where}: names: at least one syscall is needed")
        if call.action not in ACTIONS:
            raise ProfileError(f"{where}.action: unknown action {call.action!r}")
        for j, arg in enumerate(call.args or []):
            if arg.op not in OPERATORS:
                raise ProfileError(f"{where}.args[{j}].op: unknown operator {arg.op!r}")


@lru_cache(maxsize=1)
def default_profile() -> Profile:
    with open(DEFAULT_PROFILE, "rb") as f:
        return parse(f.read())


def native_arch() -> str:
    machine = platform.machine()
    return _NATIVE.get(machine, machine)


def _kernel_at_least(version: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        out = []
        for part in text.split("-", 1)[0].split(".")[:2]:
            digits = "".join(ch for ch in part if ch.isdigit()) or "0"
            out.append(int(digits))
        return tuple(out)

    try:
        return numbers(os.uname().release) >= numbers(version)
    except ValueError:
        raise ProfileError(f"seccomp profile: invalid minKernel {version!r}") from None


def _applies(call: Syscall, arch: str, caps: set[str]) -> bool:
    ex, inc = call.excludes, call.includes
    if ex is not None:
        if ex.arches and arch in ex.arches:
            return False
        if ex.caps and any(c in caps for c in ex.caps):
            return False
        if ex.min_kernel and _kernel_at_least(ex.min_kernel):
            return False
    if inc is not None:
        if inc.arches and arch not in inc.arches:
            return False
        if inc.caps and not all(c in caps for c in inc.caps):
            return False
        if inc.min_kernel and not _kernel_at_least(inc.min_kernel):
            return False
    return True


def to_spec(profile: Profile, capabilities: list[str],
            arch: str | None = None) -> dict[str, Any] | None:
    """``linux.seccomp`` for a container with these bounding capabilities (None: the
    profile disables seccomp, as an empty one does in docker)."""
    if not profile.default_action and not profile.syscalls:
        return None
    arch = arch or native_arch()
    out: dict[str, Any] = {"defaultAction": profile.default_action or "SCMP_ACT_ERRNO"}
    if profile.default_errno_ret is not None:
        out["defaultErrnoRet"] = profile.default_errno_ret
    arches = list(profile.architectures or [])
    token = _SCMP_ARCH.get(arch)
    for entry in profile.arch_map or []:
        if entry.architecture == token:
            arches = [entry.architecture, *(entry.sub_architectures or [])]
            break
    if arches:
        out["architectures"] = arches
    if profile.flags:
        out["flags"] = list(profile.flags)
    if profile.listener_path:
        out["listenerPath"] = profile.listener_path
        if profile.listener_metadata:
            out["listenerMetadata"] = profile.listener_metadata
    caps = set(capabilities)
    syscalls = []
    for call in profile.syscalls or []:
        if not _applies(call, arch, caps):
            continue
        rule: dict[str, Any] = {"names": [call.name] if call.name else list(call.names or []),
                                "action": call.action}
        if call.errno_ret is not None:
            rule["errnoRet"] = call.errno_ret
        if call.args:
            rule["args"] = [{"index": a.index, "value": a.value, "valueTwo": a.value_two,
                             "op": a.op} for a in call.args]
        syscalls.append(rule)
    out["syscalls"] = syscalls
    return out
