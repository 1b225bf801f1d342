"""stats: CPU, memory, network, block I/O and pids as docker computes them from the
daemon's cgroup numbers."""

from __future__ import annotations

import sys
import time

from .... import humanize
from ..flags import BOOL, STR, Opt
from . import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..main import Cli

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS", "Container": "CONTAINER"}


def memory_usage(mem: dict[str, Any]) -> float:
    """Usage without the page cache, as docker's calculateMemUsageUnixNoCache."""
    usage = mem.get("usage") or 0
    stats = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in stats and stats[key] < usage:
            return float(usage - stats[key])
    return float(usage)


def cpu_percent(s: dict[str, Any]) -> float:
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    delta = ((cpu.get("cpu_usage") or {}).get("total_usage", 0)
             - (pre.get("cpu_usage") or {}).get("total_usage", 0))
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {})
                                           .get("percpu_usage") or []) or 1
    if delta > 0 and system > 0:
        return delta / system * online * 100.0
    return 0.0


class StatsRow:
    def __init__(self, s: dict[str, Any], trunc: bool) -> None:
        self.s, self.trunc = s, trunc

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(STATS_HEADERS)}

    @property
    def ID(self) -> str:
        ident = self.s.get("id", "")
        return ident[:12] if self.trunc else ident

    @property
    def Name(self) -> str:
        return (self.s.get("name") or "").lstrip("/") or "--"

    @property
    def Container(self) -> str:
        return self.Name

    @property
    def CPUPerc(self) -> str:
        return f"{cpu_percent(self.s):.2f}%"

    @property
    def MemUsage(self) -> str:
        mem = self.s.get("memory_stats") or {}
        return (f"{humanize.bytes_size(memory_usage(mem))} / "
                f"{humanize.bytes_size(mem.get('limit') or 0)}")

    @property
    def MemPerc(self) -> str:
        mem = self.s.get("memory_stats") or {}
        limit = mem.get("limit") or 0
        return f"{memory_usage(mem) / limit * 100:.2f}%" if limit else "0.00%"

    @property
    def NetIO(self) -> str:
        nets = (self.s.get("networks") or {}).values()
        rx = sum(n.get("rx_bytes", 0) for n in nets)
        tx = sum(n.get("tx_bytes", 0) for n in nets)
        return f"{humanize.size(rx)} / {humanize.size(tx)}"

    @property
    def BlockIO(self) -> str:
        entries = ((self.s.get("blkio_stats") or {}).get("io_service_bytes_recursive")
                   or [])
        read = sum(e.get("value", 0) for e in entries if e.get("op", "").lower() == "read")
        write = sum(e.get("value", 0) for e in entries
                    if e.get("op", "").lower() == "write")
        return f"{humanize.size(read)} / {humanize.size(write)}"

    @property
    def PIDs(self) -> str:
        return str((self.s.get("pids_stats") or {}).get("current", 0))


def stats(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("a,all", BOOL, "Show all containers (default shows just running)"),
            Opt("format", STR, "Format output using a custom template"),
            Opt("no-stream", BOOL, "Disable streaming stats and only pull the first result"),
            Opt("no-trunc", BOOL, "Do not truncate output")]
    p = parse("stats", "[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) "
              "resource usage statistics", opts, argv)
    if p is None:
        return 0
    from ..output import render

    client = cli.client
    names = p.args or [c["Id"] for c in client.get("/containers/json",
                                                   {"all": p.all or None}) or []]
    fmt = p.format or STATS_TABLE
    while True:
        rows = []
        for name in names:
            s = client.get(f"/containers/{name}/stats", {"stream": False})
            rows.append(StatsRow(s, not p.no_trunc))
        if not p.no_stream:
            sys.stdout.write("\033[2J\033[H")
        render(fmt, rows, STATS_HEADERS)
        sys.stdout.flush()
        if p.no_stream:
            return 0
        time.sleep(0.5)
