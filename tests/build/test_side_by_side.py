"""Side by side with real docker (Debian's dockerd 20.10, classic builder): the same
Dockerfiles and contexts built by both from the same busybox fixture; the image configs
match field by field (but the parent's ID in Config.Image), the history matches entry by
entry (COPY/ADD name their sources by a content hash of each engine's own), and the
filesystems match (paths, types, modes, owners, contents, link targets)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import FIXTURES, Daemon
from tests.images.dockerd import private_dockerd

from . import imagefs
from .contexts import make_context

_SOURCE_HASH = re.compile(r"(file|dir|multi):[0-9a-f]{64}")


def _peer_env() -> dict[str, str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_HOST", None)
    return env


class Peer:
    def __init__(self, client: list[str]) -> None:
        self.client = client

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run([*self.client, *args], capture_output=True, timeout=timeout,
                                env=_peer_env())
        assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
        return result


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    with private_dockerd(str(tmp_path_factory.mktemp("peer"))) as client:
        p = Peer(client)
        p.run("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        yield p


def ours(daemon: Daemon, *args: str) -> bytes:
    result = subprocess.run(["docker", *args], capture_output=True, timeout=300,
                            env={**daemon.env, "DOCKER_BUILDKIT": "0"})
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


def both(daemon: Daemon, peer: Peer, context: Path, tag: str, *args: str,
         ) -> tuple[tuple[dict[str, Any], dict[str, imagefs.Entry]], ...]:
    ours(daemon, "build", "-t", tag, *args, str(context))
    peer.run("build", "-t", tag, *args, str(context))
    return (imagefs.load(ours(daemon, "save", tag)),
            imagefs.load(peer.run("save", tag).stdout))


def history(config: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(_SOURCE_HASH.sub(r"\1:<hash>", h.get("created_by", "")),
             bool(h.get("empty_layer"))) for h in config["history"]]


def normalized(tree: dict[str, imagefs.Entry]) -> dict[str, imagefs.Entry]:
    return {p: (kind, stat.S_IMODE(mode), uid, gid, data)
            for p, (kind, mode, uid, gid, data) in tree.items()}


def compare(mine: tuple[dict[str, Any], dict[str, imagefs.Entry]],
            theirs: tuple[dict[str, Any], dict[str, imagefs.Entry]]) -> None:
    (my_config, my_tree), (their_config, their_tree) = mine, theirs
    mine_cfg = {k: v for k, v in my_config["config"].items() if k != "Image"}
    theirs_cfg = {k: v for k, v in their_config["config"].items() if k != "Image"}
    assert mine_cfg == theirs_cfg
    for key in ("architecture", "os", "author"):
        assert my_config.get(key) == their_config.get(key), key
    assert history(my_config) == history(their_config)
    assert len(my_config["rootfs"]["diff_ids"]) == len(their_config["rootfs"]["diff_ids"])
    assert normalized(my_tree) == normalized(their_tree)


def test_every_config_instruction(daemon: Daemon, peer: Peer, tmp_path: Path) -> None:
    context = make_context(tmp_path, "everything.Dockerfile")
    compare(*both(daemon, peer, context, "side:everything", "--build-arg", "V=2"))


def test_multistage_copy_rules_add_and_dockerignore(daemon: Daemon, peer: Peer,
                                                     tmp_path: Path) -> None:
    context = make_context(tmp_path, "multistage.Dockerfile")
    mine, theirs = both(daemon, peer, context, "side:multi", "--target", "final")
    compare(mine, theirs)
    tree = mine[1]
    assert tree["/opt/bin/alias"][0] == "symlink" and tree["/opt/bin/alias"][4] == "tool"
    assert tree["/home/app/sub/b"][2:4] == (1234, 1234)
    assert "/unpacked/inner/file.txt" in tree and "/srv/texts/a.txt" in tree
    assert "/srv/texts/debug.log" not in tree


def test_onbuild_triggers(daemon: Daemon, peer: Peer, tmp_path: Path) -> None:
    base = make_context(tmp_path, "onbuild-base.Dockerfile")
    compare(*both(daemon, peer, base, "onbuild-base"))
    child = make_context(tmp_path, "onbuild-child.Dockerfile")
    mine, theirs = both(daemon, peer, child, "side:onbuild-child")
    compare(mine, theirs)
    assert mine[0]["config"]["OnBuild"] is None


def test_a_windows_style_escape_dockerfile(daemon: Daemon, peer: Peer, tmp_path: Path) -> None:
    """The escape directive set to a backtick: continuations, quotes, ``$`` and JSON
    arguments all take the backtick; backslashes are plain characters, as in Windows
    paths."""
    context = make_context(tmp_path, "windows-escape.Dockerfile")
    mine, theirs = both(daemon, peer, context, "side:escape")
    compare(mine, theirs)
    config, tree = mine
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    assert env["WINPATH"] == "C:\\Windows\\System32"
    assert env["QUOTED"] == 'say "hi" now' and env["LITERAL"] == "$HOME"
    assert env["BOTH"] == "C:\\Program Files\\app\\bin" and env["SINGLE"] == "a\\b`c"
    assert config["config"]["Labels"]["tick"] == "x`y"
    out = (b"C:\\Windows\\System32|say \"hi\" now|$HOME|C:\\Program Files\\app\\bin|a\\b`c|"
           b"C:\\legacy\\path|")
    assert tree["/out.txt"][4] == hashlib.sha256(out).hexdigest()
    assert "/app\\sub/C:\\json.txt" in tree


def test_rm_false_and_force_rm_keep_and_remove_containers(daemon: Daemon, peer: Peer,
                                                          tmp_path: Path) -> None:
    """--rm=false keeps every RUN step's container; by default the container of a failed
    step stays; --force-rm removes it too. Both engines leave the same containers."""
    works, fails = tmp_path / "works", tmp_path / "fails"
    for where, last in ((works, "echo two > /two"), (fails, "echo two; exit 4")):
        where.mkdir()
        (where / "Dockerfile").write_text(f"FROM busybox\nRUN echo one > /one\nRUN {last}\n")
    engines: dict[str, Callable[..., subprocess.CompletedProcess[bytes]]] = {
        "sampand": lambda *a: subprocess.run(["docker", *a], capture_output=True, timeout=300,
                                             env={**daemon.env, "DOCKER_BUILDKIT": "0"}),
        "dockerd": lambda *a: subprocess.run([*peer.client, *a], capture_output=True,
                                             timeout=300, env=_peer_env())}
    seen: dict[str, list[tuple[str, ...]]] = {}
    for name, docker in engines.items():
        kept: list[tuple[str, ...]] = []
        for context, flags, code in ((works, ["--rm=false"], 0), (fails, [], 4),
                                     (fails, ["--force-rm"], 4)):
            before = set(docker("ps", "-aq", "--no-trunc").stdout.split())
            result = docker("build", "--no-cache", *flags, str(context))
            assert result.returncode == code, (name, result.stdout, result.stderr)
            new = set(docker("ps", "-aq", "--no-trunc").stdout.split()) - before
            states = docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                            *new).stdout.decode().split("\n")[:len(new)] if new else []
            kept.append(tuple(sorted(states)))
            if new:
                assert docker("rm", *new).returncode == 0
        seen[name] = kept
    assert seen["sampand"] == seen["dockerd"]
    assert seen["sampand"] == [("exited 0", "exited 0"), ("exited 4",), ()]
