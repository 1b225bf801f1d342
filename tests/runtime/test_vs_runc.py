"""The same bundles under Debian's runc and under sampan-runtime: what the program inside
sees must be the same."""

from __future__ import annotations

import copy
import shutil

import pytest

from .helpers import Bundle, Runtime

PROBE = r"""
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
echo "ids: $(id -u) $(id -g) $(id -G)"
echo "host: $(hostname)"
echo "cwd: $(pwd)"
echo "umask: $(umask)"
env | grep -v -E '^(PWD|SHLVL|_)=' | sort | sed 's/^/env: /'
ulimit -a | sed 's/^/limit: /'
for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /sys/firmware /proc/scsi; do
  if [ -e "$p" ]; then
    if [ -d "$p" ]; then n=$(ls -A "$p" | wc -l); echo "masked-dir $p entries=$n";
    else head -c 16 "$p" 2>/dev/null | wc -c | sed "s|^|masked-file $p bytes=|"; fi
  fi
done
for p in /proc/sys/kernel/hostname /proc/sysrq-trigger /proc/bus /proc/irq; do
  if [ -e "$p" ]; then touch "$p" 2>/dev/null && echo "writable $p" || echo "read-only $p"; fi
done
awk '{ split($0, a, " - "); split(a[2], b, " "); print "mount:", $5, b[1], $6 }' \
  /proc/self/mountinfo | sort
"""

SECCOMP = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "syscalls": [
        {"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    ],
}


def _configure(bundle: Bundle, variant: str) -> None:
    spec = bundle.spec
    spec["hostname"] = "same-host"
    spec["linux"]["cgroupsPath"] = f"sampan-test/{bundle.id}"
    spec["process"]["env"].append("GREETING=hello world")
    if variant == "restricted":
        spec["process"]["user"] = {"uid": 65534, "gid": 65534, "additionalGids": [50],
                                   "umask": 0o027}
        spec["process"]["cwd"] = "/tmp"
        spec["process"]["noNewPrivileges"] = True
        caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
        spec["process"]["capabilities"] = {
            "bounding": [*caps, "CAP_CHOWN"], "effective": caps, "permitted": caps,
            "inheritable": caps, "ambient": ["CAP_NET_BIND_SERVICE"]}
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1000},
                                      {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]
        spec["linux"]["seccomp"] = SECCOMP
    bundle.set_args("sh", "-c", PROBE)


def _twin(bundle: Bundle, tmp_path) -> Bundle:
    other = tmp_path / "twin"
    shutil.copytree(bundle.path, other, symlinks=True)
    return Bundle(str(other), copy.deepcopy(bundle.spec), id=bundle.id + "r")


@pytest.mark.parametrize("variant", ["default", "restricted"])
def test_same_view_as_runc(sampan: Runtime, runc: Runtime, bundle: Bundle, tmp_path,
                           variant: str) -> None:
    _configure(bundle, variant)
    twin = _twin(bundle, tmp_path)
    twin.spec["linux"]["cgroupsPath"] = f"sampan-test/{twin.id}"
    ours = sampan.run(bundle)
    theirs = runc.run(twin)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines() == theirs.stdout.splitlines()
    # The probe must have seen something, or the comparison proves nothing.
    assert "masked-file /proc/keys bytes=0" in ours.stdout
    assert "read-only /proc/sys/kernel/hostname" in ours.stdout
    if variant == "restricted":
        assert "Seccomp:\t2" in ours.stdout and "NoNewPrivs:\t1" in ours.stdout
        assert "ids: 65534 65534 65534 50" in ours.stdout


def test_seccomp_rules_behave_like_runc(sampan: Runtime, runc: Runtime, bundle: Bundle,
                                        tmp_path) -> None:
    bundle.spec["linux"]["seccomp"] = SECCOMP
    bundle.set_args("sh", "-c", "mkdir /tmp/x; echo mkdir=$?")
    twin = _twin(bundle, tmp_path)
    ours, theirs = sampan.run(bundle), runc.run(twin)
    assert ours.stdout == theirs.stdout == "mkdir=1\n"
    assert "Permission denied" in ours.stderr and "Permission denied" in theirs.stderr


@pytest.mark.parametrize("name", ["sampan", "runc"])
def test_memory_hog_is_oom_killed(request, bundle: Bundle, name: str) -> None:
    rt: Runtime = request.getfixturevalue(name)
    bundle.spec["linux"]["cgroupsPath"] = f"sampan-test/{bundle.id}"
    bundle.spec["linux"]["resources"] = {"memory": {"limit": 32 * 1024 * 1024,
                                                    "swap": 32 * 1024 * 1024}}
    bundle.set_args("dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1")
    result = rt.run(bundle)
    assert result.returncode == 137, (result.returncode, result.stderr)
    if name == "sampan":
        assert "OOM" in result.stderr


@pytest.mark.parametrize("name", ["sampan", "runc"])
def test_fork_bomb_stops_at_pids_limit(request, bundle: Bundle, name: str) -> None:
    import json
    import time

    rt: Runtime = request.getfixturevalue(name)
    bundle.spec["linux"]["cgroupsPath"] = f"sampan-test/{bundle.id}"
    bundle.spec["linux"]["resources"] = {"pids": {"limit": 16}}
    bundle.set_args("sh", "-c", "sh -c 'while true; do sleep 60 & done' 2>/tmp/err; "
                    "exec sleep 60")
    bundle.write()
    assert rt("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    # The loop never ends by itself: only the limit stops it. Wait until the count settles.
    counts: list[int] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        counts.append(len(json.loads(rt("ps", "--format", "json", bundle.id).stdout)))
        if len(counts) >= 5 and len(set(counts[-5:])) == 1:
            break
        time.sleep(0.2)
    assert max(counts) <= 16
    assert counts[-1] >= 12 and len(set(counts[-5:])) == 1
    err = rt("exec", bundle.id, "cat", "/tmp/err")
    assert err.returncode == 0, err.stderr
    assert "can't fork" in err.stdout
    assert rt("delete", "--force", bundle.id).returncode == 0
