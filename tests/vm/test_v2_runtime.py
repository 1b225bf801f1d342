"""sampan-runtime's resource limits, end to end, on the pure cgroup v2 VM.

The runtime-level tests of tests/runtime (memory hog OOM-killed, fork bomb held at the pids
limit, pause and resume) run on this host's cgroup v1 controllers; here the same scenarios,
plus cpu limits, ``update``, ``kill --all`` and ``delete --force``, go through the real
``sampan-runtime`` command line inside the VM (scripts/test-vm.sh), on busybox bundles, and
the container's cgroup files are checked from the VM's side.

The runtime is ``python3 -m sampan.cli.runtime`` with the shared src/ on PYTHONPATH (nothing
is installed in the guest), through a wrapper script in a temporary directory. The rootfs
uses the static busybox the VM image carries for its own init. Everything a test makes
(bundles, state roots, containers, cgroups) lives in the guest's /tmp and its cgroup tree,
and is removed at the end of the test.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..runtime import helpers
from ..runtime.helpers import (
    GREP_CPUS,
    Bundle,
    Runtime,
    cpus_allowed,
    default_spec,
    make_rootfs,
    run_pinned,
)

pytestmark = pytest.mark.vm

CGROUP_ROOT = "/sys/fs/cgroup"
MB = 1 << 20
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))
# make-vm.sh puts the host's busybox-static there (the guest's poweroff); a Debian
# /bin/busybox, where there is one, would do as well.
BUSYBOX_CANDIDATES = ("/usr/local/libexec/sampan-vm/busybox", "/bin/busybox")
# Every CLI call is a fresh Python under TCG: give it time.
TIMEOUT = 120

IN_MODIFY = 0x2
# In a container: cd to its own cgroup directory.
OWN_CGROUP_SH = 'cd "/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)"'


# ---- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def runtime_binary() -> Iterator[str]:
    """A sampan-runtime executable for the guest: the CLI module over a copy of src/.

    The copy lives in the guest's /tmp so that Python can keep its bytecode next to it:
    under TCG, compiling sampan again for every command (nothing may be written into the
    share) makes each one take three times as long.
    """
    tmp = tempfile.mkdtemp(prefix="sampan-vm-bin-")
    src = os.path.join(tmp, "src")
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    path = os.path.join(tmp, "sampan-runtime")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                "unset PYTHONDONTWRITEBYTECODE\n"
                f"PYTHONPATH='{src}' exec '{sys.executable}' -m sampan.cli.runtime \"$@\"\n")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(tmp)


@pytest.fixture(scope="session")
def base_rootfs() -> Iterator[str]:
    busybox = next((b for b in BUSYBOX_CANDIDATES if os.access(b, os.X_OK)), None)
    assert busybox is not None, f"no static busybox in the VM image ({BUSYBOX_CANDIDATES})"
    tmp = tempfile.mkdtemp(prefix="sampan-vm-rootfs-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(helpers, "BUSYBOX", busybox)
        path = make_rootfs(os.path.join(tmp, "rootfs"))
    yield path
    shutil.rmtree(tmp)


@pytest.fixture
def bundle(base_rootfs: str, tmp_path: Any) -> Iterator[Bundle]:
    shutil.copytree(base_rootfs, tmp_path / "rootfs", symlinks=True)
    yield Bundle(str(tmp_path), copy.deepcopy(default_spec()))
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def sampan(runtime_binary: str) -> Iterator[Runtime]:
    root = tempfile.mkdtemp(prefix="sampan-vm-state-")
    rt = Runtime(runtime_binary, root)
    yield rt
    try:
        if os.listdir(root):  # a container left behind (each command costs seconds here)
            rt.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- helpers -------------------------------------------------------------------------


def call(rt: Runtime, *args: str, timeout: float = TIMEOUT) -> Any:
    return rt(*args, timeout=timeout)


def ok(rt: Runtime, *args: str) -> str:
    result = call(rt, *args)
    assert result.returncode == 0, (args, result.returncode, result.stderr)
    return str(result.stdout)


def start_detached(rt: Runtime, bundle: Bundle) -> tuple[int, str]:
    """run -d; the container's init pid and its cgroup directory (seen from the VM)."""
    bundle.write()
    ok(rt, "run", "-d", "--bundle", bundle.path, bundle.id)
    state = rt.state(bundle.id)
    assert state["status"] == "running", state
    pid = int(state["pid"])
    return pid, cgroup_dir(pid)


def inside(rt: Runtime, cid: str, *files: str) -> list[str]:
    """The words of cgroup files as the container reads them (through exec)."""
    return ok(rt, "exec", cid, "sh", "-c", f"{OWN_CGROUP_SH} && cat {' '.join(files)}").split()


def cgroup_dir(pid: int) -> str:
    """The cgroup v2 directory of ``pid`` (``state`` does not show it: /proc does)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::/"), lines  # pure v2
    path = os.path.join(CGROUP_ROOT, lines[0][len("0::/"):])
    assert path != CGROUP_ROOT and os.path.isdir(path), path
    return path


def read(cg: str, name: str) -> str:
    with open(os.path.join(cg, name)) as f:
        return f.read().strip()


def keyed(cg: str, name: str) -> dict[str, int]:
    out = {}
    for line in read(cg, name).splitlines():
        key, value = line.split()
        out[key] = int(value)
    return out


def procs(cg: str) -> list[int]:
    return [int(p) for p in read(cg, "cgroup.procs").split()]


def cpu_time(pid: int) -> int:
    """utime + stime of ``pid``, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped while reading
        return False


def cpu_weight(shares: int) -> int:
    """runc's cpu.shares → cpu.weight conversion (libcontainer/cgroups/utils.go)."""
    return 1 + ((shares - 2) * 9999) // 262142


class Writes:
    """Counts writes to one file (inotify IN_MODIFY): which cgroup files the runtime wrote."""

    def __init__(self, path: str) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        wd = self.libc.inotify_add_watch(self.fd, path.encode(), IN_MODIFY)
        assert wd >= 0, os.strerror(ctypes.get_errno())
        self.count = 0

    def poll(self) -> int:
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return self.count
            offset = 0
            while offset < len(data):
                _wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                if mask & IN_MODIFY:
                    self.count += 1
                offset += 16 + length

    def close(self) -> None:
        os.close(self.fd)


# ---- memory --------------------------------------------------------------------------


def test_memory_hog_is_oom_killed(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["linux"]["resources"] = {"memory": {"limit": 32 * MB, "swap": 32 * MB}}
    bundle.set_args("dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1")
    result = sampan.run(bundle, timeout=TIMEOUT)
    assert result.returncode == 137, (result.returncode, result.stderr)
    assert "OOM" in result.stderr
    # run deleted the container, its cgroup with it.
    assert not os.path.exists(os.path.join(CGROUP_ROOT, "sampan", bundle.id))
    assert os.listdir(sampan.root) == []


@pytest.mark.parametrize("cgroupns", [False, True], ids=["no-cgroupns", "cgroupns"])
def test_limits_visible_inside(sampan: Runtime, bundle: Bundle, cgroupns: bool) -> None:
    """The container sees its limits in its own cgroup directory: the root of its
    /sys/fs/cgroup with a cgroup namespace, else (as under runc, which mounts cgroup2 there
    either way) /sys/fs/cgroup/<its path>."""
    if cgroupns:
        bundle.spec["linux"]["namespaces"].append({"type": "cgroup"})
    bundle.spec["linux"]["resources"] = {"memory": {"limit": 32 * MB, "swap": 48 * MB},
                                         "pids": {"limit": 20}}
    bundle.set_args("sh", "-c", f"cat /proc/self/cgroup && {OWN_CGROUP_SH} && "
                    "cat memory.max memory.swap.max pids.max")
    result = sampan.run(bundle, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    own, memory_max, swap_max, pids_max = result.stdout.splitlines()
    assert (memory_max, swap_max, pids_max) == (str(32 * MB), str(16 * MB), "20")
    if cgroupns:
        assert own == "0::/"  # the container's cgroup is its root
    else:
        assert own == f"0::/sampan/{bundle.id}"


def test_memory_limit_on_the_host_side(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["linux"]["cgroupsPath"] = f"/sampan-vm-test/{bundle.id}"  # absolute
    bundle.spec["linux"]["resources"] = {"memory": {"limit": 40 * MB, "swap": 40 * MB,
                                                    "reservation": 8 * MB}}
    bundle.set_args("sleep", "600")
    try:
        pid, cg = start_detached(sampan, bundle)
        assert cg == f"{CGROUP_ROOT}/sampan-vm-test/{bundle.id}"
        assert procs(cg) == [pid]
        assert read(cg, "memory.max") == str(40 * MB)
        assert read(cg, "memory.swap.max") == "0"
        assert read(cg, "memory.low") == str(8 * MB)
        ok(sampan, "delete", "--force", bundle.id)
        assert not os.path.exists(cg)
    finally:
        sampan.cleanup()
        # As runc, only the container's own level goes: the parent named in the config stays.
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(f"{CGROUP_ROOT}/sampan-vm-test")


# ---- pids ----------------------------------------------------------------------------


def test_fork_bomb_stops_at_pids_limit(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["linux"]["resources"] = {"pids": {"limit": 16}}
    bundle.set_args("sh", "-c", "sh -c 'while true; do sleep 600 & done' 2>/tmp/err; "
                    "exec sleep 600")
    _pid, cg = start_detached(sampan, bundle)
    assert read(cg, "pids.max") == "16"
    # The loop never ends by itself: only the limit stops it (a fork refused, the inner
    # shell gives up). Wait until the count settles.
    wait_for(lambda: keyed(cg, "pids.events")["max"] >= 1, what="a fork refused")
    counts: list[int] = []
    deadline = time.monotonic() + 30
    while len(counts) < 5 or len(set(counts[-5:])) != 1:
        assert time.monotonic() < deadline, counts
        counts.append(int(read(cg, "pids.current")))
        time.sleep(0.2)
    assert max(counts) <= 16 and counts[-1] >= 12, counts
    listed = json.loads(ok(sampan, "ps", "--format", "json", bundle.id))
    assert sorted(listed) == sorted(procs(cg)) and len(listed) == counts[-1]
    # exec still works: joining the cgroup is not a fork in it.
    err = call(sampan, "exec", bundle.id, "cat", "/tmp/err")
    assert err.returncode == 0, err.stderr
    assert "can't fork" in err.stdout
    ok(sampan, "delete", "--force", bundle.id)
    assert not os.path.exists(cg)


# ---- cpu -----------------------------------------------------------------------------


def test_cpu_quota_and_shares(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["linux"]["resources"] = {"cpu": {"shares": 512, "quota": 20_000,
                                                 "period": 100_000}}
    bundle.set_args("sh", "-c", "while :; do :; done")
    _pid, cg = start_detached(sampan, bundle)
    assert read(cg, "cpu.max") == "20000 100000"
    assert read(cg, "cpu.weight") == str(cpu_weight(512)) == "20"
    assert inside(sampan, bundle.id, "cpu.max", "cpu.weight") == ["20000", "100000", "20"]
    # The quota holds: a busy loop gets throttled, at about a fifth of a CPU.
    start = keyed(cg, "cpu.stat")
    t0 = time.monotonic()
    wait_for(lambda: keyed(cg, "cpu.stat")["nr_throttled"] >= start["nr_throttled"] + 5,
             what="throttling")
    time.sleep(1)
    end = keyed(cg, "cpu.stat")
    wall = time.monotonic() - t0
    assert end["throttled_usec"] > start["throttled_usec"]
    used = (end["usage_usec"] - start["usage_usec"]) / 1e6
    assert used <= 0.2 * wall * 1.5 + 0.1, (used, wall)
    # update: only what is given changes.
    ok(sampan, "update", "--cpu-quota", "50000", bundle.id)
    assert read(cg, "cpu.max") == "50000 100000"
    ok(sampan, "update", "--cpu-period", "200000", "--cpu-share", "1024", bundle.id)
    assert read(cg, "cpu.max") == "50000 200000"
    assert read(cg, "cpu.weight") == str(cpu_weight(1024)) == "39"
    ok(sampan, "update", "--cpu-quota", "-1", bundle.id)
    assert read(cg, "cpu.max") == "max 200000"
    ok(sampan, "delete", "--force", bundle.id)
    assert not os.path.exists(cg)


# ---- freezer -------------------------------------------------------------------------


def test_pause_and_resume(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sh", "-c", "sleep 600 & while :; do :; done")
    pid, cg = start_detached(sampan, bundle)
    freezes = Writes(os.path.join(cg, "cgroup.freeze"))
    try:
        ok(sampan, "pause", bundle.id)
        assert sampan.state(bundle.id)["status"] == "paused"
        assert read(cg, "cgroup.freeze") == "1"
        assert keyed(cg, "cgroup.events")["frozen"] == 1
        assert freezes.poll() >= 1
        # Frozen: the busy loop gets no CPU at all.
        before = cpu_time(pid)
        time.sleep(1)
        assert cpu_time(pid) == before
        assert call(sampan, "pause", bundle.id).returncode != 0  # already paused
        ok(sampan, "resume", bundle.id)
        assert sampan.state(bundle.id)["status"] == "running"
        assert read(cg, "cgroup.freeze") == "0"
        assert keyed(cg, "cgroup.events")["frozen"] == 0
        wait_for(lambda: cpu_time(pid) > before, what="the loop to run again")
        assert call(sampan, "resume", bundle.id).returncode != 0  # not paused
        # A paused container can be deleted by force: killed, thawed, gone.
        ok(sampan, "pause", bundle.id)
        container_procs = procs(cg)
        assert len(container_procs) == 2
        ok(sampan, "delete", "--force", bundle.id)
        assert not os.path.exists(cg)
        assert not any(alive(p) for p in container_procs)
    finally:
        freezes.close()


# ---- update --------------------------------------------------------------------------


def test_update_changes_limits_live(sampan: Runtime, bundle: Bundle, tmp_path: Any) -> None:
    bundle.spec["linux"]["resources"] = {"memory": {"limit": 64 * MB},
                                         "pids": {"limit": 32}}
    bundle.set_args("sleep", "600")
    _pid, cg = start_detached(sampan, bundle)
    assert (read(cg, "memory.max"), read(cg, "pids.max")) == (str(64 * MB), "32")
    ok(sampan, "update", "--memory", "24m", "--memory-swap", "24m", "--pids-limit", "8",
       bundle.id)
    assert (read(cg, "memory.max"), read(cg, "memory.swap.max"), read(cg, "pids.max")) == (
        str(24 * MB), "0", "8")
    assert inside(sampan, bundle.id, "memory.max", "pids.max") == [str(24 * MB), "8"]
    # The new memory limit holds.
    hog = call(sampan, "exec", bundle.id, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M",
               "count=1")
    assert hog.returncode == 137, (hog.returncode, hog.stderr)
    assert keyed(cg, "memory.events")["oom_kill"] >= 1
    # And the new pids limit: with the limit at 1, the exec'd shell (joined, not forked)
    # cannot fork.
    ok(sampan, "update", "--pids-limit", "1", bundle.id)
    fork = call(sampan, "exec", bundle.id, "sh", "-c", "sleep 1 & wait; echo done")
    assert "can't fork" in fork.stderr, (fork.returncode, fork.stdout, fork.stderr)
    # --resources: a linux.resources JSON document; -1 lifts the limits.
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"memory": {"limit": -1, "swap": -1},
                                     "pids": {"limit": -1}}))
    ok(sampan, "update", "--resources", str(resources), bundle.id)
    assert (read(cg, "memory.max"), read(cg, "memory.swap.max"), read(cg, "pids.max")) == (
        "max", "max", "max")
    fork = call(sampan, "exec", bundle.id, "sh", "-c", "sleep 0 & wait; echo done")
    assert fork.returncode == 0 and fork.stdout == "done\n", (fork.stdout, fork.stderr)
    ok(sampan, "delete", "--force", bundle.id)
    assert not os.path.exists(cg)


# ---- kill and delete -----------------------------------------------------------------


def test_kill_all_goes_through_cgroup_kill(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sh", "-c", "sleep 600 & sleep 600 & exec sleep 600")
    pid, cg = start_detached(sampan, bundle)
    wait_for(lambda: len(procs(cg)) == 3, what="three processes")
    container_procs = procs(cg)
    kills = Writes(os.path.join(cg, "cgroup.kill"))
    try:
        ok(sampan, "kill", "--all", bundle.id, "KILL")
        assert kills.poll() == 1
    finally:
        kills.close()
    wait_for(lambda: not any(alive(p) for p in container_procs), what="every process gone")
    wait_for(lambda: sampan.state(bundle.id)["status"] == "stopped", what="stopped")
    assert procs(cg) == []
    ok(sampan, "delete", bundle.id)
    assert not os.path.exists(cg)
    assert not alive(pid)


def test_delete_force_kills_through_cgroup_kill_and_removes_cgroup(
        sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["linux"]["resources"] = {"pids": {"limit": 10}}
    bundle.set_args("sh", "-c", "sleep 600 & sleep 600 & exec sleep 600")
    _pid, cg = start_detached(sampan, bundle)
    wait_for(lambda: len(procs(cg)) == 3, what="three processes")
    container_procs = procs(cg)
    kills = Writes(os.path.join(cg, "cgroup.kill"))
    try:
        ok(sampan, "delete", "--force", bundle.id)
        assert kills.poll() >= 1
    finally:
        kills.close()
    assert not os.path.exists(cg)
    assert not any(alive(p) for p in container_procs)
    assert call(sampan, "state", bundle.id).returncode != 0
    assert not os.path.exists(os.path.join(CGROUP_ROOT, "sampan", bundle.id))


# ---- cpu affinity --------------------------------------------------------------------


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the VM has one CPU (--smp)")
def test_the_init_gets_its_cpuset_cpus_not_the_runtimes(sampan: Runtime,
                                                        bundle: Bundle) -> None:
    """The runtime pinned to the first CPU (it forks the init apart from it, then resets
    it): the init runs where its cpuset allows, on every CPU without one."""
    cpus = sorted(os.sched_getaffinity(0))
    bundle.set_args(*GREP_CPUS)
    plain = run_pinned(sampan, bundle, {cpus[0]}, timeout=TIMEOUT)
    assert plain.returncode == 0, plain.stderr
    assert cpus_allowed(plain.stdout) == f"{cpus[0]}-{cpus[-1]}"
    bundle.spec["linux"]["resources"] = {"cpu": {"cpus": str(cpus[1]), "mems": "0"}}
    bundle.id += "b"
    pinned = run_pinned(sampan, bundle, {cpus[0]}, timeout=TIMEOUT)
    assert pinned.returncode == 0, pinned.stderr
    assert cpus_allowed(pinned.stdout) == str(cpus[1])
