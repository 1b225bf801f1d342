"""The build context: the request's tar stream unpacked into a private directory.

The tarball goes through the layer unpacker (``archive.apply_layer``), so no entry can
write outside the directory. Then .dockerignore is applied as the daemon does: excluded
paths are removed, the Dockerfile and .dockerignore too when they are excluded (after the
Dockerfile has been read), so ``COPY . .`` copies what the user meant.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

from ..archive import ArchiveError
from ..archive.unpack import apply_layer
from ..runtime.rootfs import secure_join
from .dockerignore import Matcher
from .errors import BuildError

DOCKERIGNORE = ".dockerignore"


@dataclass
class Context:
    root: str
    dockerfile: str  # the Dockerfile's text
    dockerfile_name: str

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _read_dockerfile(root: str, name: str) -> tuple[str, str]:
    candidates = [name] if name != "Dockerfile" else ["Dockerfile", "dockerfile"]
    for candidate in candidates:
        path = secure_join(root, candidate)
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read(), candidate
    raise BuildError(f"Cannot locate specified Dockerfile: {name}")


def apply_ignore(root: str, matcher: Matcher) -> None:
    """Remove what ``matcher`` excludes below ``root`` (children before parents)."""
    def walk(rel: str) -> None:
        directory = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(directory)):
            child = f"{rel}/{name}" if rel else name
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                if matcher.excluded(child) and not matcher.has_exceptions:
                    shutil.rmtree(path)
                    continue
                walk(child)
                if matcher.excluded(child) and not os.listdir(path):
                    os.rmdir(path)
            elif matcher.excluded(child):
                os.unlink(path)

    walk("")


def open_context(stream: BinaryIO, dockerfile: str, parent_dir: str) -> Context:
    """Unpack ``stream`` (a tar, maybe compressed) and read the Dockerfile from it."""
    root = tempfile.mkdtemp(prefix="build-", dir=parent_dir)
    try:
        try:
            apply_layer(stream, root)
        except ArchiveError as exc:
            raise BuildError(f"invalid build context: {exc}") from None
        name = dockerfile or "Dockerfile"
        text, found = _read_dockerfile(root, name)
        ignore = os.path.join(root, DOCKERIGNORE)
        if os.path.isfile(ignore):
            with open(ignore, encoding="utf-8", errors="replace") as f:
                try:
                    matcher = Matcher.from_text(f.read())
                except ValueError as exc:
                    raise BuildError(f"invalid .dockerignore: {exc}") from None
            apply_ignore(root, matcher)
        return Context(root=root, dockerfile=text, dockerfile_name=found)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
