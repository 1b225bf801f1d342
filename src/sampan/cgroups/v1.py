"""cgroup v1 (and the hybrid layout): one directory per mounted hierarchy.

Resources go to the v1 controllers. In the hybrid layout the container also gets a directory
in the unified (cgroup2) hierarchy, as systemd and runc do there: the kernel's cgroup.kill
lives only there, and it is where a v2-aware tool looks.
"""

from __future__ import annotations

import errno
import os
import time

from ..kernel import signals as signal
from . import convert as cv
from .base import (
    FREEZE_TIMEOUT,
    Cgroup,
    CgroupError,
    make_dirs,
    read_file,
    read_keyed,
    write_file,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ..oci.spec import CPU, BlockIO, Memory, Resources

UNIFIED = "unified"  # the key of the cgroup2 hierarchy in a hybrid layout
_THROTTLES = (
    ("throttle_read_bps_device", "throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
    ("throttle_write_bps_device", "throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
    ("throttle_read_iops_device", "throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
    ("throttle_write_iops_device", "throttleWriteIOPSDevice",
     "blkio.throttle.write_iops_device"),
)


class CgroupV1(Cgroup):
    """The container's directory in each hierarchy.

    ``mounts`` maps a controller ("memory", "cpu", "name=systemd", "unified" for the hybrid
    cgroup2 mount) to its mount point; co-mounted controllers share one. ``path`` is the
    directory below each mount, one for all or one per controller (the default path nests
    under this process's own cgroup, which differs between hierarchies).
    """

    version = 1

    def __init__(self, mounts: Mapping[str, str], path: str | Mapping[str, str], *,
                 prune: int = 0) -> None:
        self._mounts = dict(mounts)
        self._rel: dict[str, str] = {}
        for key, mountpoint in self._mounts.items():
            rel = (path if isinstance(path, str) else path[key]).strip("/")
            if not rel or ".." in rel.split("/"):
                raise CgroupError(f"cgroup path {rel!r} must name a cgroup below {mountpoint}")
            self._rel[key] = rel
        super().__init__({k: os.path.join(m, self._rel[k]) for k, m in self._mounts.items()},
                         prune)

    def _dir(self, controller: str) -> str | None:
        return self._paths.get(controller)

    def _need(self, controller: str, field: str) -> str:
        directory = self._dir(controller)
        if directory is None:
            raise CgroupError(f"{field}: the {controller} cgroup controller is not mounted "
                              "on this host")
        return directory

    # ---- placement -------------------------------------------------------------------

    def create(self) -> None:
        done = set()
        for key, mountpoint in self._mounts.items():
            if self._paths[key] in done:
                continue
            done.add(self._paths[key])
            make_dirs(mountpoint, self._rel[key], _inherit_cpuset if key == "cpuset" else None)

    def mount_sources(self) -> list[tuple[str, str]]:
        """The v1 hierarchies only: like runc, a container on a hybrid host does not see
        the host's cgroup2 mount (it has no controllers there)."""
        seen: dict[str, tuple[str, str]] = {}
        for key, mountpoint in self._mounts.items():
            if key == UNIFIED:
                continue
            seen.setdefault(mountpoint, (os.path.basename(mountpoint), self._paths[key]))
        return list(seen.values())

    def _kill_file(self) -> str | None:
        unified = self._dir(UNIFIED)
        path = os.path.join(unified, "cgroup.kill") if unified else None
        return path if path and os.path.exists(path) else None

    def kill(self, sig: int) -> None:
        """SIGKILL without cgroup.kill: freeze first so that no fork escapes the sweep."""
        if (sig != signal.SIGKILL or self._kill_file() or self._dir("freezer") is None
                or not self.exists()):
            super().kill(sig)
            return
        was_frozen = self.is_frozen()
        if not was_frozen:
            self.freeze()
        try:
            self._signal_all(sig)
        finally:
            if not was_frozen:
                self.thaw()

    # ---- limits ----------------------------------------------------------------------

    def set(self, resources: Resources | None) -> None:
        if resources is None:
            return
        r = resources
        if r.unified:
            raise CgroupError(f"{cv.UNIFIED}: needs a cgroup v2 host (this one uses v1 "
                              "controllers)")
        if r.memory is not None:
            self._set_memory(r.memory)
        if r.cpu is not None:
            self._set_cpu(r.cpu)
        if r.pids is not None:
            value = cv.pids_max(r.pids.limit)
            directory = self._dir("pids")
            if directory is not None or value != "max":
                write_file(os.path.join(self._need("pids", cv.PIDS), "pids.max"), value,
                           cv.PIDS)
        if r.block_io is not None:
            self._set_blkio(r.block_io)
        for i, hp in enumerate(r.hugepage_limits or []):
            field = f"{cv.HUGEPAGES}[{i}]"
            cv.check_hugepage(hp.page_size, hp.limit, i)
            directory = self._need("hugetlb", field)
            write_file(os.path.join(directory, f"hugetlb.{hp.page_size}.limit_in_bytes"),
                       str(hp.limit), field)
        if r.network is not None:
            self._set_network(r)
        for line in cv.rdma_lines(r.rdma or {}):
            field = "linux.resources.rdma"
            write_file(os.path.join(self._need("rdma", field), "rdma.max"), line, field)
        if r.devices is not None:
            self._set_devices(r)

    def _set_memory(self, mem: Memory) -> None:
        cv.check_memory(mem)
        field = cv.MEMORY
        if self._dir("memory") is None and cv.memory_is_default(mem):
            return  # nothing but "unlimited" asked of a controller this host lacks
        d = self._need("memory", field)
        limit = mem.limit or 0
        if mem.check_before_update and limit > 0:
            usage = int(read_file(os.path.join(d, "memory.usage_in_bytes")))
            if usage > limit:
                raise CgroupError(f"{field}.limit: {limit} is below the current usage "
                                  f"{usage} (checkBeforeUpdate)")
        self._set_memory_and_swap(d, limit, mem.swap or 0)
        if cv.is_set(mem.reservation):
            write_file(os.path.join(d, "memory.soft_limit_in_bytes"), str(mem.reservation),
                       f"{field}.reservation")
        if mem.disable_oom_killer is not None:
            write_file(os.path.join(d, "memory.oom_control"),
                       "1" if mem.disable_oom_killer else "0", f"{field}.disableOOMKiller")
        if mem.swappiness is not None:
            write_file(os.path.join(d, "memory.swappiness"), str(mem.swappiness),
                       f"{field}.swappiness")

    def _set_memory_and_swap(self, d: str, limit: int, swap: int) -> None:
        """v1 keeps memory <= memory+swap at every moment: write in the order that allows it."""
        memsw = os.path.join(d, "memory.memsw.limit_in_bytes")
        if not os.path.exists(memsw):
            if swap not in (0, -1):
                raise CgroupError(f"{cv.MEMORY}.swap: this kernel does not account swap "
                                  f"({memsw} does not exist)")
            swap = 0
        elif limit == -1 and swap == 0:
            swap = -1  # unlimited memory means unlimited memory+swap too (as runc does)
        writes = []
        if limit != 0:
            writes.append(("memory.limit_in_bytes", limit, f"{cv.MEMORY}.limit"))
        if swap != 0:
            writes.append(("memory.memsw.limit_in_bytes", swap, f"{cv.MEMORY}.swap"))
        if limit != 0 and swap != 0:
            current = int(read_file(os.path.join(d, "memory.limit_in_bytes")))
            if swap == -1 or current < swap:
                writes.reverse()
        for name, value, field in writes:
            try:
                write_file(os.path.join(d, name), str(value), field)
            except CgroupError as exc:
                if exc.errno != errno.EBUSY or name != "memory.limit_in_bytes":
                    raise
                usage = read_file(os.path.join(d, "memory.usage_in_bytes"))
                peak = read_file(os.path.join(d, "memory.max_usage_in_bytes"))
                raise CgroupError(f"{field}: cannot lower the limit to {value}: current usage "
                                  f"is {usage} (peak {peak})", exc.errno) from None

    def _set_cpu(self, cpu: CPU) -> None:
        cv.check_cpu(cpu)
        field = cv.CPU_FIELD
        wants_cpu = any(cv.is_set(v) for v in (cpu.shares, cpu.quota, cpu.period,
                                               cpu.realtime_period, cpu.realtime_runtime))
        if wants_cpu or cpu.burst is not None or cpu.idle is not None:
            self._set_cfs(self._need("cpu", field), cpu)
        if cpu.cpus or cpu.mems:
            d = self._need("cpuset", field)
            if cpu.cpus:
                write_file(os.path.join(d, "cpuset.cpus"), cpu.cpus, f"{field}.cpus")
            if cpu.mems:
                write_file(os.path.join(d, "cpuset.mems"), cpu.mems, f"{field}.mems")

    def _set_cfs(self, d: str, cpu: CPU) -> None:
        field = cv.CPU_FIELD
        if cv.is_set(cpu.shares):
            write_file(os.path.join(d, "cpu.shares"), str(cpu.shares), f"{field}.shares")
        retry_period = False
        if cv.is_set(cpu.period):
            try:
                write_file(os.path.join(d, "cpu.cfs_period_us"), str(cpu.period),
                           f"{field}.period")
            except CgroupError as exc:
                # A shorter period can break the parent's quota until the new quota is in:
                # write it again after the quota (runc does the same).
                if exc.errno != errno.EINVAL or not cv.is_set(cpu.quota):
                    raise
                retry_period = True
        if cv.is_set(cpu.quota):
            write_file(os.path.join(d, "cpu.cfs_quota_us"), str(cpu.quota), f"{field}.quota")
            if retry_period:
                write_file(os.path.join(d, "cpu.cfs_period_us"), str(cpu.period),
                           f"{field}.period")
        for value, name, key in ((cpu.burst, "cpu.cfs_burst_us", "burst"),
                                 (cpu.realtime_period, "cpu.rt_period_us", "realtimePeriod"),
                                 (cpu.realtime_runtime, "cpu.rt_runtime_us", "realtimeRuntime"),
                                 (cpu.idle, "cpu.idle", "idle")):
            if value is None or (value == 0 and key.startswith("realtime")):
                continue
            path = os.path.join(d, name)
            if value == 0 and not os.path.exists(path):
                continue  # the kernel's default, on a kernel without the file
            write_file(path, str(value), f"{field}.{key}")

    def _set_blkio(self, bio: BlockIO) -> None:
        field = cv.BLKIO
        # (file names: CFQ's then BFQ's, value, field, whether the value is the default)
        writes: list[tuple[tuple[str, ...], str, str, bool]] = []
        if cv.is_set(bio.weight):
            cv.check_blkio_weight(bio.weight or 0, f"{field}.weight")
            writes.append((("blkio.weight", "blkio.bfq.weight"), str(bio.weight),
                           f"{field}.weight", False))
        if cv.is_set(bio.leaf_weight):
            writes.append((("blkio.leaf_weight",), str(bio.leaf_weight),
                           f"{field}.leafWeight", False))
        for i, wd in enumerate(bio.weight_device or []):
            where = f"{field}.weightDevice[{i}]"
            if wd.weight is not None:
                cv.check_blkio_weight(wd.weight, where + ".weight")
                writes.append((("blkio.weight_device", "blkio.bfq.weight_device"),
                               f"{wd.major}:{wd.minor} {wd.weight}", where, False))
            if wd.leaf_weight is not None:
                writes.append((("blkio.leaf_weight_device",),
                               f"{wd.major}:{wd.minor} {wd.leaf_weight}", where, False))
        for attr, name, filename in _THROTTLES:
            for i, dev in enumerate(getattr(bio, attr) or []):
                where = f"{field}.{name}[{i}]"
                writes.append(((filename,), cv.throttle_line(dev, where, "0"), where,
                               dev.rate == 0))
        for names, value, where, default in writes:
            d = self._dir("blkio")
            path = next((os.path.join(d, n) for n in names
                         if os.path.exists(os.path.join(d, n))), None) if d else None
            if path is None and default:
                continue  # "no limit" where the kernel has no such limit
            if path is None:
                d = self._need("blkio", where)
                path = os.path.join(d, names[-1])
            write_file(path, value, where)

    def _set_network(self, r: Resources) -> None:
        net = r.network
        assert net is not None
        field = "linux.resources.network"
        if net.class_id is not None:
            d = self._need("net_cls", f"{field}.classID")
            write_file(os.path.join(d, "net_cls.classid"), str(net.class_id),
                       f"{field}.classID")
        for i, prio in enumerate(net.priorities or []):
            d = self._need("net_prio", f"{field}.priorities[{i}]")
            write_file(os.path.join(d, "net_prio.ifpriomap"), f"{prio.name} {prio.priority}",
                       f"{field}.priorities[{i}]")

    def _set_devices(self, r: Resources) -> None:
        from .devices import DeviceState, rules_from_spec

        target = DeviceState.from_rules(rules_from_spec(r.devices or []))
        d = self._need("devices", cv.DEVICES)
        current = DeviceState.from_v1_list(read_file(os.path.join(d, "devices.list")))
        for name, line in target.v1_writes(current):
            write_file(os.path.join(d, name), line, cv.DEVICES)

    # ---- freezer ---------------------------------------------------------------------

    def freeze(self) -> None:
        """Write FROZEN until the kernel reports FROZEN (v1 can stall in FREEZING while
        tasks fork; an occasional thaw lets it settle, as runc found)."""
        path = os.path.join(self._need("freezer", "freeze"), "freezer.state")
        deadline = time.monotonic() + FREEZE_TIMEOUT
        attempt = 0
        while True:
            attempt += 1
            if attempt % 50 == 0:
                write_file(path, "THAWED")
                time.sleep(0.01)
            write_file(path, "FROZEN")
            state = read_file(path)
            if state == "FROZEN":
                return
            if time.monotonic() > deadline:
                write_file(path, "THAWED")
                raise CgroupError(f"{path}: still {state} after {FREEZE_TIMEOUT:.0f}s")
            time.sleep(0.001 * min(attempt, 20))

    def thaw(self) -> None:
        write_file(os.path.join(self._need("freezer", "thaw"), "freezer.state"), "THAWED")

    def is_frozen(self) -> bool:
        """Frozen by its own freezer.state (not only through a frozen parent)."""
        d = self._dir("freezer")
        if d is None:
            return False
        try:
            for _ in range(1000):
                state = read_file(os.path.join(d, "freezer.state"))
                if state != "FREEZING":
                    break
                time.sleep(0.001)
            return state == "FROZEN" and read_file(
                os.path.join(d, "freezer.self_freezing")) == "1"
        except FileNotFoundError:
            return False

    # ---- accounting ------------------------------------------------------------------

    def oom_kills(self) -> int:
        d = self._dir("memory")
        try:
            return read_keyed(os.path.join(d, "memory.oom_control")).get("oom_kill", 0) \
                if d else 0
        except FileNotFoundError:
            return 0

    def stats(self) -> dict[str, Any]:
        return {
            "cpu": self._cpu_stats(),
            "memory": self._memory_stats(),
            "pids": self._pids_stats(),
            "blkio": self._blkio_stats(),
            "hugetlb": self._hugetlb_stats(),
        }

    def _read(self, controller: str, name: str) -> str | None:
        d = self._dir(controller)
        try:
            return read_file(os.path.join(d, name)) if d else None
        except FileNotFoundError:
            return None

    def _cpu_stats(self) -> dict[str, Any]:
        usage: dict[str, Any] = {}
        total = self._read("cpuacct", "cpuacct.usage")
        if total is not None:
            usage["total"] = int(total)
            percpu = self._read("cpuacct", "cpuacct.usage_percpu") or ""
            usage["percpu"] = [int(v) for v in percpu.split()]
            user, kernel = (self._read("cpuacct", "cpuacct.usage_user"),
                            self._read("cpuacct", "cpuacct.usage_sys"))
            usage["user"] = int(user) if user else 0
            usage["kernel"] = int(kernel) if kernel else 0
        stat = self._read("cpu", "cpu.stat") or ""
        values = dict(line.split() for line in stat.splitlines())
        throttling = {"periods": int(values.get("nr_periods", 0)),
                      "throttledPeriods": int(values.get("nr_throttled", 0)),
                      "throttledTime": int(values.get("throttled_time", 0))}
        return {"usage": usage, "throttling": throttling}

    def _memory_entry(self, prefix: str) -> dict[str, int]:
        values = [self._read("memory", f"{prefix}.{name}")
                  for name in ("limit_in_bytes", "usage_in_bytes", "max_usage_in_bytes",
                               "failcnt")]
        if values[1] is None:
            return {}
        return dict(zip(("limit", "usage", "max", "failcnt"),
                        (int(v) if v else 0 for v in values), strict=True))

    def _memory_stats(self) -> dict[str, Any]:
        if self._read("memory", "memory.usage_in_bytes") is None:
            return {}
        raw = {k: int(v) for k, v in
               (line.split() for line in (self._read("memory", "memory.stat") or "")
                .splitlines())}
        return {"cache": raw.get("cache", 0), "usage": self._memory_entry("memory"),
                "swap": self._memory_entry("memory.memsw"),
                "kernel": self._memory_entry("memory.kmem"),
                "kernelTCP": self._memory_entry("memory.kmem.tcp"), "raw": raw}

    def _pids_stats(self) -> dict[str, int]:
        current = self._read("pids", "pids.current")
        if current is None:
            return {}
        limit = self._read("pids", "pids.max") or "max"
        return {"current": int(current), "limit": 0 if limit == "max" else int(limit)}

    def _blkio_stats(self) -> dict[str, Any]:
        out = {}
        for key, name in (("ioServiceBytesRecursive",
                           "blkio.throttle.io_service_bytes_recursive"),
                          ("ioServicedRecursive", "blkio.throttle.io_serviced_recursive")):
            entries = []
            for line in (self._read("blkio", name) or "").splitlines():
                parts = line.split()
                if len(parts) == 3:  # "8:0 Read 1234" (the "Total N" line is left out)
                    major, _, minor = parts[0].partition(":")
                    entries.append({"major": int(major), "minor": int(minor), "op": parts[1],
                                    "value": int(parts[2])})
            out[key] = entries
        return out

    def _hugetlb_stats(self) -> dict[str, Any]:
        out = {}
        for size in cv.hugepage_sizes():
            usage = self._read("hugetlb", f"hugetlb.{size}.usage_in_bytes")
            if usage is not None:
                peak = self._read("hugetlb", f"hugetlb.{size}.max_usage_in_bytes") or "0"
                failcnt = self._read("hugetlb", f"hugetlb.{size}.failcnt") or "0"
                out[size] = {"usage": int(usage), "max": int(peak), "failcnt": int(failcnt)}
        return out


def _inherit_cpuset(directory: str, made: bool, leaf: bool) -> None:
    """A v1 cpuset cgroup starts with empty cpus/mems and takes no task until they are set:
    copy the parent's into each level that has none (runc's cpusetEnsureParent)."""
    parent = os.path.dirname(directory)
    for name in ("cpuset.cpus", "cpuset.mems"):
        path = os.path.join(directory, name)
        if not read_file(path):
            write_file(path, read_file(os.path.join(parent, name)))
