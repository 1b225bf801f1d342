"""Capabilities by name, as the OCI spec writes them, and the calls that set them.

The runtime resolves names to bit masks before it forks (so a typo is a config error
named by its field), and the container's init applies the masks: bounding set first
(needs CAP_SETPCAP, so before switching user), then effective/permitted/inheritable
and ambient after the switch.
"""

from __future__ import annotations

from ..oci.record import record
from ..oci.spec import Capabilities
from . import syscalls as k

# linux/capability.h, in number order.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
_NUMBERS = {name: i for i, name in enumerate(CAPABILITIES)}


_last_cap: list[int] = []  # read once per process (and once per warm helper, for its forks)


def last_cap() -> int:
    """The highest capability this kernel knows; newer names are ignored, as runc does."""
    if not _last_cap:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap.append(min(int(f.read()), len(CAPABILITIES) - 1))
        except OSError:
            return len(CAPABILITIES) - 1
    return _last_cap[0]


def all_mask() -> int:
    return (1 << (last_cap() + 1)) - 1


def names(mask: int) -> list[str]:
    return [name for i, name in enumerate(CAPABILITIES) if mask >> i & 1]


def parse(cap_names: list[str] | None, field: str = "capabilities") -> int:
    """Names → mask; an unknown name is an error naming the field, as runc reports it."""
    mask = 0
    limit = last_cap()
    for i, name in enumerate(cap_names or []):
        key = name.upper()
        if not key.startswith("CAP_"):
            key = "CAP_" + key
        number = _NUMBERS.get(key)
        if number is None:
            raise ValueError(f"{field}[{i}]: unknown capability {name!r}")
        if number <= limit:
            mask |= 1 << number
    return mask


@record
class CapabilitySet:
    bounding: int
    effective: int
    permitted: int
    inheritable: int
    ambient: int

    @classmethod
    def from_spec(cls, spec: Capabilities | None,
                  field: str = "process.capabilities") -> CapabilitySet | None:
        """None when the config has no capabilities object: the process keeps its own."""
        if spec is None:
            return None
        return cls(
            bounding=parse(spec.bounding, f"{field}.bounding"),
            effective=parse(spec.effective, f"{field}.effective"),
            permitted=parse(spec.permitted, f"{field}.permitted"),
            inheritable=parse(spec.inheritable, f"{field}.inheritable"),
            ambient=parse(spec.ambient, f"{field}.ambient"),
        )


def drop_bounding(keep: int) -> None:
    for number in range(last_cap() + 1):
        if not keep >> number & 1:
            k.prctl(k.PR_CAPBSET_DROP, number)


def apply(capset: CapabilitySet) -> None:
    """Set E/P/I, then raise ambient (which the kernel allows only for caps in P and I)."""
    k.capset(capset.effective, capset.permitted, capset.inheritable)
    k.prctl(k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_CLEAR_ALL)
    for number in range(last_cap() + 1):
        bit = 1 << number
        if capset.ambient & bit and capset.permitted & bit and capset.inheritable & bit:
            k.prctl(k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_RAISE, number)
