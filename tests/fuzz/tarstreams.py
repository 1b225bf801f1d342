"""Hypothesis strategies for hostile layer tars: names with ``..``, absolute paths and
whiteouts, symlinks and hardlinks aimed outside, devices, odd pax headers (huge ids and
times, NUL bytes, xattrs that would steer overlayfs), odd type flags.

Names are drawn from a small alphabet of path components on purpose: collisions (a file
then a directory of the same name, a symlink then an entry below it) are what break
unpackers, and random text almost never collides.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.archive.tarbuild import E

OUTSIDE = "@OUTSIDE@"  # replaced by the absolute path of the directory that must stay intact

COMPONENTS = ["a", "b", "lnk", "..", ".", "", ".wh.a", ".wh.b", ".wh.lnk", ".wh..wh..opq",
              ".wh..wh.plnk", ".wh.", ".wh..", ".wh...", "outside", "x" * 200]
TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
         "fifo": tarfile.FIFOTYPE, "contiguous": tarfile.CONTTYPE, "gnu-sparse": b"S",
         "unknown": b"Z", "volume": b"V", "longname": tarfile.GNUTYPE_LONGNAME}
PAX_KEYS = ["atime", "mtime", "ctime", "uid", "gid", "path", "linkpath", "size",
            "SCHILY.xattr.user.note", "SCHILY.xattr.trusted.overlay.opaque",
            "SCHILY.xattr.trusted.overlay.redirect", "SCHILY.xattr.security.capability",
            "LIBARCHIVE.xattr.user.b64", "LIBARCHIVE.xattr.user%2Eq", "GNU.sparse.size"]
PAX_VALUES = ["0", "-1", "1.5", "nan", "inf", "-inf", "1e400", "99999999999999999999", "abc",
              "", "y", "a\x00b", "../..", OUTSIDE, OUTSIDE + "/sentinel", "/", "====",
              "\udcff"]
BIG_INTS = [0, 1, 1000, 65534, 2**21 - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63, -1]


@dataclass
class Entry(E):
    """A tests/archive entry with raw pax records (which may override its header fields)."""

    pax: dict[str, str] = field(default_factory=dict)


def names(with_outside: bool = True) -> st.SearchStrategy[str]:
    component = st.one_of(st.sampled_from(COMPONENTS),
                          st.text(st.characters(codec="utf-8"), max_size=4))
    relative = st.lists(component, min_size=1, max_size=4).map("/".join)
    prefixes = ["", "", "", "/", "./", "../"] + ([OUTSIDE + "/"] if with_outside else [])
    return st.tuples(st.sampled_from(prefixes), relative).map("".join)


def link_targets() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([OUTSIDE, OUTSIDE + "/sentinel", "../outside",
                                      "../outside/sentinel", "../../../..", "/", ".", "a",
                                      "a/b", "lnk", "lnk/sentinel", ""]),
                     names())


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    kind = draw(st.sampled_from(list(TYPES)))
    return Entry(
        name=draw(names()),
        kind=kind,
        data=draw(st.binary(max_size=64)) if kind in ("file", "contiguous") else b"",
        link=draw(link_targets()) if kind in ("symlink", "hardlink") else "",
        mode=draw(st.one_of(st.sampled_from([0o644, 0o755, 0o4755, 0o1777, 0]),
                            st.integers(0, 0o7777))),
        uid=draw(st.sampled_from(BIG_INTS)),
        gid=draw(st.sampled_from(BIG_INTS)),
        mtime=draw(st.one_of(st.just(1_000_000_000), st.sampled_from([0, -1, 2**40, 1e30]),
                             st.floats(allow_nan=False, allow_infinity=False))),
        dev=draw(st.tuples(st.sampled_from(BIG_INTS[:8]), st.sampled_from(BIG_INTS[:8]))),
        pax=draw(st.dictionaries(st.sampled_from(PAX_KEYS), st.sampled_from(PAX_VALUES),
                                 max_size=2)),
    )


def layers() -> st.SearchStrategy[list[Entry]]:
    return st.lists(entries(), min_size=1, max_size=8)


def build(layer: list[Entry], outside: str) -> bytes | None:
    """The tar stream of ``layer`` (OUTSIDE replaced), or None if tarfile cannot write it."""
    buf = io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for e in layer:
                info = tarfile.TarInfo(e.name.replace(OUTSIDE, outside))
                info.type = TYPES[e.kind]
                info.mode, info.uid, info.gid, info.mtime = e.mode, e.uid, e.gid, e.mtime
                info.linkname = e.link.replace(OUTSIDE, outside)
                info.devmajor, info.devminor = e.dev
                info.pax_headers = {k: v.replace(OUTSIDE, outside) for k, v in e.pax.items()}
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data) if e.data else None)
    except (ValueError, OverflowError, UnicodeError, tarfile.TarError):
        return None
    return buf.getvalue()
