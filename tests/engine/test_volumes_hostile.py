"""Hostile paths: an image whose VOLUME and mount targets are symlinks out of the rootfs
(to the host's /etc, to a host directory, through ../..). Mounts, mount points and the
copy-up all stay inside the container's root or the volume; the host is unchanged."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DOCKER, FIXTURES, Daemon


def _busybox_layer() -> bytes:
    with tarfile.open(FIXTURES / "busybox.docker.tar") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        member = archive.extractfile(manifest[0]["Layers"][0])
        assert member is not None
        return member.read()


def _hostile_tar(host_target: str) -> bytes:
    """busybox plus /data -> /etc, /up -> ../../../../etc, /escape -> <host_target>."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(_busybox_layer())) as base, \
            tarfile.open(fileobj=out, mode="w") as tar:
        for member in base.getmembers():
            tar.addfile(member, base.extractfile(member) if member.isfile() else None)
        for name, target in (("data", "/etc"), ("up", "../../../../../../etc"),
                             ("escape", host_target)):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            tar.addfile(link)
    return out.getvalue()


def _etc_state() -> dict[str, float]:
    return {e.name: e.stat(follow_symlinks=False).st_mtime for e in os.scandir("/etc")}


@pytest.fixture(scope="module")
def host_target(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("hostile-target"))


@pytest.fixture(scope="module")
def hostile(daemon: Daemon, host_target: str) -> Iterator[str]:
    tag = f"hostile-{uuid.uuid4().hex[:8]}"
    assert DOCKER is not None
    proc = subprocess.run([DOCKER, "import", "-c", 'VOLUME ["/data"]', "-c", 'CMD ["sh"]',
                           "-", tag], input=_hostile_tar(host_target), capture_output=True,
                          env=daemon.env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    try:
        yield tag
    finally:
        daemon.docker("rmi", tag)


def test_volume_on_symlink_to_host_etc(daemon: Daemon, hostile: str) -> None:
    vol = f"v-{uuid.uuid4().hex[:8]}"
    etc = _etc_state()
    try:
        out = daemon.ok("run", "--rm", "-v", f"{vol}:/data", hostile, "sh", "-c",
                        "echo pwned > /data/sampan-pwned; echo pwned > /up/sampan-pwned-up; "
                        "cat /etc/sampan-pwned")
        assert out == "pwned\n"  # the container's own /etc, where its /data leads
        data = daemon.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip()
        names = set(os.listdir(data))
        # copy-up took the image's /etc (busybox's), not the host's
        assert {"passwd", "group", "sampan-pwned"} <= names
        assert "os-release" not in names and "debian_version" not in names
        with open(os.path.join(data, "group")) as f:
            assert "staff:x:50:" in f.read()
    finally:
        daemon.docker("volume", "rm", vol)
    assert not os.path.exists("/etc/sampan-pwned")
    assert not os.path.exists("/etc/sampan-pwned-up")
    assert _etc_state() == etc


def test_anonymous_image_volume_on_symlink(daemon: Daemon, hostile: str) -> None:
    etc = _etc_state()
    daemon.ok("run", "--rm", hostile, "sh", "-c", "echo pwned > /data/sampan-pwned-anon")
    assert not os.path.exists("/etc/sampan-pwned-anon")
    assert _etc_state() == etc


def test_mount_targets_through_symlinks_stay_inside(daemon: Daemon, hostile: str,
                                                   host_target: str, tmp_path: Path) -> None:
    etc = _etc_state()
    out = daemon.ok("run", "--rm", "-v", f"{tmp_path}:/escape/sub/deeper",
                    "--tmpfs", "/up/sampan-tmpfs", "--mount", "type=volume,dst=/escape/vol",
                    hostile, "sh", "-c",
                    "echo in > /escape/sub/deeper/f; echo t > /up/sampan-tmpfs/t; "
                    "echo v > /escape/vol/v; echo ok")
    assert out == "ok\n"
    assert (tmp_path / "f").read_text() == "in\n"  # the bind worked, at the container's path
    assert os.listdir(host_target) == []  # no mount point was made on the host
    assert not os.path.exists("/etc/sampan-tmpfs")
    assert _etc_state() == etc
    with open("/proc/self/mountinfo") as f:
        assert host_target not in f.read()
