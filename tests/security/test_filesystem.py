"""Attacks through the filesystem: a mount target that is a symlink out of the rootfs, and
hostile image layers (``..``, absolute paths, hardlinks and symlinks out) through
``docker load``. The host's files must stay as they were, whatever the engine accepts."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from ..archive.hostile import HOSTILE, hostile_layer
from ..archive.tarbuild import E
from ..images.test_hostile_images import BASE, image_archive
from .conftest import IMAGE, Engine


def _host_etc() -> tuple[set[str], str, bool]:
    with open("/etc/passwd", "rb") as f:
        passwd = hashlib.sha256(f.read()).hexdigest()
    return set(os.listdir("/etc")), passwd, os.path.ismount("/etc")


@pytest.mark.parametrize("target", ["/data", "/up"])
def test_symlinked_mount_target_stays_inside(engine: Engine, target: str) -> None:
    """/data -> /etc and /up -> ../../../../etc in the image; a tmpfs on them lands on the
    container's own /etc, never on the host's."""
    before = _host_etc()
    out = engine.ok("run", "--rm", "--tmpfs", target, IMAGE, "sh", "-c",
                    f"echo pwned > {target}/sampan-pwned && cat /etc/sampan-pwned && "
                    "grep -c ' /etc ' /proc/self/mountinfo")
    assert out.split()[0] == "pwned", (engine.name, out)
    assert _host_etc() == before
    assert not os.path.exists("/etc/sampan-pwned")
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if line.split()[4] == "/etc"]


def _cases(outside: Path) -> dict[str, list[E]]:
    cases = {name: entries for name, (entries, _, _) in HOSTILE.items()
             if name != "hardlink to nothing"}
    deep = "../" * 40 + str(outside).lstrip("/") + "/deep-escape"
    cases["dotdot to a host directory"] = [E(deep, data=b"x")]
    cases["absolute host path"] = [E(str(outside) + "/absolute", data=b"x")]
    cases["hardlink out, then written"] = [
        E("shadow", "hardlink", link="../../../../../../../../etc/shadow"),
        E("shadow", data=b"root::0:0:::::\n")]
    return cases


def test_hostile_layers_write_nothing_outside(engine: Engine, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shadow = os.stat("/etc/shadow")
    with open("/etc/shadow", "rb") as f:
        shadow_hash = hashlib.sha256(f.read()).hexdigest()
    results = {}
    for i, (name, entries) in enumerate(_cases(outside).items()):
        archive = tmp_path / f"hostile-{i}.tar"
        archive.write_bytes(image_archive([BASE, hostile_layer(entries, outside)],
                                          tag=f"hostile-{i}:latest"))
        results[name] = engine.docker("load", "-i", str(archive)).returncode
        assert engine.alive(), (engine.name, name)
    assert list(outside.iterdir()) == [], (engine.name, results)
    assert not os.path.exists("/etc/evil")
    assert os.stat("/etc/shadow").st_nlink == shadow.st_nlink
    with open("/etc/shadow", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == shadow_hash
    # Inside the store, an entry may only land inside a layer (dockerd clamps ``..`` into
    # the layer, sampan refuses the layer): never beside the layers.
    found = subprocess.run(["find", engine.data_root, "-name", "escaped", "-o", "-name",
                            "deep-escape"], capture_output=True, text=True).stdout.split()
    beside = [p for p in found if not {"diff", "fs"} & set(p.split("/"))]
    assert beside == [], (engine.name, found)
    # Whatever was accepted runs confined like any image (and is removed again).
    for i in range(len(results)):
        engine.docker("rmi", "-f", f"hostile-{i}:latest")


@pytest.mark.parametrize("options", [(), ("--network", "host"), ("--pid", "host")])
def test_api_socket_is_out_of_reach(engine: Engine, options: tuple[str, ...]) -> None:
    """The engine's API socket is not in the container's filesystem, even sharing the
    host's network or pid namespace; the host's root is not reachable through
    /proc/<pid>/root either (its engine's process is another user's, ptrace-guarded)."""
    socket_path = engine.env["DOCKER_HOST"].removeprefix("unix://")
    assert os.path.exists(socket_path)
    out = engine.ok("run", "--rm", *options, IMAGE, "sh", "-c",
                    f"test -e {socket_path} && echo REACHED; "
                    f"test -e /proc/{engine.pid}/root{socket_path} && echo VIA-PROC; "
                    "find / -xdev -type s 2>/dev/null; echo done")
    assert out.splitlines() == ["done"], (engine.name, options, out)
