"""Events, top, rename and prune through the docker CLI."""

from __future__ import annotations

import subprocess
import time
import uuid

from .conftest import DOCKER, Daemon


def _name() -> str:
    return "t-" + uuid.uuid4().hex[:10]


def test_events_stream(daemon: Daemon) -> None:
    assert DOCKER is not None
    name = _name()
    listener = subprocess.Popen(
        [DOCKER, "events", "--filter", f"container={name}", "--format",
         "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"],
        stdout=subprocess.PIPE, text=True, env=daemon.env)
    try:
        time.sleep(0.5)
        daemon.ok("run", "--rm", "--name", name, "busybox", "true")
        deadline = time.monotonic() + 10
        seen: list[str] = []
        assert listener.stdout is not None
        while "container destroy " + name not in seen and time.monotonic() < deadline:
            seen.append(listener.stdout.readline().strip())
    finally:
        listener.terminate()
        listener.wait(timeout=10)
    assert seen == [f"container {a} {name}" for a in ("create", "start", "die", "destroy")]
    # Absolute times with a margin: this machine's clock is stepped now and then.
    window = (str(int(time.time() - 600)), str(int(time.time() + 1)))
    since = daemon.ok("events", "--since", window[0], "--until", window[1], "--filter",
                      f"container={name}", "--filter", "event=die", "--format",
                      "{{.Action}} {{.Actor.Attributes.exitCode}}")
    assert since == "die 0\n"


def test_top_rename_prune(daemon: Daemon) -> None:
    name, renamed, stopped = _name(), _name(), _name()
    daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    daemon.ok("create", "--name", stopped, "busybox", "true")
    try:
        top = daemon.ok("top", name).splitlines()
        assert top[0].split()[:2] == ["UID", "PID"]
        assert any(line.endswith("sleep 300") for line in top[1:])
        daemon.ok("rename", name, renamed)
        assert daemon.ok("inspect", "--format", "{{.Name}}", renamed) == f"/{renamed}\n"
        assert daemon.docker("inspect", name).returncode != 0
        taken = daemon.docker("rename", renamed, stopped)
        assert taken.returncode != 0 and "already in use" in taken.stderr
        pruned = daemon.ok("container", "prune", "-f")
        stopped_id = daemon.docker("inspect", stopped).returncode
        assert stopped_id != 0 and "Deleted Containers" in pruned
        assert daemon.ok("inspect", "--format", "{{.State.Running}}", renamed) == "true\n"
    finally:
        daemon.docker("rm", "-f", renamed, name, stopped)


def test_diff(daemon: Daemon) -> None:
    name = _name()
    daemon.ok("run", "--name", name, "busybox", "sh", "-c",
              "mkdir /newdir; echo x > /newdir/f; rm /bin/zcat; echo y >> /etc/passwd")
    try:
        lines = set(daemon.ok("diff", name).splitlines())
        assert {"A /newdir", "A /newdir/f", "D /bin/zcat", "C /etc/passwd"} <= lines
    finally:
        daemon.ok("rm", name)
