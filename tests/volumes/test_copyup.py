"""Copy-up on the real filesystem: owners, modes (setuid, sticky), times, xattrs, hard
links, symlinks copied as links (never followed), fifos and devices; nothing copied into a
volume that is not empty or from a path that is not a directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sampan.volumes.copyup import copy_up


def _tree(src: Path, outside: Path) -> None:
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "file").write_text("content")
    os.chown(src / "sub" / "file", 4242, 4343)
    os.chmod(src / "sub" / "file", 0o4750)
    os.chmod(src / "sub", 0o1777)
    os.utime(src / "sub" / "file", ns=(1_000_000_000, 981_173_106_000_000_000))
    os.link(src / "sub" / "file", src / "hard")
    os.symlink(str(outside), src / "abs-link")
    os.symlink("../../..", src / "up-link")
    os.mkfifo(src / "fifo")
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.setxattr(src / "sub" / "file", "user.sampan", b"yes")
    os.chown(src, 1000, 1000)
    os.chmod(src, 0o750)


def test_copy_up_keeps_everything(tmp_path: Path) -> None:
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host")
    dst.mkdir()
    _tree(src, outside)
    assert copy_up(str(src), str(dst))
    st = os.lstat(dst / "sub" / "file")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4343, 0o4750)
    assert st.st_mtime_ns == 981_173_106_000_000_000
    assert stat.S_IMODE(os.lstat(dst / "sub").st_mode) == 0o1777
    assert os.getxattr(dst / "sub" / "file", "user.sampan") == b"yes"
    assert os.lstat(dst / "hard").st_ino == st.st_ino and st.st_nlink == 2
    assert os.readlink(dst / "abs-link") == str(outside)
    assert os.readlink(dst / "up-link") == "../../.."
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    assert os.lstat(dst / "null").st_rdev == os.makedev(1, 3)
    root = os.stat(dst)
    assert (root.st_uid, root.st_gid, stat.S_IMODE(root.st_mode)) == (1000, 1000, 0o750)
    assert sorted(os.listdir(outside)) == ["secret"]  # nothing followed out


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    """An image directory holding one file, and an empty directory beside it."""
    src, other = tmp_path / "src", tmp_path / "other"
    src.mkdir()
    (src / "a").write_text("image")
    other.mkdir()
    return src, other


def test_no_copy_into_a_volume_with_content(tmp_path: Path) -> None:
    src, dst = _dirs(tmp_path)
    (dst / "b").write_text("mine")
    assert not copy_up(str(src), str(dst))
    assert os.listdir(dst) == ["b"]


def test_no_copy_from_a_symlink_or_missing_path(tmp_path: Path) -> None:
    real, dst = _dirs(tmp_path)
    os.symlink(real, tmp_path / "link")
    assert not copy_up(str(tmp_path / "link"), str(dst))
    assert not copy_up(str(tmp_path / "missing"), str(dst))
    assert os.listdir(dst) == []


def test_destination_reached_only_without_symlinks(tmp_path: Path) -> None:
    src, elsewhere = _dirs(tmp_path)
    os.symlink(elsewhere, tmp_path / "dst-link")
    with pytest.raises(OSError):
        copy_up(str(src), str(tmp_path / "dst-link"))
    assert os.listdir(elsewhere) == []
