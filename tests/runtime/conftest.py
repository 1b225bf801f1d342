from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from .helpers import SAMPAN_RUNTIME, Bundle, Runtime, default_spec, make_rootfs


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cgroup_parents() -> Iterator[None]:
    """Containers of these tests live below cgroupsPath "sampan-test/<id>"; the runtimes
    remove each container's cgroup but, as runc does, not the parent they were given."""
    yield
    from sampan.cgroups import open_cgroup

    for path in set(open_cgroup("sampan-test/x", "x").paths.values()):
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))


@pytest.fixture(scope="session")
def base_rootfs() -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="sampan-test-rootfs-")
    yield make_rootfs(os.path.join(tmp, "rootfs"))
    shutil.rmtree(tmp)


@pytest.fixture(scope="session")
def base_spec() -> dict:
    return default_spec()


@pytest.fixture
def bundle(base_rootfs: str, base_spec: dict, tmp_path) -> Bundle:
    shutil.copytree(base_rootfs, tmp_path / "rootfs", symlinks=True)
    import copy

    return Bundle(str(tmp_path), copy.deepcopy(base_spec))


@pytest.fixture
def sampan(tmp_path_factory) -> Iterator[Runtime]:
    rt = Runtime(SAMPAN_RUNTIME, str(tmp_path_factory.mktemp("sampan-root")))
    yield rt
    rt.cleanup()


@pytest.fixture
def runc(tmp_path_factory) -> Iterator[Runtime]:
    rt = Runtime("runc", str(tmp_path_factory.mktemp("runc-root")))
    yield rt
    rt.cleanup()
