"""The behaviour every cgroup backend must show, checked on the real kernel.

Test modules subclass these suites and provide a ``new_cgroup`` fixture (a Factory) for
their backend: CoreConformance for any cgroup hierarchy (placement, freezer, kill, destroy),
ResourceConformance where the controllers are there (memory, pids, cpu, devices). The v1
host, the host's empty cgroup2 mount and the v2 test VM each run what they can.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from sampan.cgroups import Cgroup, CgroupError, base
from sampan.oci.spec import CPU, DeviceCgroup, Memory, Pids, Resources

MB = 1 << 20


class Processes:
    """Python children that wait until they are in their cgroup before running their code."""

    GATE = ("import os, sys; gate = int(sys.argv[1]); os.read(gate, 1); os.close(gate); "
            "del sys.argv[:2]; exec(sys.argv[0])")

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, cg: Cgroup | None, code: str, *args: str) -> subprocess.Popen[str]:
        gate, go = os.pipe()
        try:
            p = subprocess.Popen([sys.executable, "-c", self.GATE, str(gate), code, *args],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, pass_fds=(gate,))
            self.started.append(p)
            if cg is not None:
                cg.apply(p.pid)
            os.write(go, b"x")
        finally:
            os.close(gate)
            os.close(go)
        return p

    def sleeper(self, cg: Cgroup) -> subprocess.Popen[str]:
        return self.start(cg, "import time; time.sleep(120)")

    def ready(self, cg: Cgroup, code: str, *args: str) -> subprocess.Popen[str]:
        """Run code that prints "ready" once it has done its setup, and wait for that."""
        p = self.start(cg, code, *args)
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line == "ready\n", (line, p.stderr.read() if p.stderr else "")
        return p

    def close(self) -> None:
        for p in self.started:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=30)


class Factory:
    """Makes created cgroups below one fresh base; destroys them all and the base at the end."""

    def __init__(self, make: Callable[[str], Cgroup]) -> None:
        self.base = f"sampan-test-{uuid.uuid4().hex[:8]}"
        self._make = make
        self.made: list[Cgroup] = []

    def __call__(self, name: str = "c") -> Cgroup:
        cg = self._make(f"{self.base}/{name}")
        cg.create()
        self.made.append(cg)
        return cg

    def bases(self) -> set[str]:
        """The base directory in each hierarchy used so far."""
        out = set()
        for cg in self.made:
            for directory in cg.directories():
                top = directory[:directory.index(self.base) + len(self.base)]
                out.add(top)
        return out

    def close(self) -> None:
        for cg in reversed(self.made):
            with contextlib.suppress(CgroupError):
                cg.thaw()
            cg.kill(signal.SIGKILL)
            cg.destroy()
        bases = self.bases()
        for top in bases:
            for directory in base.walk_dirs(top) if os.path.isdir(top) else ():
                os.rmdir(directory)  # levels destroy() leaves: parents made by create()
        leftovers = [top for top in bases if os.path.exists(top)]
        assert not leftovers, leftovers


@contextlib.contextmanager
def factory(make: Callable[[str], Cgroup]) -> Iterator[Factory]:
    f = Factory(make)
    try:
        yield f
    finally:
        f.close()


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def in_cgroup(pid: int, cg: Cgroup) -> bool:
    """Every directory of cg lists pid (what /proc/<pid>/cgroup means, per hierarchy)."""
    return all(pid in base.read_procs(d) for d in cg.directories())


BUSY = "import sys\nprint('ready', flush=True)\nwhile True: pass"
FORK_UNTIL_EAGAIN = """
import os, signal, time
kids, err = [], None
try:
    for _ in range(50):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        kids.append(pid)
except OSError as e:
    err = e.errno
for k in kids:
    os.kill(k, signal.SIGKILL)
    os.waitpid(k, 0)
print(len(kids), err)
"""
OPEN_DEVICES = """
import os, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDONLY))
        print(path, "ok")
    except OSError as e:
        print(path, e.strerror)
"""


class Suite:
    """Base of every cgroup test class: gives the ``procs`` fixture."""

    @pytest.fixture
    def procs(self) -> Iterator[Processes]:
        p = Processes()
        yield p
        p.close()


class CoreConformance(Suite):
    """What any cgroup hierarchy gives, with or without resource controllers."""

    def test_create_makes_every_directory(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        assert cg.directories()
        for directory in cg.directories():
            assert os.path.isdir(directory)
            assert new_cgroup.base in directory
        for _, directory in cg.mount_sources():
            assert os.path.isdir(directory)

    def test_apply_places_a_process(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        p = procs.sleeper(cg)
        assert in_cgroup(p.pid, cg)
        assert cg.pids() == [p.pid]

    def test_pids_include_sub_cgroups(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        outer = procs.sleeper(cg)
        inner = procs.start(None, "import time; time.sleep(120)")
        for directory in cg.directories():
            sub = os.path.join(directory, "inner")
            os.mkdir(sub)
            for name in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset takes no task without
                if os.path.exists(os.path.join(sub, name)):
                    base.write_file(os.path.join(sub, name),
                                    base.read_file(os.path.join(directory, name)))
            base.write_file(os.path.join(sub, "cgroup.procs"), str(inner.pid))
        assert cg.pids() == sorted([outer.pid, inner.pid])

    def test_apply_of_a_missing_pid_names_the_file(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        dead = subprocess.Popen(["true"])
        dead.wait()
        with pytest.raises(CgroupError, match=r"cgroup\.procs: No such process"):
            cg.apply(dead.pid)

    def test_freeze_stops_and_thaw_resumes(self, new_cgroup: Factory,
                                           procs: Processes) -> None:
        cg = new_cgroup()
        p = procs.ready(cg, BUSY)
        assert not cg.is_frozen()
        cg.freeze()
        assert cg.is_frozen()
        time.sleep(0.1)
        before = cpu_ticks(p.pid)
        time.sleep(0.5)
        assert cpu_ticks(p.pid) == before
        cg.thaw()
        assert not cg.is_frozen()
        time.sleep(0.5)
        assert cpu_ticks(p.pid) > before

    def test_kill_signals_every_process(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        first, second = procs.sleeper(cg), procs.sleeper(cg)
        cg.kill(signal.SIGTERM)
        assert first.wait(timeout=30) == -signal.SIGTERM
        assert second.wait(timeout=30) == -signal.SIGTERM

    def test_sigkill_reaches_forked_children(self, new_cgroup: Factory,
                                             procs: Processes) -> None:
        cg = new_cgroup()
        p = procs.ready(cg, "import os, time\nif os.fork() == 0:\n    time.sleep(120)\n"
                            "print('ready', flush=True)\ntime.sleep(120)")
        assert len(cg.pids()) == 2
        cg.kill(signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
        wait_until(lambda: not cg.pids())

    def test_kill_of_a_frozen_cgroup_then_thaw(self, new_cgroup: Factory,
                                              procs: Processes) -> None:
        cg = new_cgroup()
        p = procs.sleeper(cg)
        cg.freeze()
        cg.kill(signal.SIGKILL)
        cg.thaw()
        assert p.wait(timeout=30) == -signal.SIGKILL

    def test_destroy_removes_everything_and_is_idempotent(self, new_cgroup: Factory,
                                                          procs: Processes) -> None:
        cg = new_cgroup()
        p = procs.sleeper(cg)
        for directory in cg.directories():
            os.makedirs(os.path.join(directory, "a", "b"))
        cg.kill(signal.SIGKILL)
        p.wait(timeout=30)
        cg.destroy()
        assert not cg.exists()
        cg.destroy()

    def test_destroy_refuses_while_a_process_lives(self, new_cgroup: Factory,
                                                   procs: Processes,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        cg = new_cgroup()
        p = procs.sleeper(cg)
        monkeypatch.setattr(base, "DESTROY_TIMEOUT", 0.3)
        with pytest.raises(CgroupError, match=rf"still busy .*pids \[{p.pid}\]"):
            cg.destroy()
        assert in_cgroup(p.pid, cg)

    def test_set_none_changes_nothing(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        cg.set(None)
        cg.set(Resources())
        assert cg.oom_kills() == 0

    def test_stats_have_runc_shape(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        procs.sleeper(cg)
        stats = cg.stats()
        assert {"cpu", "memory", "pids", "blkio", "hugetlb"} <= set(stats)
        assert {"usage", "throttling"} <= set(stats["cpu"])


class ResourceConformance(Suite):
    """Limits that must really hold where the controllers are available."""

    def test_memory_limit_oom_kills(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        cg.set(Resources(memory=Memory(limit=32 * MB, swap=32 * MB)))
        p = procs.start(cg, "x = b'x' * (200 << 20); print('survived')")
        out, err = p.communicate(timeout=120)
        assert p.returncode == -signal.SIGKILL, (out, err)
        assert "survived" not in out
        assert cg.oom_kills() >= 1

    def test_memory_usage_and_limit_in_stats(self, new_cgroup: Factory,
                                             procs: Processes) -> None:
        cg = new_cgroup()
        cg.set(Resources(memory=Memory(limit=64 * MB)))
        procs.ready(cg, "import time\nx = b'x' * (20 << 20)\nprint('ready', flush=True)\n"
                        "time.sleep(120)")
        memory = cg.stats()["memory"]
        assert memory["usage"]["limit"] == 64 * MB
        assert 20 * MB <= memory["usage"]["usage"] <= 64 * MB

    def test_live_update_changes_limits(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        procs.sleeper(cg)
        cg.set(Resources(memory=Memory(limit=64 * MB), pids=Pids(limit=30)))
        cg.set(Resources(memory=Memory(limit=48 * MB), pids=Pids(limit=20)))
        stats = cg.stats()
        assert stats["memory"]["usage"]["limit"] == 48 * MB
        assert stats["pids"] == {"current": 1, "limit": 20}
        cg.set(Resources(pids=Pids(limit=-1)))
        assert cg.stats()["pids"]["limit"] == 0  # no limit

    def test_pids_limit_stops_a_fork_loop(self, new_cgroup: Factory,
                                          procs: Processes) -> None:
        cg = new_cgroup()
        cg.set(Resources(pids=Pids(limit=8)))
        p = procs.start(cg, FORK_UNTIL_EAGAIN)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.split() == ["7", str(errno.EAGAIN)]  # 7 children + the parent

    def test_cpu_quota_throttles(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        cg.set(Resources(cpu=CPU(quota=10_000, period=100_000)))
        p = procs.ready(cg, BUSY)
        time.sleep(1.0)
        throttling = cg.stats()["cpu"]["throttling"]
        p.kill()
        assert throttling["periods"] >= 3
        assert throttling["throttledPeriods"] >= 1

    def test_bad_values_name_the_field(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        cases = [
            (Resources(cpu=CPU(shares=1)), r"linux\.resources\.cpu\.shares: 1 is outside"),
            (Resources(memory=Memory(limit=64 * MB, swap=32 * MB)),
             r"linux\.resources\.memory\.swap: .* below"),
            (Resources(pids=Pids(limit=-5)), r"linux\.resources\.pids\.limit: -5"),
            (Resources(devices=[DeviceCgroup(allow=True, type="x")]),
             r"linux\.resources\.devices\[0\]\.type"),
        ]
        for resources, message in cases:
            with pytest.raises(CgroupError, match=message):
                cg.set(resources)


class DeviceConformance(Suite):
    """linux.resources.devices: v1's devices controller, v2's BPF program (any cgroup2 mount,
    even one without resource controllers)."""

    def test_device_rules_deny_and_allow(self, new_cgroup: Factory,
                                         procs: Processes) -> None:
        cg = new_cgroup()
        cg.set(Resources(devices=[
            DeviceCgroup(allow=False, access="rwm"),
            DeviceCgroup(allow=True, type="c", major=1, minor=3, access="rwm"),
        ]))
        p = procs.start(cg, OPEN_DEVICES, "/dev/null", "/dev/zero")
        out, _ = p.communicate(timeout=60)
        assert out.splitlines() == ["/dev/null ok", "/dev/zero Operation not permitted"]
        # An update replaces the rules: now everything but /dev/null's reads.
        cg.set(Resources(devices=[
            DeviceCgroup(allow=True, access="rwm"),
            DeviceCgroup(allow=False, type="c", major=1, minor=3, access="r"),
        ]))
        p = procs.start(cg, OPEN_DEVICES, "/dev/null", "/dev/zero")
        out, _ = p.communicate(timeout=60)
        assert out.splitlines() == ["/dev/null Operation not permitted", "/dev/zero ok"]


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
