"""Two engines for the attack suite: sampand and Debian's real dockerd, each on its own
socket, with its data root on a tmpfs of its own (so the disk-full attack fills only
that), both driven by the same docker CLI. Every attack runs against both, so a
difference in outcome is a finding.

Teardown leaves nothing behind: containers removed, the daemons stopped by pid,
monitors that outlived sampand killed by pid, the tmpfs and every mount under the
directory unmounted, the cgroup parents removed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..engine.conftest import (
    DOCKER,
    FIXTURES,
    Daemon,
    DockerCLI,
    _monitors_of,
    _mounts_under,
    _remove_cgroups,
)
from ..images.dockerd import private_dockerd

HERE = Path(__file__).resolve().parent
IMAGE = "sampan-attack:latest"
DATA_ROOT_SIZE = "768m"


@dataclass
class Engine(DockerCLI):
    """One daemon as the tests see it: a docker CLI pointed at it, and its host pid."""

    name: str
    env: dict[str, str]
    pidfile: str = ""
    proc: subprocess.Popen[bytes] | None = None
    data_root: str = ""
    cgroup_parent: str = ""
    runtime_files: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        if self.proc is not None:
            return self.proc.pid
        with open(self.pidfile) as f:
            return int(f.read())

    def attack(self, script: str, *options: str, timeout: float = 60,
               ) -> subprocess.CompletedProcess[str]:
        """``sh -c script`` in a fresh default container of the attack image."""
        return self.docker("run", "--rm", *options, IMAGE, "sh", "-c", script,
                           timeout=timeout)

    def alive(self) -> bool:
        return self.docker("version", "--format", "{{.Server.Version}}").returncode == 0

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError(f"{self.name}: no VmRSS")

    def host_pids(self, container_id: str) -> list[int]:
        """Host pids whose pids cgroup names the container."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cgroup") as f:
                if any(":pids:" in line and container_id in line for line in f):
                    pids.append(int(entry))
        return pids


def attack_image_tar(helper: str) -> bytes:
    """The busybox fixture's rootfs plus the attack helper, and /data and /up: symlinks to
    /etc, absolute and by ``..`` (symlinked mount targets), as a tar for docker import."""
    with tarfile.open(FIXTURES / "busybox.docker.tar") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = archive.extractfile(manifest[0]["Layers"][0])
        assert layer is not None
        layer_bytes = layer.read()
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(layer_bytes)) as src, \
            tarfile.open(fileobj=out, mode="w") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for name, target in (("data", "/etc"), ("up", "../../../../../../../../etc")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            dst.addfile(link)
        with open(helper, "rb") as f:
            binary = f.read()
        info = tarfile.TarInfo("usr/local/bin/sec-helper")
        info.size, info.mode = len(binary), 0o755
        dst.addfile(info, io.BytesIO(binary))
    return out.getvalue()


@pytest.fixture(scope="session")
def attack_tar() -> Iterator[str]:
    """Build the helper (static, so it runs in any rootfs) and the image tar once."""
    work = tempfile.mkdtemp(prefix="sampan-sec-img-")
    try:
        helper = os.path.join(work, "sec-helper")
        subprocess.run(["gcc", "-static", "-O2", "-o", helper, str(HERE / "helper.c")],
                       check=True, capture_output=True)
        path = os.path.join(work, "attack.tar")
        with open(path, "wb") as f:
            f.write(attack_image_tar(helper))
        yield path
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prepare(engine: Engine, attack_tar: str) -> None:
    engine.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
    engine.ok("import", "--change", "CMD [\"sh\"]", "--change",
              "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              attack_tar, IMAGE, timeout=120)


def _mount_tmpfs(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DATA_ROOT_SIZE}", "tmpfs", path],
                   check=True)


def _remove_all(engine: Engine) -> None:
    with contextlib.suppress(Exception):
        ids = engine.docker("ps", "-aq").stdout.split()
        if ids:
            engine.docker("rm", "-f", *ids, timeout=120)


@contextlib.contextmanager
def _sampand(base: str, attack_tar: str) -> Iterator[Engine]:
    daemon = Daemon(base)
    _mount_tmpfs(daemon.data_root)
    engine = Engine("sampand", daemon.env, data_root=daemon.data_root,
                    cgroup_parent=daemon.cgroup_parent)
    try:
        daemon.start()
        engine.proc = daemon.proc
        from sampan.engine.engine import default_runtime

        # The runtime script and the interpreter that runs it: what /proc/<pid>/exe of a
        # runtime process points at.
        engine.runtime_files = [default_runtime(), os.path.realpath(sys.executable)]
        _prepare(engine, attack_tar)
        yield engine
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            _remove_all(engine)
        daemon.stop()
        for pid in _monitors_of(base):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in _mounts_under(base):
            subprocess.run(["umount", "-l", point], check=False)
        _remove_cgroups(daemon.cgroup_parent)


@contextlib.contextmanager
def _dockerd(base: str, attack_tar: str) -> Iterator[Engine]:
    data = os.path.join(base, "dockerd-data")
    _mount_tmpfs(data)
    parent = f"/sampan-sec-dockerd-{os.getpid()}"
    assert DOCKER is not None
    try:
        with private_dockerd(base, "--data-root", data, "--cgroup-parent", parent,
                             client=DOCKER) as argv:
            env = {**os.environ, "DOCKER_HOST": argv[-1],
                   "DOCKER_CONFIG": os.path.join(base, "docker-config")}
            env.pop("DOCKER_CONTEXT", None)
            engine = Engine("dockerd", env, pidfile=os.path.join(base, "docker",
                                                                  "dockerd.pid"),
                            data_root=data, cgroup_parent=parent,
                            runtime_files=[os.path.realpath(shutil.which("runc") or "runc")])
            try:
                _prepare(engine, attack_tar)
                yield engine
            finally:
                _remove_all(engine)
    finally:
        for point in _mounts_under(base):
            subprocess.run(["umount", "-l", point], check=False)
        _remove_cgroups(parent)


@pytest.fixture(scope="session", params=["sampand", "dockerd"])
def engine(request: pytest.FixtureRequest, attack_tar: str) -> Iterator[Engine]:
    if DOCKER is None:
        pytest.fail("the docker CLI is needed for the attack suite")
    base = tempfile.mkdtemp(prefix="sampan-sec-")
    start = _sampand if request.param == "sampand" else _dockerd
    try:
        with start(base, attack_tar) as engine:
            yield engine
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def victim(engine: Engine) -> Iterator[str]:
    """A long-running default container to attack from a second exec, removed after."""
    cid = engine.ok("run", "-d", IMAGE, "sleep", "600").strip()
    try:
        yield cid
    finally:
        engine.docker("rm", "-f", cid, timeout=60)


def wait_for(predicate: object, timeout: float = 20, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False
