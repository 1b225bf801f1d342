"""Live restore: SIGKILL sampand with containers running, start it again, and find them."""

from __future__ import annotations

import os
import signal
import subprocess
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


def test_frozen_behind_the_record_is_found_paused(daemon: Daemon) -> None:
    """sampand killed between freezing a container (a pause, or a commit's) and recording
    it: after the restart the container is known as paused, and `rm -f` still removes it
    (a frozen process takes SIGKILL only once thawed)."""
    name = "t-" + uuid.uuid4().hex[:8]
    cid = daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "600").strip()
    try:
        daemon.stop(signal.SIGKILL)
        subprocess.run([_runtime(), "--root", os.path.join(daemon.exec_root, "runtime"),
                        "pause", cid], check=True)
        daemon.start()
        assert daemon.ok("inspect", "--format", "{{.State.Status}}", name) == "paused\n"
    finally:
        if daemon.proc is None:
            daemon.start()
        daemon.ok("rm", "-f", name)
    assert daemon.docker("inspect", name).returncode != 0


def test_a_start_cut_short_after_the_release_is_finished(daemon: Daemon) -> None:
    """sampand killed inside the runtime's start, after the init was released and before
    exec.fifo was removed: the restarted daemon comes up (it used to wait for ever on the
    fifo), the container runs on, and the fifo is gone."""
    name = "t-" + uuid.uuid4().hex[:8]
    cid = daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "600").strip()
    pid = daemon.ok("inspect", "--format", "{{.State.Pid}}", name).strip()
    fifo = os.path.join(daemon.exec_root, "runtime", cid, "exec.fifo")
    try:
        daemon.stop(signal.SIGKILL)
        os.mkfifo(fifo)  # what the cut-short start left
        daemon.start()
        assert daemon.ok("inspect", "--format", "{{.State.Status}} {{.State.Pid}}",
                         name) == f"running {pid}\n"
        assert not os.path.exists(fifo)
        assert daemon.ok("exec", name, "echo", "alive") == "alive\n"
    finally:
        if daemon.proc is None:
            daemon.start()
        daemon.ok("rm", "-f", name)


def _runtime() -> str:
    import sys

    return os.path.join(os.path.dirname(sys.executable), "sampan-runtime")
