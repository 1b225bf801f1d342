"""The pure parts: spec → file values, device rule emulation, path rules, mount parsing."""

from __future__ import annotations

import pytest

from sampan.cgroups import CgroupError
from sampan.cgroups import convert as cv
from sampan.cgroups.devices import DeviceState, Rule, rules_from_spec
from sampan.cgroups.paths import Mount, below_mount, cgroup_mounts, own_cgroups, placement
from sampan.oci.spec import DeviceCgroup


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000)])
def test_cpu_shares_to_weight_as_runc(shares: int, weight: int) -> None:
    assert cv.cpu_weight(shares) == weight


@pytest.mark.parametrize(("blkio", "io"), [(10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight_as_runc(blkio: int, io: int) -> None:
    assert cv.io_weight(blkio, "w") == io


@pytest.mark.parametrize(("swap", "limit", "expected"), [
    (None, None, None),  # nothing asked
    (None, -1, "max"),  # unlimited memory: unlimited swap
    (-1, 1000, "max"),
    (3000, 1000, "2000"),  # memory+swap total minus memory
    (1000, 1000, "0"),  # no swap at all
    (3000, -1, "3000"),
])
def test_swap_v2(swap: int | None, limit: int | None, expected: str | None) -> None:
    assert cv.swap_v2(swap, limit) == expected


def test_swap_without_a_memory_limit_is_an_error() -> None:
    with pytest.raises(CgroupError, match=r"memory\.swap: a swap limit needs a memory limit"):
        cv.swap_v2(1000, None)


def test_cpu_max_keeps_the_half_not_given() -> None:
    assert cv.cpu_max(50000, None, "max 200000") == "50000 200000"
    assert cv.cpu_max(None, 10000, "20000 100000") == "20000 10000"
    assert cv.cpu_max(-1, None, "") == "max 100000"


def test_pids_max() -> None:
    assert [cv.pids_max(v) for v in (-1, 0, 5)] == ["max", "max", "5"]


def deny_all_allow(*rules: Rule) -> DeviceState:
    return DeviceState.from_rules([Rule(False, "a", None, None, "rwm"), *rules])


def test_device_rules_from_spec_defaults_and_errors() -> None:
    rules = rules_from_spec([DeviceCgroup(allow=False),
                             DeviceCgroup(allow=True, type="c", major=1, minor=-1,
                                          access="mwr")])
    assert rules == [Rule(False, "a", None, None, "rwm"), Rule(True, "c", 1, None, "rwm")]
    with pytest.raises(CgroupError, match=r"devices\[0\]\.access: 'rx'"):
        rules_from_spec([DeviceCgroup(allow=True, access="rx")])


def test_device_state_follows_the_kernel() -> None:
    state = deny_all_allow(Rule(True, "c", 1, 3, "rw"), Rule(True, "c", 1, 3, "m"),
                           Rule(False, "c", 1, 3, "w"), Rule(True, "b", 8, None, "r"))
    assert state.default_allow is False
    assert state.exceptions == {("c", 1, 3): "rm", ("b", 8, None): "r"}
    # An "a" rule starts over.
    state.apply(Rule(True, "a", None, None, "rwm"))
    assert (state.default_allow, state.exceptions) == (True, {})


def test_device_v1_writes_avoid_the_wildcard_when_the_default_stays() -> None:
    current = DeviceState.from_v1_list("c 1:3 rwm\nc 1:5 rw")
    target = deny_all_allow(Rule(True, "c", 1, 3, "rw"), Rule(True, "c", 1, 9, "rwm"))
    assert target.v1_writes(current) == [
        ("devices.deny", "c 1:3 m"), ("devices.deny", "c 1:5 rw"),
        ("devices.allow", "c 1:9 rwm")]
    fresh = DeviceState.from_v1_list("a *:* rwm")
    assert target.v1_writes(fresh)[0] == ("devices.deny", "a *:* rwm")
    assert DeviceState().v1_writes(fresh) == []


def test_placement_rules() -> None:
    assert placement(None, "abc") == placement("", "abc")
    assert placement(None, "abc").path == "sampan/abc"
    assert placement(None, "abc").prune == 1
    assert placement("/x//y/", "abc").path == "/x/y"
    assert placement("x/./y", "abc").path == "x/y"
    assert placement("machine.slice:libpod:c1", "c1").path == "/machine.slice/libpod-c1.scope"
    assert placement(":sampan:c1", "c1").path == "/system.slice/sampan-c1.scope"
    assert placement("-.slice::c1", "c1").path == "/c1.scope"
    assert placement("a-b.slice::sub.slice", "c").path == "/a.slice/a-b.slice/sub.slice"
    for bad in ("a--b.slice:p:n", "-a.slice:p:n", "x:p:n"):
        with pytest.raises(CgroupError, match=r"linux\.cgroupsPath"):
            placement(bad, "c")
    with pytest.raises(CgroupError, match="cannot name a cgroup"):
        placement(None, "a/b")


def test_mountinfo_parsing(tmp_path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "30 25 0:26 / /sys/fs/cgroup/cpu\\040x rw - cgroup cgroup rw,cpu,cpuacct\n"
        "31 25 0:27 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "32 25 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
        "33 25 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
        "34 25 0:26 / /mnt/again rw - cgroup cgroup rw,cpu,cpuacct\n"
        "35 25 0:30 / /tmp rw - tmpfs tmpfs rw\n")
    assert cgroup_mounts(str(info)) == [
        Mount("/sys/fs/cgroup/cpu x", "/", 1, ("cpu", "cpuacct")),
        Mount("/sys/fs/cgroup/memory", "/docker/abc", 1, ("memory",)),
        Mount("/sys/fs/cgroup/systemd", "/", 1, ("name=systemd",)),
        Mount("/sys/fs/cgroup/unified", "/", 2, ()),
    ]
    memory = cgroup_mounts(str(info))[1]
    # Our cgroup is shown from the hierarchy's root; the mount shows only /docker/abc.
    assert below_mount(memory, "/docker/abc/sub", "sampan/c") == "sub/sampan/c"
    assert below_mount(memory, "/docker/abc", "/abs/c") == "abs/c"


def test_own_cgroups(tmp_path) -> None:
    f = tmp_path / "cgroup"
    f.write_text("4:memory:/process_api/x\n2:cpu,cpuacct:/\n1:name=systemd:/s\n0::/u\n")
    assert own_cgroups(str(f)) == {"memory": "/process_api/x", "cpu": "/", "cpuacct": "/",
                                   "name=systemd": "/s", "": "/u"}
