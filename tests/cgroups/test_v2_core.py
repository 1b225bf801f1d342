"""CgroupV2 on this host's cgroup2 mount, which has no resource controllers.

What cgroup2 does by itself (placement, cgroup.freeze, cgroup.kill, cgroup.events, nesting,
device filters as BPF programs) runs here; the resource limits run in the VM (tests/vm).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from sampan.cgroups import Cgroup, CgroupError, CgroupV2
from sampan.cgroups.base import read_file, read_keyed, read_procs
from sampan.oci.spec import Memory, Pids, Resources

from .conformance import (
    BUSY,
    CoreConformance,
    DeviceConformance,
    Factory,
    Processes,
    Suite,
    factory,
    wait_until,
)

MOUNT = "/sys/fs/cgroup/unified"


def make_unified(path: str) -> Cgroup:
    return CgroupV2(MOUNT, path)


@pytest.fixture
def new_cgroup() -> Iterator[Factory]:
    with factory(make_unified) as f:
        yield f


class TestUnifiedConformance(CoreConformance, DeviceConformance):
    pass


def events(cg: CgroupV2) -> dict[str, int]:
    return read_keyed(os.path.join(cg.dir, "cgroup.events"))


def new_v2(factory_: Factory, name: str = "c") -> CgroupV2:
    cg = factory_(name)
    assert isinstance(cg, CgroupV2)
    return cg


class TestUnifiedCore(Suite):
    def test_paths_and_mount_sources(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        assert cg.paths == {"": f"{MOUNT}/{new_cgroup.base}/c"}
        assert cg.mount_sources() == [("", cg.dir)]

    def test_placement_in_cgroup_procs(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_v2(new_cgroup)
        assert events(cg)["populated"] == 0
        p = procs.sleeper(cg)
        assert read_procs(cg.dir) == [p.pid]
        assert events(cg)["populated"] == 1
        with open(f"/proc/{p.pid}/cgroup") as f:
            assert f"0::/{new_cgroup.base}/c\n" in f.read()
        p.kill()
        p.wait()
        wait_until(lambda: events(cg)["populated"] == 0)

    def test_cgroup_freeze_and_events(self, new_cgroup: Factory, procs: Processes) -> None:
        cg = new_v2(new_cgroup)
        procs.ready(cg, BUSY)
        cg.freeze()
        assert read_file(os.path.join(cg.dir, "cgroup.freeze")) == "1"
        assert events(cg)["frozen"] == 1
        cg.thaw()
        assert read_file(os.path.join(cg.dir, "cgroup.freeze")) == "0"
        assert events(cg)["frozen"] == 0

    def test_cgroup_kill_empties_the_tree(self, new_cgroup: Factory,
                                          procs: Processes) -> None:
        cg = new_v2(new_cgroup)
        # A parent that keeps forking: cgroup.kill gets them all in one go.
        p = procs.ready(cg, "import os, time\nprint('ready', flush=True)\nwhile True:\n"
                            "    if os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\n"
                            "    time.sleep(0.01)")
        assert os.path.exists(os.path.join(cg.dir, "cgroup.kill"))
        cg.kill(signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
        wait_until(lambda: events(cg)["populated"] == 0)

    def test_nested_levels_and_prune(self, new_cgroup: Factory, procs: Processes) -> None:
        a = CgroupV2(MOUNT, f"{new_cgroup.base}/sampan/a", prune=1)
        b = CgroupV2(MOUNT, f"{new_cgroup.base}/sampan/b", prune=1)
        new_cgroup.made += [a, b]
        a.create()
        b.create()
        procs.sleeper(a)
        parent = os.path.dirname(a.dir)
        a.kill(signal.SIGKILL)
        a.destroy()
        assert not os.path.exists(a.dir)
        assert os.path.isdir(parent)  # b still lives there
        b.destroy()
        assert not os.path.exists(parent)  # the last one takes the shared parent along
        assert os.path.isdir(os.path.dirname(parent))  # but nothing above it

    def test_is_frozen_of_a_removed_cgroup(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        cg.destroy()
        assert cg.is_frozen() is False
        assert cg.pids() == []
        assert cg.oom_kills() == 0

    def test_missing_controllers_name_field_and_file(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        with pytest.raises(CgroupError, match=r"linux\.resources\.memory\.limit: cannot open "
                                              r".*/memory\.max: No such file"):
            cg.set(Resources(memory=Memory(limit=1 << 26)))
        with pytest.raises(CgroupError, match=r"linux\.resources\.pids\.limit: .*pids\.max"):
            cg.set(Resources(pids=Pids(limit=10)))
        with pytest.raises(CgroupError, match=r'unified\["memory\.high"\]: the memory '
                                              r"controller is not available"):
            cg.set(Resources(unified={"memory.high": "1000000"}))
        with pytest.raises(CgroupError, match=r'unified\["\.\./x"\]: must be a cgroup file'):
            cg.set(Resources(unified={"../x": "1"}))

    def test_unified_core_file(self, new_cgroup: Factory) -> None:
        cg = new_v2(new_cgroup)
        cg.set(Resources(unified={"cgroup.max.depth": "3"}))
        assert read_file(os.path.join(cg.dir, "cgroup.max.depth")) == "3"

    def test_refuses_the_root_and_escapes(self) -> None:
        for path in ("", "/", "a/../..", "../x"):
            with pytest.raises(CgroupError, match="must name a cgroup below"):
                CgroupV2(MOUNT, path)
