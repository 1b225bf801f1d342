"""sampand's default monitor (``--monitor=sampan``): containers under sampan's own monitor,
forked by the warm helper instead of conmon + a fresh sampan-runtime. (The whole engine
suite runs with it; these are its own promises. test_conmon_monitor.py keeps
``--monitor=conmon`` working, and SAMPAN_TEST_MONITOR=conmon runs the suite with it.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from .conftest import monitor_of, until
from .monitors import check_run_stdio
from .spawn import Spawned, started


@pytest.fixture(scope="module")
def warm() -> Iterator[Spawned]:
    with started(["--monitor", "sampan"]) as d:
        yield d


def _private_kib(pid: int) -> int:
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def test_run_stdio_exit_code_and_logs(warm: Spawned) -> None:
    check_run_stdio(warm)
    name = "warm-logs"
    warm.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "echo one; echo two >&2")
    try:
        assert warm.ok("wait", name).strip() == "0"
        logs = warm.docker("logs", name)
        assert logs.stdout == "one\n" and logs.stderr == "two\n"
    finally:
        warm.ok("rm", "-f", name)


def test_the_monitor_is_sampans_small_and_outlives_sampand(warm: Spawned) -> None:
    name = "warm-long"
    warm.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
            "trap 'exit 7' TERM; while true; do sleep 0.1; done")
    try:
        mon = monitor_of(warm, name)
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
