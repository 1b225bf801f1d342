"""sampand --monitor=sampan: containers under sampan's own monitor, forked by the warm
helper instead of conmon + a fresh sampan-runtime. (The whole engine suite runs with it
under SAMPAN_TEST_MONITOR=sampan; these are its own promises.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from .conftest import FIXTURES, until
from .spawn import Spawned, spawned


@pytest.fixture(scope="module")
def warm() -> Iterator[Spawned]:
    with spawned(["--monitor", "sampan"]) as d:
        d.start()
        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        yield d


def _monitor_pid(d: Spawned, name: str) -> int:
    """The pid of the container's monitor: the parent of its init."""
    pid = int(d.ok("inspect", "--format", "{{.State.Pid}}", name).strip())
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _private_kib(pid: int) -> int:
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def test_run_output_exit_code_and_logs(warm: Spawned) -> None:
    result = warm.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert "err\n" in result.stderr
    name = "warm-logs"
    warm.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "echo one; echo two >&2")
    try:
        assert warm.ok("wait", name).strip() == "0"
        logs = warm.docker("logs", name)
        assert logs.stdout == "one\n" and logs.stderr == "two\n"
    finally:
        warm.ok("rm", "-f", name)


def test_stdin_tty_and_a_missing_program(warm: Spawned) -> None:
    assert warm.ok("run", "--rm", "-i", "busybox", "cat", input="through stdin\n") == \
        "through stdin\n"
    assert warm.ok("run", "--rm", "-t", "busybox", "tty").strip() == "/dev/pts/0"
    missing = warm.docker("run", "--rm", "busybox", "no-such-program")
    assert missing.returncode == 127
    assert 'exec: "no-such-program": executable file not found' in missing.stderr


def test_the_monitor_is_sampans_small_and_outlives_sampand(warm: Spawned) -> None:
    name = "warm-long"
    warm.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
            "trap 'exit 7' TERM; while true; do sleep 0.1; done")
    try:
        mon = _monitor_pid(warm, name)
        with open(f"/proc/{mon}/comm") as f:
            assert f.read().strip() != "conmon"
        with open(f"/proc/{mon}/cmdline", "rb") as f:
            assert b"sampan.warm.server" in f.read()
        assert _private_kib(mon) <= 2048  # issue 8: at most 2 MB of its own per container
        assert warm.proc is not None
        warm.proc.send_signal(signal.SIGKILL)
        warm.proc.wait()
        time.sleep(0.5)
        os.kill(mon, 0)  # the monitor (and its container) still run
        warm.start()
        assert warm.ok("inspect", "--format", "{{.State.Status}}", name).strip() == "running"
        warm.ok("stop", "-t", "5", name)
        until(lambda: warm.ok("inspect", "--format", "{{.State.ExitCode}}", name).strip()
              == "7")
    finally:
        warm.ok("rm", "-f", name)
