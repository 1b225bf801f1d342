"""The container's root filesystem as mounted on the host: a `--rm` container's writable
layer is a volatile overlay (no syncs of the host's filesystem, at unmount above all),
any other container's is not (its layer must survive a crash and mount again)."""

from __future__ import annotations

import os

from .conftest import Daemon, until


def _volatile(daemon: Daemon, cid: str) -> bool:
    """Whether the container's rootfs mount is volatile (/proc/self/mountinfo: Linux 6.x
    shows ``fsync=volatile``, 5.10 ``volatile``)."""
    target = os.path.join(daemon.data_root, "containers", cid, "rootfs")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == target:
                after = fields[fields.index("-") + 1:]
                assert after[0] == "overlay", line
                options = after[2].split(",")
                return "volatile" in options or "fsync=volatile" in options
    raise AssertionError(f"{target} is not mounted")


def test_only_a_container_removed_at_exit_has_a_volatile_layer(daemon: Daemon) -> None:
    script = "echo kept > /f && sync && sleep 60"
    throwaway = daemon.ok("run", "-d", "--rm", "busybox", "sh", "-c", script).strip()
    kept = daemon.ok("run", "-d", "busybox", "sh", "-c", script).strip()
    try:
        until(lambda: daemon.docker("exec", throwaway, "cat", "/f").stdout == "kept\n")
        assert _volatile(daemon, throwaway)
        assert not _volatile(daemon, kept)
        daemon.ok("kill", throwaway)
        until(lambda: throwaway not in daemon.ok("ps", "-aq", "--no-trunc"))
        # the other one stops, starts again on the same layer and still has its file
        daemon.ok("kill", kept)
        daemon.ok("start", kept)
        assert daemon.ok("exec", kept, "cat", "/f") == "kept\n"
        assert not _volatile(daemon, kept)
    finally:
        daemon.docker("rm", "-f", throwaway, kept)


def test_restart_keeps_a_removable_container_and_its_volatile_layer(daemon: Daemon) -> None:
    """As dockerd (HasBeenManuallyRestarted): `restart` of a `--rm` container stops and
    starts it again with what it wrote; the layer stays mounted (a volatile upper, once
    unmounted, never mounts again), and the container still goes at its next exit."""
    cid = daemon.ok("run", "-d", "--rm", "busybox", "sh", "-c",
                    "test -e /f && echo again > /f || echo first > /f; sleep 60").strip()
    try:
        until(lambda: daemon.docker("exec", cid, "cat", "/f").stdout == "first\n")
        pid = daemon.ok("inspect", "--format", "{{.State.Pid}}", cid)
        daemon.ok("restart", "-t", "0", cid)
        assert daemon.ok("inspect", "--format", "{{.State.Running}}", cid) == "true\n"
        assert daemon.ok("inspect", "--format", "{{.State.Pid}}", cid) != pid
        until(lambda: daemon.docker("exec", cid, "cat", "/f").stdout == "again\n")
        assert _volatile(daemon, cid)
        daemon.ok("kill", cid)
        until(lambda: cid not in daemon.ok("ps", "-aq", "--no-trunc"))
        assert not os.path.exists(os.path.join(daemon.data_root, "containers", cid))
    finally:
        daemon.docker("rm", "-f", cid)
