"""The container's cgroup is made while the stages set up (runtime/container.py, _spawn).

Without a user or cgroup namespace or hooks, the runtime forks stage 1 first and creates
and configures the cgroup while stage 1 unshares and stage 2 builds the rootfs; stage 2
waits for the runtime's "created" before it bind-mounts the cgroup's directories. These
tests check that order, the container's view of its cgroup, and that a cgroup that fails
after the fork leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import subprocess

from sampan.cgroups import open_cgroup

from .helpers import SAMPAN_RUNTIME, Bundle, Runtime


def _in_cgroup(bundle: Bundle) -> Bundle:
    bundle.spec["linux"]["cgroupsPath"] = f"sampan-test/{bundle.id}"
    return bundle


def test_the_cgroup_is_made_after_stage_1_is_forked(bundle: Bundle, sampan: Runtime,
                                                   tmp_path: object) -> None:
    _in_cgroup(bundle).set_args("cat", "/sys/fs/cgroup/pids/cgroup.procs").write()
    log = os.path.join(str(tmp_path), "strace.log")
    result = subprocess.run(
        ["strace", "-f", "-qq", "-o", log, "-e", "trace=clone,clone3,unshare,mkdir",
         SAMPAN_RUNTIME, "--root", sampan.root, "run", "--bundle", bundle.path, bundle.id],
        capture_output=True, text=True, timeout=60)
    # the container sees its own cgroup: its init alone
    assert (result.returncode, result.stdout.split()) == (0, ["1"]), result.stderr
    with open(log) as f:
        lines = f.read().splitlines()
    unsharer = next(line.split()[0] for line in lines if "unshare(CLONE_NEW" in line)
    forked = next(i for i, line in enumerate(lines)
                  if re.search(r"clone3?\(.*\) = " + unsharer + "$", line)
                  or re.search(r"clone3? resumed>.*\) = " + unsharer + "$", line))
    made = next(i for i, line in enumerate(lines)
                if "mkdir(" in line and f"sampan-test/{bundle.id}" in line)
    main = lines[forked].split()[0]
    assert lines[made].split()[0] == main  # the runtime, not a stage, makes it
    assert forked < made, "\n".join(lines)


def test_a_cgroup_that_fails_after_the_fork_leaves_nothing(bundle: Bundle,
                                                          sampan: Runtime) -> None:
    """A limit the kernel refuses, written while the stages already run: one line of
    error naming the field, and no process, cgroup or state left."""
    _in_cgroup(bundle).set_args("sleep", "30")
    bundle.spec["linux"].setdefault("resources", {})["cpu"] = {"cpus": "4095"}
    result = sampan.run(bundle, timeout=30)
    assert result.returncode == 1
    assert "linux.resources.cpu.cpus" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, \
        result.stderr
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if bundle.path.encode() in f.read():
                    left.append(pid)
        except OSError:
            continue
    assert left == []
    for directory in open_cgroup(f"sampan-test/{bundle.id}", bundle.id).paths.values():
        assert not os.path.exists(directory)
    assert sampan("state", bundle.id).returncode != 0
