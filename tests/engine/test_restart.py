"""Restart policies through the docker CLI: on-failure with a retry budget, always, stop
holding restarts back, and restarts across a kill -9 of sampand."""

from __future__ import annotations

import json
import signal
import time

from sampan.engine.restart import Backoff, wants_restart

from .conftest import Daemon, unique, until


def _state(daemon: Daemon, name: str) -> tuple[str, int, int]:
    out = daemon.ok("inspect", "--format",
                    "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}", name).split()
    return out[0], int(out[1]), int(out[2])


def test_backoff_doubles_and_resets_after_ten_seconds() -> None:
    b = Backoff()
    assert [b.next(0.5) for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert b.next(12.0) == 0.1
    for _ in range(20):
        b.next(0)
    assert b.next(0) == 60.0


def test_policy_decisions() -> None:
    from sampan.engine.restart import Policy

    assert wants_restart(Policy("always"), 0, True, 9)
    assert not wants_restart(Policy("unless-stopped"), 1, True, 0)
    assert wants_restart(Policy("unless-stopped"), 0, False, 0)
    assert wants_restart(Policy("on-failure", 2), 1, False, 1)
    assert not wants_restart(Policy("on-failure", 2), 1, False, 2)
    assert not wants_restart(Policy("on-failure"), 0, False, 0)
    assert not wants_restart(Policy("no"), 1, False, 0)


def test_on_failure_retries_then_gives_up(daemon: Daemon) -> None:
    name = unique("r")
    since = str(time.time())
    daemon.ok("run", "-d", "--name", name, "--restart", "on-failure:2", "busybox",
              "sh", "-c", "echo run; exit 3")
    try:
        until(lambda: _state(daemon, name) == ("exited", 2, 3))
        time.sleep(1.0)  # no third try
        assert _state(daemon, name) == ("exited", 2, 3)
        assert daemon.ok("logs", name).count("run") == 3
        events = daemon.ok("events", "--since", since, "--until", str(time.time()),
                           "--filter", f"container={name}", "--format", "{{.Action}}")
        actions = events.split()
        assert actions.count("start") == 3 and actions.count("die") == 3
        assert actions.count("restart") == 2
        policy = json.loads(daemon.ok("inspect", "--format", "{{json .HostConfig.RestartPolicy}}",
                                      name))
        assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}
    finally:
        daemon.ok("rm", "-f", name)


def test_always_restarts_until_stopped(daemon: Daemon) -> None:
    name = unique("r")
    daemon.ok("run", "-d", "--name", name, "--restart", "always", "busybox",
              "sh", "-c", "sleep 0.3")
    try:
        until(lambda: _state(daemon, name)[1] >= 2)
        daemon.ok("stop", "-t", "1", name)
        status, count, _ = _state(daemon, name)
        assert status == "exited"
        time.sleep(1.5)
        assert _state(daemon, name) == ("exited", count, _state(daemon, name)[2])
        # a manual start resets the count
        daemon.ok("start", name)
        assert _state(daemon, name)[1] == 0
        daemon.ok("stop", "-t", "1", name)
    finally:
        daemon.ok("rm", "-f", name)


def test_restarting_shows_in_ps_and_needs_force_to_remove(daemon: Daemon) -> None:
    name = unique("r")
    # fails at once, again and again: the back-off grows past a second after a few tries
    daemon.ok("run", "-d", "--name", name, "--restart", "always", "busybox", "false")
    try:
        until(lambda: _state(daemon, name)[1] >= 5)
        until(lambda: _state(daemon, name)[0] == "restarting")
        status = daemon.ok("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}")
        assert status.startswith("Restarting (1)")
        result = daemon.docker("rm", name)
        assert result.returncode != 0 and "restarting" in result.stderr
    finally:
        daemon.ok("rm", "-f", name)
    assert daemon.docker("inspect", name).returncode != 0


def test_invalid_policies_are_refused(daemon: Daemon) -> None:
    before = daemon.ok("ps", "-aq")
    with daemon.http() as http:
        r = http.post("/containers/create", json={
            "Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}})
        assert r.status_code == 400
        assert "unknown policy 'sometimes'" in r.json()["message"]
        r = http.post("/containers/create", json={
            "Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}})
        assert r.status_code == 400
        assert "maximum retry count can only be used with 'on-failure'" in r.json()["message"]
        r = http.post("/containers/create", json={
            "Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"RestartPolicy": {"Name": "always"}, "AutoRemove": True}})
        assert r.status_code == 400
    assert daemon.ok("ps", "-aq") == before


def test_restart_policies_across_kill9_of_sampand(daemon: Daemon) -> None:
    """Issue 4, check 3: a restart=always container that exits while sampand is down is
    restarted when it comes back; unless-stopped stopped by the user stays stopped; always
    stopped by the user is started again (docker's rule at daemon start)."""
    exits, stopped_us, stopped_always = unique("r"), unique("r"), unique("r")
    daemon.ok("run", "-d", "--name", exits, "--restart", "always", "busybox",
              "sh", "-c", "sleep 1; echo ran; exit 5")
    daemon.ok("run", "-d", "--name", stopped_us, "--restart", "unless-stopped", "busybox",
              "sleep", "600")
    daemon.ok("run", "-d", "--name", stopped_always, "--restart", "always", "busybox",
              "sleep", "600")
    daemon.ok("stop", "-t", "1", stopped_us)
    daemon.ok("stop", "-t", "1", stopped_always)
    first_pid = daemon.ok("inspect", "--format", "{{.State.Pid}}", exits).strip()
    try:
        daemon.stop(signal.SIGKILL)
        time.sleep(1.8)  # ``exits`` exits while no daemon runs
        daemon.start()
        until(lambda: _state(daemon, exits)[0] == "running"
               and daemon.ok("inspect", "--format", "{{.State.Pid}}", exits).strip()
               != first_pid)
        assert _state(daemon, exits)[1] >= 1
        assert _state(daemon, stopped_us)[0] == "exited"
        until(lambda: _state(daemon, stopped_always)[0] == "running")
        time.sleep(0.5)
        assert _state(daemon, stopped_us)[0] == "exited"
        until(lambda: daemon.ok("logs", exits).count("ran") >= 1)
    finally:
        daemon.ok("rm", "-f", exits, stopped_us, stopped_always)
