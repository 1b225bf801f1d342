"""Layers that try to write outside the directory they are unpacked into: each with the
error it must be refused with. Shared by the unpacker's tests and the image store's."""

from __future__ import annotations

from pathlib import Path

from sampan.archive import ArchiveError, BreakoutError

from .tarbuild import E, layer

HOSTILE = {
    "dotdot": ([E("../escaped", data=b"x")], BreakoutError, "path leads outside the layer"),
    "nested dotdot": ([E("a", "dir"), E("a/../../escaped", data=b"x")], BreakoutError,
                      "path leads outside the layer"),
    "absolute": ([E("/etc/evil", data=b"x")], BreakoutError, "absolute path"),
    "symlinked parent": ([E("out", "symlink", link="OUTSIDE"), E("out/evil", data=b"x")],
                         BreakoutError, "parent 'out' is a symlink"),
    "symlink inside then file": ([E("real", "dir"), E("alias", "symlink", link="real"),
                                  E("alias/f", data=b"x")], BreakoutError,
                                 "parent 'alias' is a symlink"),
    "hardlink absolute": ([E("shadow", "hardlink", link="/etc/shadow")], BreakoutError,
                          "hardlink to '/etc/shadow' leads outside the layer"),
    "hardlink dotdot": ([E("shadow", "hardlink", link="../../../../../../etc/shadow")],
                        BreakoutError, "leads outside the layer"),
    "hardlink via symlink": ([E("etc", "symlink", link="/etc"),
                              E("shadow", "hardlink", link="etc/shadow")], BreakoutError,
                             "parent 'etc' is a symlink"),
    "hardlink to nothing": ([E("x", "hardlink", link="nothing")], ArchiveError,
                            "hardlink target 'nothing' does not exist"),
}


def hostile_layer(entries: list[E], outside: Path) -> bytes:
    """The layer tar of ``entries``, with OUTSIDE in link targets naming ``outside``."""
    return layer(*[E(e.name, e.kind, e.data, e.link.replace("OUTSIDE", str(outside)), e.mode)
                   for e in entries])
