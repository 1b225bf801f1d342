"""sampan-runtime's commands and states, as a caller (podman, conmon, a shell) sees them."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from .helpers import Bundle, Runtime


def _wait_status(rt: Runtime, cid: str, status: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = rt.state(cid)
        if state["status"] == status or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


def test_run_prints_output_and_returns_exit_code(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sh", "-c", "echo hello from $(hostname); exit 7")
    result = sampan.run(bundle)
    assert result.stdout == "hello from runc\n"
    assert result.returncode == 7
    assert sampan("list", "-q").stdout == ""  # run removes the container afterwards


def test_states_created_running_stopped(sampan: Runtime, bundle: Bundle) -> None:
    marker = "started-marker"
    bundle.set_args("sh", "-c", f"touch /tmp/{marker}; sleep 30")
    bundle.write()
    pid_file = os.path.join(bundle.path, "init.pid")
    create = sampan("create", "--bundle", bundle.path, "--pid-file", pid_file, bundle.id)
    assert create.returncode == 0, create.stderr
    state = sampan.state(bundle.id)
    assert state["status"] == "created"
    assert state["id"] == bundle.id and state["bundle"] == bundle.path
    with open(pid_file) as f:
        pid = int(f.read())
    assert state["pid"] == pid
    # The user's program has not run before start: the init waits on exec.fifo.
    assert not os.path.exists(os.path.join(bundle.rootfs, "tmp", marker))
    assert sampan("start", bundle.id).returncode == 0
    assert sampan.state(bundle.id)["status"] == "running"
    deadline = time.monotonic() + 5
    while not os.path.exists(f"/proc/{pid}/root/tmp/{marker}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.exists(f"/proc/{pid}/root/tmp/{marker}")
    again = sampan("start", bundle.id)
    assert again.returncode != 0 and "running" in again.stderr
    busy = sampan("delete", bundle.id)
    assert busy.returncode != 0 and "not stopped" in busy.stderr
    assert sampan("kill", bundle.id, "KILL").returncode == 0
    assert _wait_status(sampan, bundle.id, "stopped")["status"] == "stopped"
    assert sampan("delete", bundle.id).returncode == 0
    gone = sampan("state", bundle.id)
    assert gone.returncode != 0 and "does not exist" in gone.stderr


def test_a_start_cut_short_after_the_release_leaves_it_running(
        sampan: Runtime, bundle: Bundle) -> None:
    """A start killed between releasing the init (reading exec.fifo) and removing the fifo
    (sampand runs start in-process: a SIGKILL there) leaves the fifo behind. The container
    runs: state says so, and a second start refuses at once instead of waiting for ever
    for a writer that is gone."""
    bundle.set_args("sh", "-c", "echo released > /tmp/marker; sleep 30")
    bundle.write()
    assert sampan("create", "--bundle", bundle.path, bundle.id).returncode == 0
    fifo = os.path.join(sampan.root, bundle.id, "exec.fifo")
    fd = os.open(fifo, os.O_RDONLY)  # what start does; then it was killed
    try:
        assert os.read(fd, 1) == b"0"
    finally:
        os.close(fd)
    pid = sampan.state(bundle.id)["pid"]
    deadline = time.monotonic() + 5
    while not os.path.exists(f"/proc/{pid}/root/tmp/marker") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.exists(fifo)
    assert sampan.state(bundle.id)["status"] == "running"
    again = sampan("start", bundle.id, timeout=15)
    assert again.returncode != 0 and "already running" in again.stderr
    assert sampan("kill", bundle.id, "KILL").returncode == 0
    assert _wait_status(sampan, bundle.id, "stopped")["status"] == "stopped"
    assert sampan("delete", bundle.id).returncode == 0


def test_start_of_a_container_deleted_as_soon_as_released(
        sampan: Runtime, bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    """sampand runs start in a worker thread: a container that exits at once can be deleted
    (its exit handled on the event loop) before start has removed exec.fifo. The start
    still succeeded. The delete is put in that window here (it cannot be timed for real)."""
    from sampan.runtime import container
    from sampan.runtime.container import Runtime as Library

    bundle.set_args("true")
    bundle.write()
    assert sampan("create", "--bundle", bundle.path, bundle.id).returncode == 0
    library = Library(sampan.root)
    released = container._await_fifo

    def then_deleted(fifo: str, pid: int) -> None:
        released(fifo, pid)
        assert _wait_status(sampan, bundle.id, "stopped")["status"] == "stopped"
        library.delete(bundle.id)

    monkeypatch.setattr(container, "_await_fifo", then_deleted)
    library.start(bundle.id)  # no error
    assert not os.path.exists(os.path.join(sampan.root, bundle.id))


def test_duplicate_id_is_refused(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sleep", "30")
    bundle.write()
    assert sampan("create", "--bundle", bundle.path, bundle.id).returncode == 0
    second = sampan("create", "--bundle", bundle.path, bundle.id)
    assert second.returncode != 0
    assert "exists" in second.stderr
    assert sampan.state(bundle.id)["status"] == "created"


def test_missing_program_is_reported_and_nothing_is_left(sampan: Runtime,
                                                         bundle: Bundle) -> None:
    bundle.set_args("no-such-program")
    mounts_before = open("/proc/self/mountinfo").read().count("\n")
    result = sampan.run(bundle)
    assert result.returncode != 0
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.stderr
    assert os.listdir(sampan.root) == []
    assert open("/proc/self/mountinfo").read().count("\n") == mounts_before
    leftovers = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "6", "-name",
                                bundle.id], capture_output=True, text=True).stdout
    assert leftovers == ""


def test_config_error_names_the_field(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["linux"]["resources"] = {"memory": {"limit": "1g"}}
    result = sampan.run(bundle.set_args("true"))
    assert result.returncode != 0
    assert "linux.resources.memory.limit: expected integer" in result.stderr
    bundle.spec["linux"]["resources"] = {}
    bundle.spec["process"]["cwd"] = "relative"
    result = sampan.run(bundle)
    assert "process.cwd" in result.stderr and result.returncode != 0


def test_rlimit_above_hard_limit_is_a_clear_error(sampan: Runtime, bundle: Bundle) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    bundle.spec["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": hard + 1000, "soft": 1024}]
    result = sampan.run(bundle.set_args("true"))
    assert result.returncode != 0
    assert "process.rlimits[0]" in result.stderr and "CAP_SYS_RESOURCE" in result.stderr
    assert os.listdir(sampan.root) == []


def test_rlimits_are_applied(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256},
        {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200}]
    result = sampan.run(bundle.set_args("sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"))
    assert result.stdout.split() == ["256", "512", "200"], result.stderr


def test_kill_signal_names_and_numbers(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sleep", "30")
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    assert sampan.state(bundle.id)["status"] == "running"
    bad = sampan("kill", bundle.id, "NOPE")
    assert bad.returncode != 0 and "unknown signal" in bad.stderr
    assert sampan("kill", bundle.id, "9").returncode == 0
    assert _wait_status(sampan, bundle.id, "stopped")["status"] == "stopped"
    assert sampan("kill", bundle.id, "TERM").returncode != 0
    assert sampan("delete", bundle.id).returncode == 0


def test_delete_force_of_running_container(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sleep", "30")
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    pid = sampan.state(bundle.id)["pid"]
    assert sampan("delete", "--force", bundle.id).returncode == 0
    assert not os.path.exists(f"/proc/{pid}/stat") or \
        open(f"/proc/{pid}/stat").read().split(") ")[1][0] in "ZX"
    assert os.listdir(sampan.root) == []


def test_list_and_ps(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sh", "-c", "sleep 30 & sleep 31; exit 0")  # sh, two sleeps
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    listing = json.loads(sampan("list", "--format", "json").stdout)
    assert [c["id"] for c in listing] == [bundle.id]
    assert listing[0]["status"] == "running"
    table = sampan("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[0] == bundle.id
    deadline = time.monotonic() + 5
    pids: list[int] = []
    while len(pids) < 3 and time.monotonic() < deadline:
        pids = json.loads(sampan("ps", "--format", "json", bundle.id).stdout)
        time.sleep(0.05)
    assert len(pids) == 3
    ps = sampan("ps", bundle.id).stdout.splitlines()
    assert "PID" in ps[0] and len(ps) == 4
    assert sum(line.endswith(("sleep 30", "sleep 31")) for line in ps) == 2


def test_pause_and_resume(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sleep", "30")
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    pid = sampan.state(bundle.id)["pid"]
    assert sampan("pause", bundle.id).returncode == 0
    assert sampan.state(bundle.id)["status"] == "paused"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ")[1][0] == "D" or _frozen(pid):
                break
        time.sleep(0.05)
    assert _frozen(pid)
    assert sampan("pause", bundle.id).returncode != 0
    assert sampan("resume", bundle.id).returncode == 0
    assert sampan.state(bundle.id)["status"] == "running"
    assert sampan("delete", "-f", bundle.id).returncode == 0


def _frozen(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    return "State:\tD" in status or "frozen" in status.lower()


def test_exec_joins_the_container(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["hostname"] = "exec-host"
    bundle.set_args("sh", "-c", "echo inside > /tmp/mark; sleep 30")
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    deadline = time.monotonic() + 5
    out = sampan("exec", bundle.id, "cat", "/tmp/mark")
    while out.stdout != "inside\n" and time.monotonic() < deadline:
        time.sleep(0.05)
        out = sampan("exec", bundle.id, "cat", "/tmp/mark")
    assert out.stdout == "inside\n"
    host = sampan("exec", "--env", "X=y", "--cwd", "/tmp", bundle.id,
                  "sh", "-c", "echo $(hostname) $X $(pwd) $$; exit 3")
    assert host.returncode == 3
    name, x, cwd, pid = host.stdout.split()
    assert (name, x, cwd) == ("exec-host", "y", "/tmp")
    assert int(pid) > 1  # in the container's PID namespace, not PID 1
    as_nobody = sampan("exec", "--user", "65534:65534", bundle.id, "id")
    assert as_nobody.stdout.startswith("uid=65534(nobody) gid=65534(nogroup)")
    missing = sampan("exec", bundle.id, "nope")
    assert missing.returncode != 0
    assert 'exec: "nope": executable file not found in $PATH' in missing.stderr
    proc_file = os.path.join(bundle.path, "process.json")
    with open(proc_file, "w") as f:
        json.dump({"args": ["sh", "-c", "echo $FROMFILE"], "cwd": "/",
                   "env": ["FROMFILE=yes"], "user": {"uid": 0, "gid": 0}}, f)
    from_file = sampan("exec", "--process", proc_file, bundle.id)
    assert from_file.stdout == "yes\n", from_file.stderr
    pid_file = os.path.join(bundle.path, "exec.pid")
    detached = sampan("exec", "-d", "--pid-file", pid_file, bundle.id, "sleep", "20")
    assert detached.returncode == 0
    with open(pid_file) as f:
        exec_pid = int(f.read())
    assert exec_pid in json.loads(sampan("ps", "--format", "json", bundle.id).stdout)


def test_update_changes_limits_live(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["linux"]["resources"] = {"pids": {"limit": 50}}
    bundle.set_args("sleep", "30")
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    pid = sampan.state(bundle.id)["pid"]
    pids_dir = _cgroup_dir(pid, "pids")
    assert open(os.path.join(pids_dir, "pids.max")).read().strip() == "50"
    assert sampan("update", "--pids-limit", "20", bundle.id).returncode == 0
    assert open(os.path.join(pids_dir, "pids.max")).read().strip() == "20"
    res = os.path.join(bundle.path, "res.json")
    with open(res, "w") as f:
        json.dump({"memory": {"limit": 64 * 1024 * 1024}}, f)
    assert sampan("update", "--resources", res, bundle.id).returncode == 0
    mem_dir = _cgroup_dir(pid, "memory")
    assert open(os.path.join(mem_dir, "memory.limit_in_bytes")).read().strip() == \
        str(64 * 1024 * 1024)


def _cgroup_dir(pid: int, controller: str) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return f"/sys/fs/cgroup/{controller}{path}"
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_hooks_run_in_order_with_state(sampan: Runtime, bundle: Bundle) -> None:
    log = os.path.join(bundle.path, "hooks.log")
    hooks = {}
    for phase in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
        hooks[phase] = [{"path": "/bin/sh",
                         "args": ["sh", "-c", f"read s; echo {phase} \"$s\" >> {log}"]}]
    bundle.spec["hooks"] = hooks
    result = sampan.run(bundle.set_args("true"))
    assert result.returncode == 0, result.stderr
    lines = open(log).read().splitlines()
    phases = [line.split(" ", 1)[0] for line in lines]
    assert phases == ["prestart", "createRuntime", "createContainer", "poststart",
                      "poststop"]
    state = json.loads(lines[0].split(" ", 1)[1])
    assert state["id"] == bundle.id and state["bundle"] == bundle.path and state["pid"] > 0


def test_failing_hook_fails_create_and_cleans_up(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    result = sampan.run(bundle.set_args("true"))
    assert result.returncode != 0 and "createRuntime hook" in result.stderr
    assert os.listdir(sampan.root) == []
    bundle.spec["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "5"],
                                               "timeout": 1}]}
    result = sampan.run(bundle)
    assert "timed out" in result.stderr


def test_foreground_run_forwards_signals(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sh", "-c", "trap 'echo got-term; exit 42' TERM; "
                    "echo ready; while true; do sleep 0.1; done")
    bundle.write()
    proc = subprocess.Popen([sampan.binary, "--root", sampan.root, "run", "--bundle",
                             bundle.path, bundle.id], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert out == "got-term\n"
    assert proc.returncode == 42


@pytest.mark.parametrize("flags", [[], ["--rootless"]])
def test_spec_writes_runc_compatible_config(tmp_path, flags: list[str]) -> None:
    from .helpers import SAMPAN_RUNTIME

    spec = [SAMPAN_RUNTIME, "spec", *flags, "--bundle", str(tmp_path)]
    assert subprocess.run(spec).returncode == 0
    ours = json.loads((tmp_path / "config.json").read_text())
    runc_dir = tmp_path / "runc"
    runc_dir.mkdir()
    subprocess.run(["runc", "spec", *flags, "--bundle", str(runc_dir)], check=True)
    theirs = json.loads((runc_dir / "config.json").read_text())
    ours.pop("ociVersion")
    theirs.pop("ociVersion")
    assert ours == theirs
    again = subprocess.run(spec, capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr


def test_features_document() -> None:
    from .helpers import SAMPAN_RUNTIME

    doc = json.loads(subprocess.run([SAMPAN_RUNTIME, "features"], capture_output=True,
                                    check=True).stdout)
    assert doc["ociVersionMin"] == "1.0.0"
    assert set(doc["linux"]["namespaces"]) >= {"pid", "user", "cgroup", "time"}
    assert "CAP_SYS_ADMIN" in doc["linux"]["capabilities"]
    assert "SCMP_ACT_ERRNO" in doc["linux"]["seccomp"]["actions"]


@pytest.mark.parametrize("state_cmd", ["state", "kill", "delete", "start", "pause"])
def test_unknown_container_errors(sampan: Runtime, state_cmd: str) -> None:
    result = sampan(state_cmd, "does-not-exist")
    assert result.returncode != 0
    assert "does not exist" in result.stderr


def test_invalid_container_id(sampan: Runtime, bundle: Bundle) -> None:
    bundle.write()
    result = sampan("create", "--bundle", bundle.path, "../escape")
    assert result.returncode != 0 and "invalid container id" in result.stderr


@pytest.mark.parametrize(("field", "value", "lsm"), [
    ("apparmorProfile", "docker-default", "AppArmor"),
    ("selinuxLabel", "system_u:system_r:container_t:s0", "SELinux"),
])
def test_security_label_the_host_cannot_apply_is_a_clear_error(
        sampan: Runtime, bundle: Bundle, field: str, value: str, lsm: str) -> None:
    # Neither LSM is active on this machine: asking for one must fail, not be ignored.
    bundle.spec["process"][field] = value
    result = sampan.run(bundle.set_args("true"))
    assert result.returncode != 0
    assert f"process.{field}" in result.stderr and f"{lsm} is not enabled" in result.stderr
    assert os.listdir(sampan.root) == []
