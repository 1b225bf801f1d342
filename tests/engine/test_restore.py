"""Live restore: SIGKILL sampand with containers running, start it again, and find them."""

from __future__ import annotations

import signal
import time
import uuid

from .conftest import Daemon


def test_kill9_and_restart_keeps_containers(daemon: Daemon) -> None:
    running, short = "t-" + uuid.uuid4().hex[:8], "t-" + uuid.uuid4().hex[:8]
    daemon.ok("run", "-d", "--name", running, "busybox", "sh", "-c",
              "trap 'exit 0' TERM; while true; do echo tick; sleep 0.2; done")
    daemon.ok("run", "-d", "--name", short, "busybox", "sh", "-c", "sleep 1; exit 4")
    pid = daemon.ok("inspect", "--format", "{{.State.Pid}}", running).strip()
    try:
        daemon.stop(signal.SIGKILL)
        time.sleep(1.5)  # ``short`` exits while no daemon runs
        daemon.start()
        assert daemon.ok("inspect", "--format", "{{.State.Status}} {{.State.Pid}}",
                         running) == f"running {pid}\n"
        assert daemon.ok("wait", short) == "4\n"
        assert daemon.ok("inspect", "--format", "{{.State.Status}}", short) == "exited\n"
        before = daemon.ok("logs", running).count("tick")
        time.sleep(0.6)
        assert daemon.ok("logs", running).count("tick") > before  # logs continue
        daemon.ok("stop", running)
        assert daemon.ok("inspect", "--format", "{{.State.ExitCode}}", running) == "0\n"
    finally:
        daemon.ok("rm", "-f", running, short)
