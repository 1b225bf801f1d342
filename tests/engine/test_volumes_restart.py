"""Volumes across a restart of sampand: records, data, references (in use stays in use)
and a running container's volume."""

from __future__ import annotations

import json
import signal
import uuid

from .conftest import Daemon


def test_volumes_survive_a_restart(daemon: Daemon) -> None:
    vol, user, runner = (f"v-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}",
                         f"t-{uuid.uuid4().hex[:8]}")
    daemon.ok("volume", "create", "--label", "k=v", vol)
    daemon.ok("run", "--rm", "-v", f"{vol}:/d", "busybox", "sh", "-c", "echo data > /d/f")
    daemon.ok("create", "--name", user, "-v", f"{vol}:/d", "busybox", "true")
    daemon.ok("run", "-d", "--name", runner, "-v", "/anon", "busybox", "sleep", "300")
    before = json.loads(daemon.ok("volume", "inspect", vol))
    try:
        daemon.stop(signal.SIGKILL)
        daemon.start()
        assert json.loads(daemon.ok("volume", "inspect", vol)) == before
        refused = daemon.docker("volume", "rm", vol)
        assert refused.returncode == 1 and "volume is in use" in refused.stderr
        anon = json.loads(daemon.ok("inspect", "-f", "{{json .Mounts}}", runner))[0]["Name"]
        assert anon not in daemon.ok("volume", "ls", "-q", "--filter", "dangling=true")
        assert daemon.ok("run", "--rm", "-v", f"{vol}:/d", "busybox", "cat", "/d/f") \
            == "data\n"
        daemon.ok("stop", "-t", "0", runner)
        daemon.ok("start", runner)
        daemon.ok("exec", runner, "ls", "/anon")
    finally:
        daemon.ok("rm", "-f", "-v", user, runner)
    daemon.ok("volume", "rm", vol)
