"""cgroup v2 (the unified hierarchy): one directory per container, every controller in it."""

from __future__ import annotations

import os
import time

from . import convert as cv
from .base import (
    FREEZE_TIMEOUT,
    Cgroup,
    CgroupError,
    make_dirs,
    read_file,
    read_keyed,
    read_number,
    write_file,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..oci.spec import BlockIO, Resources

UNLIMITED = (1 << 64) - 1  # how runc reports "max" in stats
_THROTTLES = (
    ("throttle_read_bps_device", "throttleReadBpsDevice", "rbps"),
    ("throttle_write_bps_device", "throttleWriteBpsDevice", "wbps"),
    ("throttle_read_iops_device", "throttleReadIOPSDevice", "riops"),
    ("throttle_write_iops_device", "throttleWriteIOPSDevice", "wiops"),
)


class CgroupV2(Cgroup):
    """The cgroup at ``path`` (relative to the cgroup2 mount ``root``)."""

    version = 2

    def __init__(self, root: str, path: str, *, prune: int = 0) -> None:
        self.root = root
        self.rel = path.strip("/")
        if not self.rel or ".." in self.rel.split("/"):
            raise CgroupError(f"cgroup path {path!r} must name a cgroup below {root}")
        self.dir = os.path.join(root, self.rel)
        super().__init__({"": self.dir}, prune)

    # ---- placement -------------------------------------------------------------------

    def create(self) -> None:
        """mkdir every level; levels made here pass every controller they have down.

        Pre-existing levels are left as they are (they are not ours): a controller they do
        not pass down makes set() fail naming the missing file.
        """
        make_dirs(self.root, self.rel, _pass_controllers_down)

    def mount_sources(self) -> list[tuple[str, str]]:
        return [("", self.dir)]

    def _kill_file(self) -> str | None:
        path = os.path.join(self.dir, "cgroup.kill")
        return path if os.path.exists(path) else None

    def _file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # ---- limits ----------------------------------------------------------------------

    def set(self, resources: Resources | None) -> None:
        if resources is None:
            return
        r = resources
        if r.pids is not None:
            write_file(self._file("pids.max"), cv.pids_max(r.pids.limit), cv.PIDS)
        self._set_memory(r)
        if r.block_io is not None:
            self._set_io(r.block_io)
        self._set_cpu(r)
        if r.devices is not None:
            self._set_devices(r)
        for i, hp in enumerate(r.hugepage_limits or []):
            cv.check_hugepage(hp.page_size, hp.limit, i)
            write_file(self._file(f"hugetlb.{hp.page_size}.max"), str(hp.limit),
                       f"{cv.HUGEPAGES}[{i}]")
        for line in cv.rdma_lines(r.rdma or {}):
            write_file(self._file("rdma.max"), line, "linux.resources.rdma")
        if r.network is not None and (r.network.class_id is not None or r.network.priorities):
            raise CgroupError("linux.resources.network: net_cls/net_prio do not exist on "
                              "cgroup v2")
        for key, value in (r.unified or {}).items():
            self._set_unified(key, value)

    def _set_memory(self, r: Resources) -> None:
        mem = r.memory
        if mem is None:
            return
        cv.check_memory(mem)
        if mem.swappiness is not None:
            raise CgroupError(f"{cv.MEMORY}.swappiness: not supported on cgroup v2 "
                              "(there is no per-cgroup swappiness)")
        if mem.disable_oom_killer:
            raise CgroupError(f"{cv.MEMORY}.disableOOMKiller: not supported on cgroup v2")
        limit = mem.limit or 0
        if mem.check_before_update and limit > 0:
            usage = int(read_file(self._file("memory.current")))
            if usage > limit:
                raise CgroupError(f"{cv.MEMORY}.limit: {limit} is below the current usage "
                                  f"{usage} (checkBeforeUpdate)")
        swap = cv.swap_v2(mem.swap, mem.limit)
        swap_file = self._file("memory.swap.max")
        # No swap accounting in the kernel: only "unlimited" can be honoured quietly.
        if swap is not None and (swap != "max" or os.path.exists(swap_file)):
            write_file(swap_file, swap, f"{cv.MEMORY}.swap")
        if cv.is_set(mem.limit):
            write_file(self._file("memory.max"), cv.memory_v2(limit), f"{cv.MEMORY}.limit")
        if cv.is_set(mem.reservation):
            write_file(self._file("memory.low"), cv.memory_v2(mem.reservation or 0),
                       f"{cv.MEMORY}.reservation")

    def _set_cpu(self, r: Resources) -> None:
        cpu = r.cpu
        if cpu is None:
            return
        cv.check_cpu(cpu)
        field = cv.CPU_FIELD
        if cv.is_set(cpu.realtime_runtime) or cv.is_set(cpu.realtime_period):
            raise CgroupError(f"{field}.realtimeRuntime/realtimePeriod: not supported on "
                              "cgroup v2")
        if cv.is_set(cpu.shares):
            write_file(self._file("cpu.weight"), str(cv.cpu_weight(cpu.shares or 0)),
                       f"{field}.shares")
        if cv.is_set(cpu.quota) or cv.is_set(cpu.period):
            path = self._file("cpu.max")
            current = read_file(path) if os.path.exists(path) else ""
            write_file(path, cv.cpu_max(cpu.quota, cpu.period, current), f"{field}.quota")
        if cpu.burst is not None:
            write_file(self._file("cpu.max.burst"), str(cpu.burst), f"{field}.burst")
        if cpu.idle is not None:
            write_file(self._file("cpu.idle"), str(cpu.idle), f"{field}.idle")
        if cpu.cpus:
            write_file(self._file("cpuset.cpus"), cpu.cpus, f"{field}.cpus")
        if cpu.mems:
            write_file(self._file("cpuset.mems"), cpu.mems, f"{field}.mems")

    def _set_io(self, bio: BlockIO) -> None:
        bfq = self._file("io.bfq.weight")
        has_bfq = os.path.exists(bfq)
        if cv.is_set(bio.leaf_weight):
            raise CgroupError(f"{cv.BLKIO}.leafWeight: not supported on cgroup v2")
        if cv.is_set(bio.weight):
            weight = bio.weight or 0
            field = f"{cv.BLKIO}.weight"
            cv.check_blkio_weight(weight, field)
            if has_bfq:  # BFQ takes the blkio range as it is
                write_file(bfq, str(weight), field)
            else:
                write_file(self._file("io.weight"), str(cv.io_weight(weight, field)), field)
        # BFQ has per-device weights since 5.4: its file then reads "default N" lines.
        bfq_devices = has_bfq and not read_file(bfq).isdigit()
        for i, wd in enumerate(bio.weight_device or []):
            field = f"{cv.BLKIO}.weightDevice[{i}]"
            if cv.is_set(wd.leaf_weight):
                raise CgroupError(f"{field}.leafWeight: not supported on cgroup v2")
            if wd.weight is None:
                continue
            cv.check_blkio_weight(wd.weight, field + ".weight")
            if bfq_devices:
                write_file(bfq, f"{wd.major}:{wd.minor} {wd.weight}", field)
            else:
                value = cv.io_weight(wd.weight, field)
                write_file(self._file("io.weight"), f"{wd.major}:{wd.minor} {value}", field)
        for attr, name, key in _THROTTLES:
            for i, dev in enumerate(getattr(bio, attr) or []):
                field = f"{cv.BLKIO}.{name}[{i}]"
                major_minor, _, rate = cv.throttle_line(dev, field, "max").partition(" ")
                write_file(self._file("io.max"), f"{major_minor} {key}={rate}", field)

    def _set_devices(self, r: Resources) -> None:
        from . import bpf
        from .devices import DeviceState, rules_from_spec

        state = DeviceState.from_rules(rules_from_spec(r.devices or []))
        try:
            bpf.replace_device_filter(self.dir, state.bpf_program())
        except OSError as exc:
            raise CgroupError(f"{cv.DEVICES}: cannot install the device filter on "
                              f"{self.dir}: {exc.strerror or exc}", exc.errno) from None

    def _set_unified(self, key: str, value: str) -> None:
        field = f'{cv.UNIFIED}["{key}"]'
        controller, dot, _ = key.partition(".")
        if "/" in key or not dot or not controller:
            raise CgroupError(f"{field}: must be a cgroup file name like memory.high")
        path = self._file(key)
        if not os.path.exists(path):
            available = set(read_file(self._file("cgroup.controllers")).split())
            if controller != "cgroup" and controller not in available:
                raise CgroupError(f"{field}: the {controller} controller is not available "
                                  f"in {self.dir} (it has: {' '.join(sorted(available))})")
        write_file(path, value, field)

    # ---- freezer ---------------------------------------------------------------------

    def freeze(self) -> None:
        write_file(self._file("cgroup.freeze"), "1")
        if not self._wait_frozen(True):
            write_file(self._file("cgroup.freeze"), "0")
            raise CgroupError(f"{self.dir} did not freeze within {FREEZE_TIMEOUT:.0f}s")

    def thaw(self) -> None:
        write_file(self._file("cgroup.freeze"), "0")
        if not self._wait_frozen(False):
            raise CgroupError(f"{self.dir} is still frozen after {FREEZE_TIMEOUT:.0f}s "
                              "(is a parent cgroup frozen?)")

    def _wait_frozen(self, frozen: bool) -> bool:
        want = 1 if frozen else 0
        deadline = time.monotonic() + FREEZE_TIMEOUT
        delay = 0.001
        while read_keyed(self._file("cgroup.events")).get("frozen") != want:
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return True

    def is_frozen(self) -> bool:
        try:
            return read_file(self._file("cgroup.freeze")) == "1"
        except FileNotFoundError:
            return False

    # ---- accounting ------------------------------------------------------------------

    def oom_kills(self) -> int:
        try:
            return read_keyed(self._file("memory.events")).get("oom_kill", 0)
        except FileNotFoundError:
            return 0

    def stats(self) -> dict[str, Any]:
        return {
            "cpu": self._cpu_stats(),
            "memory": self._memory_stats(),
            "pids": self._pids_stats(),
            "blkio": self._io_stats(),
            "hugetlb": self._hugetlb_stats(),
        }

    def _cpu_stats(self) -> dict[str, Any]:
        stat = _keyed_or_empty(self._file("cpu.stat"))
        usage = {"total": stat.get("usage_usec", 0) * 1000,
                 "kernel": stat.get("system_usec", 0) * 1000,
                 "user": stat.get("user_usec", 0) * 1000}
        throttling = {"periods": stat.get("nr_periods", 0),
                      "throttledPeriods": stat.get("nr_throttled", 0),
                      "throttledTime": stat.get("throttled_usec", 0) * 1000}
        return {"usage": usage, "throttling": throttling}

    def _memory_stats(self) -> dict[str, Any]:
        if not os.path.exists(self._file("memory.current")):
            return {}
        raw = _keyed_or_empty(self._file("memory.stat"))
        usage = int(read_file(self._file("memory.current")))
        limit = read_number(self._file("memory.max"), UNLIMITED)
        peak = self._file("memory.peak")
        events = _keyed_or_empty(self._file("memory.events"))
        out: dict[str, Any] = {
            "cache": raw.get("file", 0),
            "usage": {"limit": limit, "usage": usage,
                      "max": int(read_file(peak)) if os.path.exists(peak) else 0,
                      "failcnt": events.get("max", 0)},
            "raw": raw,
        }
        swap_file = self._file("memory.swap.current")
        if os.path.exists(swap_file):
            # As runc does: report memory+swap, the v1 meaning of "swap".
            swap_limit = read_number(self._file("memory.swap.max"), UNLIMITED)
            out["swap"] = {
                "limit": swap_limit if UNLIMITED in (swap_limit, limit) else swap_limit + limit,
                "usage": int(read_file(swap_file)) + usage, "failcnt": 0}
        return out

    def _pids_stats(self) -> dict[str, int]:
        if not os.path.exists(self._file("pids.current")):
            return {}
        return {"current": int(read_file(self._file("pids.current"))),
                "limit": read_number(self._file("pids.max"), 0)}

    def _io_stats(self) -> dict[str, Any]:
        path = self._file("io.stat")
        if not os.path.exists(path):
            return {}
        served: list[dict[str, Any]] = []
        count: list[dict[str, Any]] = []
        for line in read_file(path).splitlines():
            device, *pairs = line.split()
            major, _, minor = device.partition(":")
            values = dict(p.split("=", 1) for p in pairs)
            for key, op, table in (("rbytes", "Read", served), ("wbytes", "Write", served),
                                   ("rios", "Read", count), ("wios", "Write", count)):
                if key in values:
                    table.append({"major": int(major), "minor": int(minor), "op": op,
                                  "value": int(values[key])})
        return {"ioServiceBytesRecursive": served, "ioServicedRecursive": count}

    def _hugetlb_stats(self) -> dict[str, Any]:
        out = {}
        for size in cv.hugepage_sizes():
            current = self._file(f"hugetlb.{size}.current")
            if os.path.exists(current):
                events = _keyed_or_empty(self._file(f"hugetlb.{size}.events"))
                out[size] = {"usage": int(read_file(current)), "failcnt": events.get("max", 0)}
        return out


def _keyed_or_empty(path: str) -> dict[str, int]:
    try:
        return read_keyed(path)
    except FileNotFoundError:
        return {}


def _pass_controllers_down(directory: str, made: bool, leaf: bool) -> None:
    """Let a level made here pass every controller it has on to its children (as runc does).

    One write for all; if the kernel refuses the set, each one alone, so that one the
    kernel will not enable (e.g. a threaded cgroup) does not keep the others out.
    """
    if not made or leaf:
        return
    controllers = read_file(os.path.join(directory, "cgroup.controllers")).split()
    if not controllers:
        return
    path = os.path.join(directory, "cgroup.subtree_control")
    try:
        write_file(path, " ".join("+" + c for c in controllers))
    except CgroupError:
        for c in controllers:
            try:
                write_file(path, "+" + c)
            except CgroupError:
                pass
