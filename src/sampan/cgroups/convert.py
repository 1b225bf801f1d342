"""linux.resources values → what the cgroup files take, checked with the spec field named.

The OCI spec was written for cgroup v1; the v2 conversions follow runc (libcontainer/cgroups
utils.go) so that a config means the same thing under sampan as under runc.
"""

from __future__ import annotations

import os

from .base import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..oci.spec import CPU, Memory, ThrottleDevice

MEMORY = "linux.resources.memory"
CPU_FIELD = "linux.resources.cpu"
PIDS = "linux.resources.pids.limit"
BLKIO = "linux.resources.blockIO"
HUGEPAGES = "linux.resources.hugepageLimits"
DEVICES = "linux.resources.devices"
UNIFIED = "linux.resources.unified"

# Kernel bounds (kernel/sched: MIN_SHARES/MAX_SHARES; blk-cgroup weights).
MIN_SHARES, MAX_SHARES = 2, 1 << 18
MIN_BLKIO_WEIGHT, MAX_BLKIO_WEIGHT = 10, 1000
HUGEPAGES_DIR = "/sys/kernel/mm/hugepages"


def is_set(value: int | None) -> bool:
    """OCI leaves unset numbers out; runc also treats 0 as "leave as it is"."""
    return value is not None and value != 0


def check_memory(mem: Memory) -> None:
    for name in ("limit", "reservation", "swap"):
        value = getattr(mem, name)
        if value is not None and value < -1:
            raise CgroupError(f"{MEMORY}.{name}: {value} is negative (-1 means unlimited)")
    if mem.swappiness is not None and not 0 <= mem.swappiness <= 100:
        raise CgroupError(f"{MEMORY}.swappiness: {mem.swappiness} is outside 0-100")
    limit, swap = mem.limit or 0, mem.swap or 0
    if limit > 0 and swap > 0 and swap < limit:
        raise CgroupError(f"{MEMORY}.swap: {swap} is below memory.limit {limit} "
                          "(swap is the memory+swap total)")


def memory_is_default(mem: Memory) -> bool:
    """Only "no limit" asked (what a host without the memory controller gives anyway)."""
    numbers = (mem.limit, mem.reservation, mem.swap)
    return (all(v is None or v in (0, -1) for v in numbers) and mem.swappiness is None
            and not mem.disable_oom_killer)


def memory_v2(value: int) -> str:
    return "max" if value == -1 else str(value)


def swap_v2(swap: int | None, limit: int | None) -> str | None:
    """memory.swap.max from the OCI memory+swap total (runc's ConvertMemorySwapToCgroupV2Value).

    None means "leave memory.swap.max alone".
    """
    swap, limit = swap or 0, limit or 0
    if limit == -1 and swap == 0:
        return "max"  # unlimited memory and no swap setting: unlimited swap too (as v1 does)
    if swap == -1:
        return "max"
    if swap == 0:
        return None
    if limit == -1:
        return str(swap)
    if limit == 0:
        raise CgroupError(f"{MEMORY}.swap: a swap limit needs a memory limit "
                          "(swap is the memory+swap total)")
    return str(swap - limit)


def cpu_weight(shares: int) -> int:
    """cpu.weight [1, 10000] from cpu.shares [2, 262144], linearly (runc's formula)."""
    if not MIN_SHARES <= shares <= MAX_SHARES:
        raise CgroupError(f"{CPU_FIELD}.shares: {shares} is outside {MIN_SHARES}-{MAX_SHARES}")
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight(weight: int, field: str) -> int:
    """io.weight [1, 10000] from a blkio weight [10, 1000], linearly (runc's formula)."""
    check_blkio_weight(weight, field)
    return 1 + ((weight - 10) * 9999) // 990


def check_blkio_weight(weight: int, field: str) -> None:
    if not MIN_BLKIO_WEIGHT <= weight <= MAX_BLKIO_WEIGHT:
        raise CgroupError(
            f"{field}: {weight} is outside {MIN_BLKIO_WEIGHT}-{MAX_BLKIO_WEIGHT}")


def check_cpu(cpu: CPU) -> None:
    if is_set(cpu.shares):
        cpu_weight(cpu.shares or 0)
    if cpu.period is not None and cpu.period < 0:
        raise CgroupError(f"{CPU_FIELD}.period: {cpu.period} is negative")
    if cpu.quota is not None and cpu.quota < -1:
        raise CgroupError(f"{CPU_FIELD}.quota: {cpu.quota} is negative (-1 means no limit)")
    if cpu.burst is not None and cpu.burst < 0:
        raise CgroupError(f"{CPU_FIELD}.burst: {cpu.burst} is negative")


def cpu_max(quota: int | None, period: int | None, current: str) -> str:
    """cpu.max "QUOTA PERIOD", keeping whichever half the spec leaves out as it is now."""
    cur_quota, _, cur_period = current.partition(" ")
    q = (cur_quota or "max") if not quota else ("max" if quota == -1 else str(quota))
    p = str(period) if period else (cur_period or "100000")
    return f"{q} {p}"


def pids_max(limit: int) -> str:
    """0 and -1 both mean no limit (the spec's limit is required, runc writes "max")."""
    if limit < -1:
        raise CgroupError(f"{PIDS}: {limit} is negative (-1 or 0 mean no limit)")
    return "max" if limit <= 0 else str(limit)


def throttle_line(dev: ThrottleDevice, field: str, zero: str) -> str:
    """"MAJ:MIN RATE"; a rate of 0 removes the limit (v1 takes "0", v2 io.max "max")."""
    if dev.rate < 0:
        raise CgroupError(f"{field}: rate {dev.rate} for {dev.major}:{dev.minor} is negative")
    return f"{dev.major}:{dev.minor} {dev.rate or zero}"


def hugepage_sizes() -> list[str]:
    """The page sizes this kernel has, as cgroup file names spell them ("2MB", "1GB")."""
    try:
        names = os.listdir(HUGEPAGES_DIR)
    except FileNotFoundError:
        return []
    sizes = []
    for name in names:  # hugepages-2048kB
        kb = int(name.removeprefix("hugepages-").removesuffix("kB"))
        if kb >= 1 << 20:
            sizes.append(f"{kb >> 20}GB")
        elif kb >= 1 << 10:
            sizes.append(f"{kb >> 10}MB")
        else:
            sizes.append(f"{kb}KB")
    return sizes


def check_hugepage(page_size: str, limit: int, index: int) -> None:
    field = f"{HUGEPAGES}[{index}]"
    sizes = hugepage_sizes()
    if page_size not in sizes:
        raise CgroupError(f"{field}.pageSize: {page_size!r} is not a huge page size of this "
                          f"kernel (it has {', '.join(sorted(sizes)) or 'none'})")
    if limit < 0:
        raise CgroupError(f"{field}.limit: {limit} is negative")


def rdma_lines(rdma: dict[str, dict[str, int]]) -> list[str]:
    """rdma.max lines: "DEVICE hca_handle=N hca_object=M"."""
    lines = []
    for device, limits in rdma.items():
        parts = [device]
        for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            if key in limits:
                parts.append(f"{name}={limits[key]}")
        unknown = set(limits) - {"hcaHandles", "hcaObjects"}
        if unknown:
            raise CgroupError(f"linux.resources.rdma[{device!r}]: unknown keys "
                              f"{sorted(unknown)} (hcaHandles, hcaObjects)")
        if len(parts) > 1:
            lines.append(" ".join(parts))
    return lines
