"""One suite, every snapshotter backend (as containerd's snapshotter testsuite): a container
sees the same tree, and `diff` reports the same changes, whichever backend holds it."""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sampan.archive.changes import Change
from sampan.archive.unpack import apply_layer
from sampan.snapshots import (
    BACKENDS,
    COMMITTED,
    SnapshotError,
    SnapshotExists,
    SnapshotNotFound,
    Snapshotter,
    mount_all,
    unmount_all,
)

from ..archive.tarbuild import E, layer

BASE = layer(E("etc", "dir"), E("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
             E("etc/keep", data=b"keep"), E("etc/gone", data=b"gone"),
             E("var", "dir"), E("var/lib", "dir"), E("var/lib/old", data=b"old"),
             E("bin", "dir"), E("bin/tool", data=b"#!", mode=0o755),
             E("lib", "dir"), E("lib/shared", data=b"so"))
TOP = layer(E("etc", "dir"), E("etc/.wh.gone"), E("var", "dir"), E("var/lib", "dir"),
            E("var/lib/.wh..wh..opq"), E("var/lib/new", data=b"new"),
            E("bin", "dir"), E("bin/tool", data=b"#!v2", mode=0o755),
            E("lib", "dir"), E("lib/alias", "hardlink", link="lib/shared"))


@pytest.fixture(params=sorted(BACKENDS))
def sn(request, tmp_path: Path) -> Iterator[Snapshotter]:
    snapshotter = BACKENDS[request.param](str(tmp_path / request.param))
    yield snapshotter
    snapshotter.close()


@contextmanager
def mounted(sn: Snapshotter, key: str, tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / f"mnt-{key}"
    target.mkdir(exist_ok=True)
    mount_all(sn.mounts(key), str(target))
    try:
        yield target
    finally:
        unmount_all(str(target))


def tree(root: Path) -> dict[str, tuple]:
    """What a process sees below ``root``: type, mode, owner, size, content, link target."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(base, name)
            st = p.lstat()
            content = p.read_bytes() if stat.S_ISREG(st.st_mode) else \
                os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                             st.st_uid, st.st_gid, content)
    return out


def unpacked(sn: Snapshotter, name: str, data: bytes, parent: str | None = None) -> None:
    sn.prepare(f"extract-{name}", parent)
    sn.apply(f"extract-{name}", io.BytesIO(data))
    sn.commit(f"extract-{name}", name)


def test_layers_stack_and_whiteouts_apply(sn: Snapshotter, tmp_path: Path) -> None:
    unpacked(sn, "base", BASE)
    unpacked(sn, "top", TOP, "base")
    sn.view("v", "top")
    with mounted(sn, "v", tmp_path) as root:
        assert sorted(os.listdir(root / "etc")) == ["keep", "passwd"]
        assert os.listdir(root / "var/lib") == ["new"]
        assert (root / "bin/tool").read_bytes() == b"#!v2"
        assert (root / "lib/alias").stat().st_ino == (root / "lib/shared").stat().st_ino
        with pytest.raises(OSError) as info:
            (root / "etc/new").write_text("x")
        assert info.value.errno == errno.EROFS
    expected = tree_of_direct_unpack(tmp_path)
    with mounted(sn, "v", tmp_path) as root:
        assert tree(root) == expected


def tree_of_direct_unpack(tmp_path: Path) -> dict[str, tuple]:
    ref = tmp_path / "reference"
    ref.mkdir(exist_ok=True)
    for data in (BASE, TOP):
        apply_layer(io.BytesIO(data), str(ref))
    return tree(ref)


def test_container_changes_diff_and_layer_round_trip(sn: Snapshotter, tmp_path: Path) -> None:
    unpacked(sn, "base", BASE)
    sn.prepare("c1", "base")
    with mounted(sn, "c1", tmp_path) as root:
        (root / "etc/keep").write_text("changed")
        os.unlink(root / "etc/gone")
        (root / "new-dir").mkdir()
        (root / "new-dir/file").write_text("added")
        shutil.move(root / "var/lib", root / "var/lib-moved")  # mv: a copy on overlayfs
        os.chmod(root / "bin/tool", 0o700)
        seen = tree(root)
    diff = sn.diff("c1")
    assert diff == sorted([
        Change("/bin", "C"), Change("/bin/tool", "C"),
        Change("/etc", "C"), Change("/etc/gone", "D"), Change("/etc/keep", "C"),
        Change("/new-dir", "A"), Change("/new-dir/file", "A"),
        Change("/var", "C"), Change("/var/lib", "D"), Change("/var/lib-moved", "A"),
        Change("/var/lib-moved/old", "A"),
    ])
    assert [str(c) for c in diff][:2] == ["C /bin", "C /bin/tool"]
    out = io.BytesIO()
    diff_id, size = sn.write_diff("c1", out)
    assert size == len(out.getvalue())
    # The layer made from the container, applied on the same parent, gives the same tree.
    sn.prepare("c2", "base")
    assert sn.apply("c2", io.BytesIO(out.getvalue())).diff_id == diff_id
    sn.commit("c2", "from-diff")
    sn.view("check", "from-diff")
    with mounted(sn, "check", tmp_path) as root:
        assert tree(root) == seen


def test_opaque_directory_in_a_container(sn: Snapshotter, tmp_path: Path) -> None:
    unpacked(sn, "base", BASE)
    sn.prepare("c", "base")
    with mounted(sn, "c", tmp_path) as root:
        for name in os.listdir(root / "etc"):
            os.unlink(root / "etc" / name)
        os.rmdir(root / "etc")
        (root / "etc").mkdir()
        (root / "etc/fresh").write_text("f")
    assert [c for c in sn.diff("c") if c.path.startswith("/etc")] == [
        Change("/etc", "C"), Change("/etc/fresh", "A"), Change("/etc/gone", "D"),
        Change("/etc/keep", "D"), Change("/etc/passwd", "D")]


def test_lifecycle_rules(sn: Snapshotter, tmp_path: Path) -> None:
    unpacked(sn, "base", BASE)
    assert sn.stat("base").kind == COMMITTED
    with pytest.raises(SnapshotExists, match="'base' already exists"):
        sn.prepare("base")
    with pytest.raises(SnapshotNotFound, match="'nope' does not exist"):
        sn.prepare("x", "nope")
    sn.prepare("active", "base")
    with pytest.raises(SnapshotError, match="parent 'active' is active, not committed"):
        sn.prepare("y", "active")
    with pytest.raises(SnapshotError, match="'base' is committed: mount a view"):
        sn.mounts("base")
    with pytest.raises(SnapshotError, match=r"has children \(active\)"):
        sn.remove("base")
    sn.view("view", "base")
    with pytest.raises(SnapshotError, match="only an active snapshot can be committed"):
        sn.commit("view", "named")
    with pytest.raises(SnapshotExists):
        sn.commit("active", "base")
    assert sorted(i.key for i in sn.walk()) == ["active", "base", "view"]
    before = sn.usage("active")
    with mounted(sn, "active", tmp_path) as root:
        (root / "blob").write_bytes(os.urandom(1 << 20))
    assert sn.usage("active").size >= before.size + (1 << 20)
    assert sn.usage("active").inodes == before.inodes + 1
    for key in ("active", "view", "base"):
        sn.remove(key)
    assert sn.walk() == []
    assert os.listdir(os.path.join(sn.root, "snapshots")) == []


def test_cleanup_removes_orphan_directories(sn: Snapshotter) -> None:
    unpacked(sn, "base", BASE)
    orphan = os.path.join(sn.root, "snapshots", "deadbeef0000")
    os.makedirs(os.path.join(orphan, "fs"))
    assert sn.cleanup() == ["deadbeef0000"]
    assert sn.exists("base") and os.path.isdir(sn.fs(sn.stat("base")))


def test_read_mounts_show_a_running_container_read_only(sn: Snapshotter,
                                                         tmp_path: Path) -> None:
    """What `export` reads: the container's current tree, while it is mounted, read-only."""
    unpacked(sn, "base", BASE)
    unpacked(sn, "top", TOP, parent="base")
    sn.prepare("c", "top")
    with mounted(sn, "c", tmp_path) as root:
        (root / "etc/keep").write_text("changed")
        os.unlink(root / "bin/tool")
        seen = tree(root)
        reader = tmp_path / "reader"
        reader.mkdir()
        mount_all(sn.read_mounts("c"), str(reader))
        try:
            assert tree(reader) == seen
            with pytest.raises(OSError) as err:
                (reader / "etc/new").write_text("x")
            assert err.value.errno == errno.EROFS
        finally:
            unmount_all(str(reader))
    assert not (tmp_path / "mnt-c/etc/new").exists()
    sn.remove("c")
