"""Healthchecks through the docker CLI: healthy, unhealthy after the retries, timeouts, the
start period, the image's HEALTHCHECK, events and `docker ps`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import uuid
from typing import Any

import pytest

from sampan.engine import health
from sampan.engine.errors import InvalidParameter
from sampan.engine.record import Container

from .conftest import FIXTURES, Daemon, unique, until


def _health(daemon: Daemon, name: str) -> dict[str, Any]:
    out = daemon.ok("inspect", "--format", "{{json .State.Health}}", name)
    return json.loads(out)  # type: ignore[no-any-return]


def test_check_and_parse() -> None:
    for bad in ({"Interval": 1000}, {"Retries": -1}, {"Test": ["BOGUS"]}, {"Test": "x"}):
        with pytest.raises(InvalidParameter):
            health.check(bad)
    cfg = health.parse({"Healthcheck": {"Test": ["CMD-SHELL", "test -e /x"],
                                        "Interval": 2 * health.SECOND}})
    assert cfg is not None
    assert cfg.test == ["/bin/sh", "-c", "test -e /x"] and cfg.interval == 2.0
    assert cfg.timeout == 30.0 and cfg.retries == 3 and cfg.start_interval == 5.0
    assert health.parse({"Healthcheck": {"Test": ["NONE"]}}) is None
    config: dict[str, Any] = {"Healthcheck": {"Interval": 5}}
    health.merge(config, {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 9,
                                          "Retries": 7}})
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5, "Retries": 7}


def test_failures_in_start_period_do_not_count() -> None:
    c = Container(id="x", name="x", created="", image="", image_id="", path="", args=[],
                  config={}, host_config={})
    c.state.started_at = "2024-01-01T00:00:00Z"
    cfg = health.HealthConfig(["true"], 1.0, 1.0, start_period=10.0, start_interval=1.0,
                              retries=1)
    early = health.Probe("2024-01-01T00:00:05Z", "2024-01-01T00:00:05Z", 1, "no")
    assert health.record(c, cfg, early) is None
    assert c.state.health == {"Status": "starting", "FailingStreak": 0,
                              "Log": [early.json()]}
    late = health.Probe("2024-01-01T00:00:11Z", "2024-01-01T00:00:11Z", 1, "no")
    assert health.record(c, cfg, late) == "unhealthy"
    for _ in range(10):
        health.record(c, cfg, late)
    assert c.state.health is not None and len(c.state.health["Log"]) == 5


def test_healthy_with_events_and_ps(daemon: Daemon) -> None:
    name = unique("h")
    since = str(time.time())
    daemon.ok("run", "-d", "--name", name, "--health-cmd", "echo ok; test -e /etc/passwd",
              "--health-interval", "300ms", "--health-start-interval", "100ms",
              "--health-start-period", "5s", "busybox", "sleep", "600")
    try:
        assert _health(daemon, name)["Status"] == "starting"
        assert "(health: starting)" in daemon.ok("ps", "--filter", f"name={name}",
                                                 "--format", "{{.Status}}")
        until(lambda: _health(daemon, name)["Status"] == "healthy")
        state = _health(daemon, name)
        assert state["FailingStreak"] == 0
        assert state["Log"][-1]["ExitCode"] == 0 and state["Log"][-1]["Output"] == "ok\n"
        status = daemon.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
        assert status.startswith("Up ") and status.strip().endswith("(healthy)")
        assert daemon.ok("ps", "-q", "--filter", "health=healthy", "--filter",
                         f"name={name}").strip()
        assert not daemon.ok("ps", "-q", "--filter", "health=unhealthy", "--filter",
                             f"name={name}").strip()
        until(lambda: len(_health(daemon, name)["Log"]) == 5)
        time.sleep(0.7)
        assert len(_health(daemon, name)["Log"]) == 5
        events = daemon.ok("events", "--since", since, "--until", str(time.time()),
                           "--filter", f"container={name}", "--format", "{{.Action}}")
        assert events.splitlines().count("health_status: healthy") == 1
    finally:
        daemon.ok("rm", "-f", name)


def test_unhealthy_after_retries_and_timeouts(daemon: Daemon) -> None:
    failing, slow = unique("h"), unique("h")
    daemon.ok("run", "-d", "--name", failing, "--health-cmd", "echo bad >&2; exit 1",
              "--health-interval", "200ms", "--health-retries", "2", "busybox", "sleep", "600")
    daemon.ok("run", "-d", "--name", slow, "--health-cmd", "sleep 5",
              "--health-interval", "200ms", "--health-timeout", "300ms",
              "--health-retries", "1", "busybox", "sleep", "600")
    try:
        until(lambda: _health(daemon, failing)["Status"] == "unhealthy")
        state = _health(daemon, failing)
        assert state["FailingStreak"] >= 2
        assert state["Log"][-1]["ExitCode"] == 1 and state["Log"][-1]["Output"] == "bad\n"
        assert daemon.ok("ps", "--filter", f"name={failing}", "--format",
                         "{{.Status}}").strip().endswith("(unhealthy)")
        until(lambda: _health(daemon, slow)["Status"] == "unhealthy")
        last = _health(daemon, slow)["Log"][-1]
        assert last["ExitCode"] == -1
        assert last["Output"] == "Health check exceeded timeout (300ms)"
    finally:
        daemon.ok("rm", "-f", failing, slow)


def _image_with_healthcheck(directory: str, tag: str) -> str:
    """busybox's docker archive with a HEALTHCHECK in its config, as `docker build` makes."""
    source = tarfile.open(FIXTURES / "busybox.docker.tar")
    manifest = json.load(source.extractfile("manifest.json"))  # type: ignore[arg-type]
    config = json.load(source.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    config["config"]["Healthcheck"] = {"Test": ["CMD-SHELL", "echo from-image"],
                                       "Interval": 200_000_000, "Retries": 2}
    blob = json.dumps(config).encode()
    name = hashlib.sha256(blob).hexdigest() + ".json"
    manifest[0]["Config"] = name
    manifest[0]["RepoTags"] = [tag]
    out = os.path.join(directory, "hc.tar")
    with tarfile.open(out, "w") as dest:
        for member in source.getmembers():
            top_json = member.name.endswith(".json") and "/" not in member.name
            if member.name in ("manifest.json", "repositories") or top_json:
                continue
            dest.addfile(member, source.extractfile(member) if member.isfile() else None)
        for entry, data in ((name, blob), ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(entry)
            info.size = len(data)
            dest.addfile(info, io.BytesIO(data))
    return out


def test_image_healthcheck_is_honoured(daemon: Daemon, tmp_path: Any) -> None:
    tag = "hc-" + uuid.uuid4().hex[:6] + ":latest"
    daemon.ok("load", "-i", _image_with_healthcheck(str(tmp_path), tag))
    name, off = unique("h"), unique("h")
    daemon.ok("run", "-d", "--name", name, tag, "sleep", "600")
    daemon.ok("run", "-d", "--name", off, "--no-healthcheck", tag, "sleep", "600")
    try:
        config = json.loads(daemon.ok("inspect", "--format", "{{json .Config.Healthcheck}}",
                                      name))
        assert config["Test"] == ["CMD-SHELL", "echo from-image"]
        until(lambda: _health(daemon, name)["Status"] == "healthy")
        assert _health(daemon, name)["Log"][-1]["Output"] == "from-image\n"
        assert daemon.ok("inspect", "--format", "{{json .State.Health}}", off).strip() == "null"
    finally:
        daemon.ok("rm", "-f", name, off)
        daemon.ok("rmi", tag)


def _events(daemon: Daemon, name: str, since: str) -> list[dict[str, Any]]:
    out = daemon.ok("events", "--since", since, "--until", str(time.time()), "--filter",
                    f"container={name}", "--format", "{{json .}}")
    return [json.loads(line) for line in out.splitlines()
            if json.loads(line)["Action"] not in ("create", "start", "die", "kill", "stop",
                                                   "destroy")]


def test_probes_are_exec_events(daemon: Daemon, docker_client: Any) -> None:
    """Each probe shows in the events as dockerd's: exec_create: <cmd>, exec_start: <cmd>,
    exec_die with its execID and exitCode, and health_status on a change."""
    good, bad = unique("he"), unique("he")
    since = str(time.time())
    api = docker_client.api  # type: ignore[attr-defined]
    good_id = api.create_container(
        "busybox", ["sleep", "600"], name=good,
        healthcheck={"Test": ["CMD", "true"], "Interval": 300_000_000})["Id"]
    api.start(good_id)
    daemon.ok("run", "-d", "--name", bad, "--health-cmd", "exit 3", "--health-interval",
              "200ms", "--health-retries", "2", "busybox", "sleep", "600")
    try:
        until(lambda: _health(daemon, good)["Status"] == "healthy"
              and _health(daemon, bad)["Status"] == "unhealthy")
        time.sleep(0.5)
        seen = _events(daemon, good, since)
        actions = [e["Action"] for e in seen]
        assert actions[:4] == ["exec_create: true ", "exec_start: true ", "exec_die",
                               "health_status: healthy"], actions
        assert actions.count("health_status: healthy") == 1
        create, start, die = seen[:3]
        ident = create["Actor"]["Attributes"]["execID"]
        assert len(ident) == 64 and start["Actor"]["Attributes"]["execID"] == ident
        assert die["Actor"]["Attributes"]["execID"] == ident
        assert die["Actor"]["Attributes"]["exitCode"] == "0"
        assert die["Actor"]["Attributes"]["name"] == good
        assert seen[0]["Type"] == "container" and seen[0]["Actor"]["ID"] == good_id
        actions = [e["Action"] for e in _events(daemon, bad, since)]
        assert actions[:3] == ["exec_create: /bin/sh -c exit 3",
                               "exec_start: /bin/sh -c exit 3", "exec_die"]
        assert actions.index("health_status: unhealthy") == 6  # after the second probe
        dies = [e for e in _events(daemon, bad, since) if e["Action"] == "exec_die"]
        assert {e["Actor"]["Attributes"]["exitCode"] for e in dies} == {"3"}
    finally:
        daemon.ok("rm", "-f", good, bad)
