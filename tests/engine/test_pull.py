"""docker pull and push through sampand from the distribution registry on loopback, with Docker's
progress stream, and docker-py's images.pull."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..registry.conftest import Registry, _seed, _start, _stop
from .conftest import Daemon


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    run = tmp_path_factory.mktemp("registry-run")
    reg = _start(run, Path(tmp_path_factory.mktemp("engine-registry")), auth=False)
    try:
        _seed(run, reg, ["busybox"])
        yield reg
    finally:
        _stop(run, reg)


def test_cli_pull_and_run(daemon: Daemon, registry: Registry) -> None:
    ref = f"{registry.host}/busybox:latest"
    out = daemon.ok("pull", ref, timeout=120)
    assert f"Status: Downloaded newer image for {ref}" in out or "up to date" in out
    again = daemon.ok("pull", ref, timeout=120)
    assert f"Status: Image is up to date for {ref}" in again
    assert daemon.ok("run", "--rm", ref, "echo", "pulled") == "pulled\n"
    daemon.ok("rmi", ref)


def test_pull_unknown_is_an_error(daemon: Daemon, registry: Registry) -> None:
    result = daemon.docker("pull", f"{registry.host}/nosuch/image:1", timeout=120)
    assert result.returncode != 0
    assert "not found" in result.stderr or "unknown" in result.stderr


def test_dockerpy_pull(docker_client: Any, registry: Registry) -> None:
    image = docker_client.images.pull(f"{registry.host}/busybox", tag="latest")
    assert f"{registry.host}/busybox:latest" in image.tags
    docker_client.images.remove(f"{registry.host}/busybox:latest")


def test_cli_push_and_pull_back(daemon: Daemon, registry: Registry) -> None:
    ref = f"{registry.host}/sampan-pushed/bb:v1"
    daemon.ok("tag", "busybox", ref)
    out = daemon.ok("push", ref, timeout=120)
    assert "v1: digest: sha256:" in out
    daemon.ok("rmi", ref)
    assert "Status: Downloaded newer image" in daemon.ok("pull", ref, timeout=120) or \
        "up to date" in daemon.ok("pull", ref, timeout=120)
    daemon.ok("rmi", ref)
    missing = daemon.docker("push", f"{registry.host}/never/tagged:1", timeout=60)
    assert missing.returncode != 0 and "does not exist locally" in missing.stderr


def test_image_prune(daemon: Daemon) -> None:
    assert "Total reclaimed space" in daemon.ok("image", "prune", "-f")
    assert "busybox:latest" in daemon.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
