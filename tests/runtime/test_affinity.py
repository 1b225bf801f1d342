"""CPU affinity: the runtime forks its children apart from its own CPU, and a container's
processes get theirs once they are in its cgroup (runc 1.2's reset and the runtime spec's
process.execCPUAffinity). The CPUs are the machine's: these tests need two of them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from sampan.oci.spec import ConfigError
from sampan.runtime import affinity

from .helpers import GREP_CPUS, Bundle, Runtime, cpus_allowed, run_pinned

CPUS = sorted(os.sched_getaffinity(0))
two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs this process may use")


def _as_list(cpus: list[int]) -> str:
    """The kernel's own spelling, for the CPUs the tests use (consecutive ones)."""
    return str(cpus[0]) if len(cpus) == 1 else f"{cpus[0]}-{cpus[-1]}"


def test_cpu_lists_parse_as_the_spec_writes_them() -> None:
    assert affinity.parse_cpus("0-3,7", "f") == {0, 1, 2, 3, 7}
    assert affinity.parse_cpus(" 5 ", "f") == {5}
    for bad in ("", "a", "3-1", "-1", "1-", "1,,2"):
        with pytest.raises(ConfigError, match=r"f: .* is not a CPU list"):
            affinity.parse_cpus(bad, "f")


def _fork_apart_and_report() -> set[int]:
    """The mask a child of fork_apart has once the call has returned in the parent."""
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = affinity.fork_apart()
    if pid == 0:
        try:
            os.read(go_r, 1)
            os.write(out_w, json.dumps(sorted(os.sched_getaffinity(0))).encode())
        finally:
            os._exit(0)
    for fd in (go_r, out_w):
        os.close(fd)
    os.write(go_w, b"x")
    os.close(go_w)
    with os.fdopen(out_r) as f:
        mask = set(json.loads(f.read()))
    assert os.waitpid(pid, 0)[1] == 0
    return mask


@two_cpus
def test_a_child_is_forked_apart_from_our_cpu() -> None:
    mask = _fork_apart_and_report()
    assert mask < set(CPUS) and len(mask) == len(CPUS) - 1


@two_cpus
def test_a_child_keeps_our_only_cpu() -> None:
    try:
        os.sched_setaffinity(0, {CPUS[-1]})
        assert _fork_apart_and_report() == {CPUS[-1]}
    finally:
        os.sched_setaffinity(0, CPUS)


@two_cpus
@pytest.mark.parametrize("uid", [0, 65534], ids=["root", "nobody"])
def test_the_init_is_not_pinned_where_the_runtime_is(sampan: Runtime, bundle: Bundle,
                                                     uid: int) -> None:
    """Also for an init that has become another user by the time the runtime resets it."""
    bundle.spec["process"]["user"] = {"uid": uid, "gid": uid}
    bundle.set_args(*GREP_CPUS)
    result = run_pinned(sampan, bundle, {CPUS[0]})
    assert result.returncode == 0, result.stderr
    assert cpus_allowed(result.stdout) == _as_list(CPUS)


@two_cpus
@pytest.mark.parametrize("runtime_cpus", ["first", "all"])
def test_the_init_gets_the_cpus_of_its_cpuset(sampan: Runtime, bundle: Bundle,
                                              runtime_cpus: str) -> None:
    """Reset to every CPU, which the kernel narrows to the cgroup's: one the runtime may
    not use; or, with a runtime on every CPU, each CPU in turn (one of them the CPU the
    init was forked apart from)."""
    bundle.set_args(*GREP_CPUS)
    bundle.spec["linux"]["cgroupsPath"] = f"sampan-test/{bundle.id}"
    for cpu in CPUS[1:2] if runtime_cpus == "first" else CPUS:
        bundle.spec["linux"].setdefault("resources", {})["cpu"] = {"cpus": str(cpu),
                                                                   "mems": "0"}
        result = run_pinned(sampan, bundle, {CPUS[0]} if runtime_cpus == "first" else
                            set(CPUS))
        assert result.returncode == 0, result.stderr
        assert cpus_allowed(result.stdout) == str(cpu)


def _exec(sampan: Runtime, bundle: Bundle, tmp_path, cpu_affinity: dict[str, str] | None,
          ) -> subprocess.CompletedProcess[str]:
    proc: dict[str, object] = {"args": GREP_CPUS, "cwd": "/", "env": ["PATH=/bin"]}
    if cpu_affinity is not None:
        proc["execCPUAffinity"] = cpu_affinity
    path = tmp_path / "process.json"
    path.write_text(json.dumps(proc))
    return sampan("exec", "--process", str(path), bundle.id)


@two_cpus
def test_exec_cpu_affinity_initial_and_final(sampan: Runtime, bundle: Bundle,
                                            tmp_path) -> None:
    bundle.set_args("sleep", "30")
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    seen = {}
    for name, asked in {"none": None, "final": {"final": str(CPUS[1])},
                        "initial": {"initial": str(CPUS[0])},
                        "both": {"initial": str(CPUS[0]), "final": str(CPUS[1])}}.items():
        result = _exec(sampan, bundle, tmp_path, asked)
        assert result.returncode == 0, result.stderr
        seen[name] = cpus_allowed(result.stdout)
    # without a final list, initial is what the process keeps (the kernel's: no cpuset)
    assert seen == {"none": _as_list(CPUS), "final": str(CPUS[1]), "initial": str(CPUS[0]),
                    "both": str(CPUS[1])}


@two_cpus
def test_exec_takes_the_config_cpu_affinity(sampan: Runtime, bundle: Bundle) -> None:
    """`exec` with a command line uses process.execCPUAffinity of config.json, as runc."""
    bundle.set_args("sleep", "30")
    bundle.spec["process"]["execCPUAffinity"] = {"final": str(CPUS[-1])}
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    result = sampan("exec", bundle.id, *GREP_CPUS)
    assert result.returncode == 0, result.stderr
    assert cpus_allowed(result.stdout) == str(CPUS[-1])


def _processes_of(bundle: Bundle, sampan: Runtime) -> list[str]:
    result = sampan("ps", "--format", "json", bundle.id)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


@two_cpus
def test_bad_exec_cpu_affinity_is_refused_and_leaves_nothing(sampan: Runtime, bundle: Bundle,
                                                            tmp_path) -> None:
    bundle.set_args("sleep", "30")
    bundle.spec["linux"]["cgroupsPath"] = f"sampan-test/{bundle.id}"
    bundle.spec["linux"].setdefault("resources", {})["cpu"] = {"cpus": str(CPUS[0]),
                                                               "mems": "0"}
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    before = _processes_of(bundle, sampan)
    field = "process.execCPUAffinity"
    for asked, message in (
            ({"final": "one"}, f"{field}.final: 'one' is not a CPU list (such as 0-3,7)"),
            ({"initial": "9-2"}, f"{field}.initial: '9-2' is not a CPU list (such as 0-3,7)"),
            ({"final": str(CPUS[1])},  # outside the container's cpuset
             f"{field}.final: none of these CPUs can run the process here")):
        result = _exec(sampan, bundle, tmp_path, asked)
        assert result.returncode == 1
        assert result.stderr.strip() == f"sampan-runtime: {message}", result.stderr
        assert _processes_of(bundle, sampan) == before
