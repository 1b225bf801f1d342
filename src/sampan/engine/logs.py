"""Reading container logs as Docker serves them, from conmon's k8s-file log.

conmon writes one line per chunk of output: ``<RFC 3339 time> <stdout|stderr> <F|P> <text>``
(P: a partial line continued by the next). We serve those entries as docker's json-file
driver would (each line with its stream and time) instead of running a second writer per
container: conmon already writes the log crash-safely, and a converter costs nothing while
no one reads logs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

STDOUT, STDERR = "stdout", "stderr"


@dataclass(frozen=True)
class LogEntry:
    time: str  # RFC 3339 with nanoseconds, in UTC ("…Z")
    stream: str  # STDOUT or STDERR
    data: bytes  # a full line keeps its newline

    @property
    def timestamp(self) -> float:
        return parse_time(self.time)


def parse_time(text: str) -> float:
    """Unix time of an RFC 3339 timestamp with up to nanosecond precision."""
    head, dot, rest = text.partition(".")
    frac = ""
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, rest = rest[:digits], rest[digits:]
    else:
        head, rest = text[:19], text[19:]
    zone = "+00:00" if rest in ("Z", "z", "") else rest
    whole = datetime.fromisoformat(head + zone).timestamp()
    return whole + (float("0." + frac) if frac else 0.0)


def _utc(text: str) -> str:
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    if text.endswith("Z"):
        return text
    seconds = parse_time(text)
    whole = int(seconds)
    ns = text.partition(".")[2]
    ns = ns[:len(ns) - len(ns.lstrip("0123456789"))] if ns else ""
    base = datetime.utcfromtimestamp(whole).strftime("%Y-%m-%dT%H:%M:%S")
    return base + (f".{ns}" if ns else "") + "Z"


def parse_line(line: bytes) -> LogEntry | None:
    """One k8s-file line (without its newline), or None if it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
        return None
    text = parts[3] if len(parts) == 4 else b""
    if parts[2] == b"F":
        text += b"\n"
    return LogEntry(_utc(parts[0].decode()), parts[1].decode(), text)


class LogReader:
    """Reads the entries of a log file from where it stopped; only complete lines."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self._rest = b""

    def read(self) -> list[LogEntry]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        return [e for e in map(parse_line, lines) if e is not None]


def select(entries: list[LogEntry], *, stdout: bool, stderr: bool, since: float = 0,
           until: float = 0, tail: int | None = None) -> Iterator[LogEntry]:
    """The entries docker logs shows for these options (``tail`` counts lines)."""
    chosen = [e for e in entries
              if (stdout if e.stream == STDOUT else stderr)
              and (not since or e.timestamp >= since) and (not until or e.timestamp <= until)]
    if tail is not None:
        chosen = chosen[-tail:] if tail > 0 else []
    return iter(chosen)


def log_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
