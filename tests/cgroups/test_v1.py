"""cgroup v1 (hybrid layout) on this host, in sub-trees of our own cgroups.

Each test works below a fresh "sampan-test-XXXX" directory nested under this process's own
cgroup in every hierarchy (for memory that is the supervisor's /process_api/<id>), so that
nothing outside sub-trees the test made is written.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator

import pytest

from sampan.cgroups import Cgroup, CgroupError, CgroupV1, open_cgroup
from sampan.cgroups.base import read_file
from sampan.cgroups.paths import cgroup_mounts, own_cgroups
from sampan.oci.spec import (
    CPU,
    BlockIO,
    DeviceCgroup,
    HugepageLimit,
    Memory,
    Resources,
    ThrottleDevice,
)

from .conformance import (
    BUSY,
    MB,
    CoreConformance,
    DeviceConformance,
    Factory,
    Processes,
    ResourceConformance,
    Suite,
    cpu_ticks,
    factory,
    wait_until,
)

MEMORY_UNLIMITED = "9223372036854771712"  # what v1 shows for -1 (PAGE_COUNTER_MAX pages)


def make_v1(path: str) -> Cgroup:
    cg = open_cgroup(path, "unused")
    assert isinstance(cg, CgroupV1), "this host is expected to be cgroup v1 (hybrid)"
    return cg


@pytest.fixture
def new_cgroup() -> Iterator[Factory]:
    with factory(make_v1) as f:
        yield f


class TestV1Conformance(CoreConformance, ResourceConformance, DeviceConformance):
    pass


def read(cg: Cgroup, controller: str, name: str) -> str:
    return read_file(os.path.join(cg.paths[controller], name))


def root_device() -> tuple[int, int]:
    """The block device holding / (its whole disk: throttling wants a disk, not a part)."""
    dev = os.stat("/").st_dev
    sysfs = os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if os.path.exists(os.path.join(sysfs, "partition")):
        sysfs = os.path.dirname(sysfs)
    major, minor = read_file(os.path.join(sysfs, "dev")).split(":")
    return int(major), int(minor)


class TestV1(Suite):
    """What is particular to v1 and the hybrid layout."""

    def test_layout_nests_under_our_own_cgroups(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        own = own_cgroups()
        for mount in cgroup_mounts():
            keys = mount.controllers or ("unified",)
            mine = own[keys[0] if mount.controllers else ""].strip("/")
            expected = os.path.join(mount.mountpoint, mine, new_cgroup.base, "c")
            for key in keys:
                assert cg.paths[key] == expected
        assert cg.paths["memory"].startswith("/sys/fs/cgroup/memory" + own["memory"] + "/")
        names = {name for name, _ in cg.mount_sources()}
        assert {"memory", "cpu", "freezer", "systemd"} <= names
        assert "unified" not in names  # as under runc, containers see only the v1 mounts

    def test_hybrid_process_joins_unified_and_named_hierarchies(self, new_cgroup: Factory,
                                                                procs: Processes) -> None:
        cg = new_cgroup()
        p = procs.sleeper(cg)
        with open(f"/proc/{p.pid}/cgroup") as f:
            lines = dict(line.rstrip("\n").split(":", 2)[1:] for line in f)
        suffix = f"/{new_cgroup.base}/c"
        assert lines[""].endswith(suffix)  # the unified hierarchy
        assert lines["name=systemd"].endswith(suffix)
        assert lines["memory"].endswith(suffix)

    def test_cpuset_copies_cpus_and_mems_from_the_parent(self, new_cgroup: Factory,
                                                         procs: Processes) -> None:
        cg = new_cgroup()
        root = "/sys/fs/cgroup/cpuset"
        assert read(cg, "cpuset", "cpuset.cpus") == read_file(f"{root}/cpuset.cpus")
        assert read(cg, "cpuset", "cpuset.mems") == read_file(f"{root}/cpuset.mems")
        cg.set(Resources(cpu=CPU(cpus="0")))
        p = procs.sleeper(cg)
        assert os.sched_getaffinity(p.pid) == {0}

    def test_freezer_state_file(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        procs.ready(cg, BUSY)
        cg.freeze()
        assert read(cg, "freezer", "freezer.state") == "FROZEN"
        assert read(cg, "freezer", "freezer.self_freezing") == "1"
        cg.thaw()
        assert read(cg, "freezer", "freezer.state") == "THAWED"
        assert cg.is_frozen() is False

    def test_memory_files_follow_v1_semantics(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        cg.set(Resources(memory=Memory(limit=64 * MB, swap=96 * MB, reservation=32 * MB,
                                       swappiness=10, disable_oom_killer=False)))
        assert read(cg, "memory", "memory.limit_in_bytes") == str(64 * MB)
        assert read(cg, "memory", "memory.memsw.limit_in_bytes") == str(96 * MB)  # mem+swap
        assert read(cg, "memory", "memory.soft_limit_in_bytes") == str(32 * MB)
        assert read(cg, "memory", "memory.swappiness") == "10"
        assert "oom_kill_disable 0" in read(cg, "memory", "memory.oom_control")
        # Raising both needs memory+swap first, lowering both needs memory first.
        cg.set(Resources(memory=Memory(limit=256 * MB, swap=512 * MB)))
        assert read(cg, "memory", "memory.memsw.limit_in_bytes") == str(512 * MB)
        cg.set(Resources(memory=Memory(limit=16 * MB, swap=16 * MB)))
        assert read(cg, "memory", "memory.limit_in_bytes") == str(16 * MB)
        assert read(cg, "memory", "memory.memsw.limit_in_bytes") == str(16 * MB)
        cg.set(Resources(memory=Memory(limit=-1)))  # unlimited memory: unlimited swap too
        assert read(cg, "memory", "memory.limit_in_bytes") == MEMORY_UNLIMITED
        assert read(cg, "memory", "memory.memsw.limit_in_bytes") == MEMORY_UNLIMITED
        cg.set(Resources(memory=Memory(disable_oom_killer=True)))
        assert "oom_kill_disable 1" in read(cg, "memory", "memory.oom_control")

    def test_lowering_the_limit_below_usage_says_so(self, new_cgroup: Factory,
                                                    procs: Processes) -> None:
        cg = new_cgroup()
        cg.set(Resources(memory=Memory(limit=64 * MB, swap=64 * MB)))
        procs.ready(cg, "import time\nx = b'x' * (24 << 20)\nprint('ready', flush=True)\n"
                        "time.sleep(120)")
        with pytest.raises(CgroupError, match=r"linux\.resources\.memory\.limit: cannot lower "
                                              r"the limit to 4194304: current usage is \d+"):
            cg.set(Resources(memory=Memory(limit=4 * MB)))
        assert read(cg, "memory", "memory.limit_in_bytes") == str(64 * MB)

    def test_check_before_update(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        procs.ready(cg, "import time\nx = b'x' * (24 << 20)\nprint('ready', flush=True)\n"
                        "time.sleep(120)")
        with pytest.raises(CgroupError, match=r"memory\.limit: 8388608 is below the current "
                                              r"usage \d+ \(checkBeforeUpdate\)"):
            cg.set(Resources(memory=Memory(limit=8 * MB, check_before_update=True)))

    def test_cpu_files(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        cg.set(Resources(cpu=CPU(shares=512, quota=50_000, period=200_000, burst=1_000, idle=0)))
        assert read(cg, "cpu", "cpu.shares") == "512"
        assert read(cg, "cpu", "cpu.cfs_quota_us") == "50000"
        assert read(cg, "cpu", "cpu.cfs_period_us") == "200000"
        assert read(cg, "cpu", "cpu.cfs_burst_us") == "1000"
        cg.set(Resources(cpu=CPU(quota=-1)))
        assert read(cg, "cpu", "cpu.cfs_quota_us") == "-1"
        assert read(cg, "cpu", "cpu.cfs_period_us") == "200000"

    def test_blkio_files(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        major, minor = root_device()
        cg.set(Resources(block_io=BlockIO(
            weight=300,
            throttle_read_bps_device=[ThrottleDevice(major=major, minor=minor, rate=MB)],
            throttle_write_iops_device=[ThrottleDevice(major=major, minor=minor, rate=50)])))
        assert read(cg, "blkio", "blkio.throttle.read_bps_device") == f"{major}:{minor} {MB}"
        assert read(cg, "blkio", "blkio.throttle.write_iops_device") == f"{major}:{minor} 50"
        weight_file = next(n for n in ("blkio.weight", "blkio.bfq.weight")
                           if os.path.exists(os.path.join(cg.paths["blkio"], n)))
        assert read(cg, "blkio", weight_file).split()[-1] == "300"
        cg.set(Resources(block_io=BlockIO(  # a rate of 0 lifts the limit
            throttle_read_bps_device=[ThrottleDevice(major=major, minor=minor, rate=0)])))
        assert read(cg, "blkio", "blkio.throttle.read_bps_device") == ""
        with pytest.raises(CgroupError, match=r"blockIO\.weight: 5 is outside 10-1000"):
            cg.set(Resources(block_io=BlockIO(weight=5)))

    def test_device_update_with_sub_cgroups(self, new_cgroup: Factory) -> None:
        """v1 refuses a wildcard write once there are children: an update must do without."""
        cg = new_cgroup()
        deny_all = DeviceCgroup(allow=False, access="rwm")
        null = DeviceCgroup(allow=True, type="c", major=1, minor=3, access="rwm")
        zero = DeviceCgroup(allow=True, type="c", major=1, minor=5, access="rw")
        cg.set(Resources(devices=[deny_all, null]))
        assert read(cg, "devices", "devices.list") == "c 1:3 rwm"
        os.mkdir(os.path.join(cg.paths["devices"], "child"))
        cg.set(Resources(devices=[deny_all, null, zero]))
        assert read(cg, "devices", "devices.list").splitlines() == ["c 1:3 rwm", "c 1:5 rw"]
        cg.set(Resources(devices=[deny_all, zero]))
        assert read(cg, "devices", "devices.list") == "c 1:5 rw"

    def test_unified_resources_need_cgroup_v2(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        with pytest.raises(CgroupError, match=r"linux\.resources\.unified: needs a cgroup v2"):
            cg.set(Resources(unified={"memory.high": "1000000"}))

    def test_hugepage_limits(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        limit = Resources(hugepage_limits=[HugepageLimit(page_size="2MB", limit=4 * MB)])
        if "hugetlb" in cg.paths:
            cg.set(limit)
            assert read(cg, "hugetlb", "hugetlb.2MB.limit_in_bytes") == str(4 * MB)
        else:
            with pytest.raises(CgroupError, match=r"hugepageLimits\[0\]: the hugetlb cgroup "
                                                  r"controller is not mounted"):
                cg.set(limit)
        with pytest.raises(CgroupError, match=r"hugepageLimits\[0\]\.pageSize: '3MB' is not"):
            cg.set(Resources(hugepage_limits=[HugepageLimit(page_size="3MB", limit=1)]))

    def test_stats_count_cpu_time(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_cgroup()
        p = procs.ready(cg, BUSY)
        before = cg.stats()["cpu"]["usage"]["total"]
        wait_until(lambda: cpu_ticks(p.pid) >= 20)
        assert cg.stats()["cpu"]["usage"]["total"] > before

    def test_default_path_and_prune(self, procs: Processes) -> None:
        cid = f"t{uuid.uuid4().hex[:8]}"
        cg = open_cgroup(None, cid)
        own = own_cgroups()
        assert cg.paths["memory"] == f"/sys/fs/cgroup/memory{own['memory']}/sampan/{cid}"
        parents = {os.path.dirname(d) for d in cg.directories()}
        existed = {d for d in parents if os.path.isdir(d)}
        cg.create()
        try:
            p = procs.sleeper(cg)
            cg.kill(signal.SIGKILL)
            p.wait(timeout=30)
        finally:
            cg.destroy()
        assert not cg.exists()
        # The shared "sampan" parent goes with its last container: none created here is left
        # (one that was there may stay, or go too if nothing else was in it any more).
        assert {d for d in parents if os.path.isdir(d)} <= existed

    def test_recorded_paths_win_over_the_callers_cgroup(self, new_cgroup: Factory) -> None:
        cg = new_cgroup()
        again = open_cgroup(f"{new_cgroup.base}/other", "unused", paths=cg.paths)
        assert again.paths == cg.paths
        with pytest.raises(CgroupError, match="recorded cgroup path"):
            open_cgroup(None, "x", paths={"memory": "/tmp/elsewhere"})

    def test_systemd_and_absolute_paths(self) -> None:
        cg = open_cgroup("system.slice:docker:abc", "unused")
        assert cg.paths["memory"] == "/sys/fs/cgroup/memory/system.slice/docker-abc.scope"
        cg = open_cgroup("a-b.slice:sampan:x", "unused")
        assert cg.paths["pids"] == "/sys/fs/cgroup/pids/a.slice/a-b.slice/sampan-x.scope"
        cg = open_cgroup("/abs/olute", "unused")
        assert cg.paths["memory"] == "/sys/fs/cgroup/memory/abs/olute"
        with pytest.raises(CgroupError, match=r"linux\.cgroupsPath: 'bad' is not a valid"):
            open_cgroup("bad:sampan:x", "unused")
        with pytest.raises(CgroupError, match=r"linux\.cgroupsPath: .* must not contain '\.\.'"):
            open_cgroup("a/../../b", "unused")
