"""Exec sessions and terminals: docker exec (attached, -i, -d, -u/-w/-e, -it through a
pty), docker run -it, and docker-py's exec_run."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import DOCKER, Daemon


@pytest.fixture
def running(daemon: Daemon) -> Iterator[str]:
    name = "t-" + uuid.uuid4().hex[:10]
    daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    yield name
    daemon.ok("rm", "-f", name)


def test_exec_output_and_exit_code(daemon: Daemon, running: str) -> None:
    result = daemon.docker("exec", running, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 4)


def test_exec_events(daemon: Daemon, running: str) -> None:
    """Every exec is in the events as dockerd's: exec_create: <cmd>, exec_start: <cmd>,
    exec_die with its execID and exitCode."""
    since = str(time.time() - 1)
    daemon.docker("exec", running, "sh", "-c", "exit 7")
    until = str(time.time() + 1)
    out = daemon.ok("events", "--since", since, "--until", until, "--format", "{{json .}}",
                    "--filter", f"container={running}")
    seen = [json.loads(line) for line in out.splitlines()]
    seen = [e for e in seen if e["Action"].startswith("exec_")]
    assert [e["Action"] for e in seen] == ["exec_create: sh -c exit 7",
                                           "exec_start: sh -c exit 7", "exec_die"]
    ids = {e["Actor"]["Attributes"]["execID"] for e in seen}
    assert len(ids) == 1 and len(ids.pop()) == 64
    assert seen[2]["Actor"]["Attributes"]["exitCode"] == "7"
    assert seen[2]["Actor"]["Attributes"]["name"] == running


def test_exec_stdin_detached_and_options(daemon: Daemon, running: str) -> None:
    assert daemon.ok("exec", "-i", running, "cat", input="piped\n") == "piped\n"
    daemon.ok("exec", "-d", running, "sh", "-c", "echo later > /tmp/mark")
    deadline = time.monotonic() + 10
    while daemon.docker("exec", running, "test", "-f", "/tmp/mark").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    out = daemon.ok("exec", "-u", "1000", "-w", "/tmp", "-e", "X=y", running, "sh", "-c",
                    "cat mark; id -u; pwd; echo $X")
    assert out == "later\n1000\n/tmp\ny\n"


def test_exec_unknown_and_stopped(daemon: Daemon) -> None:
    with daemon.http() as http:
        assert http.post("/v1.45/containers/nope/exec",
                         json={"Cmd": ["true"]}).status_code == 404
        assert http.get("/v1.45/exec/nope/json").status_code == 404
    name = "t-" + uuid.uuid4().hex[:10]
    daemon.ok("create", "--name", name, "busybox", "true")
    try:
        refused = daemon.docker("exec", name, "true")
        assert refused.returncode != 0 and "is not running" in refused.stderr
    finally:
        daemon.ok("rm", name)


def _in_pty(daemon: Daemon, args: list[str], script: list[bytes],
            rows: int = 30, cols: int = 100) -> tuple[bytes, int]:
    """Run the docker CLI on a pty of ``rows`` by ``cols``, typing ``script`` line by line."""
    assert DOCKER is not None
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of our size, then the CLI
        os.system(f"stty rows {rows} cols {cols}")
        os.execve(DOCKER, [DOCKER, *args], daemon.env)
    output = b""
    deadline = time.monotonic() + 30
    pending = list(script)
    last_input = time.monotonic()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if pending and time.monotonic() - last_input > 0.7:
            os.write(fd, pending.pop(0))
            last_input = time.monotonic()
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return output, os.waitstatus_to_exitcode(status)


def test_exec_it_through_pty(daemon: Daemon, running: str) -> None:
    output, code = _in_pty(daemon, ["exec", "-it", running, "sh"],
                           [b"tty; echo sum=$((40+2))\n", b"stty size; exit 3\n"])
    text = output.decode(errors="replace").replace("\r", "")
    assert "/dev/pts/" in text and "sum=42" in text
    assert "30 100" in text
    assert code == 3


def test_run_it_through_pty(daemon: Daemon) -> None:
    output, code = _in_pty(daemon, ["run", "--rm", "-it", "busybox", "sh"],
                           [b"stty size; echo inside\n", b"exit 6\n"], rows=33, cols=90)
    text = output.decode(errors="replace").replace("\r", "")
    assert "33 90" in text and "inside" in text
    assert code == 6


def test_dockerpy_exec_run(docker_client: Any, running: str) -> None:
    container = docker_client.containers.get(running)
    result = container.exec_run(["sh", "-c", "echo via-py; exit 2"])
    assert result.exit_code == 2 and result.output == b"via-py\n"
    demuxed = container.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert demuxed.output == (b"o\n", b"e\n")


def test_exec_sessions_leave_no_monitor(daemon: Daemon, running: str) -> None:
    daemon.ok("exec", running, "true")
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run(["pgrep", "-f", "--exec-process-spec"], capture_output=True,
                             text=True).stdout.split()
        mine = []
        for pid in out:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if daemon.base.encode() in f.read():
                        mine.append(pid)
            except OSError:
                continue
        if not mine or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert mine == []
