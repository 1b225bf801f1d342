"""The build tests drive the engine tests' sampand (same fixture: its own socket, data root
and cgroup parent, busybox loaded); ``build_registry`` is a distribution registry on
loopback seeded with the fixtures a build pulls (busybox, busybox:oci, multiarch)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import Daemon, daemon, docker_client  # noqa: F401
from tests.registry.conftest import Registry, _seed, _start, _stop


@pytest.fixture(scope="module")
def build_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    run = tmp_path_factory.mktemp("registry-run")
    reg = _start(run, Path(tmp_path_factory.mktemp("build-registry")), auth=False)
    try:
        _seed(run, reg, ["busybox", "busybox-oci", "multiarch"])
        yield reg
    finally:
        _stop(run, reg)
