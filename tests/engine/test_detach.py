"""Detach keys: the daemon ends a TTY attachment (attach or exec) when the client types the
sequence (ctrl-p,ctrl-q or its own detachKeys) while the container runs on; and the docker
CLI's own detach through a pty (`docker attach`, `docker run -it`, `docker exec -it`)."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from .conftest import DOCKER, Daemon


@pytest.fixture
def shell(daemon: Daemon) -> Iterator[str]:
    name = "dt-" + uuid.uuid4().hex[:10]
    daemon.ok("run", "-dit", "--name", name, "busybox", "sh")
    yield name
    daemon.ok("rm", "-f", name)


def _hijack(daemon: Daemon, path: str, body: bytes = b"") -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(daemon.socket)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: sampand\r\nConnection: Upgrade\r\n"
                 f"Upgrade: tcp\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    sock.settimeout(10)
    return sock


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def _read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def _status(daemon: Daemon, name: str) -> str:
    return daemon.ok("inspect", "-f", "{{.State.Status}}", name).strip()


def test_default_keys_detach_and_container_runs_on(daemon: Daemon, shell: str) -> None:
    since = str(int(time.time()) - 1)
    sock = _hijack(daemon, f"/v1.45/containers/{shell}/attach?stream=1&stdin=1&stdout=1")
    try:
        sock.sendall(b"echo one$((1+1))\n")
        assert b"one2" in _read_until(sock, b"one2")
        sock.sendall(b"\x10")  # half the sequence: held back, nothing ends yet
        time.sleep(0.3)
        sock.sendall(b"\x11")
        _read_to_eof(sock)  # the daemon ends the stream
    finally:
        sock.close()
    assert _status(daemon, shell) == "running"
    events = daemon.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
                       "--filter", f"container={shell}", "--filter", "event=detach",
                       "--format", "{{.Action}}")
    assert events.split() == ["detach"]
    # stdin stayed open: a new attachment still drives the shell
    sock = _hijack(daemon, f"/v1.45/containers/{shell}/attach?stream=1&stdin=1&stdout=1")
    try:
        sock.sendall(b"echo two$((1+2))\n")
        assert b"two3" in _read_until(sock, b"two3")
    finally:
        sock.close()


def test_custom_keys_split_across_writes(daemon: Daemon, shell: str) -> None:
    sock = _hijack(daemon, f"/v1.45/containers/{shell}/attach?stream=1&stdin=1&stdout=1"
                           "&detachKeys=ctrl-a,x")
    try:
        sock.sendall(b"\x10\x11echo still$((2+2))\n")  # the default keys mean nothing here
        assert b"still4" in _read_until(sock, b"still4")
        sock.sendall(b"\x01")
        time.sleep(0.2)
        sock.sendall(b"x")
        _read_to_eof(sock)
    finally:
        sock.close()
    assert _status(daemon, shell) == "running"


def test_invalid_keys(daemon: Daemon, shell: str) -> None:
    with daemon.http() as http:
        r = http.post(f"/v1.45/containers/{shell}/attach",
                      params={"stream": "1", "stdin": "1", "detachKeys": "ctrl-foo"})
        assert r.status_code == 400
        assert r.json()["message"] == "Invalid detach keys (ctrl-foo) provided"
        r = http.post(f"/v1.45/containers/{shell}/exec",
                      json={"Cmd": ["sh"], "DetachKeys": "ctrl-"})
        assert r.status_code == 400


def test_exec_detach_leaves_the_process_running(daemon: Daemon, shell: str) -> None:
    with daemon.http() as http:
        r = http.post(f"/v1.45/containers/{shell}/exec",
                      json={"Cmd": ["sh"], "Tty": True, "AttachStdin": True,
                            "AttachStdout": True, "DetachKeys": "ctrl-e,e"})
        exec_id = r.json()["Id"]
        assert http.get(f"/v1.45/exec/{exec_id}/json").json()["DetachKeys"] == "ctrl-e,e"
    sock = _hijack(daemon, f"/v1.45/exec/{exec_id}/start",
                   json.dumps({"Detach": False, "Tty": True}).encode())
    try:
        sock.sendall(b"echo in$((3+3))exec\n")
        assert b"in6exec" in _read_until(sock, b"in6exec")
        sock.sendall(b"\x05e")
        _read_to_eof(sock)
    finally:
        sock.close()
    with daemon.http() as http:
        assert http.get(f"/v1.45/exec/{exec_id}/json").json()["Running"] is True
    assert daemon.ok("exec", shell, "ps", "-o", "comm").split().count("sh") == 2


def _cli_in_pty(daemon: Daemon, args: list[str], keys: bytes) -> tuple[bytes, int]:
    assert DOCKER is not None
    pid, fd = pty.fork()
    if pid == 0:  # the child only execs the CLI
        os.execve(DOCKER, [DOCKER, *args], daemon.env)
    out = b""

    def pump(until: bytes | None, seconds: float) -> None:
        nonlocal out
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until in out):
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                out += chunk

    try:
        pump(None, 1.5)
        os.write(fd, b"echo cli$((4+4))\r")
        pump(b"cli8", 10)
        os.write(fd, keys)
        pump(None, 3)
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return out, os.waitstatus_to_exitcode(status)
            assert time.monotonic() < deadline, out
            time.sleep(0.1)
    finally:
        os.close(fd)


def test_cli_attach_detach(daemon: Daemon, shell: str) -> None:
    out, code = _cli_in_pty(daemon, ["attach", shell], b"\x10\x11")
    assert b"cli8" in out and b"read escape sequence" in out
    assert code == 1  # as docker's CLI answers a detach from `docker attach`
    assert _status(daemon, shell) == "running"
    out, code = _cli_in_pty(daemon, ["attach", "--detach-keys", "ctrl-x,y", shell], b"\x18y")
    assert b"cli8" in out and _status(daemon, shell) == "running"


def test_cli_run_it_and_exec_it_detach(daemon: Daemon) -> None:
    name = "dt-" + uuid.uuid4().hex[:10]
    try:
        out, code = _cli_in_pty(daemon, ["run", "-it", "--name", name, "busybox", "sh"],
                                b"\x10\x11")
        assert b"cli8" in out and code == 0
        assert _status(daemon, name) == "running"
        out, code = _cli_in_pty(daemon, ["exec", "-it", name, "sh"], b"\x10\x11")
        assert b"cli8" in out and b"read escape sequence" in out
        assert daemon.ok("exec", name, "ps", "-o", "comm").split().count("sh") == 2
        # the first shell still reads its terminal after the detach
        out, code = _cli_in_pty(daemon, ["attach", name], b"\x10\x11")
        assert b"cli8" in out
    finally:
        daemon.docker("rm", "-f", name)


def test_key_notation_and_scanner() -> None:
    from sampan.engine.attach import EscapeScanner, parse_detach_keys
    from sampan.engine.errors import InvalidParameter

    assert parse_detach_keys("") == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("ctrl-@,ctrl-\\,ctrl-_,DEL,a") == b"\x00\x1c\x1f\x7fa"
    for bad in ("ctrl-A", "ctrl-", "ab", "a,,b", "ctrl-1"):
        with pytest.raises(InvalidParameter):
            parse_detach_keys(bad)
    scanner = EscapeScanner(b"\x01x")
    assert scanner.feed(b"ab\x01") == (b"ab", False)  # a prefix is held back
    assert scanner.feed(b"y\x01\x01") == (b"\x01y\x01", False)  # not the sequence: passed on
    assert scanner.feed(b"xzz") == (b"", True)
