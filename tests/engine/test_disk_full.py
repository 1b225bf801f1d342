"""A full disk: sampand's data root on a small tmpfs made for the test, filled by a ballast
file to a few MiB short of what an operation needs.

Pull, build, `cp` into a container and a container's own writes then fail with a clear
error (ENOSPC named, a non-zero exit), `sampan system check` finds no corruption, and
once the ballast is gone the same operation succeeds and the check is clean.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..registry.conftest import Registry, _seed, _start, _stop
from .conftest import FIXTURES
from .spawn import Spawned, spawned
from .test_crash import system_check

SIZE = "64m"
HEADROOM = 3 << 20  # what is left free while full: less than each operation needs
ENOSPC_TEXT = "no space left on device"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    run = tmp_path_factory.mktemp("registry-run")
    reg = _start(run, Path(tmp_path_factory.mktemp("full-registry")), auth=False)
    try:
        _seed(run, reg, ["layers"])
        yield reg
    finally:
        _stop(run, reg)


@pytest.fixture(scope="module")
def small() -> Iterator[Spawned]:
    """A sampand whose data root is a tmpfs of SIZE (unmounted by the spawn's cleanup)."""
    with spawned([]) as d:
        os.makedirs(d.data_root)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0711", "tmpfs",
                        d.data_root], check=True)
        d.start()
        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        yield d


class Ballast:
    """A file filling the data root to HEADROOM bytes short of full."""

    def __init__(self, d: Spawned) -> None:
        self.path = os.path.join(d.data_root, "ballast")

    def __enter__(self) -> Ballast:
        st = os.statvfs(os.path.dirname(self.path))
        size = st.f_bavail * st.f_frsize - HEADROOM
        assert size > 0
        with open(self.path, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, size)
        return self

    def __exit__(self, *exc: object) -> None:
        os.unlink(self.path)


def assert_no_corruption(d: Spawned) -> None:
    report = system_check(d)
    assert report["Errors"] == 0, report["Findings"]


def assert_clean(d: Spawned) -> None:
    """After the operation succeeded: repair leftovers of the failed try; then nothing."""
    repaired = system_check(d, "--repair")
    assert repaired["Errors"] == 0, repaired["Findings"]
    assert system_check(d)["Clean"]


def failed(result: subprocess.CompletedProcess[str]) -> str:
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    assert ENOSPC_TEXT in text.lower(), text
    print(f"  refused as expected: {text.strip().splitlines()[-1]}")
    return text


def test_pull_on_a_full_disk(small: Spawned, registry: Registry) -> None:
    ref = f"{registry.host}/layers:latest"  # 5 MiB compressed, 7 MiB unpacked
    with Ballast(small):
        failed(small.docker("pull", ref, timeout=120))
        assert small.docker("image", "inspect", ref).returncode != 0
        assert_no_corruption(small)
    small.ok("pull", ref, timeout=120)
    assert small.ok("run", "--rm", ref, "echo", "pulled").strip() == "pulled"
    small.ok("rmi", ref)
    assert_clean(small)


def test_build_on_a_full_disk(small: Spawned, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY big /big\nRUN test -s /big\n")
    with open(tmp_path / "big", "wb") as f:
        f.write(os.urandom(6 << 20))
    env = {**small.env, "DOCKER_BUILDKIT": "0"}

    def build() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "build", "-t", "full-build", str(tmp_path)],
                              capture_output=True, text=True, env=env, timeout=180)

    with Ballast(small):
        failed(build())
        assert small.docker("image", "inspect", "full-build").returncode != 0
        assert_no_corruption(small)
    result = build()
    assert result.returncode == 0, result.stderr
    small.ok("rmi", "full-build")
    small.ok("builder", "prune", "-af")
    assert_clean(small)


def test_container_writes_on_a_full_disk(small: Spawned) -> None:
    """A container's own write sees ENOSPC and its exit code says so; the same run
    succeeds once there is room."""
    script = "dd if=/dev/zero of=/big bs=1M count=6 && echo written"
    with Ballast(small):
        text = failed(small.docker("run", "--rm", "busybox", "sh", "-c", script, timeout=120))
        assert "written" not in text
        assert_no_corruption(small)
    assert small.ok("run", "--rm", "busybox", "sh", "-c", script, timeout=120).strip() \
        .endswith("written")
    assert_clean(small)


def test_cp_into_a_container_on_a_full_disk(small: Spawned, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(6 << 20))
    cid = small.ok("create", "busybox", "true").strip()
    try:
        with Ballast(small):
            failed(small.docker("cp", str(big), f"{cid}:/big", timeout=120))
            assert_no_corruption(small)
        small.ok("cp", str(big), f"{cid}:/big", timeout=120)
        changes = small.ok("diff", cid)
        assert "A /big" in changes
    finally:
        small.ok("rm", "-f", cid)
    assert_clean(small)


def test_check_json_shape(small: Spawned) -> None:
    """The check's JSON as the CLI prints it: findings and totals."""
    report = system_check(small)
    assert set(report) >= {"Findings", "Checked", "Errors", "Remaining", "Repaired", "Clean"}
    assert report["Checked"]["blobs"] >= 1  # type: ignore[index]
    json.dumps(report)
