"""The fixture images loaded from `docker save` archives, checked from inside a container's
root filesystem (an overlay mount of the image's layers plus a writable layer)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from sampan.images import ImageStore

from .conftest import container_rootfs

CAPS_HEX = "0100000200240000000000000000000000000000"


def test_loaded_images_match_the_index(loaded: ImageStore, index: dict[str, Any]) -> None:
    for name in ("busybox", "layers", "httpd", "debian"):
        fixture = index[name]
        info = loaded.inspect(fixture["repo_tags"][0])
        assert info["Id"] == fixture["image_id"]
        assert sorted(info["RepoTags"]) == sorted(fixture["repo_tags"])
        assert info["RootFS"]["Layers"] == [la["diff_id"] for la in fixture["layers"]]
        assert info["Os"] + "/" + info["Architecture"] == fixture["platform"]
        assert info["Size"] > 0 and info["RepoDigests"] == []
        for key, value in fixture["config"].items():
            assert info["Config"][key] == value, key


def test_base_layer_is_unpacked_once_and_shared(loaded: ImageStore, index: dict) -> None:
    base = index["busybox"]["layers"][0]["diff_id"]
    tops = {loaded.get(n).layers[0].chain_id for n in ("busybox", "layers", "httpd")}
    assert tops == {base}
    assert [i.key for i in loaded.snapshots.walk()].count(base) == 1


def test_layers_fixture_seen_from_a_container(loaded: ImageStore, tmp_path: Path) -> None:
    with container_rootfs(loaded, "layers", tmp_path) as root:
        fx = root / "fixture"
        # whiteouts, opaque directories and type changes
        assert sorted(os.listdir(fx / "whiteout")) == ["kept.txt"]
        assert not os.path.lexists(root / "bin/vi") and os.path.lexists(root / "bin/ls")
        assert os.listdir(fx / "opaque") == ["new-file.txt"]
        assert os.listdir(fx / "typechange/file-then-dir") == ["inner"]
        assert (fx / "typechange/dir-then-file").read_text() == "now a plain file\n"
        assert (fx / "modified.txt").read_text() == "modified content\n"
        assert stat.S_IMODE((fx / "chmod-later.txt").stat().st_mode) == 0o600
        # hardlinks: one inode, across directories and onto a lower layer's file
        a = (fx / "links/hard-a").stat()
        assert a.st_nlink == 3
        assert (fx / "links/hard-b").stat().st_ino == a.st_ino
        assert (fx / "links-other/hard-c").stat().st_ino == a.st_ino
        assert (fx / "links/hard-to-lower-layer-file").stat().st_ino == \
            (fx / "modified.txt").stat().st_ino
        # symlinks are kept verbatim
        links = fx / "links"
        assert os.readlink(links / "abs-link-etc-passwd") == "/etc/passwd"
        assert os.readlink(links / "sub/rel-up-link") == "../target.txt"
        assert os.readlink(links / "dangling-link") == "/does/not/exist"
        assert (links / "link-to-link").read_text() == "symlink target\n"
        # modes, owners, devices, times
        modes = fx / "modes"
        expect = {"setuid-file": 0o4755, "setgid-file": 0o2755, "setgid-dir": 0o2775,
                  "sticky-dir": 0o1777, "mode-0600": 0o600, "mode-0000": 0}
        for name, mode in expect.items():
            assert stat.S_IMODE((modes / name).lstat().st_mode) == mode, name
        assert (modes / "owned-by-app").stat().st_uid == 1000
        owned = (modes / "owned-by-4242").stat()
        assert (owned.st_uid, owned.st_gid) == (4242, 4343)
        char = (modes / "chardev-1-3").lstat()
        assert stat.S_ISCHR(char.st_mode)
        assert (os.major(char.st_rdev), os.minor(char.st_rdev)) == (1, 3)
        block = (modes / "blockdev-7-0").lstat()
        assert stat.S_ISBLK(block.st_mode) and os.major(block.st_rdev) == 7
        assert stat.S_ISFIFO((modes / "fifo").lstat().st_mode)
        assert (modes / "old-mtime").stat().st_mtime == 981173106  # 2001-02-03 04:05:06 UTC
        # names
        names = fx / "names"
        assert (names / "ünïcödé-日本語-ɸ.txt").read_text() == "unicode\n"
        assert (names / "😀 emoji.txt").exists() and (names / "-leading-dash").exists()
        deep = [p for p in (names / "deep").rglob("file.txt")]
        assert len(deep) == 1 and len(str(deep[0].relative_to(root))) > 300
        # the big file and the capability
        import hashlib
        assert hashlib.sha256((fx / "big/big-5M.bin").read_bytes()).hexdigest() == \
            "464d3da7c61daa4cf75a31ed187faa1544da31b866cf9459ff3221598732c833"
        assert os.getxattr(fx / "caps/net-caps", "security.capability").hex() == CAPS_HEX
        # the container's writes go to its own layer only
        (root / "tmp/written-by-container").write_text("x")
        assert (fx / "whiteout/kept.txt").read_text() == "kept\n"
        # WORKDIR's directory belongs to root, the user's home to app
        assert (root / "home/app/work").stat().st_uid == 0
        assert (root / "home/app").stat().st_uid == 1000
    with container_rootfs(loaded, "layers", tmp_path) as root:
        assert not (root / "tmp/written-by-container").exists()


def test_debian_is_a_full_distribution(loaded: ImageStore, tmp_path: Path) -> None:
    with container_rootfs(loaded, "debian:bookworm", tmp_path) as root:
        assert "bookworm" in (root / "etc/os-release").read_text()
        assert os.access(root / "usr/bin/bash", os.X_OK)
        assert os.readlink(root / "bin") == "usr/bin"
