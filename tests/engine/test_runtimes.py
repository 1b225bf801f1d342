"""HostConfig.Runtime: sampan-runtime by default, runc when installed, an unknown name
refused with docker's 400 before anything is created."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from .conftest import Daemon

RUNC = shutil.which("runc")


def test_info_lists_runtimes(daemon: Daemon) -> None:
    info = json.loads(daemon.ok("info", "--format", "{{json .}}"))
    assert info["DefaultRuntime"] == "sampan-runtime"
    assert info["Runtimes"]["sampan-runtime"]["path"].endswith("sampan-runtime")
    if RUNC:
        assert info["Runtimes"]["runc"]["path"] == RUNC
    text = daemon.ok("info")
    assert "Default Runtime: sampan-runtime" in text


def test_default_runtime_recorded(daemon: Daemon) -> None:
    cid = daemon.ok("create", "busybox", "true").strip()
    try:
        assert daemon.ok("inspect", "--format", "{{.HostConfig.Runtime}}", cid).strip() == \
            "sampan-runtime"
    finally:
        daemon.ok("rm", cid)


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_run_with_runc(daemon: Daemon) -> None:
    cid = daemon.ok("run", "-d", "--runtime", "runc", "busybox", "sleep", "60").strip()
    try:
        assert daemon.ok("inspect", "--format", "{{.HostConfig.Runtime}}", cid).strip() == "runc"
        # runc itself knows the container: its state is in runc's format, under our root.
        root = os.path.join(daemon.exec_root, "runtime")
        state = json.loads(subprocess.run([RUNC, "--root", root, "state", cid],
                                          capture_output=True, text=True, check=True).stdout)
        assert state["status"] == "running" and state["id"] == cid
        assert daemon.ok("exec", cid, "echo", "from-exec").strip() == "from-exec"
        assert "sleep" in daemon.ok("top", cid)
        daemon.ok("stop", "-t", "1", cid)
        assert daemon.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "exited"
        daemon.ok("start", cid)
        assert daemon.ok("inspect", "--format", "{{.State.Running}}", cid).strip() == "true"
    finally:
        daemon.ok("rm", "-f", cid)
    out = daemon.ok("run", "--rm", "--runtime", "runc", "busybox", "echo", "hi-from-runc")
    assert out.strip() == "hi-from-runc"


def test_unknown_runtime_is_refused(daemon: Daemon) -> None:
    before = daemon.ok("ps", "-aq")
    result = daemon.docker("run", "--rm", "--runtime", "no-such-runtime", "busybox", "true")
    assert result.returncode == 125
    assert "unknown or invalid runtime name: no-such-runtime" in result.stderr
    assert daemon.ok("ps", "-aq") == before
    with daemon.http() as http:
        response = http.post("/containers/create", json={
            "Image": "busybox", "Cmd": ["true"], "HostConfig": {"Runtime": "nope"}})
        assert response.status_code == 400
        assert response.json() == {"message": "unknown or invalid runtime name: nope"}
