"""The CLI starts sampand when nothing answers on sampan's own socket (as root), and says
so; it never does for a docker host."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from ..engine.conftest import _monitors_of, _mounts_under, _remove_cgroups
from .conftest import SAMPAN


@pytest.fixture
def base() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="sampan-autostart-")
    try:
        yield path
    finally:
        for pid in _monitors_of(path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in _mounts_under(path):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(path, ignore_errors=True)


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                return  # exited; its parent (the CLI) is gone, init reaps it
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def test_starts_sampand_on_its_own_socket(base: str) -> None:
    parent = f"/sampan-cli-autostart-{os.getpid()}"
    env = {**os.environ, "SAMPAN_HOST": f"unix://{base}/sampand.sock",
           "SAMPAN_DATA_ROOT": f"{base}/data", "SAMPAN_EXEC_ROOT": f"{base}/exec",
           "SAMPAN_CGROUP_PARENT": parent}
    env.pop("DOCKER_HOST", None)
    env.pop("SAMPAN_NO_AUTOSTART", None)
    first = subprocess.run([SAMPAN, "version", "--format", "{{.Server.Version}}"],
                           capture_output=True, text=True, env=env, timeout=60)
    match = re.search(r"sampand was not running; started it \(pid (\d+), log (\S+)\)",
                      first.stderr)
    assert match, first.stderr
    pid = int(match.group(1))
    try:
        assert first.returncode == 0 and first.stdout == "0.1.0\n"
        assert match.group(2) == f"{base}/exec/sampand.log"
        assert os.path.exists(f"{base}/data") and os.path.exists(f"{base}/sampand.sock")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f"{base}/data".encode() in f.read()
        again = subprocess.run([SAMPAN, "ps"], capture_output=True, text=True, env=env,
                               timeout=60)
        assert again.returncode == 0 and again.stderr == ""
    finally:
        _stop(pid)
        _remove_cgroups(parent)


def test_never_for_a_docker_host(base: str) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{base}/docker.sock",
           "SAMPAN_DATA_ROOT": f"{base}/data"}
    env.pop("SAMPAN_HOST", None)
    result = subprocess.run([SAMPAN, "ps"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr == (f"Cannot connect to the Docker daemon at unix://{base}/"
                             "docker.sock. Is the docker daemon running?\n")
    assert not os.path.exists(f"{base}/data")
    # nor for a SAMPAN_HOST without a data root of its own
    env = {**os.environ, "SAMPAN_HOST": f"unix://{base}/other.sock"}
    env.pop("SAMPAN_DATA_ROOT", None)
    result = subprocess.run([SAMPAN, "ps"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 1 and "Cannot connect" in result.stderr
