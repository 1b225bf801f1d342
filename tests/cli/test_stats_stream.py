"""`sampan stats` streaming as docker's CLI: the daemon's stats streams read for several
containers at once and the table redrawn in place every half second; without names the
table follows the containers that start and die."""

from __future__ import annotations

import contextlib
import re

from ..engine.conftest import Daemon, unique
from .conftest import SAMPAN, Cli
from .ptyrun import Pty

BUSY = "while true; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.02; done"


def frames(output: bytes) -> list[list[str]]:
    """The redrawn tables: each frame's lines (the erase-to-end-of-line codes dropped)."""
    text = output.decode(errors="replace").replace("\r\n", "\n")
    out = []
    for frame in text.split("\x1b[H")[1:]:
        if not frame.endswith("\x1b[J"):
            continue  # the last one may be cut off
        lines = frame[:-len("\x1b[J")].split("\n")
        assert lines.pop() == ""
        assert all(line.endswith("\x1b[K") for line in lines), lines
        out.append([line[:-len("\x1b[K")].rstrip() for line in lines])
    return out


def watch(pty: Pty, seconds: float) -> list[list[str]]:
    with contextlib.suppress(AssertionError):
        pty.expect(b"\x00never\x00", timeout=seconds)
    return frames(pty.output)


def row(frame: list[str], name: str) -> list[str] | None:
    for line in frame[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) > 1 and cells[1] == name:
            return cells
    return None


def test_stream_several(sampan: Cli, cli_daemon: Daemon) -> None:
    busy, idle = unique("busy"), unique("idle")
    sampan.ok("run", "-d", "--name", busy, "busybox", "sh", "-c", BUSY)
    sampan.ok("run", "-d", "--name", idle, "busybox", "sleep", "300")
    pty = Pty([SAMPAN, "stats", busy, idle], sampan.env)
    try:
        seen = watch(pty, 4.5)
        # a frame every half second: polling one-shot stats (a second each, one container
        # after the other) redrew every two and a half
        assert len(seen) >= 6, seen
        header = seen[-1][0]
        assert re.split(r"\s{2,}", header) == ["CONTAINER ID", "NAME", "CPU %",
                                               "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                                               "BLOCK I/O", "PIDS"]
        theirs = cli_daemon.ok("stats", "--no-stream", busy, idle).splitlines()[0]
        assert re.split(r"\s{2,}", theirs.strip()) == re.split(r"\s{2,}", header)
        last = seen[-1]
        busy_row, idle_row = row(last, busy), row(last, idle)
        assert busy_row is not None and idle_row is not None, last
        assert float(busy_row[2].rstrip("%")) > 0.5, last  # precpu from the stream
        # the numbers move: the stream's documents keep coming
        cpus = {row(f, busy)[2] for f in seen[2:] if row(f, busy)}  # type: ignore[index]
        assert len(cpus) > 1, seen
        # a container that stops: its stream ends and its row shows docker's "--"
        sampan.ok("stop", "-t", "1", idle)
        stopped = watch(pty, 1.5)[-1]
        assert row(stopped, idle)[2:] == ["--", "-- / --", "--", "--", "--", "--"], stopped  # type: ignore[index]
        assert row(stopped, busy) is not None
    finally:
        pty.close()
        sampan.run("rm", "-f", busy, idle)


def test_stream_follows_containers(sampan: Cli) -> None:
    first, later = unique("first"), unique("later")
    sampan.ok("run", "-d", "--name", first, "busybox", "sleep", "300")
    pty = Pty([SAMPAN, "stats"], sampan.env)
    try:
        assert any(row(f, first) for f in watch(pty, 1.5))
        sampan.ok("run", "-d", "--name", later, "busybox", "sleep", "300")
        assert row(watch(pty, 2.0)[-1], later) is not None
        sampan.ok("kill", later)
        last = watch(pty, 1.5)[-1]
        assert row(last, later) is None and row(last, first) is not None, last
    finally:
        pty.close()
        sampan.run("rm", "-f", first, later)


def test_no_stream_unchanged(sampan: Cli) -> None:
    name = unique("once")
    sampan.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        out = sampan.ok("stats", "--no-stream", "--format", "{{.Container}}|{{.Name}}|{{.PIDs}}",
                        name)
        assert out == f"{name}|{name}|1\n"
        failed = sampan.run("stats", "--no-stream", name, "nonexistent-h")
        assert failed.returncode == 1 and failed.stdout == ""
        assert failed.stderr == "Error response from daemon: No such container: nonexistent-h\n"
    finally:
        sampan.run("rm", "-f", name)
