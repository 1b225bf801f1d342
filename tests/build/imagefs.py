"""What an image holds, read from `docker save`: its config and its merged filesystem, in a
form two engines' images can be compared by (paths, types, modes, owners, contents, link
targets; no times)."""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from typing import Any

Entry = tuple[str, int, int, int, str]  # type, mode, uid, gid, content digest or link target


def _layers(archive: bytes) -> tuple[dict[str, Any], list[bytes]]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        def read(name: str) -> bytes:
            member = tar.extractfile(name)
            assert member is not None, name
            return member.read()

        manifest = json.loads(read("manifest.json"))[0]
        config = json.loads(read(manifest["Config"]))
        return config, [read(layer) for layer in manifest["Layers"]]


def _apply(tree: dict[str, Entry], layer: bytes) -> None:
    import gzip

    if layer[:2] == b"\x1f\x8b":
        layer = gzip.decompress(layer)
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        for member in tar:
            path = "/" + posixpath.normpath(member.name).lstrip("./")
            parent, base = posixpath.split(path)
            if base == ".wh..wh..opq":
                for key in [k for k in tree if k.startswith(parent.rstrip("/") + "/")]:
                    del tree[key]
                continue
            if base.startswith(".wh."):
                gone = posixpath.join(parent, base[4:])
                for key in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                    del tree[key]
                continue
            if member.isdir():
                kind, data = "dir", ""
            elif member.issym():
                kind, data = "symlink", member.linkname
            elif member.islnk():
                kind, data = "file", tree.get("/" + member.linkname.lstrip("./"),
                                              ("", 0, 0, 0, ""))[4]
            elif member.isreg():
                f = tar.extractfile(member)
                assert f is not None
                kind, data = "file", hashlib.sha256(f.read()).hexdigest()
            else:
                kind, data = "other", f"{member.type!r}"
            if kind != "dir":
                for key in [k for k in tree if k.startswith(path + "/")]:
                    del tree[key]
            tree[path] = (kind, member.mode, member.uid, member.gid, data)


def load(archive: bytes) -> tuple[dict[str, Any], dict[str, Entry]]:
    """The image config and the merged filesystem of a one-image `docker save`."""
    config, layers = _layers(archive)
    tree: dict[str, Entry] = {}
    for layer in layers:
        _apply(tree, layer)
    return config, tree
