"""cgroup v2 limits for real, inside the test VM (pure v2, every controller at the root).

Run by scripts/test-vm.sh; deselected anywhere else (tests/vm/conftest.py). Each test works
below a fresh /sys/fs/cgroup/sampan-test-XXXX.
"""

from __future__ import annotations

import errno
import os
import signal
import uuid
from collections.abc import Iterator

import pytest

from sampan.cgroups import Cgroup, CgroupError, CgroupV2, open_cgroup, unified_mode
from sampan.cgroups.base import read_file, read_keyed
from sampan.oci.spec import (
    CPU,
    BlockIO,
    HugepageLimit,
    Memory,
    Pids,
    Resources,
    ThrottleDevice,
    WeightDevice,
)

from ..cgroups.conformance import (
    BUSY,
    MB,
    CoreConformance,
    DeviceConformance,
    Factory,
    Processes,
    ResourceConformance,
    Suite,
    factory,
)

pytestmark = pytest.mark.vm
ROOT = "/sys/fs/cgroup"


def make_v2(path: str) -> Cgroup:
    return CgroupV2(ROOT, path)


@pytest.fixture
def new_cgroup() -> Iterator[Factory]:
    with factory(make_v2) as f:
        yield f


class TestV2Conformance(CoreConformance, ResourceConformance, DeviceConformance):
    pass


def new_v2(factory_: Factory) -> CgroupV2:
    cg = factory_()
    assert isinstance(cg, CgroupV2)
    return cg


def read(cg: CgroupV2, name: str) -> str:
    return read_file(os.path.join(cg.dir, name))


def disk() -> tuple[int, int]:
    major, minor = read_file("/sys/block/vda/dev").split(":")
    return int(major), int(minor)


class TestV2Files(Suite):
    def test_host_is_pure_v2(self) -> None:
        assert unified_mode()
        assert {"cpu", "io", "memory", "pids"} <= set(read_file(f"{ROOT}/cgroup.controllers")
                                                      .split())

    def test_created_levels_pass_controllers_down(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        parent = os.path.dirname(cg.dir)
        assert set(read_file(f"{parent}/cgroup.subtree_control").split()) == set(
            read_file(f"{ROOT}/cgroup.subtree_control").split())
        assert {"memory", "pids", "cpu", "io"} <= set(read(cg, "cgroup.controllers").split())

    def test_memory_files(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        cg.set(Resources(memory=Memory(limit=64 * MB, swap=96 * MB, reservation=16 * MB)))
        assert read(cg, "memory.max") == str(64 * MB)
        assert read(cg, "memory.swap.max") == str(32 * MB)  # memory+swap minus memory
        assert read(cg, "memory.low") == str(16 * MB)
        cg.set(Resources(memory=Memory(limit=-1)))
        assert (read(cg, "memory.max"), read(cg, "memory.swap.max")) == ("max", "max")

    def test_v1_only_memory_settings_are_errors(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        with pytest.raises(CgroupError, match=r"memory\.swappiness: not supported on cgroup "
                                              r"v2"):
            cg.set(Resources(memory=Memory(swappiness=10)))
        with pytest.raises(CgroupError, match=r"memory\.disableOOMKiller: not supported"):
            cg.set(Resources(memory=Memory(disable_oom_killer=True)))
        with pytest.raises(CgroupError, match=r"cpu\.realtimeRuntime/realtimePeriod"):
            cg.set(Resources(cpu=CPU(realtime_runtime=1000)))

    def test_cpu_files(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        cg.set(Resources(cpu=CPU(shares=1024, quota=50_000, period=200_000, burst=1000,
                                 idle=0)))
        assert read(cg, "cpu.weight") == "39"  # runc's conversion of the default 1024
        assert read(cg, "cpu.max") == "50000 200000"
        assert read(cg, "cpu.max.burst") == "1000"
        cg.set(Resources(cpu=CPU(quota=20_000)))  # an update of the quota keeps the period
        assert read(cg, "cpu.max") == "20000 200000"
        cg.set(Resources(cpu=CPU(quota=-1)))
        assert read(cg, "cpu.max") == "max 200000"
        cg.set(Resources(cpu=CPU(idle=1)))
        assert read(cg, "cpu.idle") == "1"

    def test_cpuset_pins_processes(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_v2(new_cgroup)
        cg.set(Resources(cpu=CPU(cpus="1", mems="0")))
        assert read(cg, "cpuset.cpus.effective") == "1"
        p = procs.sleeper(cg)
        assert os.sched_getaffinity(p.pid) == {1}

    def test_pids_max_and_events(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_v2(new_cgroup)
        cg.set(Resources(pids=Pids(limit=1)))
        assert read(cg, "pids.max") == "1"
        p = procs.start(cg, "import os\ntry:\n    os.fork() or os._exit(0)\n"
                            "    print('forked')\nexcept OSError as e:\n    print(e.errno)")
        out, _ = p.communicate(timeout=60)
        assert out.strip() == str(errno.EAGAIN)
        assert read_keyed(os.path.join(cg.dir, "pids.events"))["max"] >= 1

    def test_io_files(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        major, minor = disk()
        cg.set(Resources(block_io=BlockIO(
            weight=500,
            throttle_read_bps_device=[ThrottleDevice(major=major, minor=minor, rate=MB)],
            throttle_write_iops_device=[ThrottleDevice(major=major, minor=minor, rate=100)])))
        # No BFQ in the VM: io.weight, on its 1-10000 scale.
        assert read(cg, "io.weight") == "default 4950"
        assert read(cg, "io.max") == (f"{major}:{minor} rbps={MB} wbps=max riops=max "
                                      "wiops=100")
        cg.set(Resources(block_io=BlockIO(throttle_read_bps_device=[
            ThrottleDevice(major=major, minor=minor, rate=0)])))  # 0 lifts the limit
        assert read(cg, "io.max") == f"{major}:{minor} rbps=max wbps=max riops=max wiops=100"
        with pytest.raises(CgroupError, match=r"blockIO\.leafWeight: not supported"):
            cg.set(Resources(block_io=BlockIO(leaf_weight=100)))

    def test_io_device_weight_without_iocost_is_an_error(self, new_cgroup: Factory) -> None:
        """A per-device io.weight needs io.cost on that disk, which the VM does not enable."""
        cg = new_v2(new_cgroup)
        major, minor = disk()
        with pytest.raises(CgroupError, match=rf"blockIO\.weightDevice\[0\]: cannot write "
                                              rf"'{major}:{minor} 10000' to .*/io\.weight: "
                                              r"Operation not supported"):
            cg.set(Resources(block_io=BlockIO(weight_device=[
                WeightDevice(major=major, minor=minor, weight=1000)])))

    def test_io_throttle_slows_reads(self, new_cgroup: Factory, procs: Processes) -> None:
        """io.max really holds: an O_DIRECT read of the disk at 512 KiB/s takes its time."""
        cg = new_v2(new_cgroup)
        major, minor = disk()
        cg.set(Resources(block_io=BlockIO(throttle_read_bps_device=[
            ThrottleDevice(major=major, minor=minor, rate=512 * 1024)])))
        code = ("import mmap, os, time\n"
                "fd = os.open('/dev/vda', os.O_RDONLY | os.O_DIRECT)\n"
                "buf = mmap.mmap(-1, 1 << 20)\n"
                "start = time.monotonic()\n"
                "for i in range(2):\n    os.preadv(fd, [buf], i << 20)\n"
                "print(round(time.monotonic() - start, 2))")
        p = procs.start(cg, code)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert float(out) >= 2.0, out  # 2 MiB at 512 KiB/s: about 4 s

    def test_hugetlb_limit(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        cg.set(Resources(hugepage_limits=[HugepageLimit(page_size="2MB", limit=4 * MB)]))
        assert read(cg, "hugetlb.2MB.max") == str(4 * MB)

    def test_unified_keys(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        cg.set(Resources(unified={"memory.high": str(32 * MB), "pids.max": "12"}))
        assert (read(cg, "memory.high"), read(cg, "pids.max")) == (str(32 * MB), "12")
        with pytest.raises(CgroupError, match=r'unified\["memory\.high"\]: cannot write '
                                              r"'lots' to .*memory\.high: Invalid argument"):
            cg.set(Resources(unified={"memory.high": "lots"}))

    def test_freeze_shows_in_cgroup_events(self, new_cgroup: Factory,
                                           procs: Processes) -> None:
        cg = new_v2(new_cgroup)
        procs.ready(cg, BUSY)
        cg.freeze()
        assert read_keyed(os.path.join(cg.dir, "cgroup.events"))["frozen"] == 1
        cg.thaw()
        assert read_keyed(os.path.join(cg.dir, "cgroup.events"))["frozen"] == 0

    def test_stats(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_v2(new_cgroup)
        cg.set(Resources(memory=Memory(limit=64 * MB), pids=Pids(limit=10)))
        procs.ready(cg, "import time\nx = b'x' * (8 << 20)\nprint('ready', flush=True)\n"
                        "time.sleep(120)")
        stats = cg.stats()
        assert stats["pids"] == {"current": 1, "limit": 10}
        assert stats["memory"]["usage"]["limit"] == 64 * MB
        assert stats["memory"]["usage"]["usage"] >= 8 * MB
        assert stats["memory"]["raw"]["anon"] >= 8 * MB
        assert stats["cpu"]["usage"]["total"] > 0

    def test_default_path_nests_under_our_cgroup_and_prunes(self, procs: Processes) -> None:
        cid = f"t{uuid.uuid4().hex[:8]}"
        cg = open_cgroup(None, cid)
        assert isinstance(cg, CgroupV2)
        assert cg.dir == f"{ROOT}/sampan/{cid}"  # the VM runs us in the root cgroup
        existed = os.path.isdir(f"{ROOT}/sampan")
        cg.create()
        try:
            cg.set(Resources(memory=Memory(limit=64 * MB)))
            p = procs.sleeper(cg)
            cg.kill(signal.SIGKILL)
            p.wait(timeout=30)
        finally:
            cg.destroy()
        assert not os.path.exists(cg.dir)
        assert os.path.isdir(f"{ROOT}/sampan") == existed


def test_lock_warmer_writes_to_its_own_v2_cgroup() -> None:
    """On a pure v2 host the engine's cgroup lock warmer (cgroups/lockwarm.py) moves the
    daemon into the cgroup it is in, below /sys/fs/cgroup itself."""
    from sampan.cgroups.lockwarm import own_procs_file

    path = own_procs_file()
    own = open("/proc/self/cgroup").read().split("0::", 1)[1].split("\n", 1)[0]
    assert path == os.path.join(ROOT, own.strip("/"), "cgroup.procs")
    assert str(os.getpid()) in open(path).read().split()
    with open(path, "w") as f:  # the move it makes is allowed and changes nothing
        f.write("0")
    assert open("/proc/self/cgroup").read().split("0::", 1)[1].startswith(own)
