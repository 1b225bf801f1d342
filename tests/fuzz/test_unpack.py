"""Fuzzing the layer unpacker (issue 9): for any tar stream, hostile or broken, apply_layer
either unpacks it or raises ArchiveError, and nothing outside the target changes: not the
directory beside it (which symlinks and hardlinks in the layer aim at), not the lower
layers of an overlay unpack, and no file in the target shares an inode with one outside.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from sampan.archive import ArchiveError, BreakoutError
from sampan.archive.unpack import apply_layer

from .conftest import scaled
from .tarstreams import OUTSIDE, Entry, build, layers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the unpacker chowns and mknods")


def _state(path: Path) -> dict[str, tuple[object, ...]]:
    """Everything observable about the tree at ``path`` (never following symlinks)."""
    out: dict[str, tuple[object, ...]] = {}
    for base, dirs, files in os.walk(path):
        for name in [".", *dirs, *files]:
            p = os.path.join(base, name)
            s = os.lstat(p)
            content: object = None
            if stat.S_ISREG(s.st_mode):
                content = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            elif stat.S_ISLNK(s.st_mode):
                content = os.readlink(p)
            xattrs = sorted((n, os.getxattr(p, n, follow_symlinks=False))
                            for n in os.listxattr(p, follow_symlinks=False))
            out[os.path.relpath(p, path)] = (s.st_mode, s.st_uid, s.st_gid, s.st_nlink,
                                             s.st_mtime_ns, s.st_rdev, content, xattrs)
    return out


def _inodes(path: Path) -> set[int]:
    return {os.lstat(os.path.join(b, n)).st_ino
            for b, dirs, files in os.walk(path) for n in dirs + files}


class Arena:
    """A target beside a directory that must stay intact, and a lower layer whose symlink
    points at it (for overlay unpacks)."""

    def __init__(self, top: str) -> None:
        self.top = Path(top)
        self.root = self.top / "root"
        self.outside = self.top / "outside"
        self.lower = self.top / "lower"
        for d in (self.root, self.outside, self.outside / "sub", self.lower, self.lower / "a"):
            d.mkdir()
        (self.outside / "sentinel").write_text("keep")
        (self.lower / "a" / "lowfile").write_text("lower")
        (self.lower / "b").write_text("lower b")
        os.symlink(str(self.outside), self.lower / "lnk")
        os.symlink(str(self.outside), self.lower / "a" / "lnk")
        self.before = self.watched()

    def watched(self) -> dict[str, object]:
        return {"outside": _state(self.outside), "lower": _state(self.lower),
                "top": sorted(os.listdir(self.top))}

    def check(self) -> None:
        assert self.watched() == self.before, "a layer changed something outside its target"
        shared = _inodes(self.root) & (_inodes(self.outside) | _inodes(self.lower))
        assert not shared, "a file in the target is a hardlink to one outside it"


def unpack_checked(data: bytes, overlay: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="sampan-fuzz-") as top:
        arena = Arena(top)
        with contextlib.suppress(ArchiveError):
            apply_layer(io.BytesIO(data), str(arena.root), overlay=overlay,
                        lowers=[str(arena.lower)] if overlay else ())
        arena.check()


@given(layer=layers(), overlay=st.booleans(), compress=st.booleans())
@settings(max_examples=scaled(300), suppress_health_check=list(HealthCheck))
@example(layer=[Entry("lnk", "symlink", link=OUTSIDE), Entry("lnk/evil", "file", b"x")],
         overlay=False, compress=False)
@example(layer=[Entry("lnk/evil", "file", b"x")], overlay=True, compress=False)
@example(layer=[Entry("a/lnk/evil", "file", b"x")], overlay=True, compress=True)
@example(layer=[Entry("h", "hardlink", link="lnk/sentinel")], overlay=True, compress=False)
@example(layer=[Entry("h", "hardlink", link="../outside/sentinel")], overlay=False,
         compress=False)
@example(layer=[Entry("a", "file", pax={"atime": "abc"})], overlay=False, compress=False)
@example(layer=[Entry("a", "file", pax={"atime": "nan"})], overlay=False, compress=False)
@example(layer=[Entry("a", "file", pax={"atime": "inf"})], overlay=False, compress=False)
@example(layer=[Entry("a", "file", mtime=1e30)], overlay=False, compress=False)
@example(layer=[Entry("a", "file", uid=2**32)], overlay=False, compress=False)
@example(layer=[Entry("a", "dir", uid=2**63)], overlay=False, compress=False)
@example(layer=[Entry("a", "symlink", pax={"linkpath": "a\x00b"})], overlay=False,
         compress=False)
@example(layer=[Entry("a", "file", pax={"path": "a\x00b"})], overlay=False, compress=False)
@example(layer=[Entry("a", "file", pax={"LIBARCHIVE.xattr.user.b64": "===="})],
         overlay=False, compress=False)
@example(layer=[Entry("a", "file", pax={"SCHILY.xattr.user.note": "\udcff"})],
         overlay=False, compress=False)
@example(layer=[Entry("a", "dir"), Entry("a/.wh..wh..opq", "file")], overlay=True,
         compress=False)
@example(layer=[Entry("lnk/.wh..wh..opq", "file")], overlay=True, compress=False)
@example(layer=[Entry(".wh.lnk", "file"), Entry("lnk/x", "file")], overlay=True,
         compress=False)
def test_any_layer_stays_inside_its_target(layer: list[Entry], overlay: bool,
                                           compress: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="sampan-fuzz-") as top:
        arena = Arena(top)
        data = build(layer, str(arena.outside))
        assume(data is not None)
        assert data is not None
        if compress:
            data = gzip.compress(data)
        with contextlib.suppress(ArchiveError):
            apply_layer(io.BytesIO(data), str(arena.root), overlay=overlay,
                        lowers=[str(arena.lower)] if overlay else ())
        arena.check()


_VALID = build([Entry("d", "dir"), Entry("d/f", "file", b"hello" * 40),
                Entry("d/l", "symlink", link="f"), Entry("d/h", "hardlink", link="d/f"),
                Entry("d/.wh.gone", "file"), Entry("c", "char", dev=(1, 3)),
                Entry("p", "file", pax={"SCHILY.xattr.user.k": "v", "atime": "5"})], "/x")
assert _VALID is not None


@given(edits=st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)),
                      min_size=1, max_size=12),
       cut=st.one_of(st.none(), st.integers(0, len(_VALID))),
       codec=st.sampled_from(["", "gzip", "gzip-corrupt"]))
@settings(max_examples=scaled(300))
@example(edits=[(156, ord("Z"))], cut=None, codec="")  # the type flag of the first header
@example(edits=[(0, 0)], cut=700, codec="")  # a zeroed name, then cut inside a file
@example(edits=[(0, 0)], cut=10, codec="gzip")  # truncated gzip
@example(edits=[(0, 0)], cut=None, codec="gzip-corrupt")
def test_corrupted_streams_fail_cleanly(edits: list[tuple[int, int]], cut: int | None,
                                        codec: str) -> None:
    """Byte-level damage to a valid layer (headers, checksums, sizes, gzip framing)."""
    data = bytearray(_VALID)
    for pos, value in edits:
        data[pos] = value
    raw = bytes(data)
    if codec:
        raw = gzip.compress(raw)
        if codec == "gzip-corrupt":
            damaged = bytearray(raw)
            for pos, value in edits:
                damaged[pos % len(damaged)] = value
            raw = bytes(damaged)
    if cut is not None:
        raw = raw[:cut]
    unpack_checked(raw, overlay=False)


@given(st.binary(max_size=2048))
@settings(max_examples=scaled(150))
@example(b"\x1f\x8b")
@example(b"\x28\xb5\x2f\xfd" + b"\0" * 20)
@example(b"BZh9")
@example(b"\xfd7zXZ\x00")
def test_arbitrary_bytes_fail_cleanly(raw: bytes) -> None:
    unpack_checked(raw, overlay=False)


# Regressions found by the fuzzer, each pinned as a plain test of the message users see.

@pytest.mark.parametrize(("entry", "message"), [
    (Entry("a", "file", pax={"atime": "abc"}), "invalid atime 'abc'"),
    (Entry("a", "file", pax={"atime": "nan"}), "invalid atime 'nan'"),
    (Entry("a", "file", uid=2**32), "owner 4294967296:0 is out of range"),
    (Entry("a", "file", pax={"path": "a\x00b"}), "NUL byte in the name"),
    (Entry("a", "symlink", pax={"linkpath": "a\x00b"}), "NUL byte in the link target"),
])
def test_regressions_name_the_entry(tmp_path: Path, entry: Entry, message: str) -> None:
    data = build([entry], str(tmp_path))
    assert data is not None
    (tmp_path / "root").mkdir()
    with pytest.raises(ArchiveError) as info:
        apply_layer(io.BytesIO(data), str(tmp_path / "root"))
    assert message in str(info.value)
    assert "layer entry 'a" in str(info.value)


def test_hostile_examples_are_refused_as_breakouts(tmp_path: Path) -> None:
    """The shapes the fuzzer aims at are refused, not merely survived."""
    for i, layer in enumerate([[Entry("lnk", "symlink", link=str(tmp_path)),
                                Entry("lnk/evil", "file", b"x")],
                               [Entry(str(tmp_path) + "/evil", "file", b"x")],
                               [Entry("h", "hardlink", link="../outside/sentinel")]]):
        root = tmp_path / f"root{i}"
        root.mkdir()
        data = build(layer, str(tmp_path))
        assert data is not None
        with pytest.raises(BreakoutError):
            apply_layer(io.BytesIO(data), str(root))
    assert sorted(os.listdir(tmp_path)) == [f"root{i}" for i in range(3)]


def test_the_strategy_writes_what_it_says() -> None:
    """The builder behind the fuzzer makes the hostile headers it claims to (a fuzzer whose
    inputs never reach the unpacker could not fail)."""
    data = build([Entry("a", "symlink", link=OUTSIDE, uid=2**32,
                        pax={"atime": "nan", "SCHILY.xattr.user.note": "hi"})], "/abs")
    assert data is not None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (member,) = tar.getmembers()
    assert member.issym() and member.linkname == "/abs" and member.uid == 2**32
    assert member.pax_headers["atime"] == "nan"
    assert member.pax_headers["SCHILY.xattr.user.note"] == "hi"
