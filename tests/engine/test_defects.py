"""Defects others found, each checked as users see it (the docker CLI v28, docker-py) and
against what dockerd 20.10 answers: exec's exit codes and start errors, a non-executable
command's exit code, the default hostname, connect with published ports, wait on a
container its policy restarts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sampan.engine.monitor import read_sync
from tests.engine.conftest import Daemon, until
from tests.engine.test_network_modes import PAGE, get, httpd_image, net_daemon
from tests.engine.test_network_user import cleanup

__all__ = ["cleanup", "net_daemon"]


def inspect(d: Daemon, ref: str) -> dict[str, Any]:
    return json.loads(d.ok("inspect", ref))[0]


def test_exec_exit_codes_of_quick_commands(daemon: Daemon, docker_client: Any,
                                           cleanup: list[str]) -> None:
    """conmon writes the pid and the exit code on one pipe; a quick command's two lines
    can be read together, and the exit code must not be lost (it was reported as 126)."""
    name = "x-" + uuid.uuid4().hex[:8]
    daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    cleanup.append("c:" + name)
    container = docker_client.containers.get(name)
    with ThreadPoolExecutor(6) as pool:  # sampand busy: the two lines arrive together
        codes = list(pool.map(lambda _: container.exec_run(["true"]).exit_code, range(150)))
        assert set(codes) == {0}, codes
        codes = list(pool.map(lambda _: container.exec_run(["sh", "-c", "exit 7"]).exit_code,
                              range(60)))
        assert set(codes) == {7}, codes
    for _ in range(20):
        result = daemon.docker("exec", name, "true")
        assert result.returncode == 0, result.stderr


def test_sync_pipe_lines_read_one_at_a_time() -> None:
    """The pid and exit lines in the pipe at once (as conmon writes them for a quick
    process): each read gets its own line."""
    r, w = os.pipe()
    try:
        os.write(w, b'{"data": 4242}\n{"data": 0}\n')
        os.close(w)
        w = -1
        assert read_sync(r) == {"data": 4242}
        assert read_sync(r) == {"data": 0}
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_exec_that_cannot_start(daemon: Daemon, cleanup: list[str]) -> None:
    """As dockerd: the runtime's error on stdout (in the stream), exit code 126; with -d
    an error response."""
    name = "x-" + uuid.uuid4().hex[:8]
    daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    cleanup.append("c:" + name)
    for flags, detail in (([], "no such file or directory"), (["-t"], "no such file"),
                          (["-i"], "no such file or directory")):
        result = daemon.docker("exec", *flags, name, "/no/such", input="")
        assert result.returncode == 126, result
        assert "Unrecognized input header" not in result.stderr, result
        assert "OCI runtime exec failed" in result.stdout and detail in result.stdout, result
    result = daemon.docker("exec", name, "/etc/passwd")
    assert result.returncode == 126 and "permission denied" in result.stdout, result
    result = daemon.docker("exec", "-d", name, "/no/such")
    assert result.returncode == 1, result
    assert "Error response from daemon: OCI runtime exec failed" in result.stderr, result
    assert daemon.ok("exec", name, "echo", "still") == "still\n"


def test_run_exit_codes_of_commands_that_cannot_start(daemon: Daemon) -> None:
    result = daemon.docker("run", "--rm", "busybox", "/etc/passwd")
    assert result.returncode == 126, result
    assert "permission denied" in result.stderr, result
    result = daemon.docker("run", "--rm", "busybox", "/no/such")
    assert result.returncode == 127, result
    assert "no such file or directory" in result.stderr, result


def test_default_hostname_is_the_short_id(daemon: Daemon, cleanup: list[str]) -> None:
    name = "x-" + uuid.uuid4().hex[:8]
    cid = daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "300").strip()
    cleanup.append("c:" + name)
    assert inspect(daemon, name)["Config"]["Hostname"] == cid[:12]
    assert daemon.ok("exec", name, "hostname") == cid[:12] + "\n"
    given = "x-" + uuid.uuid4().hex[:8]
    daemon.ok("create", "--name", given, "--hostname", "box1", "busybox")
    cleanup.append("c:" + given)
    assert inspect(daemon, given)["Config"]["Hostname"] == "box1"
    host = "x-" + uuid.uuid4().hex[:8]
    daemon.ok("create", "--name", host, "--network", "host", "busybox")
    cleanup.append("c:" + host)
    assert inspect(daemon, host)["Config"]["Hostname"] == socket.gethostname()


def test_connect_keeps_published_ports(net_daemon: Daemon, cleanup: list[str]) -> None:
    d = net_daemon
    name, net = "x-" + uuid.uuid4().hex[:8], "n-" + uuid.uuid4().hex[:8]
    d.ok("run", "-d", "--name", name, "-p", "127.0.0.1::80", httpd_image(d))
    cleanup.append("c:" + name)
    d.ok("network", "create", net)
    cleanup.append("n:" + net)
    port = d.ok("port", name, "80/tcp").split(":")[-1].strip()
    assert PAGE in get(f"http://127.0.0.1:{port}/").text
    d.ok("network", "connect", net, name)
    assert set(inspect(d, name)["NetworkSettings"]["Networks"]) == {"bridge", net}
    assert d.ok("port", name, "80/tcp").split(":")[-1].strip() == port
    assert PAGE in get(f"http://127.0.0.1:{port}/").text
    d.ok("network", "disconnect", net, name)
    assert PAGE in get(f"http://127.0.0.1:{port}/").text


def test_wait_on_a_container_its_policy_restarts(daemon: Daemon, cleanup: list[str]) -> None:
    """dockerd 20.10 ends a wait when the container exits, even if it is restarted (its
    State.SetRestarting wakes the stop waiters): the exit code is the run's."""
    name = "x-" + uuid.uuid4().hex[:8]
    daemon.ok("run", "-d", "--name", name, "--restart", "on-failure:3", "busybox", "sh",
              "-c", "sleep 1; exit 3")
    cleanup.append("c:" + name)
    started = time.monotonic()
    result = subprocess.run(["docker", "wait", name], capture_output=True, text=True,
                            timeout=30, env=daemon.env)
    assert (result.returncode, result.stdout) == (0, "3\n"), result
    assert time.monotonic() - started < 10
    until(lambda: inspect(daemon, name)["RestartCount"] >= 1)


def test_wait_across_a_restart(daemon: Daemon, cleanup: list[str]) -> None:
    """A container between two runs of its policy counts as running (dockerd's
    SetRestarting keeps Running): a wait then ends with a later run, not at once."""
    name = "x-" + uuid.uuid4().hex[:8]
    daemon.ok("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c",
              "n=$(cat /n 2>/dev/null || echo 0); echo $((n+1)) > /n; "
              "[ $n -ge 5 ] && exec sleep 300; exit 3")
    cleanup.append("c:" + name)
    # the fifth exit is followed by a 1.6 s back-off, then a run that lasts
    until(lambda: inspect(daemon, name)["RestartCount"] >= 5, timeout=30)
    waiting = subprocess.Popen(["docker", "wait", name], stdout=subprocess.PIPE, text=True,
                               env=daemon.env)
    try:
        time.sleep(1)
        assert waiting.poll() is None, waiting.communicate()
        until(lambda: inspect(daemon, name)["State"]["Status"] == "running", timeout=10)
        daemon.ok("stop", "-t", "1", name)
        assert waiting.communicate(timeout=30)[0] == "137\n"
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
