"""stats: CPU, memory, network, block I/O and pids as docker computes them from the
daemon's cgroup numbers.

As docker's CLI: one thread per container reads the daemon's stream (``stream=true``, a
document a second; ``--no-stream`` asks for one document with a previous sample), and the
table is redrawn from the latest documents every half second, in place (cursor home, each
line erased to its end, the rest of the screen cleared). Without names, the running
containers (all with ``-a``) are followed through the events: one that starts joins the
table, one that dies leaves it.
"""

from __future__ import annotations

import sys
import threading
import time

from .... import humanize
from ..flags import BOOL, STR, Opt
from . import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..api import Client
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


class Entry:
    """One container's latest stats document, as the collector thread left it."""

    def __init__(self, container: str) -> None:
        self.container = container
        self.doc: dict[str, Any] = {}
        self.invalid = False
        self.error: str | None = None
        self.updated = 0.0
        self.first = threading.Event()
        self.lock = threading.Lock()

    def set(self, doc: dict[str, Any]) -> None:
        with self.lock:
            self.doc, self.invalid, self.error = doc, False, None
            self.updated = time.monotonic()
        self.first.set()

    def fail(self, error: str | None) -> None:
        with self.lock:
            self.error, self.invalid = error, True
        self.first.set()

    def row(self, trunc: bool) -> StatsRow:
        with self.lock:
            if (self.doc and not self.invalid and self.updated
                    and time.monotonic() - self.updated > STALE):
                # docker zeroes a row whose stream has said nothing for two seconds
                known = {k: v for k, v in self.doc.items() if k in ("id", "name")}
                return StatsRow(self.container, known, trunc, invalid=True)
            return StatsRow(self.container, self.doc, trunc, self.invalid)


STALE = 2.0  # docker's "timeout waiting for stats"
REDRAW = 0.5


def collect(client: Client, entry: Entry, stream: bool) -> None:
    """Read one container's stats (a thread of its own): every document as it comes."""
    from ..api import APIError

    try:
        response = client.call("GET", f"/containers/{entry.container}/stats",
                               {"stream": stream})
        for doc in response.json_stream():
            entry.set(doc)
            if not stream:
                break
        else:
            entry.fail("EOF")  # the container stopped: its row shows "--"
    except APIError as exc:
        entry.fail(f"Error response from daemon: {exc.message}")
    except OSError as exc:
        entry.fail(str(exc))


class Table:
    """The containers being watched, in the order they were added."""

    def __init__(self, client: Client, stream: bool) -> None:
        self.client, self.stream = client, stream
        self.entries: list[Entry] = []
        self.lock = threading.Lock()

    def add(self, container: str) -> Entry | None:
        with self.lock:
            if any(e.container == container for e in self.entries):
                return None
            entry = Entry(container)
            self.entries.append(entry)
        threading.Thread(target=collect, args=(self.client, entry, self.stream),
                         daemon=True).start()
        return entry

    def remove(self, container: str) -> None:
        with self.lock:
            self.entries = [e for e in self.entries if e.container != container]

    def snapshot(self) -> list[Entry]:
        with self.lock:
            return list(self.entries)

    def wait_first(self) -> None:
        """Each container's first document (or error), at most docker's two seconds."""
        deadline = time.monotonic() + STALE
        for entry in self.snapshot():
            entry.first.wait(max(0.0, deadline - time.monotonic()))


def follow_events(client: Client, table: Table, all_: bool, subscribed: threading.Event,
                  ) -> None:
    """Containers that start join the table (created ones too with -a); ones that die
    leave it (unless -a), as docker's stats without names."""
    try:
        response = client.call("GET", "/events",
                               {"filters": '{"type":{"container":true}}'})
        subscribed.set()
        for event in response.json_stream():
            action = (event.get("Action") or event.get("status") or "").split(":")[0]
            ident = (event.get("id") or (event.get("Actor") or {}).get("ID") or "")[:12]
            if not ident:
                continue
            if action == "start" or (action == "create" and all_):
                table.add(ident)
            elif action == "die" and not all_:
                table.remove(ident)
    except OSError:
        pass
    finally:
        subscribed.set()


def stats(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("a,all", BOOL, "Show all containers (default shows just running)"),
            Opt("format", STR, "Format output using a custom template"),
            Opt("no-stream", BOOL, "Disable streaming stats and only pull the first result"),
            Opt("no-trunc", BOOL, "Do not truncate output")]
    p = parse("stats", "[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) "
              "resource usage statistics", opts, argv)
    if p is None:
        return 0
    from ..errors import CommandError
    from ..output import render

    client = cli.client
    table = Table(client, stream=not p.no_stream)
    show_all = not p.args
    if show_all:
        if not p.no_stream:
            subscribed = threading.Event()
            threading.Thread(target=follow_events, args=(client, table, p.all, subscribed),
                             daemon=True).start()
            subscribed.wait(5)
        for c in client.get("/containers/json", {"all": p.all or None}) or []:
            table.add(c["Id"][:12])
        table.wait_first()
    else:
        for name in p.args:
            table.add(name)
        table.wait_first()
        errors = [e.error for e in table.snapshot() if e.error and e.error != "EOF"]
        if errors:
            raise CommandError("\n".join(errors))
    fmt = p.format or STATS_TABLE
    trunc = not p.no_trunc
    while True:
        entries = table.snapshot()
        rows = [e.row(trunc) for e in entries]
        if p.no_stream:
            render(fmt, rows, STATS_HEADERS)
            return 0
        sys.stdout.write(redraw(fmt, rows))
        sys.stdout.flush()
        if not entries and not show_all:
            return 0
        time.sleep(REDRAW)


def redraw(fmt: str, rows: list[StatsRow]) -> str:
    """One frame: the cursor home, each line erased to its end after the text (a shorter
    line leaves nothing behind), the rest of the screen cleared (fewer rows)."""
    import io

    from ..output import render

    buffer = io.StringIO()
    render(fmt, rows, STATS_HEADERS, out=buffer)
    lines = buffer.getvalue().rstrip("\n").split("\n")
    return "\033[H" + "".join(line + "\033[K\n" for line in lines) + "\033[J"


class StatsRow:
    """docker's statsContext over one document; ``invalid`` rows (a stream that ended or
    went quiet) show "--" as docker's."""

    def __init__(self, container: str, s: dict[str, Any], trunc: bool,
                 invalid: bool = False) -> None:
        self.container, self.s, self.trunc, self.invalid = container, s, trunc, invalid

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(STATS_HEADERS)}

    @property
    def ID(self) -> str:
        ident = self.s.get("id", "")
        return ident[:12] if self.trunc else ident

    @property
    def Name(self) -> str:
        name = self.s.get("name") or ""
        return name[1:] if len(name) > 1 else "--"

    @property
    def Container(self) -> str:
        return self.container

    @property
    def CPUPerc(self) -> str:
        return "--" if self.invalid else f"{cpu_percent(self.s):.2f}%"

    @property
    def MemUsage(self) -> str:
        if self.invalid:
            return "-- / --"
        mem = self.s.get("memory_stats") or {}
        return (f"{humanize.bytes_size(memory_usage(mem))} / "
                f"{humanize.bytes_size(mem.get('limit') or 0)}")

    @property
    def MemPerc(self) -> str:
        if self.invalid:
            return "--"
        mem = self.s.get("memory_stats") or {}
        limit = mem.get("limit") or 0
        return f"{memory_usage(mem) / limit * 100:.2f}%" if limit else "0.00%"

    @property
    def NetIO(self) -> str:
        if self.invalid:
            return "--"
        nets = (self.s.get("networks") or {}).values()
        rx = sum(n.get("rx_bytes", 0) for n in nets)
        tx = sum(n.get("tx_bytes", 0) for n in nets)
        return f"{humanize.size(rx)} / {humanize.size(tx)}"

    @property
    def BlockIO(self) -> str:
        if self.invalid:
            return "--"
        entries = ((self.s.get("blkio_stats") or {}).get("io_service_bytes_recursive")
                   or [])
        read = sum(e.get("value", 0) for e in entries if e.get("op", "")[:1] in "rR"
                   and e.get("op"))
        write = sum(e.get("value", 0) for e in entries if e.get("op", "")[:1] in "wW"
                    and e.get("op"))
        return f"{humanize.size(read)} / {humanize.size(write)}"

    @property
    def PIDs(self) -> str:
        return "--" if self.invalid else \
            str((self.s.get("pids_stats") or {}).get("current", 0))
