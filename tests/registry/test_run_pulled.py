"""Issue check 1: every fixture pulled from the real registry runs under sampan-runtime.

Each container is made as the engine will make it: the pulled image's layers plus one
writable layer, mounted as an overlay (``ImageStore.prepare_rootfs``); its config.json built
from the image config (``runtime_config``) with ``root.path`` naming that mount; then
`sampan-runtime run` in a private state root. What is inside is checked from inside the
container, with the image's own busybox, not by reading the layer directories.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sampan.images import ImageStore, RuntimeConfig, runtime_config
from sampan.registry import pull
from sampan.snapshots import mount_all, unmount_all

from ..runtime.helpers import SAMPAN_RUNTIME, Bundle, Runtime
from .conftest import Registry, _seed

LAYERS_OUTPUT = ("layers: entrypoint=ran user=app uid=1000 gid=1000 groups=1000 50 "
                 "cwd=/home/app/work greeting=hello world")
CAPS_HEX = "0100000200240000000000000000000000000000"
BUSYBOX_PROBE = ["sh", "-c", 'echo "ran as $(id -u) in $(pwd)"; echo "$PATH"; '
                 "busybox | head -n 1"]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(SAMPAN_RUNTIME, str(tmp_path / "runtime-root"))
    yield rt
    rt.cleanup()


@dataclass
class Container:
    bundle: Bundle
    config: RuntimeConfig

    @property
    def rootfs(self) -> Path:
        return Path(self.bundle.rootfs)

    def fresh(self) -> Bundle:
        """Another container id on the same root filesystem and config."""
        return Bundle(self.bundle.path, self.bundle.spec)


@contextmanager
def container(store: ImageStore, ref: str, where: Path, **overrides: Any
              ) -> Iterator[Container]:
    """A bundle whose root is the image's overlay (plus a writable layer), unmounted and
    removed afterwards."""
    key = f"container-{uuid.uuid4().hex[:8]}"
    bundle_dir = where / key
    rootfs = bundle_dir / "rootfs"
    rootfs.mkdir(parents=True)
    mount_all(store.prepare_rootfs(key, ref), str(rootfs))
    try:
        config = runtime_config(store.get(ref).config, str(rootfs), hostname="pulled",
                                **overrides)
        spec = config.spec.to_json()
        assert spec["root"] == {"path": str(rootfs), "readonly": False}
        yield Container(Bundle(str(bundle_dir), spec), config)
    finally:
        unmount_all(str(rootfs))
        store.snapshots.remove(key)
        assert not os.path.ismount(rootfs)


def _run(runtime: Runtime, bundle: Bundle) -> str:
    done = runtime.run(bundle)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def debian_registry(plain_registry: Registry, registry_run: Path) -> Registry:
    """The plain registry with the debian fixture too (seeded only when a test wants it)."""
    _seed(registry_run, plain_registry, ["debian"])
    return plain_registry


BUSYBOXES = ["busybox:latest", "busybox:oci", "busybox:zstd", "multiarch:latest",
             "multiarch:v2s2"]


@pytest.mark.parametrize("tag", BUSYBOXES)
def test_busybox_images_run(plain_registry: Registry, store: ImageStore, runtime: Runtime,
                            tmp_path: Path, tag: str) -> None:
    """Docker v2 schema 2 (gzip), OCI (gzip), OCI (zstd), an OCI index and a Docker
    manifest list: each pulled image runs."""
    ref = f"{plain_registry.host}/{tag}"
    pull(store, ref)
    with container(store, ref, tmp_path) as c:
        assert c.bundle.spec["process"]["args"] == ["sh"]  # the image's Cmd
        assert _run(runtime, c.bundle) == ""  # a shell reading an empty stdin exits 0
        probe = c.fresh().set_args(*BUSYBOX_PROBE)
        out = _run(runtime, probe).splitlines()
        assert out[0] == "ran as 0 in /"
        assert out[1] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        assert out[2].startswith("BusyBox v1.35.0")


# One `stat` line per path: name|mode|uid|gid|inode|links|type|major|minor|mtime.
_STAT = "stat -c '%n|%a|%u|%g|%i|%h|%F|%t|%T|%Y'"
_LAYERS_PROBE = f"""
cd /fixture
echo "== whiteout"; ls -A whiteout
echo "== opaque"; ls -A opaque
echo "== typechange"; ls -A typechange/file-then-dir; cat typechange/dir-then-file
echo "== gone"; for p in /bin/vi whiteout/file-to-delete.txt whiteout/dir-to-delete \\
    opaque/old-file.txt opaque/old-sub; do [ -e "$p" ] || [ -L "$p" ] && echo "$p"; done
echo "== stat"; {_STAT} links/hard-a links/hard-b links-other/hard-c \\
    links/hard-to-lower-layer-file modified.txt chmod-later.txt modes/* /home/app \\
    /home/app/work /data/seed.txt caps/net-caps
echo "== links"; for l in links/abs-link-etc-passwd links/sub/rel-up-link \\
    links/dangling-link; do readlink "$l"; done
grep -c '^app:' links/abs-link-etc-passwd; cat links/link-to-link
echo "== big"; sha256sum big/big-5M.bin
echo "== id"; id
"""


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:]
            out[current] = []
        elif current:
            out[current].append(line)
    return out


def test_layers_fixture_inside_the_container(plain_registry: Registry, store: ImageStore,
                                             runtime: Runtime, tmp_path: Path) -> None:
    ref = f"{plain_registry.host}/layers"
    pull(store, ref)
    with container(store, ref, tmp_path) as c:
        # The image's own command: entrypoint, user app through the image's /etc/passwd and
        # /etc/group (supplementary group staff), working directory, environment.
        assert _run(runtime, c.bundle).strip() == LAYERS_OUTPUT
        engine = c.config.engine
        assert (engine.exposed_ports, engine.volumes, engine.stop_signal) == \
            (["8080/tcp", "9090/udp"], ["/data"], "SIGUSR1")
        assert engine.healthcheck is not None and engine.healthcheck.retries == 3
        assert engine.labels["fixture.unicode"] == "ünïcödé ✓ 日本語"

        probe = c.fresh().set_args("/usr/local/bin/fixture-entrypoint", "sh", "-c",
                                   _LAYERS_PROBE)
        found = _sections(_run(runtime, probe))
        assert found["whiteout"] == ["kept.txt"]
        assert found["opaque"] == ["new-file.txt"]
        assert found["typechange"] == ["inner", "now a plain file"]
        assert found["gone"] == []
        stats = {line.split("|")[0]: line.split("|")[1:] for line in found["stat"]}
        mode = lambda p: stats[p][0]  # noqa: E731
        owner = lambda p: (stats[p][1], stats[p][2])  # noqa: E731
        inode = lambda p: (stats[p][3], stats[p][4])  # noqa: E731
        # hardlinks: one inode across directories, and onto a lower layer's file
        assert inode("links/hard-a") == inode("links/hard-b") == inode("links-other/hard-c")
        assert inode("links/hard-a")[1] == "3"
        assert inode("links/hard-to-lower-layer-file") == inode("modified.txt")
        # modes, set-id bits, ownership, devices, times
        assert (mode("modes/setuid-file"), mode("modes/setgid-file"), mode("modes/setgid-dir"),
                mode("modes/sticky-dir"), mode("modes/mode-0000"), mode("chmod-later.txt")) \
            == ("4755", "2755", "2775", "1777", "0", "600")
        assert owner("modes/owned-by-4242") == ("4242", "4343")
        assert owner("modes/owned-by-app") == owner("/home/app") == ("1000", "1000")
        assert owner("/home/app/work") == ("0", "0") and owner("/data/seed.txt") == ("1000",
                                                                                   "1000")
        assert stats["modes/chardev-1-3"][5:8] == ["character special file", "1", "3"]
        assert stats["modes/blockdev-7-0"][5:8] == ["block special file", "7", "0"]
        assert stats["modes/fifo"][5] == "fifo"
        assert stats["modes/old-mtime"][8] == "981173106"
        assert found["links"] == ["/etc/passwd", "../target.txt", "/does/not/exist", "1",
                                  "symlink target"]
        assert found["big"][0].split()[0] == \
            "464d3da7c61daa4cf75a31ed187faa1544da31b866cf9459ff3221598732c833"
        # what `docker run layers id` prints (the primary group among the supplementary)
        assert found["id"] == ["uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"]

        # security.capability, seen through a running container's own root
        sleeper = c.fresh().set_args("sleep", "60")
        sleeper.write()
        started = runtime("run", "-d", "--bundle", sleeper.path, sleeper.id)
        assert started.returncode == 0, started.stderr
        try:
            pid = runtime.state(sleeper.id)["pid"]
            inside = f"/proc/{pid}/root/fixture/caps/net-caps"
            assert os.getxattr(inside, "security.capability").hex() == CAPS_HEX
        finally:
            runtime("kill", sleeper.id, "KILL")
            runtime("delete", "--force", sleeper.id)
        # What the containers wrote (mount points) went to the writable layer only.
        top = store.get(ref).top_layer
        assert top is not None
        assert not (Path(store.snapshots.fs(store.snapshots.stat(top))) / "proc").exists()


def test_httpd_serves_inside_its_container(plain_registry: Registry, store: ImageStore,
                                           runtime: Runtime, tmp_path: Path) -> None:
    ref = f"{plain_registry.host}/httpd"
    pull(store, ref)
    with container(store, ref, tmp_path) as c:
        assert c.config.engine.exposed_ports == ["80/tcp"]
        assert c.config.engine.healthcheck is not None
        c.bundle.write()
        started = runtime("run", "-d", "--bundle", c.bundle.path, c.bundle.id)
        assert started.returncode == 0, started.stderr
        try:
            got = ""
            for _ in range(50):  # the server needs a moment to listen
                fetched = runtime("exec", c.bundle.id, "wget", "-q", "-O", "-",
                                  "http://127.0.0.1/")
                got = fetched.stdout
                if fetched.returncode == 0:
                    break
            assert "sampan-httpd-fixture-ok" in got
            pid = runtime.state(c.bundle.id)["pid"]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert f.read().split(b"\0")[:2] == [b"busybox", b"httpd"]
        finally:
            runtime("kill", c.bundle.id, "KILL")
            runtime("delete", "--force", c.bundle.id)


def test_debian_runs_bash(debian_registry: Registry, store: ImageStore, runtime: Runtime,
                          tmp_path: Path, index: dict[str, Any]) -> None:
    ref = f"{debian_registry.host}/debian:bookworm"
    result = pull(store, ref)
    assert result.image.id == index["debian"]["image_id"]
    with container(store, ref, tmp_path) as c:
        assert c.bundle.spec["process"]["args"] == ["bash"]
        assert _run(runtime, c.bundle) == ""  # bash reading an empty stdin exits 0
        probe = c.fresh().set_args("bash", "-c", 'echo "$BASH_VERSION"; '
                                   "cat /etc/debian_version; id -un; "
                                   "ls -d /usr/lib/x86_64-linux-gnu/libc.so.6")
        out = _run(runtime, probe).splitlines()
        assert out[0].startswith("5.2") and out[1].startswith("12.")
        assert out[2:] == ["root", "/usr/lib/x86_64-linux-gnu/libc.so.6"]
