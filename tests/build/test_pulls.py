"""Builds whose images are not there yet: FROM and COPY --from pull them from the
distribution registry on loopback (seeded with the fixtures), as dockerd's classic
builder does; --platform and FROM --platform choose a manifest from a multi-platform
index (the fixtures' multiarch: linux/amd64 busybox, linux/arm64/v8 one text file), the
image records that platform, and a platform the image does not offer is a clear error."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import Daemon

from ..registry.conftest import Registry
from . import imagefs


def build(daemon: Daemon, context: Path, dockerfile: str, *args: str,
          ) -> subprocess.CompletedProcess[str]:
    (context / "Dockerfile").write_text(dockerfile)
    (context / "a.txt").write_text("hello\n")
    return subprocess.run(["docker", "build", *args, str(context)], capture_output=True,
                          text=True, timeout=300, env={**daemon.env, "DOCKER_BUILDKIT": "0"})


def built(daemon: Daemon, context: Path, dockerfile: str, *args: str) -> str:
    result = build(daemon, context, dockerfile, *args)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def inspect(daemon: Daemon, ref: str) -> dict[str, Any]:
    return json.loads(daemon.ok("image", "inspect", ref))[0]


def saved(daemon: Daemon, ref: str) -> bytes:
    return subprocess.run(["docker", "save", ref], capture_output=True, check=True,
                          timeout=120, env=daemon.env).stdout


def absent(daemon: Daemon, *refs: str) -> None:
    for ref in refs:
        daemon.docker("rmi", ref)
        assert daemon.docker("image", "inspect", ref).returncode != 0


def test_from_and_copy_from_pull_images_not_present(daemon: Daemon, build_registry: Registry,
                                                     tmp_path: Path) -> None:
    base, other = f"{build_registry.host}/busybox:latest", f"{build_registry.host}/busybox:oci"
    absent(daemon, base, other)
    out = built(daemon, tmp_path, f"FROM {base}\nCOPY --from={other} /bin/busybox /opt/busybox\n"
                "RUN /opt/busybox echo copied > /copied\n", "-t", "pulled:1")
    assert out.count("Pulling from") == 2 and "Status: Downloaded newer image" in out
    assert inspect(daemon, base)["Id"] and inspect(daemon, other)["Id"]
    assert daemon.ok("run", "--rm", "pulled:1", "cat", "/copied") == "copied\n"
    daemon.ok("rmi", "pulled:1", base, other)


def test_the_platform_picks_the_manifest_of_an_index(daemon: Daemon, build_registry: Registry,
                                                     tmp_path: Path) -> None:
    index = f"{build_registry.host}/multiarch:latest"
    manifest_list = f"{build_registry.host}/multiarch:v2s2"
    absent(daemon, index, manifest_list)
    built(daemon, tmp_path, f"FROM {index}\nCOPY a.txt /\n", "-t", "plat:host")
    assert inspect(daemon, "plat:host")["Architecture"] == "amd64"
    assert daemon.ok("run", "--rm", "plat:host", "cat", "/a.txt") == "hello\n"
    # FROM --platform: the local (amd64) image under that name is not it: arm64 is pulled
    built(daemon, tmp_path, f"FROM --platform=linux/arm64 {index}\nCOPY a.txt /\nENV X=1\n",
          "-t", "plat:arm64")
    # the build's --platform, from a Docker manifest list
    built(daemon, tmp_path, f"FROM {manifest_list}\nCOPY a.txt /\n", "--platform",
          "linux/arm64/v8", "-t", "plat:arm64-list")
    for tag in ("plat:arm64", "plat:arm64-list"):
        image = inspect(daemon, tag)
        assert (image["Os"], image["Architecture"], image.get("Variant")) == \
            ("linux", "arm64", "v8"), tag
        config, tree = imagefs.load(saved(daemon, tag))
        assert (config["os"], config["architecture"]) == ("linux", "arm64")
        assert "/README-arm64.txt" in tree and "/a.txt" in tree
        assert "/bin/busybox" not in tree
    daemon.ok("rmi", "plat:host", "plat:arm64", "plat:arm64-list", index, manifest_list)


@pytest.mark.parametrize(("dockerfile", "args", "message"), [
    ("FROM {host}/multiarch:latest\n", ("--platform", "linux/s390x"),
     "no matching manifest for linux/s390x in the manifest list entries"),
    ("FROM --platform=linux/ppc64le {host}/busybox:latest\n", (),
     "does not match the specified platform: wanted linux/ppc64le, actual: linux/amd64"),
    ("FROM busybox\n", ("--platform", "windows/amd64"), "unsupported os windows"),
    ("FROM --platform=linux/ {host}/busybox:latest\n", (), "FROM --platform: invalid platform"),
])
def test_a_platform_not_offered_is_a_clear_error(daemon: Daemon, build_registry: Registry,
                                                 tmp_path: Path, dockerfile: str,
                                                 args: tuple[str, ...], message: str) -> None:
    before = daemon.ok("images", "-aq", "--no-trunc")
    result = build(daemon, tmp_path, dockerfile.format(host=build_registry.host), *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert daemon.ok("images", "-aq", "--no-trunc") == before
    assert daemon.ok("ps", "-aq") == ""


def test_scratch_takes_the_build_platform(daemon: Daemon, tmp_path: Path) -> None:
    built(daemon, tmp_path, "FROM scratch\nCOPY a.txt /\n", "--platform", "linux/arm64",
          "-t", "scratch:arm64")
    image = inspect(daemon, "scratch:arm64")
    assert (image["Os"], image["Architecture"]) == ("linux", "arm64")
    daemon.ok("rmi", "scratch:arm64")
