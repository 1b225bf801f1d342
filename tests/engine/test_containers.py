"""Containers through the real docker CLI: run, logs, stop, rm, ps, inspect, wait, and the
errors clients rely on (404, 409, 400) leaving the state as it was."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

from .conftest import Daemon, lasting_zombies, monitor_of, unique, until


def _name() -> str:
    return "t-" + uuid.uuid4().hex[:10]


def test_run_rm_output_and_exit_code(daemon: Daemon) -> None:
    result = daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert result.stdout == "hi\n"
    assert "oops" in result.stderr
    assert result.returncode == 3
    assert daemon.ok("ps", "-aq") == ""  # --rm removed it


def test_run_missing_command(daemon: Daemon) -> None:
    before = daemon.ok("ps", "-aq")
    result = daemon.docker("run", "--rm", "busybox", "no-such-command")
    assert result.returncode == 127
    assert "executable file not found" in result.stderr
    assert daemon.ok("ps", "-aq") == before  # --rm: the container that failed is gone too
    assert daemon.proc is not None
    assert lasting_zombies(daemon.proc.pid) == []  # its monitor was reaped


def test_image_in_use_is_a_conflict(daemon: Daemon) -> None:
    name = _name()
    daemon.ok("create", "--name", name, "busybox", "true")
    try:
        refused = daemon.docker("rmi", "busybox")
        assert refused.returncode != 0 and "must force" in refused.stderr
        assert "busybox:latest" in daemon.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    finally:
        daemon.ok("rm", name)


def test_restart(daemon: Daemon) -> None:
    name = _name()
    daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        first = daemon.ok("inspect", "--format", "{{.State.Pid}}", name)
        daemon.ok("restart", "-t", "0", name)
        assert daemon.ok("inspect", "--format", "{{.State.Running}}", name) == "true\n"
        assert daemon.ok("inspect", "--format", "{{.State.Pid}}", name) != first
    finally:
        daemon.ok("rm", "-f", name)


def test_run_stdin(daemon: Daemon) -> None:
    result = daemon.docker("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo end",
                           input="from stdin\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from stdin\nend\n"


def test_run_config(daemon: Daemon) -> None:
    out = daemon.ok("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1000",
                    "--hostname", "boat", "--read-only", "--cap-drop", "ALL", "busybox",
                    "sh", "-c", "echo $FOO $(pwd) $(id -u) $(hostname); "
                    "grep CapEff /proc/self/status; touch /x 2>/dev/null || echo ro")
    lines = out.split("\n")
    assert lines[0] == "bar /tmp 1000 boat"
    assert lines[1].split() == ["CapEff:", "0000000000000000"]
    assert lines[2] == "ro"


def test_detached_logs_stop_rm(daemon: Daemon) -> None:
    name = _name()
    cid = daemon.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
                    "trap 'echo bye; exit 0' TERM; echo up; echo warn >&2; "
                    "while true; do sleep 0.1; done").strip()
    try:
        assert len(cid) == 64
        assert daemon.ok("inspect", "--format", "{{.State.Status}} {{.Name}}", name) == \
            f"running /{name}\n"
        deadline = time.monotonic() + 10
        while "up" not in daemon.docker("logs", name).stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        logs = daemon.docker("logs", "-t", name)
        assert logs.stdout.split(" ", 1)[1] == "up\n"
        assert logs.stderr.endswith("warn\n")
        rows = daemon.ok("ps", "--format", "{{.Names}} {{.Status}}").splitlines()
        assert any(r.startswith(f"{name} Up") for r in rows)
        started = time.monotonic()
        daemon.ok("stop", name)
        assert time.monotonic() - started < 5  # the trap ran: no SIGKILL after 10 s
        assert daemon.ok("inspect", "--format", "{{.State.ExitCode}} {{.State.Running}}",
                         name) == "0 false\n"
        assert "bye" in daemon.ok("logs", name)
        rows = daemon.ok("ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines()
        assert any(r.startswith(f"{name} Exited (0)") for r in rows)
        assert name not in daemon.ok("ps", "--format", "{{.Names}}")
    finally:
        daemon.ok("rm", "-f", name)
    assert name not in daemon.ok("ps", "-a", "--format", "{{.Names}}")


def test_logs_follow_ends_with_container(daemon: Daemon) -> None:
    name = _name()
    daemon.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "for i in 1 2 3; do echo $i; sleep 0.3; done")
    try:
        result = daemon.docker("logs", "-f", name, timeout=30)
        assert result.stdout == "1\n2\n3\n"
        assert daemon.ok("logs", "--tail", "1", name) == "3\n"
    finally:
        daemon.ok("rm", "-f", name)


def test_stop_escalates_to_sigkill(daemon: Daemon) -> None:
    name = _name()
    daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        started = time.monotonic()
        daemon.ok("stop", "-t", "1", name)  # sleep as PID 1 ignores SIGTERM
        assert time.monotonic() - started < 6
        assert daemon.ok("inspect", "--format", "{{.State.ExitCode}}", name) == "137\n"
    finally:
        daemon.ok("rm", "-f", name)


def test_wait_and_kill(daemon: Daemon) -> None:
    name = _name()
    daemon.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 0.5; exit 7")
    try:
        assert daemon.ok("wait", name) == "7\n"
        daemon.ok("start", name)
        daemon.ok("kill", "-s", "KILL", name)
        assert daemon.ok("wait", name) == "137\n"
    finally:
        daemon.ok("rm", "-f", name)


def test_create_start_and_rm_force(daemon: Daemon) -> None:
    name = _name()
    daemon.ok("create", "--name", name, "-l", "purpose=test", "busybox", "sleep", "300")
    assert daemon.ok("inspect", "--format", "{{.State.Status}} {{.Config.Labels.purpose}}",
                     name) == "created test\n"
    assert name in daemon.ok("ps", "-a", "--filter", "label=purpose=test",
                             "--format", "{{.Names}}")
    daemon.ok("start", name)
    refused = daemon.docker("rm", name)
    assert refused.returncode != 0 and "running" in refused.stderr
    daemon.ok("rm", "-f", name)
    assert daemon.docker("inspect", name).returncode != 0


def test_bad_requests(daemon: Daemon) -> None:
    with daemon.http() as http:
        missing = http.post("/v1.45/containers/nosuchcontainer/start")
        assert missing.status_code == 404
        assert missing.json() == {"message": "No such container: nosuchcontainer"}
        assert http.get("/containers/nope/json").status_code == 404
        bad_field = http.post("/v1.45/containers/create",
                              json={"Image": "busybox", "HostConfig": {"Memory": "1g"}})
        assert bad_field.status_code == 400
        assert "HostConfig.Memory" in bad_field.json()["message"]
        bad_json = http.post("/v1.45/containers/create", content=b"{not json",
                             headers={"Content-Type": "application/json"})
        assert bad_json.status_code == 400
        no_image = http.post("/v1.45/containers/create", json={"Image": "nosuch:img",
                                                               "Cmd": ["true"]})
        assert no_image.status_code == 404 and "No such image" in no_image.json()["message"]
        bad_name = http.post("/v1.45/containers/create?name=bad%20name",
                             json={"Image": "busybox"})
        assert bad_name.status_code == 400
        name = _name()
        first = http.post(f"/v1.45/containers/create?name={name}",
                          json={"Image": "busybox", "Cmd": ["true"]})
        assert first.status_code == 201
        taken = http.post(f"/v1.45/containers/create?name={name}",
                          json={"Image": "busybox", "Cmd": ["true"]})
        assert taken.status_code == 409 and "already in use" in taken.json()["message"]
        before = http.get("/v1.45/containers/json?all=1").json()
        assert http.post(f"/containers/{name}/kill").status_code == 409
        assert http.post(f"/containers/{name}/stop").status_code == 304
        assert http.get("/v1.45/containers/json?all=1").json() == before
        assert http.delete(f"/containers/{name}").status_code == 204


def test_inspect_shape(daemon: Daemon) -> None:
    name = _name()
    daemon.ok("create", "--name", name, "busybox", "echo", "x")
    try:
        data = json.loads(daemon.ok("inspect", name))[0]
        for key in ("Id", "Created", "Path", "Args", "State", "Image", "Name", "HostConfig",
                    "Config", "NetworkSettings", "GraphDriver", "Mounts", "LogPath"):
            assert key in data
        assert data["Path"] == "echo" and data["Args"] == ["x"]
        assert data["Config"]["Image"] == "busybox"
        assert data["State"]["Status"] == "created"
        assert data["HostConfig"]["NetworkMode"] in ("default", "bridge")
    finally:
        daemon.ok("rm", name)


def test_a_killed_monitor_leaves_no_zombie(daemon: Daemon) -> None:
    """SIGKILL to a running container's monitor: the container is reported exited (255,
    with the reason), its processes go, and its init, which sampand adopts as the monitors'
    subreaper, is reaped (engine/orphans.py) instead of staying a zombie."""
    name = unique("orphan")
    daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        init = int(daemon.ok("inspect", "--format", "{{.State.Pid}}", name))
        os.kill(monitor_of(daemon, name), signal.SIGKILL)  # a descendant of our daemon
        until(lambda: daemon.ok("inspect", "--format", "{{.State.Status}}", name).strip()
              == "exited")
        state = json.loads(daemon.ok("inspect", "--format", "{{json .State}}", name))
        assert state["ExitCode"] == 255 and "monitor" in state["Error"], state
        until(lambda: not os.path.exists(f"/proc/{init}"))
        assert daemon.proc is not None
        assert lasting_zombies(daemon.proc.pid) == []
    finally:
        daemon.ok("rm", "-f", name)
