"""linux.resources.devices: one rule model for both cgroup versions.

The rules are run through an emulation of the v1 devices controller (kernel
security/device_cgroup.c): a default (allow all / deny all) plus exceptions. v1 then writes
the difference to devices.allow/deny; v2 compiles the same state to a BPF_PROG_TYPE_CGROUP_DEVICE
program, so that a rule list means the same thing on both (runc does the same).
"""

from __future__ import annotations

import struct

from ..oci.record import field, record
from .base import CgroupError
from .convert import DEVICES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..oci.spec import DeviceCgroup

ACCESS_BITS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD/READ/WRITE
TYPE_BITS = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK/CHAR
ALL_ACCESS = "rwm"
MAX_DEVICE_NUMBER = 0xFFFFFFFF


@record
class Rule:
    allow: bool
    type: str  # "a", "b" or "c"
    major: int | None  # None: any
    minor: int | None
    access: str  # a non-empty subset of "rwm", in that order

    def v1_line(self) -> str:
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _canonical_access(access: str | set[str]) -> str:
    return "".join(c for c in ALL_ACCESS if c in access)


def rules_from_spec(devices: Iterable[DeviceCgroup]) -> list[Rule]:
    rules = []
    for i, dev in enumerate(devices):
        where = f"{DEVICES}[{i}]"
        kind = dev.type or "a"
        if kind not in ("a", "b", "c"):
            raise CgroupError(f"{where}.type: {kind!r} is not one of a, b, c")
        access = dev.access or ALL_ACCESS
        if not access or set(access) - set(ALL_ACCESS):
            raise CgroupError(f"{where}.access: {access!r} is not made of r, w, m")
        numbers = []
        for name in ("major", "minor"):
            value = getattr(dev, name)
            if value is not None and value == -1:
                value = None  # runc's "any"
            if value is not None and not 0 <= value <= MAX_DEVICE_NUMBER:
                raise CgroupError(f"{where}.{name}: {value} is not a device number")
            numbers.append(value)
        rules.append(Rule(dev.allow, kind, numbers[0], numbers[1], _canonical_access(access)))
    return rules


Key = tuple[str, int | None, int | None]


@record
class DeviceState:
    """What the v1 controller holds: a default and the exceptions to it."""

    default_allow: bool = True
    exceptions: dict[Key, str] = field(default_factory=dict)

    @classmethod
    def from_rules(cls, rules: Iterable[Rule]) -> DeviceState:
        state = cls()
        for rule in rules:
            state.apply(rule)
        return state

    @classmethod
    def from_v1_list(cls, text: str) -> DeviceState:
        """Parse devices.list: "a *:* rwm" in allow-all mode, else the allowed exceptions."""
        lines = text.split("\n") if text else []
        if any(line.startswith("a ") for line in lines):
            return cls(True, {})
        state = cls(False, {})
        for line in lines:
            kind, numbers, access = line.split()
            major, minor = numbers.split(":")
            key = (kind, None if major == "*" else int(major), None if minor == "*" else int(minor))
            state.exceptions[key] = access
        return state

    def apply(self, rule: Rule) -> None:
        """As the kernel does: "a" resets the default; other rules add to or cut exceptions."""
        if rule.type == "a":
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        key = (rule.type, rule.major, rule.minor)
        have = self.exceptions.get(key, "")
        if rule.allow == self.default_allow:
            left = _canonical_access(set(have) - set(rule.access))
            if left:
                self.exceptions[key] = left
            else:
                self.exceptions.pop(key, None)
        else:
            self.exceptions[key] = _canonical_access(set(have) | set(rule.access))

    def v1_writes(self, current: DeviceState) -> list[tuple[str, str]]:
        """(file, line) writes that take a v1 cgroup from ``current`` to this state.

        A wildcard ("a") write is only made when the default changes, because the kernel
        refuses it once the cgroup has children (an `update` of a container that made some).
        Exceptions of an allow-all cgroup are not listed by the kernel, so going to allow-all
        always starts from the wildcard.
        """
        writes: list[tuple[str, str]] = []
        base: dict[Key, str]
        if self.default_allow:
            if not (current.default_allow and not self.exceptions):
                writes.append(("devices.allow", "a *:* rwm"))
            base = {}
        elif current.default_allow:
            writes.append(("devices.deny", "a *:* rwm"))
            base = {}
        else:
            base = current.exceptions
        add, remove = ("devices.deny", "devices.allow") if self.default_allow else (
            "devices.allow", "devices.deny")
        for key, have in base.items():
            gone = _canonical_access(set(have) - set(self.exceptions.get(key, "")))
            if gone:
                writes.append((remove, Rule(False, *key, gone).v1_line()))
        for key, want in self.exceptions.items():
            new = _canonical_access(set(want) - set(base.get(key, "")))
            if new:
                writes.append((add, Rule(True, *key, new).v1_line()))
        return writes

    def bpf_program(self) -> bytes:
        """A BPF_PROG_TYPE_CGROUP_DEVICE program deciding as the v1 controller would.

        In deny-all mode a request is allowed when one exception holds all its access bits;
        in allow-all mode it is denied when any exception shares an access bit with it
        (the kernel's match_exception / match_exception_partial).
        """
        prog = [
            _insn(_LDXW, 2, 1, 0, 0), _insn(_AND32_K, 2, 0, 0, 0xFFFF),  # r2 = type
            _insn(_LDXW, 3, 1, 0, 0), _insn(_RSH32_K, 3, 0, 0, 16),  # r3 = access
            _insn(_LDXW, 4, 1, 4, 0),  # r4 = major
            _insn(_LDXW, 5, 1, 8, 0),  # r5 = minor
        ]
        verdict = 0 if self.default_allow else 1
        for (kind, major, minor), access in self.exceptions.items():
            # Each check is (code, dst, src, imm): "jump to the next block" when it holds.
            checks: list[list[tuple[int, int, int, int] | None]] = [
                [(_JNE32_K, 2, 0, TYPE_BITS[kind])]]
            mask = sum(ACCESS_BITS[c] for c in access)
            if self.default_allow:
                checks.append([None, (_AND32_K, 1, 0, mask), (_JEQ32_K, 1, 0, 0)])
            elif access != ALL_ACCESS:
                checks.append([None, (_AND32_K, 1, 0, mask), (_JNE32_X, 1, 3, 0)])
            if major is not None:
                checks.append([(_JNE32_K, 4, 0, major)])
            if minor is not None:
                checks.append([(_JNE32_K, 5, 0, minor)])
            flat = [c for group in checks for c in group]
            length = len(flat) + 2
            for i, check in enumerate(flat):
                if check is None:
                    prog.append(_insn(_MOV32_X, 1, 3, 0, 0))  # r1 = r3
                    continue
                code, dst, src, imm = check
                jump = code in (_JNE32_K, _JEQ32_K, _JNE32_X)
                prog.append(_insn(code, dst, src, length - i - 1 if jump else 0, imm))
            prog += [_insn(_MOV64_K, 0, 0, 0, verdict), _insn(_EXIT, 0, 0, 0, 0)]
        prog += [_insn(_MOV64_K, 0, 0, 0, 1 - verdict), _insn(_EXIT, 0, 0, 0, 0)]
        return b"".join(prog)


# eBPF opcodes (linux/bpf.h, bpf_common.h).
_LDXW = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
_MOV32_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
_MOV64_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
_JNE32_K = 0x56  # BPF_JMP32 | BPF_JNE | BPF_K
_JNE32_X = 0x5E  # BPF_JMP32 | BPF_JNE | BPF_X
_JEQ32_K = 0x16  # BPF_JMP32 | BPF_JEQ | BPF_K
_EXIT = 0x95  # BPF_JMP | BPF_EXIT


def _insn(code: int, dst: int, src: int, off: int, imm: int) -> bytes:
    """struct bpf_insn; imm is 32 bits (device numbers up to 2^32-1 wrap to negative)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm - (1 << 32) if imm >= 1 << 31
                       else imm)
