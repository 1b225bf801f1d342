"""Container logs in docker's json-file format, with its size-based rotation.

Design: conmon cannot write json-file (its drivers are k8s-file, journald, passthrough and
none) and rotates a k8s-file only by replacing it, keeping one file and losing the rest.
So conmon writes a k8s-file *journal* (``<dir>/journal.log``: ``<time> <stream> <F|P>
<text>`` lines) and sampand ships it into ``<dir>/<id>-json.log`` as dockerd's json-file
driver writes it (``{"log":…,"stream":…,"time":…}`` a line, rotated into ``.1`` … ``.N-1``
by max-size and max-file, gzipped as ``.1.gz`` … with compress). Why this split:

- containers keep logging while sampand is down: conmon writes the journal on its own
  (conmon costs about 2 MB; a second writer process per container would cost more);
- nothing is lost across sampand's restart: the shipper records how far it got (inode and
  offset, in ``journal.pos``) and a restarted sampand resumes there;
- conmon rotates a k8s-file by replacing it, which drops everything in it: had its
  bound been max-size times max-file, a container logging more than that while sampand
  is down would be left with only what followed the replacement, less than json-file
  keeps. So the bound (``--log-size-max``) is only a guard for the disk while sampand is
  down: ``JOURNAL_DOWN_FACTOR`` times what json-file keeps, at least ``JOURNAL_CAP``;
  up to there, everything written meanwhile is shipped on restart and json-file keeps
  its newest part, as if it had been written live. While sampand runs, what it has
  shipped is punched out of the journal (``fallocate`` PUNCH_HOLE: the file keeps its
  offsets, conmon appends on, the blocks are freed), so the journal holds only what is
  not shipped yet; a replacement while sampand runs loses nothing either (it keeps the
  journal open and drains the replaced file first);
- the journal of a finished run is shipped and removed before the next start.

``logs`` reads the json-file set (rotated files oldest first), so it shows exactly what is
on disk, as dockerd does; ``follow`` then takes the entries from the shipper as it writes
them, so rotations cannot make it miss any. Every path reads in ``CHUNK``s and waits for
the client between them, and a follower more than ``BACKLOG`` behind reads on from the
files: a log flood or a slow client never makes sampand hold the log in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import InvalidParameter

STDOUT, STDERR = "stdout", "stderr"
JOURNAL = "journal.log"
POSITION = "journal.pos"
JOURNAL_CAP = 256 * 1024 * 1024  # the least a container may log while sampand is down
JOURNAL_DOWN_FACTOR = 8  # … or this many times what json-file keeps
PUNCH_EVERY = 1024 * 1024  # shipped bytes freed from the journal in steps of this
SHIP_INTERVAL = 0.2
CHUNK = 256 * 1024  # read at most this much at once: memory stays bounded
BACKLOG = 4 * 1024 * 1024  # a follower this far behind reads on from the files
DRIVERS = ("json-file", "none")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LogEntry:
    time: str  # RFC 3339 with nanoseconds, in UTC ("…Z")
    stream: str  # STDOUT or STDERR
    data: bytes  # a full line keeps its newline

    @property
    def timestamp(self) -> float:
        return parse_time(self.time)

    def json_line(self) -> bytes:
        text = self.data.decode("utf-8", errors="replace")
        return json.dumps({"log": text, "stream": self.stream, "time": self.time},
                          ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True)
class LogOptions:
    """HostConfig.LogConfig: the driver and json-file's max-size and max-file."""

    driver: str = "json-file"
    max_size: int = 0  # bytes; 0: no rotation
    max_file: int = 1
    compress: bool = False  # rotated files gzipped (``.1.gz``)

    @property
    def journal_limit(self) -> int:
        """conmon's --log-size-max: a guard for the disk while sampand is down (see the
        module's docstring)."""
        if not self.max_size:
            return JOURNAL_CAP
        return max(self.max_size * self.max_file * JOURNAL_DOWN_FACTOR, JOURNAL_CAP)


def parse_size(text: str) -> int:
    """docker's units.FromHumanSize: decimal multiples (10k = 10000)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(text)
    power = " kmgtp".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * 1000 ** power)


def parse_log_config(raw: Any) -> LogOptions:
    """The LogConfig of a create or update, checked as dockerd's json-file driver does."""
    if raw is None:
        return LogOptions()
    if not isinstance(raw, dict):
        raise InvalidParameter("HostConfig.LogConfig: expected an object")
    driver = raw.get("Type") or "json-file"
    config = raw.get("Config") or {}
    if driver not in DRIVERS:
        raise InvalidParameter(f"HostConfig.LogConfig.Type: logger: no log driver named "
                               f"'{driver}' is registered")
    if not isinstance(config, dict):
        raise InvalidParameter("HostConfig.LogConfig.Config: expected an object")
    known = ("max-size", "max-file", "compress", "labels", "labels-regex", "env",
             "env-regex", "tag", "mode", "max-buffer-size") if driver == "json-file" else ()
    for key, value in config.items():
        if key not in known:
            raise InvalidParameter(f"unknown log opt '{key}' for {driver} log driver")
        if not isinstance(value, str):
            raise InvalidParameter(f"HostConfig.LogConfig.Config.{key}: expected string")
    if config.get("compress") not in (None, "", "true", "false", "1", "0"):
        raise InvalidParameter(f"HostConfig.LogConfig.Config.compress: "
                               f"{config['compress']!r} is not a boolean")
    max_size = 0
    if config.get("max-size"):
        try:
            max_size = parse_size(config["max-size"])
        except ValueError:
            raise InvalidParameter(f"invalid size: '{config['max-size']}'") from None
        if max_size <= 0:
            raise InvalidParameter("max-size must be a positive number")
    max_file = 1
    if config.get("max-file"):
        try:
            max_file = int(config["max-file"])
        except ValueError:
            raise InvalidParameter(f"max-file: invalid number: {config['max-file']!r}") \
                from None
        if max_file < 1:
            raise InvalidParameter("max-file cannot be less than 1")
        if max_file > 1 and not max_size:
            raise InvalidParameter("max-file cannot be set when max-size is not set")
    return LogOptions(driver, max_size, max_file, config.get("compress") in ("true", "1"))


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


def parse_json_line(line: bytes) -> LogEntry | None:
    """One json-file line (without its newline), or None if it is not one."""
    try:
        item = json.loads(line)
        return LogEntry(item["time"], item["stream"], item["log"].encode())
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# Writing ----------------------------------------------------------------------------------

class JsonFileWriter:
    """Appends entries to ``path``, rotating as dockerd's json-file does: before a write,
    a file at max-size or more moves to ``.1`` (``.1`` to ``.2`` …, the oldest dropped);
    with max-file 1 it is truncated instead.

    With compress the rotated file is renamed to ``.1`` at once and gzipped to ``.1.gz``
    by a thread, as dockerd compresses in a goroutine: the writes (made on the event
    loop) never wait for gzip, except a rotation that comes before the previous
    compression is done. Readers take ``.1`` over ``.1.gz`` while both exist."""

    def __init__(self, path: str, options: LogOptions) -> None:
        self.path = path
        self.options = options
        self._compressing: threading.Thread | None = None

    def wait(self) -> None:
        """Until the rotated file being compressed is ``.1.gz``."""
        if self._compressing is not None:
            self._compressing.join()
            self._compressing = None

    def write(self, entries: list[LogEntry]) -> None:
        if not entries:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            size = os.fstat(fd).st_size
            batch: list[bytes] = []  # joined once per write: no quadratic copying
            for entry in entries:
                if self.options.max_size and size >= self.options.max_size:
                    _write_all(fd, batch)
                    batch = []
                    os.close(fd)
                    fd = -1
                    self.rotate()
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                 | os.O_CLOEXEC, 0o640)
                    size = 0
                line = entry.json_line()
                batch.append(line)
                size += len(line)
            _write_all(fd, batch)
        finally:
            if fd >= 0:
                os.close(fd)

    def rotate(self) -> None:
        keep = self.options.max_file
        if keep <= 1:
            with suppress(FileNotFoundError):
                os.truncate(self.path, 0)
            return
        suffix = ".gz" if self.options.compress else ""
        if self.options.compress:
            self.wait()
            if os.path.exists(f"{self.path}.1"):  # left by a sampand that stopped meanwhile
                _gzip(f"{self.path}.1")
        for name in (f"{self.path}.{keep - 1}", f"{self.path}.{keep - 1}.gz"):
            with suppress(FileNotFoundError):
                os.unlink(name)
        for n in range(keep - 2, 0, -1):
            with suppress(FileNotFoundError):
                os.rename(f"{self.path}.{n}{suffix}", f"{self.path}.{n + 1}{suffix}")
        with suppress(FileNotFoundError):
            os.rename(self.path, f"{self.path}.1")
        if self.options.compress and os.path.exists(f"{self.path}.1"):
            # not a daemon thread: a stopping sampand finishes the file it started
            self._compressing = threading.Thread(target=_gzip, args=(f"{self.path}.1",),
                                                 name="log-gzip")
            self._compressing.start()


def _gzip(name: str) -> None:
    """``name`` to ``name.gz`` (written aside, then renamed; ``name`` removed after)."""
    import gzip
    import shutil

    tmp = f"{name}.gz.tmp"
    try:
        with open(name, "rb") as src, gzip.open(tmp, "wb") as dest:
            shutil.copyfileobj(src, dest, CHUNK)
        os.rename(tmp, f"{name}.gz")
        os.unlink(name)
    except OSError:
        with suppress(OSError):
            os.unlink(tmp)


_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 1, 2


def punch_hole(fd: int, offset: int, length: int) -> None:
    """fallocate(2) PUNCH_HOLE | KEEP_SIZE: the range reads as zeros and takes no disk."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    if libc.fallocate(fd, _FALLOC_FL_KEEP_SIZE | _FALLOC_FL_PUNCH_HOLE, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _write_all(fd: int, parts: list[bytes]) -> None:
    data = memoryview(b"".join(parts))
    while data:
        data = data[os.write(fd, data):]


class Shipper:
    """Moves what conmon wrote to the journal into the json-file log, exactly once per line
    as long as the position file is written (at least once if sampand dies in between)."""

    def __init__(self, directory: str, json_path: str, options: LogOptions) -> None:
        self.journal = os.path.join(directory, JOURNAL)
        self.position = os.path.join(directory, POSITION)
        self.writer = JsonFileWriter(json_path, options)
        # followers (``logs -f``) get the entries as they are written, so none is missed
        # however fast the files rotate
        self.listeners: set[Callable[[list[LogEntry]], None]] = set()
        self._fd = -1
        self._ino = 0
        self._offset = 0
        self._punched = 0  # the journal's bytes before this are freed
        self._load()

    def _load(self) -> None:
        try:
            with open(self.position) as f:
                pos = json.load(f)
            self._ino, self._offset = int(pos["ino"]), int(pos["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            self._ino, self._offset = 0, 0

    def _save(self) -> None:
        tmp = self.position + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"ino": self._ino, "offset": self._offset}, f)
        os.rename(tmp, self.position)

    def _open(self) -> bool:
        """Open the journal now at its path (a different file: start from its top)."""
        try:  # writable: for the punching of what is shipped
            fd = os.open(self.journal, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        ino = os.fstat(fd).st_ino
        if ino != self._ino:
            self._ino, self._offset = ino, 0
        self._fd = fd
        self._punched = 0
        return True

    def _punch(self) -> None:
        """Free the journal's blocks that are shipped (offsets and conmon's appends are
        unaffected); a filesystem that cannot is left as it is."""
        end = self._offset - self._offset % 4096
        if end - self._punched < PUNCH_EVERY:
            return
        with suppress(OSError):
            punch_hole(self._fd, self._punched, end - self._punched)
        self._punched = end

    def _drain(self) -> int:
        """Ship the complete lines past our offset in the open journal."""
        shipped = 0
        while True:
            data = os.pread(self._fd, 1 << 20, self._offset)
            end = data.rfind(b"\n") + 1
            if not end:
                return shipped
            entries = [e for e in map(parse_line, data[:end].split(b"\n")[:-1])
                       if e is not None]
            self.writer.write(entries)
            for listener in list(self.listeners):
                listener(entries)
            self._offset += end
            shipped += len(entries)
            self._save()
            self._punch()

    def ship(self) -> int:
        """Ship everything written so far; the number of entries shipped."""
        if self._fd < 0 and not self._open():
            return 0
        shipped = self._drain()
        try:
            now = os.stat(self.journal).st_ino
        except FileNotFoundError:
            now = 0
        if now and now != self._ino:  # conmon replaced the journal: ours is complete
            shipped += self._drain()
            self.close()
            if self._open():
                shipped += self._drain()
        return shipped

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def reset(self) -> None:
        """Before a new run: everything is shipped; start the journal afresh."""
        self.ship()
        self.close()
        for path in (self.journal, self.position):
            with suppress(FileNotFoundError):
                os.unlink(path)
        self._ino = self._offset = 0


class Shippers:
    """One shipper per container; a task per running container ships it every
    ``SHIP_INTERVAL``."""

    def __init__(self) -> None:
        self._shippers: dict[str, Shipper] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def get(self, container_id: str, directory: str, json_path: str,
            options: LogOptions) -> Shipper:
        shipper = self._shippers.get(container_id)
        if shipper is None or shipper.writer.options != options:
            if shipper is not None:
                shipper.close()
            shipper = Shipper(directory, json_path, options)
            self._shippers[container_id] = shipper
        return shipper

    def follow(self, container_id: str, shipper: Shipper) -> None:
        if container_id in self._tasks:
            return

        async def run() -> None:
            while True:
                await asyncio.sleep(SHIP_INTERVAL)
                with suppress(OSError):
                    shipper.ship()

        self._tasks[container_id] = asyncio.get_running_loop().create_task(run())

    def stop(self, container_id: str) -> None:
        task = self._tasks.pop(container_id, None)
        if task is not None:
            task.cancel()

    def drop(self, container_id: str) -> None:
        self.stop(container_id)
        shipper = self._shippers.pop(container_id, None)
        if shipper is not None:
            shipper.close()

    def close(self) -> None:
        for container_id in list(self._shippers):
            self.drop(container_id)


# Reading ----------------------------------------------------------------------------------

def log_files(path: str) -> list[str]:
    """The json-file set, oldest first: ``path.N`` … ``path.1`` (or ``path.N.gz`` …),
    ``path``."""
    rotated = []
    n = 1
    while True:
        name = next((f"{path}.{n}{s}" for s in ("", ".gz") if os.path.exists(f"{path}.{n}{s}")),
                    None)
        if name is None:
            break
        rotated.append(name)
        n += 1
    return [*reversed(rotated), path]


class JsonTail:
    """Reads a json-file log set from its start and then follows it, across rotations: the
    file it holds open is read to its end, then the rotated files it has not read yet
    (oldest first), then the new current file. Each ``read`` takes at most ``CHUNK`` bytes
    from disk, so a flood is streamed, never held whole."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: set[int] = set()  # inodes of the files read to their end
        self._queue: list[Any] = []  # rotated files opened, not yet read to their end
        self._fd = -1
        self._offset = 0
        self._rest = b""

    @classmethod
    def at_end(cls, path: str) -> JsonTail:
        """A reader of what is written from now on."""
        tail = cls(path)
        tail._seen = {ino for ino in map(_inode, log_files(path)[:-1]) if ino}
        with suppress(FileNotFoundError):
            tail._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            tail._offset = os.fstat(tail._fd).st_size
        return tail

    def read(self) -> list[LogEntry]:
        """The next entries, read from about ``CHUNK`` bytes (all written so far unless it
        is more); [] once everything written so far has been read."""
        entries: list[LogEntry] = []
        taken = 0
        while (taken < CHUNK or not entries) and (data := self._next_chunk()) is not None:
            taken += len(data)
            entries += self._parse(data)
        return entries

    def _next_chunk(self) -> bytes | None:
        while True:
            if self._queue:
                data = self._queue[0].read(CHUNK)
                if data:
                    return bytes(data)
                self._queue.pop(0).close()
                continue
            if self._fd < 0:
                rotated = [(f, _inode(f)) for f in log_files(self.path)[:-1]]
                self._seen &= {ino for _, ino in rotated}  # a freed inode may come back
                for name, ino in rotated:
                    if ino and ino not in self._seen:
                        with suppress(FileNotFoundError):
                            self._queue.append(_open_log(name))
                        self._seen.add(ino)
                try:
                    self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                    self._offset = 0
                except FileNotFoundError:
                    if self._queue:
                        continue
                    return None
                if self._queue:
                    continue
            chunk = os.pread(self._fd, CHUNK, self._offset)
            if chunk:
                self._offset += len(chunk)
                return chunk
            held = os.fstat(self._fd)
            try:
                moved = os.stat(self.path).st_ino != held.st_ino
            except FileNotFoundError:
                moved = False
            if moved:  # rotated: ours is complete; what was rotated after it comes next
                self._seen.add(held.st_ino)
                os.close(self._fd)
                self._fd = -1
                continue
            if held.st_size < self._offset:  # truncated (max-file 1): start again at its top
                self._offset = 0
            return None

    def _parse(self, data: bytes) -> list[LogEntry]:
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        return [e for e in map(parse_json_line, lines) if e is not None]

    def close(self) -> None:
        while self._queue:
            self._queue.pop().close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open_log(name: str) -> Any:
    """A rotated file, opened to be read in chunks (gunzipped as it is read)."""
    if name.endswith(".gz"):
        import gzip

        return gzip.open(name, "rb")
    return open(name, "rb")  # closed by its reader


class Snapshot:
    """The json-file set as it is at one instant: every file is held open and read up to
    its size then, so rotations and new lines while a slow client reads do not disturb
    (or lengthen) what it gets. Read as often as needed (``tail`` counts first)."""

    def __init__(self, path: str) -> None:
        self._files: list[tuple[int, bool, int]] = []  # fd, gzipped, size
        try:
            for name in log_files(path):
                with suppress(FileNotFoundError):
                    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
                    self._files.append((fd, name.endswith(".gz"), os.fstat(fd).st_size))
        except BaseException:
            self.close()
            raise

    def batches(self, start: tuple[int, int] = (0, 0)) -> Iterator[list[LogEntry]]:
        """The entries, oldest first, in lists parsed from at most ``CHUNK`` bytes each;
        from ``start`` (the index of a file and an offset in it, from ``tail_start``)."""
        for index in range(start[0], len(self._files)):
            yield from self._file_batches(index, start[1] if index == start[0] else 0)

    def _file_batches(self, index: int, offset: int) -> Iterator[list[LogEntry]]:
        fd, gzipped, size = self._files[index]
        rest = b""
        for data in (_gunzip_chunks(fd) if gzipped else _chunks(fd, size, offset)):
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            yield [e for e in map(parse_json_line, lines) if e is not None]

    def tail_start(self, count: int, chosen: Callable[[LogEntry], bool],
                   ) -> tuple[int, int, int]:
        """Where the last ``count`` chosen entries begin, found reading backwards as
        dockerd does (gzipped files are counted forwards): the ``start`` of ``batches``
        and how many chosen entries to skip from there."""
        if count <= 0:
            return len(self._files), 0, 0
        for index in reversed(range(len(self._files))):
            fd, gzipped, size = self._files[index]
            if gzipped:
                here = sum(sum(1 for e in batch if chosen(e))
                           for batch in self._file_batches(index, 0))
                if here >= count:
                    return index, 0, here - count
                count -= here
                continue
            for offset, line in _lines_backward(fd, size):
                entry = parse_json_line(line)
                if entry is not None and chosen(entry):
                    count -= 1
                    if not count:
                        return index, offset, 0
        return 0, 0, 0

    def close(self) -> None:
        while self._files:
            os.close(self._files.pop()[0])


def _chunks(fd: int, size: int, offset: int = 0) -> Iterator[bytes]:
    while offset < size and (data := os.pread(fd, min(CHUNK, size - offset), offset)):
        offset += len(data)
        yield data


def _lines_backward(fd: int, size: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of the complete lines of a file up to ``size``, the last first, read
    backwards a chunk at a time (a chunk grows only to hold a longer line)."""
    end, span, last = size, CHUNK, True
    while end > 0:
        start = max(0, end - span)
        block = os.pread(fd, end - start, start)
        if last:  # what follows the last newline is a line still being written
            cut = block.rfind(b"\n") + 1
            if not cut and start:
                span *= 2
                continue
            end, block, last = start + cut, block[:cut], False
        # block ends a line; its first line may start earlier: not one whole line in it?
        cut = block.find(b"\n") + 1 if start else 0
        if start and cut == len(block):
            span *= 2
            continue
        offset = end
        for line in reversed(block[cut:].split(b"\n")[:-1]):
            offset -= len(line) + 1
            yield offset, line
        end, span = start + cut, CHUNK


def _gunzip_chunks(fd: int) -> Iterator[bytes]:
    import gzip

    with os.fdopen(os.dup(fd), "rb") as raw:
        raw.seek(0)
        with gzip.GzipFile(fileobj=raw, mode="rb") as g:
            while data := g.read(CHUNK):
                yield data


class Follower:
    """What ``logs -f`` sends after its snapshot: the entries the shipper writes from now
    on, handed over as written (none missed however fast the files rotate) while the
    client keeps up. A client that falls ``BACKLOG`` behind reads on from the files
    instead, as dockerd's followers do, so a slow client cannot grow the engine."""

    def __init__(self, shipper: Shipper) -> None:
        self._shipper = shipper
        self._pending: deque[LogEntry] = deque()
        self._size = 0
        self._files: JsonTail | None = None
        shipper.listeners.add(self._take)

    def _take(self, entries: list[LogEntry]) -> None:
        self._pending.extend(entries)
        self._size += sum(len(e.data) for e in entries)
        if self._size > BACKLOG:  # called right after the write: the files go on from here
            self._shipper.listeners.discard(self._take)
            self._files = JsonTail.at_end(self._shipper.writer.path)

    def read(self) -> list[LogEntry]:
        """The next entries (at most about ``CHUNK`` bytes); [] when caught up."""
        if self._pending:
            batch: list[LogEntry] = []
            taken = 0
            while self._pending and taken < CHUNK:
                entry = self._pending.popleft()
                batch.append(entry)
                taken += len(entry.data)
            self._size -= taken
            return batch
        return self._files.read() if self._files is not None else []

    def close(self) -> None:
        self._shipper.listeners.discard(self._take)
        if self._files is not None:
            self._files.close()


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return 0


def wanted(entry: LogEntry, *, stdout: bool, stderr: bool, since: float = 0,
           until: float = 0) -> bool:
    """Whether docker logs shows ``entry`` for these options."""
    return ((stdout if entry.stream == STDOUT else stderr)
            and (not since or entry.timestamp >= since)
            and (not until or entry.timestamp <= until))


def log_size(path: str) -> int:
    return sum(os.stat(p).st_size for p in log_files(path) if os.path.exists(p))
