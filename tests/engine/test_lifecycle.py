"""pause/unpause, update (live, on the real cgroup), --init (tini as PID 1) and OOMKilled,
through the docker CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .conftest import DOCKER, Daemon, unique, until
from .spawn import Spawned, started


def _cgroup_file(daemon: Daemon, cid: str, controller: str, name: str) -> str:
    """The container's cgroup file, v1 (``/sys/fs/cgroup/<controller>``) or v2."""
    for root in (f"/sys/fs/cgroup/{controller}", "/sys/fs/cgroup"):
        path = f"{root}{daemon.cgroup_parent}/{cid}/{name}"
        if os.path.exists(path):
            with open(path) as f:
                return f.read().strip()
    raise AssertionError(f"no {name} for {cid}")


def test_pause_and_unpause(daemon: Daemon) -> None:
    name = unique("c")
    since = str(time.time())
    daemon.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done")
    try:
        until(lambda: "tick" in daemon.ok("logs", name))
        daemon.ok("pause", name)
        state = json.loads(daemon.ok("inspect", "--format", "{{json .State}}", name))
        assert (state["Status"], state["Running"], state["Paused"]) == ("paused", True, True)
        assert daemon.ok("ps", "--filter", f"name={name}", "--format",
                         "{{.Status}}").strip().endswith("(Paused)")
        assert daemon.ok("ps", "-q", "--filter", "status=paused", "--filter",
                         f"name={name}").strip()
        time.sleep(0.3)
        frozen = daemon.ok("logs", name).count("tick")
        time.sleep(0.6)
        assert daemon.ok("logs", name).count("tick") == frozen  # no output while frozen
        again = daemon.docker("pause", name)
        assert again.returncode != 0 and "already paused" in again.stderr
        start = daemon.docker("start", name)
        assert start.returncode != 0 and "unpause" in start.stderr
        daemon.ok("unpause", name)
        assert daemon.ok("inspect", "--format", "{{.State.Status}}", name) == "running\n"
        until(lambda: daemon.ok("logs", name).count("tick") > frozen)
        not_paused = daemon.docker("unpause", name)
        assert not_paused.returncode != 0 and "is not paused" in not_paused.stderr
        daemon.ok("pause", name)
        daemon.ok("stop", "-t", "5", name)  # a paused container stops (its signal thaws it)
        assert daemon.ok("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                         name) == "exited 0\n"
        events = daemon.ok("events", "--since", since, "--until", str(time.time()),
                           "--filter", f"container={name}", "--format", "{{.Action}}")
        assert events.split().count("pause") == 2 and events.split().count("unpause") >= 1
    finally:
        daemon.ok("rm", "-f", name)


def test_update_changes_the_live_cgroup(daemon: Daemon) -> None:
    name = unique("c")
    daemon.ok("run", "-d", "--name", name, "-m", "32m", "busybox", "sleep", "600")
    try:
        cid = daemon.ok("inspect", "--format", "{{.Id}}", name).strip()
        daemon.ok("update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5",
                  "--pids-limit", "50", "--cpu-shares", "512", "--restart", "on-failure:3",
                  name)
        host = json.loads(daemon.ok("inspect", "--format", "{{json .HostConfig}}", name))
        assert host["Memory"] == 64 * 1024 * 1024 and host["MemorySwap"] == 128 * 1024 * 1024
        assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 50
        assert host["CpuShares"] == 512
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        if os.path.isdir("/sys/fs/cgroup/memory"):
            assert _cgroup_file(daemon, cid, "memory", "memory.limit_in_bytes") == \
                str(64 * 1024 * 1024)
            assert _cgroup_file(daemon, cid, "pids", "pids.max") == "50"
            assert _cgroup_file(daemon, cid, "cpu", "cpu.cfs_quota_us") == "50000"
            assert _cgroup_file(daemon, cid, "cpu", "cpu.shares") == "512"
        else:
            assert _cgroup_file(daemon, cid, "", "memory.max") == str(64 * 1024 * 1024)
            assert _cgroup_file(daemon, cid, "", "pids.max") == "50"
        with daemon.http() as http:
            r = http.post(f"/containers/{name}/update", json={"Memory": 1024})
            assert r.status_code == 400 and "Minimum memory limit" in r.json()["message"]
            r = http.post("/containers/nope-nope/update", json={"Memory": 1024})
            assert r.status_code == 404
        assert json.loads(daemon.ok("inspect", "--format", "{{json .HostConfig.Memory}}",
                                    name)) == 64 * 1024 * 1024  # the refused one changed nothing
    finally:
        daemon.ok("rm", "-f", name)


def test_init_runs_tini_as_pid1(daemon: Daemon) -> None:
    out = daemon.ok("run", "--rm", "--init", "busybox", "sh", "-c",
                    "tr '\\0' ' ' < /proc/1/cmdline; echo; ls -l /sbin/docker-init; "
                    "touch /sbin/docker-init 2>&1 || echo read-only")
    lines = out.splitlines()
    assert lines[0].strip() == "/sbin/docker-init -- sh -c " + \
        "tr '\\0' ' ' < /proc/1/cmdline; echo; ls -l /sbin/docker-init; " \
        "touch /sbin/docker-init 2>&1 || echo read-only"
    assert lines[-1] == "read-only"
    # tini reaps a zombie the command leaves and passes the exit code on
    code = daemon.docker("run", "--rm", "--init", "busybox", "sh", "-c", "exit 7")
    assert code.returncode == 7
    name = unique("c")
    daemon.ok("create", "--name", name, "--init", "busybox", "true")
    try:
        assert daemon.ok("inspect", "--format", "{{.HostConfig.Init}}", name) == "true\n"
    finally:
        daemon.ok("rm", name)


def test_oom_killed(daemon: Daemon) -> None:
    name, fine = unique("c"), unique("c")
    daemon.ok("run", "-d", "--name", name, "-m", "8m", "--memory-swap", "8m", "busybox",
              "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
    daemon.ok("run", "--name", fine, "-m", "8m", "busybox", "true")
    try:
        assert daemon.ok("wait", name) == "137\n"
        assert daemon.ok("inspect", "--format", "{{.State.OOMKilled}}", name) == "true\n"
        assert daemon.ok("inspect", "--format", "{{.State.OOMKilled}}", fine) == "false\n"
    finally:
        daemon.ok("rm", "-f", name, fine)


def test_docker_py_lifecycle(docker_client: object) -> None:
    """The same features through docker-py: run with a restart policy and a healthcheck,
    pause, update, stats, logs with since/until."""
    import docker

    client = docker_client
    assert isinstance(client, docker.DockerClient)
    c = client.containers.run(
        "busybox", ["sh", "-c", "echo hello; sleep 600"], detach=True, name=unique("c"),
        restart_policy={"Name": "unless-stopped"}, mem_limit="48m",
        healthcheck={"test": ["CMD", "true"], "interval": 200_000_000, "retries": 1})
    try:
        until(lambda: (c.reload() or c.attrs["State"].get("Health", {})).get("Status")
               == "healthy")
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        c.update(mem_limit="96m", memswap_limit="192m")
        c.reload()
        assert c.attrs["HostConfig"]["Memory"] == 96 * 1024 * 1024
        sample = c.stats(stream=False)
        assert sample["memory_stats"]["limit"] == 96 * 1024 * 1024
        assert sample["precpu_stats"]["system_cpu_usage"] > 0
        until(lambda: c.logs() == b"hello\n")
        assert c.logs(timestamps=True).split(b" ", 1)[1] == b"hello\n"
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited"
    finally:
        c.remove(force=True)


def _cpus_of_init(daemon: Daemon, name: str) -> str:
    status = daemon.ok("exec", name, "cat", "/proc/1/status")
    return next(line.split(":", 1)[1].strip() for line in status.splitlines()
                if line.startswith("Cpus_allowed_list:"))


def test_cpuset_cpus_places_the_container_and_follows_update(daemon: Daemon) -> None:
    """The init runs where its cpuset allows, and only there; widened by `update`, it may
    run on every CPU (the runtime forks it apart from its own CPU, then resets it to every
    CPU: a mask left at "all but the runtime's" would not widen)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        import pytest

        pytest.skip("needs two CPUs")
    every = f"{cpus[0]}-{cpus[-1]}"
    plain = daemon.ok("run", "--rm", "busybox", "grep", "Cpus_allowed_list", "/proc/self/status")
    assert plain.split()[-1] == every
    name = unique("c")
    daemon.ok("run", "-d", "--name", name, "--cpuset-cpus", str(cpus[1]), "busybox",
              "sleep", "600")
    try:
        assert _cpus_of_init(daemon, name) == str(cpus[1])
        daemon.ok("update", "--cpuset-cpus", every, name)
        assert _cpus_of_init(daemon, name) == every
        daemon.ok("update", "--cpuset-cpus", str(cpus[0]), name)
        assert _cpus_of_init(daemon, name) == str(cpus[0])
    finally:
        daemon.ok("rm", "-f", name)


def test_a_command_that_ends_during_the_start_starts_then_dies(tmp_path: Path) -> None:
    """A command that ends before the runtime's start has returned: its exit is handled
    after the start, so its events come in order (start, die, then destroy for --rm)
    and nothing of the start is done for a container already removed. The runtime here
    lingers a second in `start` after the release, which makes that window wide."""
    slow = _lingering_start(tmp_path, "sleep 1")
    with started(["--add-runtime", f"slowstart={slow}"]) as d:
        name = unique("c")
        since = str(time.time())
        assert d.ok("run", "--rm", "--runtime", "slowstart", "--name", name, "busybox",
                    "echo", "done") == "done\n"
        until(lambda: "destroy" in _actions(d, name, since))
        actions = [a for a in _actions(d, name, since) if a in ("start", "die", "destroy")]
        assert actions == ["start", "die", "destroy"]


def _actions(d: Spawned, name: str, since: str) -> list[str]:
    out = d.ok("events", "--since", since, "--until", str(time.time()), "--filter",
               f"container={name}", "--format", "{{.Action}}")
    return out.split()


def test_rm_f_during_a_start_that_then_fails(tmp_path: Path) -> None:
    """`rm -f` while the runtime's start is under way, the init already released, and the
    start then fails: the removal goes on (it waits for the run's end, which the failed
    start's handling reports) and the start reports its failure."""
    failing = _lingering_start(tmp_path, "sleep 2; echo 'start failed' >&2; exit 1")
    with started(["--add-runtime", f"failstart={failing}"]) as d:
        name = unique("c")
        d.ok("create", "--runtime", "failstart", "--name", name, "busybox", "sleep", "600")
        start = subprocess.Popen([DOCKER, "start", name], env=d.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            until(lambda: d.ok("inspect", "--format", "{{.State.Status}}", name) ==
                  "running\n")
            removed = d.docker("rm", "-f", name, timeout=40)
            assert removed.returncode == 0, removed.stderr
            _, err = start.communicate(timeout=40)
            assert start.returncode != 0 and "start failed" in err
            assert d.docker("inspect", name).returncode != 0
        finally:
            if start.poll() is None:
                start.kill()
                start.wait()


def _lingering_start(tmp_path: Path, then: str) -> Path:
    """A runtime that is sampan-runtime, whose `start` goes on with ``then`` (shell) once
    the real start has released the init: the window between the two made wide."""
    runtime = os.path.join(os.path.dirname(sys.executable), "sampan-runtime")
    path = tmp_path / "lingering-start-runtime"
    path.write_text(f'#!/bin/sh\n"{runtime}" "$@" || exit\n'
                    f'case " $* " in *" start "*) {then} ;; esac\n')
    path.chmod(0o755)
    return path
