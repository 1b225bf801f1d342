"""Layer unpacking: metadata kept, whiteouts applied, hostile entries refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from sampan.archive import ArchiveError
from sampan.archive.unpack import OPAQUE_XATTR, apply_layer, measure_layer

from .hostile import HOSTILE, hostile_layer
from .tarbuild import E, layer

CAPS = bytes.fromhex("0100000200240000000000000000000000000000")


def unpack(data: bytes, root: Path, **kw) -> object:
    root.mkdir(exist_ok=True)
    return apply_layer(io.BytesIO(data), str(root), **kw)


def snapshot_of(path: Path) -> dict[str, tuple]:
    out = {}
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(base, name)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_nlink)
    return out


@pytest.fixture
def arena(tmp_path: Path) -> tuple[Path, Path]:
    """(root to unpack into, a directory beside it that must stay untouched)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep")
    return tmp_path / "root", outside


def test_metadata_is_kept(tmp_path: Path) -> None:
    data = layer(
        E("d", "dir", mode=0o2775, uid=7, gid=8, mtime=1_200_000_000),
        E("d/setuid", data=b"#!/bin/sh\n", mode=0o4755, uid=1000, gid=1000),
        E("d/caps", data=b"x", mode=0o755, xattrs={"security.capability": CAPS,
                                                     "user.note": b"hi"}),
        E("d/sticky", "dir", mode=0o1777),
        E("d/link", "symlink", link="/does/not/exist", uid=5, gid=6, mtime=1_100_000_000),
        E("d/hard", "hardlink", link="d/setuid"),
        E("d/null", "char", mode=0o666, dev=(1, 3)),
        E("d/loop", "block", mode=0o660, dev=(7, 0)),
        E("d/fifo", "fifo", mode=0o600),
        E("d/" + "x" * 120 + "/" + "y" * 150 + "/deep.txt", data=b"deep"),
    )
    root = tmp_path / "root"
    result = unpack(data, root)
    assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.tar_size == len(data)
    d = root / "d"
    assert stat.S_IMODE(d.lstat().st_mode) == 0o2775
    assert (d.stat().st_uid, d.stat().st_gid) == (7, 8)
    assert d.stat().st_mtime == 1_200_000_000  # set after its children were written
    s = (d / "setuid").stat()
    assert stat.S_IMODE(s.st_mode) == 0o4755 and (s.st_uid, s.st_gid) == (1000, 1000)
    assert s.st_nlink == 2 and (d / "hard").stat().st_ino == s.st_ino
    assert os.getxattr(d / "caps", "security.capability") == CAPS
    assert os.getxattr(d / "caps", "user.note") == b"hi"
    assert stat.S_IMODE((d / "sticky").stat().st_mode) == 0o1777
    link = (d / "link").lstat()
    assert os.readlink(d / "link") == "/does/not/exist"
    assert (link.st_uid, link.st_gid, link.st_mtime) == (5, 6, 1_100_000_000)
    null = (d / "null").lstat()
    assert stat.S_ISCHR(null.st_mode)
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISBLK((d / "loop").lstat().st_mode)
    assert stat.S_ISFIFO((d / "fifo").lstat().st_mode)
    assert (d / ("x" * 120) / ("y" * 150) / "deep.txt").read_bytes() == b"deep"


@pytest.mark.parametrize("codec", ["", "gzip", "zstd"])
def test_compressions_give_the_same_tree_and_diff_id(tmp_path: Path, codec: str) -> None:
    entries = [E("a", "dir"), E("a/big", data=os.urandom(3 << 20)), E("a/small", data=b"s")]
    plain = layer(*entries)
    result = unpack(layer(*entries, compress=codec), tmp_path / "root")
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert (tmp_path / "root/a/big").read_bytes() == entries[1].data
    assert measure_layer(io.BytesIO(layer(*entries, compress=codec))) == result


def test_whiteouts_delete_in_direct_mode(tmp_path: Path) -> None:
    root = tmp_path / "root"
    unpack(layer(E("w", "dir"), E("w/gone", data=b"1"), E("w/dir", "dir"),
                 E("w/dir/f", data=b"2"), E("o", "dir"), E("o/old", data=b"3"),
                 E("o/sub", "dir"), E("o/sub/older", data=b"4")), root)
    unpack(layer(E("w", "dir"), E("w/.wh.gone"), E("w/.wh.dir"),
                 E("o", "dir"), E("o/.wh..wh..opq"), E("o/sub", "dir"), E("o/sub/new", data=b"n"),
                 E("o/.wh..wh.plnk", "dir")), root)
    assert sorted(os.listdir(root / "w")) == []
    assert sorted(os.listdir(root / "o")) == ["sub"]
    assert os.listdir(root / "o/sub") == ["new"]


def test_whiteouts_become_overlay_markers(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    unpack(layer(E("w", "dir"), E("w/gone", data=b"1"), E("o", "dir"), E("o/old", data=b"3")),
           lower)
    unpack(layer(E("w", "dir"), E("w/.wh.gone", uid=3), E("o", "dir"), E("o/.wh..wh..opq"),
                 E("o/new", data=b"n")), upper, overlay=True, lowers=[str(lower)])
    gone = (upper / "w/gone").lstat()
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0 and gone.st_uid == 3
    assert os.getxattr(upper / "o", OPAQUE_XATTR) == b"y"
    assert os.listdir(upper / "o") == ["new"]


def test_overlay_mode_copies_up_missing_parents_and_hardlink_targets(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    unpack(layer(E("p", "dir", mode=0o750, uid=9, gid=9, mtime=1_000),
                 E("p/target", data=b"lowerdata", mode=0o640, uid=4)), lower)
    unpack(layer(E("p/new", data=b"n"), E("p/link", "hardlink", link="p/target")), upper,
           overlay=True, lowers=[str(lower)])
    p = (upper / "p").stat()
    assert (stat.S_IMODE(p.st_mode), p.st_uid, p.st_mtime) == (0o750, 9, 1_000)
    assert (upper / "p/link").read_bytes() == b"lowerdata"
    assert (upper / "p/link").stat().st_ino == (upper / "p/target").stat().st_ino
    assert (upper / "p/target").stat().st_uid == 4


def test_trusted_overlay_xattrs_from_a_layer_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "root"
    unpack(layer(E("d", "dir", xattrs={"trusted.overlay.opaque": b"y",
                                       "trusted.overlay.redirect": b"/etc"})), root)
    assert not [n for n in os.listxattr(root / "d") if n.startswith("trusted.overlay.")]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_entries_are_refused(arena: tuple[Path, Path], case: str) -> None:
    root, outside = arena
    entries, error, message = HOSTILE[case]
    shadow = os.stat("/etc/shadow")
    before = snapshot_of(outside)
    with pytest.raises(error, match=message) as info:
        unpack(hostile_layer(entries, outside), root)
    assert "layer entry" in str(info.value)
    assert snapshot_of(outside) == before
    assert not (outside / "evil").exists() and not (root.parent / "escaped").exists()
    after = os.stat("/etc/shadow")
    assert (after.st_nlink, after.st_mtime_ns, after.st_ctime_ns) == \
        (shadow.st_nlink, shadow.st_mtime_ns, shadow.st_ctime_ns)


def test_truncated_and_corrupt_streams(tmp_path: Path) -> None:
    data = layer(E("f", data=os.urandom(200_000)))
    packed = gzip.compress(data)
    with pytest.raises(ArchiveError, match="truncated gzip stream"):
        unpack(packed[:len(packed) // 2], tmp_path / "a")
    corrupt = bytearray(packed)
    corrupt[len(corrupt) // 2] ^= 0xFF
    with pytest.raises(ArchiveError, match=r"corrupt gzip stream|invalid layer tar"):
        unpack(bytes(corrupt), tmp_path / "b")
    with pytest.raises(ArchiveError, match=r"truncated tar|unexpected end of data"):
        unpack(data[:100_000], tmp_path / "c")
    with pytest.raises(ArchiveError, match="bzip2-compressed layers are not supported"):
        unpack(b"BZh91AY&SY" + b"\0" * 100, tmp_path / "d")
