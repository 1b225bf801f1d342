"""Container stats in the shape of dockerd's GET /containers/{id}/stats.

The counters come from the OCI runtime (``events --stats``: runc's format, read from the
container's cgroup, v1 or v2, by ``sampan.cgroups``); this module turns them into docker's
JSON as dockerd's stats collector does, adds what the cgroup does not know (the host's
``system_cpu_usage`` from /proc/stat, ``online_cpus``, the network counters of the
container's namespace from /proc/<pid>/net/dev) and keeps the cgroup v1 / v2 differences
docker shows: v1 has per-CPU usage, ``max_usage`` and ``failcnt``; v2 has neither, and its
memory stats are memory.stat's (``inactive_file`` instead of ``total_inactive_file``).
"""

from __future__ import annotations

import os
from typing import Any

from .ociruntime import OCIRuntime
from .record import ZERO_TIME, Container, rfc3339

_NET_FIELDS = ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")
_UNLIMITED_V1 = 0x7FFFFFFFFFFFF000  # memory.limit_in_bytes without a limit (page aligned)


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def system_cpu_usage(stat_text: str | None = None) -> int:
    """The host's CPU time in ns: the first line of /proc/stat (user … softirq), as dockerd
    computes it."""
    if stat_text is None:
        with open("/proc/stat") as f:
            stat_text = f.read()
    for line in stat_text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            jiffies = sum(int(v) for v in parts[1:8])
            return jiffies * 1_000_000_000 // clock_ticks()
    return 0


def host_memory(meminfo: str | None = None) -> int:
    if meminfo is None:
        with open("/proc/meminfo") as f:
            meminfo = f.read()
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """/proc/<pid>/net/dev as docker's ``networks`` (loopback left out, as docker does)."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or name == "lo":
            continue
        values = [int(v) for v in rest.split()]
        if len(values) < 16:
            continue
        rx, tx = dict(zip(_NET_FIELDS, values[:8], strict=True)), \
            dict(zip(_NET_FIELDS, values[8:16], strict=True))
        out[name] = {"rx_bytes": rx["bytes"], "rx_packets": rx["packets"],
                     "rx_errors": rx["errs"], "rx_dropped": rx["drop"],
                     "tx_bytes": tx["bytes"], "tx_packets": tx["packets"],
                     "tx_errors": tx["errs"], "tx_dropped": tx["drop"]}
    return out


def networks(pid: int) -> dict[str, dict[str, int]] | None:
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            found = parse_net_dev(f.read())
    except OSError:
        return None
    return found or None


def _blkio(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "io_service_bytes_recursive": raw.get("ioServiceBytesRecursive") or None,
        "io_serviced_recursive": raw.get("ioServicedRecursive") or None,
        "io_queue_recursive": None, "io_service_time_recursive": None,
        "io_wait_time_recursive": None, "io_merged_recursive": None,
        "io_time_recursive": None, "sectors_recursive": None,
    }


def _memory(raw: dict[str, Any], v2: bool, machine: int) -> dict[str, Any]:
    usage = raw.get("usage") or {}
    if not usage:
        return {}
    limit = int(usage.get("limit", 0))
    if limit <= 0 or limit >= _UNLIMITED_V1 or (machine and limit > machine):
        limit = machine
    out: dict[str, Any] = {"usage": int(usage.get("usage", 0)),
                           "stats": dict(raw.get("raw") or {}), "limit": limit}
    if not v2:
        out["max_usage"] = int(usage.get("max", 0))
        out["failcnt"] = int(usage.get("failcnt", 0))
    return out


def _cpu(raw: dict[str, Any], v2: bool, system: int, online: int) -> dict[str, Any]:
    usage = raw.get("usage") or {}
    throttling = raw.get("throttling") or {}
    cpu_usage: dict[str, Any] = {
        "total_usage": int(usage.get("total", 0)),
        "usage_in_kernelmode": int(usage.get("kernel", 0)),
        "usage_in_usermode": int(usage.get("user", 0))}
    if not v2:
        cpu_usage["percpu_usage"] = [int(v) for v in usage.get("percpu") or []] or None
    return {"cpu_usage": cpu_usage, "system_cpu_usage": system, "online_cpus": online,
            "throttling_data": {"periods": int(throttling.get("periods", 0)),
                                "throttled_periods": int(throttling.get("throttledPeriods", 0)),
                                "throttled_time": int(throttling.get("throttledTime", 0))}}


def empty_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def convert(c: Container, raw: dict[str, Any], *, v2: bool, system: int, online: int,
            machine: int, net: dict[str, Any] | None, read: str | None = None,
            ) -> dict[str, Any]:
    """One stats document (``precpu_stats`` and ``preread`` empty: see ``with_previous``)."""
    pids = raw.get("pids") or {}
    out: dict[str, Any] = {
        "name": "/" + c.name, "id": c.id, "read": read or rfc3339(), "preread": ZERO_TIME,
        "pids_stats": {"current": int(pids.get("current", 0)),
                       **({"limit": int(pids["limit"])} if pids.get("limit") else {})},
        "blkio_stats": _blkio(raw.get("blkio") or {}),
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": _cpu(raw.get("cpu") or {}, v2, system, online),
        "precpu_stats": empty_cpu(),
        "memory_stats": _memory(raw.get("memory") or {}, v2, machine),
    }
    if net is not None:
        out["networks"] = net
    return out


def with_previous(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's precpu_stats/preread: the sample before, for the CPU percentage."""
    if previous is not None:
        current["precpu_stats"] = previous["cpu_stats"]
        current["preread"] = previous["read"]
    return current


def not_running(c: Container) -> dict[str, Any]:
    """What dockerd sends for a container that is not running: zeros."""
    return {"name": "/" + c.name, "id": c.id, "read": ZERO_TIME, "preread": ZERO_TIME,
            "pids_stats": {}, "blkio_stats": _blkio({}), "num_procs": 0, "storage_stats": {},
            "cpu_stats": empty_cpu(), "precpu_stats": empty_cpu(), "memory_stats": {}}


def cgroup_v2() -> bool:
    from ..cgroups import unified_mode

    return unified_mode()


async def sample(runtime: OCIRuntime, c: Container) -> dict[str, Any]:
    """One stats document of a running container, read now."""
    raw = await runtime.stats(c.id)
    own_netns = (c.host_config.get("NetworkMode") or "default") != "host"
    return convert(c, raw, v2=cgroup_v2(), system=system_cpu_usage(),
                   online=os.cpu_count() or 1, machine=host_memory(),
                   net=networks(c.state.pid) if own_netns and c.state.pid else None)
