"""Image layer tarballs: unpacking into snapshots, changes between trees, writing layers.

A layer is a tar stream (plain, gzip or zstd) whose entries add, replace and delete files of
the layers below it (`.wh.` whiteouts, `.wh..wh..opq` opaque directories, as the OCI image
spec and Docker write them).
"""

from __future__ import annotations


class ArchiveError(Exception):
    """A layer cannot be unpacked or written; the message names the entry at fault."""


class BreakoutError(ArchiveError):
    """A layer entry would write outside the directory it is unpacked into."""
