"""Attacks on the kernel's shared surface from a default container: mounts, /proc and
/sys, kernel modules, the cgroup release_agent, user namespaces, ptrace, raw devices.

Every attempt must fail under both engines (the ``engine`` fixture runs each test once
against sampand and once against Debian's dockerd).
"""

from __future__ import annotations

import glob
import os

from .attempts import assert_all_fail
from .conftest import Engine

CAP_SYS_MODULE, CAP_SYS_ADMIN, CAP_SYS_PTRACE = 16, 21, 19


def test_mount_and_umount(engine: Engine) -> None:
    assert_all_fail(engine, {
        "mount a tmpfs": "mkdir -p /tmp/m && mount -t tmpfs t /tmp/m",
        "bind-mount the root": "mkdir -p /tmp/m && mount --bind / /tmp/m",
        "remount /proc/sys writable": "mount -o remount,rw /proc/sys",
        "remount /sys writable": "mount -o remount,rw /sys",
        "mount proc again": "mkdir -p /tmp/p && mount -t proc proc /tmp/p",
        "umount /etc/hosts": "umount /etc/hosts",
        "umount a masked path": "umount /proc/keys",
        "umount a read-only path": "umount /proc/sys",
        "lazy umount of /proc": "umount -l /proc",
    })


def test_proc_writes(engine: Engine) -> None:
    with open("/proc/sys/kernel/core_pattern") as f:
        core_pattern = f.read()
    assert_all_fail(engine, {
        "sysrq-trigger": "echo h > /proc/sysrq-trigger",
        "kernel.core_pattern": "echo '|/tmp/evil' > /proc/sys/kernel/core_pattern",
        "kernel.panic": "echo 1 > /proc/sys/kernel/panic",
        "kernel.hostname": "echo evil > /proc/sys/kernel/hostname",
        "vm.drop_caches": "echo 3 > /proc/sys/vm/drop_caches",
        "sysrq through /proc/sys": "echo 1 > /proc/sys/kernel/sysrq",
        "an irq's affinity": "for f in /proc/irq/*/smp_affinity; do echo 1 > $f || exit 1; "
                             "done; test -e /proc/irq/0",
    })
    with open("/proc/sys/kernel/core_pattern") as f:
        assert f.read() == core_pattern


def test_masked_paths_read_empty(engine: Engine) -> None:
    """What the host shows in these files is not readable from a container (kcore,
    sched_debug and others do not exist on every kernel: the host's are checked)."""
    candidates = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                  "/proc/latency_stats", "/proc/timer_stats", "/proc/acpi", "/proc/scsi",
                  "/sys/firmware", "/sys/devices/virtual/powercap"]
    present = [p for p in candidates if os.path.exists(p)]
    assert "/proc/keys" in present  # the host keyrings this test is about
    script = "; ".join(
        f"echo {p} $( (if [ -d {p} ]; then ls -A {p}; else head -c 4096 {p}; fi) "
        f"2>/dev/null | wc -c)" for p in present)
    out = engine.ok("run", "--rm", "sampan-attack:latest", "sh", "-c", script)
    sizes = dict(line.split() for line in out.splitlines())
    assert sizes == {p: "0" for p in present}, (engine.name, out)


def _caps(engine: Engine, *options: str) -> dict[str, int]:
    out = engine.ok("run", "--rm", *options, "sampan-attack:latest", "grep", "^Cap",
                    "/proc/self/status")
    return {line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines()}


def test_kernel_module_load(engine: Engine) -> None:
    """init_module/finit_module and busybox's insmod and modprobe are refused. (A kernel
    built without modules refuses them anyway, so the capability that guards them where
    modules exist is checked too.)"""
    report = assert_all_fail(engine, {
        "init_module and finit_module": "sec-helper init_module",
        "insmod": "insmod /bin/busybox",
        "modprobe": "modprobe dummy",
    })
    assert "init_module:" in report and "finit_module:" in report
    caps = _caps(engine)
    for name in ("CapBnd", "CapEff", "CapPrm"):
        assert not caps[name] & (1 << CAP_SYS_MODULE), (engine.name, name, hex(caps[name]))


def test_cgroup_release_agent_escape(engine: Engine) -> None:
    """The classic escape: mount a cgroup v1 hierarchy, set release_agent to a script of
    the container's and notify_on_release, then empty the cgroup."""
    agents = {p: open(p).read() for p in glob.glob("/sys/fs/cgroup/*/release_agent")}
    mkdir = "mkdir -p /tmp/cg && "
    assert_all_fail(engine, {
        "mount cgroup v1 (rdma)": mkdir + "mount -t cgroup -o rdma cgroup /tmp/cg",
        "mount cgroup v1 (memory)": mkdir + "mount -t cgroup -o memory cgroup /tmp/cg",
        "named v1 hierarchy": mkdir + "mount -t cgroup -o none,name=evil cgroup /tmp/cg",
        "release_agent of the mounted cgroups":
            "for f in $(find /sys/fs/cgroup -name release_agent); do "
            "echo /evil > $f || exit 1; done; find /sys/fs/cgroup -name release_agent | grep .",
        "notify_on_release":
            "echo 1 > $(find /sys/fs/cgroup -name notify_on_release | head -n1)",
        "in a new user and cgroup namespace":
            mkdir + "unshare -UrmC sh -c 'mount -t cgroup -o rdma cgroup /tmp/cg && "
            "echo /evil > /tmp/cg/release_agent'",
    })
    assert {p: open(p).read() for p in agents} == agents


def test_unshare_user_namespace(engine: Engine) -> None:
    """A new user namespace would give back every capability over new namespaces (this
    one needs the default seccomp profile, as in docker)."""
    assert_all_fail(engine, {
        "unshare -U -r": "unshare -U -r true",
        "unshare -U -r then mount": "mkdir -p /tmp/m && unshare -U -r -m sh -c "
                                    "'mount -t tmpfs t /tmp/m'",
        "unshare -r -n (a network namespace of one's own)": "unshare -U -r -n true",
    })


def test_no_host_process_is_visible_and_ptrace_fails(engine: Engine, victim: str) -> None:
    """No process outside can be named: the PID namespace shows the container's own only,
    and the host pids of the engine do not reach the host's processes. Inside, ptrace
    across a privilege boundary needs CAP_SYS_PTRACE, which a default container lacks: a
    second exec (root, default capabilities) cannot attach to a process of another user.
    (Attaching to PID 1 itself, same user and same capabilities, is allowed by docker
    too: that is no boundary.)"""
    # (stdout, not the status: sampand's exec sometimes reports 126 for a command that
    # succeeded, an engine bug outside this suite)
    comms = engine.docker("exec", victim, "sh", "-c", "cat /proc/[0-9]*/comm").stdout.split()
    assert set(comms) <= {"sleep", "sh", "cat"}, (engine.name, comms)
    assert len([e for e in os.listdir("/proc") if e.isdigit()]) > 20
    engine.ok("exec", "-d", "-u", "1000:1000", victim, "sleep", "300")
    pids = engine.docker("exec", victim, "sh", "-c",
                         "for p in /proc/[0-9]*; do echo ${p#/proc/} $(cat $p/cmdline | tr "
                         "'\\0' ' '); done").stdout
    by_cmd = {line.split(" ", 1)[1].strip(): line.split()[0] for line in pids.splitlines()
              if " " in line}
    assert "sleep 300" in by_cmd, (engine.name, pids)
    report = assert_all_fail(engine, {
        "ptrace the engine's host pid": f"sec-helper ptrace {engine.pid}",
        "ptrace a process of another user": f"sec-helper ptrace {by_cmd['sleep 300']}",
        "read another user's memory": f"head -c 1 /proc/{by_cmd['sleep 300']}/mem",
        "open another user's exe": f"head -c 1 /proc/{by_cmd['sleep 300']}/exe",
    }, exec_in=victim)
    assert "Operation not permitted" in report, report
    caps = _caps(engine)
    assert not caps["CapBnd"] & (1 << CAP_SYS_PTRACE)


def _root_device() -> tuple[int, int]:
    st = os.stat("/")
    return os.major(st.st_dev), os.minor(st.st_dev)


def test_raw_device_via_mknod(engine: Engine) -> None:
    """CAP_MKNOD lets a container make the node, but the device cgroup refuses to open
    it: the host's root disk, /dev/mem and /dev/kmsg."""
    major, minor = _root_device()
    nodes = {"disk": f"b {major} {minor}", "mem": "c 1 1", "kmsg": "c 1 11"}
    script = "; ".join(f"mknod /tmp/{name} {spec} && echo mknod-ok-{name}"
                       for name, spec in nodes.items())
    report = engine.attack(script + "; true")
    for name in nodes:
        assert f"mknod-ok-{name}" in report.stdout, (engine.name, report)
    assert_all_fail(engine, {
        f"open {name}": f"mknod /tmp/{name} {spec} && head -c 1 /tmp/{name} > /dev/null"
        for name, spec in nodes.items()} | {
        "write to the disk": f"mknod /tmp/w b {major} {minor} && "
                             "dd if=/dev/zero of=/tmp/w bs=1 count=0 conv=notrunc",
    })
