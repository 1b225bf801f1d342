"""sampand --monitor=conmon (and daemon.json's ``"monitor": "conmon"``): containers under
conmon, the monitor sampand used before its own became the default. The key lifecycle
through the docker CLI: run, logs -f, attach, exec, stop, a restart policy, and sampand
restarts adopting running containers, also across a change of monitor. (The whole suite
runs under conmon with SAMPAN_TEST_MONITOR=conmon.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from .conftest import DOCKER, FIXTURES, lasting_zombies, monitor_of, unique, until
from .monitors import check_run_stdio
from .spawn import Spawned, spawned, started


@pytest.fixture(scope="module")
def conmon() -> Iterator[Spawned]:
    with started(["--monitor", "conmon"]) as d:
        yield d


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def _state(d: Spawned, name: str) -> tuple[str, int, int]:
    out = d.ok("inspect", "--format",
               "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}", name).split()
    return out[0], int(out[1]), int(out[2])


def test_run_stdio_and_exit_code(conmon: Spawned) -> None:
    check_run_stdio(conmon)


def test_a_failed_create_leaves_no_zombie_conmon(conmon: Spawned) -> None:
    failed = conmon.docker("run", "--rm", "busybox", "no-such-command")
    assert failed.returncode == 127, failed.stderr
    assert conmon.proc is not None
    assert lasting_zombies(conmon.proc.pid) == []


def test_the_monitor_is_conmon_and_logs_follow(conmon: Spawned) -> None:
    name = unique("cm")
    conmon.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "sleep 0.5; for i in 1 2 3; do echo line$i; sleep 0.2; done; echo bye >&2")
    try:
        assert _comm(monitor_of(conmon, name)) == "conmon"
        assert DOCKER is not None
        follow = subprocess.run([DOCKER, "logs", "-f", name], capture_output=True, text=True,
                                timeout=60, env=conmon.env)
        assert follow.stdout == "line1\nline2\nline3\n"  # ended by the container's exit
        assert follow.stderr == "bye\n"
        assert conmon.ok("wait", name).strip() == "0"
    finally:
        conmon.ok("rm", "-f", name)


def test_attach_and_exec(conmon: Spawned) -> None:
    name = unique("cm")
    conmon.ok("run", "-d", "-i", "--name", name, "busybox", "sh", "-c",
              "read line; echo got $line; read again; exit 4")
    try:
        assert conmon.ok("exec", name, "echo", "from exec") == "from exec\n"
        assert conmon.docker("exec", name, "sh", "-c", "exit 5").returncode == 5
        assert conmon.ok("exec", "-i", name, "cat", input="exec stdin\n") == "exec stdin\n"
        attached = conmon.docker("attach", name, input="hello\nagain\n")
        assert attached.stdout == "got hello\n"
        assert attached.returncode == 4  # the CLI answers with the container's exit code
        assert _state(conmon, name) == ("exited", 0, 4)
    finally:
        conmon.ok("rm", "-f", name)


def test_stop_and_restart_policy(conmon: Spawned) -> None:
    name, failing = unique("cm"), unique("cm")
    conmon.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "trap 'exit 7' TERM; while true; do sleep 0.1; done")
    conmon.ok("run", "-d", "--name", failing, "--restart", "on-failure:2", "busybox",
              "sh", "-c", "echo try; exit 3")
    try:
        conmon.ok("stop", "-t", "5", name)
        assert _state(conmon, name) == ("exited", 0, 7)
        until(lambda: _state(conmon, failing) == ("exited", 2, 3))
        assert conmon.ok("logs", failing).count("try") == 3
        conmon.ok("start", name)  # a second life under a fresh conmon
        assert _comm(monitor_of(conmon, name)) == "conmon"
        conmon.ok("kill", name)
        until(lambda: _state(conmon, name) == ("exited", 0, 137))
    finally:
        conmon.ok("rm", "-f", name, failing)


def test_restarts_adopt_conmon_containers_also_under_the_default_monitor() -> None:
    """kill -9 of sampand leaves the conmons running and a new sampand adopts them; one
    started with the default monitor (an upgrade) adopts them too, and its own new
    containers get sampan's monitor. daemon.json's "monitor" key chooses conmon here."""
    with spawned([]) as d:
        config = os.path.join(d.base, "daemon.json")
        with open(config, "w") as f:
            json.dump({"monitor": "conmon"}, f)
        d.args = ["--config-file", config]
        d.start()
        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        name = unique("cm")
        d.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
             "trap 'exit 7' TERM; i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; "
             "done")
        mon = monitor_of(d, name)
        assert _comm(mon) == "conmon"
        assert d.proc is not None
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        time.sleep(0.5)
        os.kill(mon, 0)  # conmon (and its container) outlived sampand
        d.start()
        assert _state(d, name)[0] == "running"
        assert monitor_of(d, name) == mon
        assert "tick" in d.ok("logs", name)
        assert d.ok("exec", name, "echo", "adopted") == "adopted\n"

        d.stop()  # SIGTERM: live-restore keeps the container running
        d.args = []  # the default monitor from now on
        d.start()
        assert _state(d, name)[0] == "running"
        new = unique("cm")
        d.ok("run", "-d", "--name", new, "busybox", "sleep", "60")
        assert _comm(monitor_of(d, new)) != "conmon"
        d.ok("stop", "-t", "5", name)
        until(lambda: _state(d, name) == ("exited", 0, 7))
        until(lambda: not os.path.exists(f"/proc/{mon}"))
        d.ok("rm", "-f", name, new)
