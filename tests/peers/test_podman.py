"""podman (with conmon) drives sampan-runtime exactly as it drives runc."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from ..runtime.helpers import read_until

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures",
                        "images")
RUNTIME = os.path.join(os.path.dirname(sys.executable), "sampan-runtime")
# This host's hard limits are below podman's defaults, which it would try to set.
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=20000:20000"]


class Podman:
    def __init__(self, base: str) -> None:
        self.base = base
        self.argv = ["podman", "--root", f"{base}/storage", "--runroot", f"{base}/run",
                     "--tmpdir", f"{base}/tmp", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "none", "--runtime", RUNTIME,
                     "--storage-driver", "overlay"]

    def __call__(self, *args: str, timeout: float = 120, check: bool = False,
                 ) -> subprocess.CompletedProcess[str]:
        # conmon drops an "oom" marker file in its working directory: keep it in ours.
        return subprocess.run([*self.argv, *args], capture_output=True, text=True,
                              timeout=timeout, check=check, cwd=self.base)


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    base = tempfile.mkdtemp(prefix="sampan-podman-")
    pm = Podman(base)
    pm("load", "-i", os.path.join(FIXTURES, "busybox.docker.tar"), check=True)
    yield pm
    pm("rm", "--all", "--force", "--time", "0")
    pm("system", "reset", "--force")
    subprocess.run(["umount", "-R", f"{base}/storage/overlay"], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def _run(podman: Podman, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return podman("run", "--network", "none", *ULIMITS, *args, timeout=timeout)


def test_plain_run(podman: Podman) -> None:
    result = _run(podman, "--rm", "busybox", "sh", "-c", "echo hi from $(cat /proc/1/comm); "
                  "exit 3")
    assert result.stdout == "hi from sh\n", result.stderr
    assert result.returncode == 3


def test_detached_run_exec_stop_rm(podman: Podman) -> None:
    name = f"sampan-pm-{os.getpid()}"
    started = _run(podman, "-d", "--name", name, "busybox", "sleep", "300")
    assert started.returncode == 0, started.stderr
    try:
        inspect = podman("inspect", "--format", "{{.State.Status}} {{.OCIRuntime}}", name)
        assert inspect.stdout.split()[0] == "running"
        assert inspect.stdout.split()[1].endswith("sampan-runtime")
        exec_ = podman("exec", name, "sh", "-c", "echo exec-ok; ps -o comm | sort | uniq")
        assert exec_.returncode == 0, exec_.stderr
        assert exec_.stdout.splitlines()[0] == "exec-ok"
        assert "sleep" in exec_.stdout
        stopped = podman("stop", "--time", "1", name)
        assert stopped.returncode == 0, stopped.stderr
        assert podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() in \
            ("exited", "stopped")
    finally:
        assert podman("rm", "--force", name).returncode == 0
    assert podman("inspect", name).returncode != 0


def test_tty_session(podman: Podman) -> None:
    pid, fd = pty.fork()
    if pid == 0:
        argv = [*podman.argv, "run", "--rm", "-it", "--network", "none", *ULIMITS,
                "busybox", "sh"]
        os.chdir(podman.base)
        os.execvp(argv[0], argv)
    try:
        os.write(fd, b"tty; echo $((40+2))-answer\n")
        out = read_until(fd, b"42-answer", timeout=30)
        assert b"/dev/pts/0" in out
        assert b"42-answer" in out
        os.write(fd, b"exit 4\n")
        read_until(fd, b"never", timeout=2)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 4


def test_memory_and_pids_limits(podman: Podman) -> None:
    oom = _run(podman, "--rm", "--memory", "32m", "--memory-swap", "32m", "busybox",
               "dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1")
    assert oom.returncode == 137, oom.stderr
    limited = _run(podman, "--rm", "--pids-limit", "10", "busybox", "sh", "-c",
                   "cat /sys/fs/cgroup/pids/pids.max; "
                   "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done; echo done")
    assert limited.stdout.splitlines()[0] == "10"
    assert "can't fork" in limited.stderr
