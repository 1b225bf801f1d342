"""Image config → the process of a container: args, env, cwd and the user resolved in the
image's own /etc/passwd and /etc/group."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampan.images import (
    EngineConfig,
    ImageConfigError,
    ImageStore,
    process_config,
    resolve_user,
    runtime_config,
)
from sampan.oci.defaults import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, DOCKER_DEFAULT_CAPS
from sampan.oci.image import ImageConfig
from sampan.oci.spec import parse_spec

from .conftest import container_rootfs, load_fixture


@pytest.fixture
def layers(store: ImageStore, tmp_path: Path):
    load_fixture(store, "layers.docker.tar")
    with container_rootfs(store, "layers", tmp_path) as root:
        yield store.get("layers").config, root


def test_layers_fixture_runs_as_app(layers: tuple[ImageConfig, Path]) -> None:
    config, root = layers
    proc = process_config(config, str(root))
    assert proc.args[0] == "/usr/local/bin/fixture-entrypoint"
    assert proc.args[1:3] == ["sh", "-c"]
    assert (proc.user.uid, proc.user.gid, proc.user.additional_gids) == (1000, 1000, [50])
    assert proc.cwd == "/home/app/work"
    assert "FIXTURE_GREETING=hello world" in proc.env and "FIXTURE_EMPTY=" in proc.env
    assert "HOME=/home/app" in proc.env
    spec_user = proc.user.to_spec()
    assert (spec_user.uid, spec_user.additional_gids, spec_user.username) == \
        (1000, [1000, 50], "app")  # Docker's order: the primary group first


def test_overrides_follow_docker(layers: tuple[ImageConfig, Path]) -> None:
    config, root = layers
    assert process_config(config, str(root), cmd=["ls", "/fixture"]).args == \
        ["/usr/local/bin/fixture-entrypoint", "ls", "/fixture"]
    assert process_config(config, str(root), entrypoint=["/bin/sh"]).args == ["/bin/sh"]
    assert process_config(config, str(root), entrypoint=[], cmd=["id"]).args == ["id"]
    with pytest.raises(ImageConfigError, match="no command specified"):
        process_config(config, str(root), entrypoint=[])
    proc = process_config(config, str(root), env=["FIXTURE_GREETING=bye", "NEW=1",
                                                  "FIXTURE_EMPTY"], workdir="/tmp",
                          user="root")
    assert "FIXTURE_GREETING=bye" in proc.env and "NEW=1" in proc.env
    assert not any(e.startswith("FIXTURE_EMPTY") for e in proc.env)
    assert proc.cwd == "/tmp" and proc.user.uid == 0 and "HOME=/root" in proc.env


@pytest.mark.parametrize("spec,uid,gid,extra", [
    ("", 0, 0, [10]),               # root, in wheel
    ("app", 1000, 1000, [50]),
    ("1000", 1000, 1000, [50]),
    ("app:staff", 1000, 50, []),    # an explicit group: no supplementary groups (runc)
    ("app:4343", 1000, 4343, []),
    ("4242", 4242, 0, []),          # a uid without a passwd entry
    ("4242:4343", 4242, 4343, []),
    ("www-data", 33, 33, []),
])
def test_user_forms(layers: tuple[ImageConfig, Path], spec: str, uid: int, gid: int,
                    extra: list[int]) -> None:
    user = resolve_user(str(layers[1]), spec)
    assert (user.uid, user.gid, user.additional_gids) == (uid, gid, extra)


def test_user_errors_and_group_add(layers: tuple[ImageConfig, Path]) -> None:
    root = str(layers[1])
    with pytest.raises(ImageConfigError, match="unable to find user ghost: no matching "
                                               "entries in passwd file"):
        resolve_user(root, "ghost")
    with pytest.raises(ImageConfigError, match="unable to find group ghosts"):
        resolve_user(root, "app:ghosts")
    assert resolve_user(root, "app", ["staff", "777", "app"]).additional_gids == [50, 777, 1000]
    with pytest.raises(ImageConfigError, match="unable to find group ghosts"):
        resolve_user(root, "app", ["ghosts"])


def test_runtime_config_of_the_layers_fixture(layers: tuple[ImageConfig, Path]) -> None:
    config, root = layers
    made = runtime_config(config, str(root), hostname="c0ffee", cmd=["id"])
    spec = parse_spec(made.spec.to_json())  # what is written to config.json reads back
    assert spec.root is not None and spec.process is not None and spec.linux is not None
    assert (spec.root.path, spec.root.readonly, spec.hostname) == (str(root), False, "c0ffee")
    assert spec.process.args == ["/usr/local/bin/fixture-entrypoint", "id"]
    assert spec.process.cwd == "/home/app/work"
    assert (spec.process.user.uid, spec.process.user.gid,
            spec.process.user.additional_gids) == (1000, 1000, [1000, 50])
    assert "FIXTURE_GREETING=hello world" in (spec.process.env or [])
    caps = spec.process.capabilities
    assert caps is not None and caps.bounding == DOCKER_DEFAULT_CAPS == caps.effective
    assert caps.ambient is None and not spec.process.no_new_privileges
    assert spec.process.rlimits is None and not spec.process.terminal
    assert spec.linux.masked_paths == DEFAULT_MASKED_PATHS
    assert spec.linux.readonly_paths == DEFAULT_READONLY_PATHS
    assert {ns.type for ns in spec.linux.namespaces or []} == \
        {"pid", "network", "ipc", "uts", "mount"}
    assert {m.destination for m in spec.mounts or []} >= {"/proc", "/dev", "/sys", "/dev/pts"}
    engine = made.engine
    assert engine.exposed_ports == ["8080/tcp", "9090/udp"] and engine.volumes == ["/data"]
    assert (engine.stop_signal, engine.stop_timeout) == ("SIGUSR1", None)
    health = engine.healthcheck
    assert health is not None and health.test is not None
    assert health.test[0] == "CMD-SHELL" and (health.interval, health.timeout,
                                              health.start_period, health.retries) == \
        (30_000_000_000, 5_000_000_000, 2_000_000_000, 3)
    assert engine.labels["fixture.label with spaces"] == "value with spaces"


def test_runtime_config_defaults(store: ImageStore, tmp_path: Path) -> None:
    load_fixture(store, "busybox.docker.tar")
    with container_rootfs(store, "busybox", tmp_path) as root:
        made = runtime_config(store.get("busybox").config, str(root))
    assert made.spec.process is not None and made.spec.process.args == ["sh"]
    assert made.spec.process.user.additional_gids == [0, 10]  # root, and wheel lists root
    assert made.spec.hostname is None
    assert made.engine == EngineConfig(exposed_ports=[], volumes=[], stop_signal="SIGTERM",
                                       stop_timeout=None, healthcheck=None, labels={})
