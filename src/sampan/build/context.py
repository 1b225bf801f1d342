"""The build context: the request's tar stream unpacked into a private directory.

The tarball goes through the layer unpacker (``archive.apply_layer``), so no entry can
write outside the directory. Then .dockerignore is applied as the daemon does: excluded
paths are removed, the Dockerfile and .dockerignore too when they are excluded (after the
Dockerfile has been read), so ``COPY . .`` copies what the user meant.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..archive import ArchiveError
from ..archive.compression import detect
from ..archive.unpack import apply_layer
from ..runtime.rootfs import secure_join
from .dockerignore import Matcher
from .errors import BuildError

DOCKERIGNORE = ".dockerignore"


class _Terminated(io.RawIOBase):
    """A plain tar stream with an end-of-archive marker added: the docker CLI sends
    contexts without one when it adds a Dockerfile from outside the context, and Go's tar
    reader, unlike Python's, takes a clean end at a header as the end."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self._tail = b"\0" * 1024

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        if not data:
            data, self._tail = self._tail[:len(buffer)], self._tail[len(buffer):]
        buffer[:len(data)] = data
        return len(data)


def _terminated(stream: BinaryIO) -> BinaryIO:
    head = stream.read(8)
    stream.seek(0)
    try:
        plain = detect(head, tarball=True) == ""
    except ArchiveError:
        plain = False
    return io.BufferedReader(_Terminated(stream)) if plain else stream


def _is_dockerfile(head: bytes) -> bool:
    """Whether a request body is a bare Dockerfile rather than a (compressed) tar."""
    try:
        if detect(head, tarball=True):
            return False
    except ArchiveError:
        return False
    return len(head) < 262 or head[257:262] != b"ustar"


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
        head = stream.read(512)
        stream.seek(0)
        if _is_dockerfile(head):  # `docker build - < Dockerfile`: no context, just the file
            text = stream.read().decode("utf-8", "replace")
            return Context(root=root, dockerfile=text, dockerfile_name="Dockerfile")
        try:
            apply_layer(_terminated(stream), root)
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
