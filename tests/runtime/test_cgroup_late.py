"""The container's init and its cgroup are made side by side (runtime/container.py, _spawn).

Without a user or cgroup namespace or hooks, the runtime forks the init itself (no stage
1: init.single_fork) and creates the cgroup while the init unshares and builds the rootfs;
the init waits for the runtime's "created" before it bind-mounts the cgroup's directories,
and for "placed" (limits set, init moved in) before it execs. These tests check that
order, the container's view of its cgroup, that the runtime's own PID namespace is left as
it was, and that a cgroup that fails after the fork leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from sampan.cgroups import open_cgroup

from .helpers import SAMPAN_RUNTIME, Bundle, Runtime


def _in_cgroup(bundle: Bundle) -> Bundle:
    bundle.spec["linux"]["cgroupsPath"] = f"sampan-test/{bundle.id}"
    return bundle


def test_the_runtime_forks_the_init_then_makes_the_cgroup(bundle: Bundle, sampan: Runtime,
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
    made = next(i for i, line in enumerate(lines)
                if "mkdir(" in line and f"sampan-test/{bundle.id}" in line)
    runtime = lines[made].split()[0]
    init = next(line.split()[0] for line in lines if "unshare(CLONE_NEWNS" in line)
    forked = next(i for i, line in enumerate(lines)
                  if re.search(r"clone3?\(.*\) = " + init + "$", line)
                  or re.search(r"clone3? resumed>.*\) = " + init + "$", line))
    assert lines[forked].split()[0] == runtime, "\n".join(lines)  # no stage in between
    assert forked < made, "\n".join(lines)


IN_PROCESS = """
import os, sys
from sampan.runtime.container import Runtime
runtime = Runtime(sys.argv[1])
started = runtime.create(sys.argv[2], sys.argv[3])
try:
    with open(f"/proc/{started.pid}/status") as f:
        status = dict(line.split(":\\t", 1) for line in f.read().splitlines())
    print(os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid"),
          status["NSpid"].split()[-1], int(status["PPid"]) == os.getpid(),
          os.readlink(f"/proc/{started.pid}/ns/pid") != os.readlink("/proc/self/ns/pid"))
finally:
    runtime.delete(sys.argv[2], force=True)
"""


def test_the_runtime_keeps_its_own_pid_namespace(bundle: Bundle, sampan: Runtime) -> None:
    """In one process, as sampand's warm monitor runs the runtime: the init is PID 1 of a
    new PID namespace and this process's child, and this process's next children still
    start in its own PID namespace. (In a child process: the runtime makes its caller a
    child subreaper, which the test process must not become.)"""
    _in_cgroup(bundle).set_args("sleep", "30").write()
    result = subprocess.run([sys.executable, "-c", IN_PROCESS, sampan.root, bundle.id,
                             bundle.path], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "1", "True", "True"], result.stderr


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


REFUSED_INIT = """
import sys
from sampan.cli import runtime

class Refuse:  # the init's code cannot load (as in a broken installation)
    def find_spec(self, name, path=None, target=None):
        if name == "sampan.runtime.init":
            raise ImportError("refused by the test")

sys.meta_path.insert(0, Refuse())
sys.exit(runtime.main(["--root", sys.argv[1], "run", "--bundle", sys.argv[2], sys.argv[3]]))
"""


def test_an_init_whose_code_cannot_load_says_so_and_leaves_nothing(bundle: Bundle,
                                                                   sampan: Runtime) -> None:
    """The init loads its own modules after the fork (runtime/context.py): when it cannot,
    it says why and exits, and never goes on in the runtime's code (whose error handling
    would then run twice, once in the wrong process)."""
    _in_cgroup(bundle).set_args("true").write()
    result = subprocess.run([sys.executable, "-c", REFUSED_INIT, sampan.root, bundle.path,
                             bundle.id], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert sorted(result.stderr.splitlines()) == [
        "sampan-runtime: cannot start the container's init: refused by the test",
        "sampan-runtime: the container's init exited during set-up"], result.stderr
    for directory in open_cgroup(f"sampan-test/{bundle.id}", bundle.id).paths.values():
        assert not os.path.exists(directory)
    assert sampan("state", bundle.id).returncode != 0
