"""docker-py as the client: version negotiation, containers.run/create/start/logs/wait/
remove, the low-level API."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Daemon


def test_version_negotiation(docker_client: Any) -> None:
    assert docker_client.api.api_version == "1.45"
    assert docker_client.version()["ApiVersion"] == "1.45"
    assert docker_client.ping() is True


def test_run_returns_output(docker_client: Any) -> None:
    out = docker_client.containers.run("busybox", ["sh", "-c", "echo hello"], remove=True)
    assert out == b"hello\n"


def test_run_failure_raises(docker_client: Any) -> None:
    import docker
    with pytest.raises(docker.errors.ContainerError) as info:
        docker_client.containers.run("busybox", ["sh", "-c", "exit 5"], remove=True)
    assert info.value.exit_status == 5


def test_create_start_logs_wait_remove(docker_client: Any) -> None:
    container = docker_client.containers.create(
        "busybox", ["sh", "-c", "echo one; echo two >&2; exit 2"], labels={"k": "v"})
    try:
        assert container.status == "created"
        container.start()
        assert container.wait(timeout=30) == {"StatusCode": 2, "Error": None}
        assert container.logs(stdout=True, stderr=False) == b"one\n"
        assert container.logs(stdout=False, stderr=True) == b"two\n"
        container.reload()
        assert container.status == "exited"
        assert container.labels == {"k": "v"}
        assert any(c.id == container.id
                   for c in docker_client.containers.list(all=True, filters={"label": "k=v"}))
    finally:
        container.remove(force=True)


def test_stream_logs_and_stop(docker_client: Any) -> None:
    container = docker_client.containers.run(
        "busybox", ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done; sleep 300"],
        detach=True)
    try:
        lines = []
        for chunk in container.logs(stream=True, follow=True):
            lines.append(chunk)
            if b"".join(lines).count(b"\n") >= 3:
                break
        assert b"".join(lines) == b"1\n2\n3\n"
        container.stop(timeout=1)
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 137
    finally:
        container.remove(force=True)


def test_not_found_errors(docker_client: Any) -> None:
    import docker
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("no-such-container")
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get("no-such-image:1")


def test_images(docker_client: Any, daemon: Daemon) -> None:
    image = docker_client.images.get("busybox")
    assert "busybox:latest" in image.tags
    assert any("busybox:latest" in i.tags for i in docker_client.images.list())
