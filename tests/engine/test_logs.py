"""Logs in docker's json-file format on disk, rotated by max-size/max-file, served by
`docker logs` with its options, followed across rotations, and kept while sampand is down."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import subprocess
import time

import pytest

from sampan.engine import logs
from sampan.engine.errors import InvalidParameter
from sampan.engine.logs import (
    BACKLOG,
    CHUNK,
    JOURNAL,
    Follower,
    JsonFileWriter,
    JsonTail,
    LogEntry,
    LogOptions,
    Shipper,
    Snapshot,
    parse_log_config,
    parse_size,
)

from .conftest import DOCKER, Daemon, unique, until


def _numbers(text: str) -> list[int]:
    return [int(line) for line in text.split() if line.isdigit()]


def test_sizes_and_options() -> None:
    assert parse_size("10k") == 10_000
    assert parse_size("1m") == 1_000_000
    assert parse_size("2MB") == 2_000_000
    options = parse_log_config({"Type": "json-file", "Config": {"max-size": "1k",
                                                                "max-file": "3"}})
    assert options == LogOptions("json-file", 1000, 3)
    assert options.journal_limit == 256 * 1024 * 1024  # a guard for the disk, no less
    big = parse_log_config({"Config": {"max-size": "100m", "max-file": "3"}})
    assert big.journal_limit == 8 * 300_000_000
    for bad in ({"Type": "syslog"}, {"Config": {"max-size": "-1"}},
                {"Config": {"max-file": "0"}}, {"Config": {"bogus": "1"}}):
        with pytest.raises(InvalidParameter):
            parse_log_config(bad)


def test_writer_rotates_and_tail_follows(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "c-json.log")
    writer = JsonFileWriter(path, LogOptions(max_size=200, max_file=3))
    tail = JsonTail(path)
    seen: list[bytes] = []
    for i in range(100):
        writer.write([LogEntry("2024-01-01T00:00:00.000000001Z", "stdout", b"%d\n" % i)])
        if i % 3 == 0:  # rotations between two reads stay within max-file
            seen += [e.data for e in tail.read()]
    seen += [e.data for e in tail.read()]
    assert seen == [b"%d\n" % i for i in range(100)]  # nothing lost across rotations
    files = sorted(os.listdir(tmp_path))
    assert files == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert all(os.path.getsize(os.path.join(tmp_path, f)) < 260 for f in files)
    with open(path, "rb") as f:
        first = json.loads(f.readline())
    assert first["stream"] == "stdout" and first["time"].endswith("Z")


def test_compressed_rotation(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "c-json.log")
    options = parse_log_config({"Config": {"max-size": "300", "max-file": "3",
                                           "compress": "true"}})
    assert options.compress
    writer = JsonFileWriter(path, options)
    for i in range(60):
        writer.write([LogEntry("2024-01-01T00:00:00.000000001Z", "stderr", b"%d\n" % i)])
    writer.wait()
    assert sorted(os.listdir(tmp_path)) == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
    with gzip.open(path + ".1.gz") as f:
        assert json.loads(f.readline())["stream"] == "stderr"
    kept = [int(e.data) for e in JsonTail(path).read()]
    assert kept[-1] == 59 and kept == list(range(kept[0], 60))


def _read_all(path: str) -> list[bytes]:
    tail = JsonTail(path)
    out: list[bytes] = []
    while batch := tail.read():
        out.extend(e.data for e in batch)
    tail.close()
    return out


def test_compression_off_the_writer(tmp_path: os.PathLike[str]) -> None:
    """A compressed rotation does not wait for gzip (the writes run on sampand's event
    loop): the file is ``.1`` at once and ``.1.gz`` when the thread is done; readers see
    every entry once meanwhile."""
    path = os.path.join(tmp_path, "z-json.log")
    writer = JsonFileWriter(path, parse_log_config(
        {"Config": {"max-size": "8m", "max-file": "3", "compress": "true"}}))
    noise = base64.b64encode(os.urandom(6 * 1024 * 1024))  # gzip has work to do
    lines = [noise[i:i + 4000] + b"\n" for i in range(0, len(noise), 4000)]
    stamp = "2024-01-01T00:00:00.000000001Z"
    writer.write([LogEntry(stamp, "stdout", line) for line in lines])
    started = time.monotonic()
    writer.write([LogEntry(stamp, "stdout", b"after the rotation\n")])
    took = time.monotonic() - started
    assert os.path.exists(path + ".1") and not os.path.exists(path + ".1.gz")
    assert took < 0.2, took
    seen = _read_all(path)  # .1 while it is being compressed
    writer.wait()
    assert not os.path.exists(path + ".1") and os.path.exists(path + ".1.gz")
    after = _read_all(path)
    assert seen[-1] == after[-1] == b"after the rotation\n"
    assert len(after) == len(lines) + 1 and after[:-1] == lines


def _journal(directory: str, first: int, count: int, width: int) -> None:
    """Append lines ``first`` … to the journal as conmon writes it (k8s-file)."""
    with open(os.path.join(directory, JOURNAL), "ab") as f:
        for i in range(first, first + count):
            f.write(b"2024-01-01T00:00:00.000000001Z stdout F %d %s\n" % (i, b"x" * width))


def test_snapshot_is_what_was_there(tmp_path: os.PathLike[str]) -> None:
    """A snapshot reads the set as it was, in chunks, whatever is written or rotated
    while it is read."""
    path = os.path.join(tmp_path, "c-json.log")
    writer = JsonFileWriter(path, LogOptions(max_size=50_000, max_file=3))
    line = b"y" * 1000
    for i in range(120):
        writer.write([LogEntry("2024-01-01T00:00:00.000000001Z", "stdout", b"%d %s\n" % (i, line))])
    snapshot = Snapshot(path)
    try:
        batches = snapshot.batches()
        got = [int(e.data.split()[0]) for e in next(batches)]
        for i in range(120, 300):  # rotates the files away under the reader
            writer.write([LogEntry("2024-01-01T00:00:00.000000001Z", "stdout",
                                   b"%d %s\n" % (i, line))])
        sizes = [len(got)]
        for batch in batches:
            sizes.append(len(batch))
            got += [int(e.data.split()[0]) for e in batch]
    finally:
        snapshot.close()
    assert got == list(range(got[0], 120)) and got[0] < 30  # max-size 50k x 3 files
    assert max(sizes) * 1000 <= CHUNK + 1000  # read a chunk at a time


@pytest.mark.parametrize(("compress", "chunk"), [("false", CHUNK), ("true", CHUNK),
                                                 ("false", 64)])
def test_snapshot_tail_reads_backwards(tmp_path: os.PathLike[str], compress: str,
                                       chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last n chosen entries, across rotated (or gzipped) files, a line still being
    written at the end left out, as reading everything would give them; also read in
    chunks smaller than a line."""
    monkeypatch.setattr(logs, "CHUNK", chunk)
    path = os.path.join(tmp_path, "c-json.log")
    writer = JsonFileWriter(path, parse_log_config(
        {"Config": {"max-size": "30k", "max-file": "4", "compress": compress}}))
    for i in range(600):
        data = b"%d %s\n" % (i, b"z" * (i % 7 * 50))
        writer.write([LogEntry("2024-01-01T00:00:00.000000001Z",
                               "stderr" if i % 3 else "stdout", data)])
    writer.wait()  # a rotation's gzip runs in a thread of its own
    with open(path, "ab") as f:
        f.write(b'{"log":"partial')
    assert len(os.listdir(tmp_path)) == 4

    def chosen(e: LogEntry) -> bool:
        return e.stream == "stderr"

    snapshot = Snapshot(path)
    try:
        every = [int(e.data.split()[0]) for b in snapshot.batches() for e in b if chosen(e)]
        for n in (0, 1, 2, 5, 37, len(every), len(every) + 5):
            index, offset, skip = snapshot.tail_start(n, chosen)
            got = [int(e.data.split()[0]) for b in snapshot.batches((index, offset))
                   for e in b if chosen(e)][skip:]
            assert got == (every[-n:] if n else []), n
    finally:
        snapshot.close()


def test_follower_behind_reads_on_from_the_files(tmp_path: os.PathLike[str]) -> None:
    """A follower that does not read while a flood is shipped holds at most about
    BACKLOG, then goes on from the files: it still gets every line, in order, once."""
    directory = str(tmp_path)
    path = os.path.join(directory, "c-json.log")
    shipper = Shipper(directory, path, LogOptions(max_size=20_000_000, max_file=2))
    follower = Follower(shipper)
    width = 4000
    total = 2 * BACKLOG // width
    try:
        _journal(directory, 0, total, width)
        shipper.ship()
        held = sum(len(e.data) for e in follower._pending)
        assert held <= BACKLOG + (1 << 20)  # one shipped batch past it at most
        assert follower._files is not None and not shipper.listeners
        _journal(directory, total, 100, width)
        shipper.ship()
        got: list[int] = []
        while batch := follower.read():
            got += [int(e.data.split()[0]) for e in batch]
        assert got == list(range(total + 100))
    finally:
        follower.close()
        shipper.close()
    assert not shipper.listeners


def test_json_file_on_disk_and_logs_options(daemon: Daemon) -> None:
    name = unique("l")
    daemon.ok("run", "--name", name, "busybox", "sh", "-c",
              "echo out1; echo err1 >&2; sleep 1.2; echo out2; echo err2 >&2")
    try:
        path = daemon.ok("inspect", "--format", "{{.LogPath}}", name).strip()
        cid = daemon.ok("inspect", "--format", "{{.Id}}", name).strip()
        assert path.endswith(f"/{cid}/{cid}-json.log")
        with open(path) as f:
            lines = [json.loads(line) for line in f]
        assert [(e["stream"], e["log"]) for e in lines] == [
            ("stdout", "out1\n"), ("stderr", "err1\n"), ("stdout", "out2\n"),
            ("stderr", "err2\n")]
        assert all(e["time"].endswith("Z") for e in lines)
        both = daemon.docker("logs", name)
        assert both.stdout == "out1\nout2\n" and both.stderr == "err1\nerr2\n"
        tail = daemon.docker("logs", "--tail", "2", name)
        assert tail.stdout == "out2\n" and tail.stderr == "err2\n"
        stamped = daemon.ok("logs", "-t", name).splitlines()
        assert stamped[0].split(" ", 1)[1] == "out1" and stamped[0][:4].isdigit()
        middle = lines[1]["time"]
        later = daemon.docker("logs", "--since", lines[2]["time"], name)
        assert later.stdout == "out2\n"
        earlier = daemon.docker("logs", "--until", middle, name)
        assert earlier.stdout == "out1\n" and earlier.stderr == "err1\n"
        with daemon.http() as http:
            r = http.get(f"/containers/{name}/logs", params={"stderr": "1"})
            assert r.status_code == 200
            assert b"err1" in r.content and b"out1" not in r.content
    finally:
        daemon.ok("rm", "-f", name)


def test_rotation_by_max_size_and_max_file(daemon: Daemon) -> None:
    name = unique("l")
    daemon.ok("run", "--name", name, "--log-opt", "max-size=2k", "--log-opt", "max-file=3",
              "busybox", "sh", "-c", "i=1; while [ $i -le 400 ]; do echo $i; i=$((i+1)); done")
    try:
        path = daemon.ok("inspect", "--format", "{{.LogPath}}", name).strip()
        directory = os.path.dirname(path)
        rotated = sorted(f for f in os.listdir(directory) if f.startswith(os.path.basename(path)))
        assert rotated == [os.path.basename(path) + s for s in ("", ".1", ".2")]
        for f in rotated:
            assert os.path.getsize(os.path.join(directory, f)) < 2200
        kept = _numbers(daemon.ok("logs", name))
        assert kept[-1] == 400 and kept == list(range(kept[0], 401)) and kept[0] > 1
        opts = json.loads(daemon.ok("inspect", "--format", "{{json .HostConfig.LogConfig}}",
                                    name))
        assert opts == {"Type": "json-file", "Config": {"max-size": "2k", "max-file": "3"}}
    finally:
        daemon.ok("rm", "-f", name)


def test_follow_across_rotations(daemon: Daemon) -> None:
    name = unique("l")
    daemon.ok("run", "-d", "--name", name, "--log-opt", "max-size=1k", "--log-opt",
              "max-file=2", "busybox", "sh", "-c",
              "sleep 1; i=1; while [ $i -le 300 ]; do echo $i; i=$((i+1)); "
              "[ $((i % 20)) = 0 ] && sleep 0.1; done")
    try:
        assert DOCKER is not None
        follow = subprocess.run([DOCKER, "logs", "-f", name], capture_output=True, text=True,
                                timeout=60, env=daemon.env)
        got = _numbers(follow.stdout)
        assert got == list(range(1, 301))  # every line, in order, though files rotated
    finally:
        daemon.ok("rm", "-f", name)


def test_shipped_journal_is_punched(tmp_path: os.PathLike[str]) -> None:
    """What the shipper has shipped takes no disk in the journal (conmon's offsets and
    appends unaffected), so its bound only matters while sampand is down."""
    directory = str(tmp_path)
    _journal(directory, 0, 30000, 100)
    journal = os.path.join(directory, JOURNAL)
    before = os.stat(journal)
    shipper = Shipper(directory, os.path.join(directory, "p-json.log"), LogOptions())
    assert shipper.ship() == 30000
    _journal(directory, 30000, 10, 100)  # conmon appends on at its offset
    assert shipper.ship() == 10
    after = os.stat(journal)
    assert after.st_size > before.st_size  # same file, same offsets
    assert after.st_blocks * 512 < before.st_blocks * 512 // 2  # the shipped part freed
    shipper.close()
    numbers = [int(e.data.split()[0]) for e in Snapshot(os.path.join(
        directory, "p-json.log")).batches().__next__()]
    assert numbers[:3] == [0, 1, 2]


def test_logs_written_while_down_beyond_the_json_file_size(daemon: Daemon) -> None:
    """A container that logs more than max-size x max-file while sampand is down: the
    json-file set still gets the newest of it, as if sampand had been there (conmon used
    to replace its journal at about 1 MB here, leaving only what followed)."""
    name = unique("l")
    daemon.ok("run", "-d", "--name", name, "--log-opt", "max-size=100k", "--log-opt",
              "max-file=3", "busybox", "sh", "-c",
              "echo started; while [ ! -e /go ]; do sleep 0.1; done; i=1; "
              "while [ $i -le 7200 ]; do echo \"$i $(printf '%0100d' 0)\"; i=$((i+1)); "
              "done; sleep 600")
    try:
        until(lambda: "started" in daemon.ok("logs", name))
        pid = int(daemon.ok("inspect", "-f", "{{.State.Pid}}", name))
        log_path = daemon.ok("inspect", "-f", "{{.LogPath}}", name).strip()
        daemon.stop(signal.SIGKILL)
        with open(f"/proc/{pid}/root/go", "w"):
            pass  # the container logs 1.1 MB (journal) now, sampand away
        time.sleep(3.0)
        daemon.start()

        def lines() -> list[int]:
            out = daemon.ok("logs", name).splitlines()
            return [int(line.split()[0]) for line in out if line.split()[0].isdigit()]

        until(lambda: lines()[-1:] == [7200], timeout=60)
        numbers = lines()
        assert numbers == list(range(numbers[0], 7201))  # the newest, without a gap
        kept = sum(os.path.getsize(p) for p in logs.log_files(log_path))
        assert kept >= 200_000, kept  # two full rotated files at least
    finally:
        daemon.ok("rm", "-f", name)


def test_logs_kept_while_sampand_is_down(daemon: Daemon) -> None:
    name = unique("l")
    daemon.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "i=1; while [ $i -le 40 ]; do echo $i; i=$((i+1)); sleep 0.1; done; sleep 600")
    try:
        until(lambda: 3 in _numbers(daemon.ok("logs", name)))
        daemon.stop(signal.SIGKILL)
        time.sleep(2.0)
        daemon.start()
        until(lambda: 40 in _numbers(daemon.ok("logs", name)))
        assert _numbers(daemon.ok("logs", name)) == list(range(1, 41))
        # and once more across a clean restart of sampand
        daemon.stop()
        daemon.start()
        assert _numbers(daemon.ok("logs", name)) == list(range(1, 41))
    finally:
        daemon.ok("rm", "-f", name)


def test_none_driver(daemon: Daemon) -> None:
    name = unique("l")
    daemon.ok("run", "--name", name, "--log-driver", "none", "busybox", "echo", "hi")
    try:
        assert daemon.ok("inspect", "--format", "{{.LogPath}}", name).strip() == ""
        result = daemon.docker("logs", name)
        assert result.returncode != 0
        assert "does not support reading" in result.stderr
    finally:
        daemon.ok("rm", "-f", name)
