"""Image config → the process of a container: args, env, cwd and the user resolved in the
image's own /etc/passwd and /etc/group."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampan.images import ImageConfigError, ImageStore, process_config, resolve_user
from sampan.oci.image import ImageConfig

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
    assert (spec_user.uid, spec_user.additional_gids, spec_user.username) == (1000, [50], "app")


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
