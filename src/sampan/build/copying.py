"""COPY and ADD: sources found in the context (or another stage's root), copied into a
mounted root filesystem with docker's rules.

- A source may not leave its root (``../x`` is "forbidden path outside the build context").
- Wildcards match like Go's filepath.Match (``*`` within one path element).
- A directory source copies its contents, not itself.
- The destination is a directory when it ends in ``/``, when there are several sources, or
  when it already is one; a relative destination is below WORKDIR.
- Copied files keep their mode and mtime; owners are 0:0 unless ``--chown``; ``--chmod``
  sets the mode. Directories created on the way get 0755 and the same owner.
- ADD extracts a local tar archive (plain, gzip, bzip2, xz) into the destination.

``content_hash`` is what the build cache keys COPY/ADD on: names, types, modes, owners, link
targets and contents of every file read (mtimes are not part of it, as in docker).
"""

from __future__ import annotations

import bz2
import fnmatch
import hashlib
import lzma
import os
import posixpath
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from ..archive import ArchiveError
from ..archive.compression import detect
from ..archive.unpack import apply_layer
from ..images.config import ImageConfigError, resolve_user
from ..runtime.rootfs import secure_join
from .errors import BuildError

_WILDCARD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Source:
    rel: str  # path relative to the source root
    path: str  # absolute path on the host


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def _all_paths(root: str) -> Iterator[str]:
    for directory, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        for name in sorted(dirs + files):
            yield name if rel_dir == "." else f"{rel_dir}/{name}"


def _go_match(pattern: str, path: str) -> bool:
    """Go's filepath.Match: like fnmatch, but ``*`` and ``?`` never match ``/``."""
    if pattern.count("/") != path.count("/"):
        return False
    return all(fnmatch.fnmatchcase(p, q) for p, q in
               zip(path.split("/"), pattern.split("/"), strict=True))


def find_sources(root: str, specs: list[str], what: str = "build context") -> list[Source]:
    """The files ``specs`` name below ``root``, wildcards expanded."""
    found: list[Source] = []
    for spec in specs:
        if posixpath.normpath(spec).startswith("../") or posixpath.normpath(spec) == "..":
            raise BuildError(f"forbidden path outside the build context: {spec} ()")
        rel = posixpath.normpath(spec).lstrip("/")
        rel = "" if rel == "." else rel
        if _WILDCARD.search(rel):
            matches = [p for p in _all_paths(root) if _go_match(rel, p)]
            found.extend(Source(p, secure_join(root, p)) for p in matches)
            continue
        path = secure_join(root, rel) if rel else root
        if not os.path.lexists(path):
            raise BuildError(f"file not found in {what} or excluded by .dockerignore: "
                             f"stat {rel}: file does not exist")
        found.append(Source(rel, path))
    if not found:
        raise BuildError("no source files were specified")
    return found


def content_hash(sources: list[Source]) -> str:
    """A digest of the names, metadata and contents of everything ``sources`` read."""
    digest = hashlib.sha256()

    def add(rel: str, path: str) -> None:
        st = os.lstat(path)
        digest.update(f"{rel}\0{st.st_mode:o}\0{st.st_uid}\0{st.st_gid}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            digest.update(os.fsencode(os.readlink(path)))
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        elif stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(path)):
                add(f"{rel}/{name}", os.path.join(path, name))
        digest.update(b"\n")

    for source in sources:
        add(source.rel or ".", source.path)
    return digest.hexdigest()


def resolve_owner(root: str, spec: str | None) -> Owner | None:
    """``--chown=user[:group]`` resolved in the image's passwd and group files."""
    if not spec:
        return None
    user, _, group = spec.partition(":")
    try:
        resolved = resolve_user(root, f"{user}:{group or user}")
    except ImageConfigError as exc:
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: {exc}") \
            from None
    return Owner(resolved.uid, resolved.gid)


def _mkdirs(root: str, path: str, owner: Owner) -> None:
    """Create the missing directories of ``path`` (scoped to ``root``) as 0755."""
    rel = os.path.relpath(path, root)
    current = root
    for part in rel.split("/"):
        if part in ("", "."):
            continue
        current = secure_join(root, os.path.relpath(os.path.join(current, part), root))
        if not os.path.lexists(current):
            os.mkdir(current, 0o755)
            os.chmod(current, 0o755)
            os.lchown(current, owner.uid, owner.gid)


def _replace(target: str) -> None:
    if os.path.lexists(target) and not (os.path.isdir(target) and not os.path.islink(target)):
        os.unlink(target)


def _copy_entry(src: str, target: str, owner: Owner | None, chmod: int | None) -> None:
    """Copy one entry (recursively); ``owner`` None keeps the source's owner."""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(target) or os.path.islink(target):
            _replace(target)
            os.mkdir(target)
        for name in sorted(os.listdir(src)):
            _copy_entry(os.path.join(src, name), os.path.join(target, name), owner, chmod)
    elif stat.S_ISLNK(st.st_mode):
        _replace(target)
        os.symlink(os.readlink(src), target)
    elif stat.S_ISREG(st.st_mode):
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        _replace(target)
        shutil.copyfile(src, target, follow_symlinks=False)
    else:
        return  # devices, fifos and sockets are not copied from a context
    who = owner or Owner(st.st_uid, st.st_gid)
    os.lchown(target, who.uid, who.gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _archive_codec(path: str) -> str | None:
    """The compression of a tar archive at ``path`` ("" plain), or None if it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    try:
        codec = detect(head, tarball=True)
    except ArchiveError:
        return None
    if codec:
        return codec
    if len(head) >= 262 and head[257:262] == b"ustar":
        return ""
    return None


def _extract(path: str, codec: str, target: str) -> None:
    """ADD's auto-extraction of a local archive into the directory ``target``."""
    try:
        if codec in ("bzip2", "xz"):
            opener = bz2.BZ2File if codec == "bzip2" else lzma.LZMAFile
            with opener(path, "rb") as f:
                apply_layer(f, target)  # type: ignore[arg-type]
        else:
            with open(path, "rb") as f:
                apply_layer(f, target)
    except ArchiveError as exc:
        raise BuildError(f"failed to extract {os.path.basename(path)}: {exc}") from None


def copy_sources(root: str, sources: list[Source], dest: str, workdir: str, *,
                 owner: Owner | None, chmod: int | None, extract: bool,
                 keep_owner: bool = False) -> None:
    """Copy ``sources`` to ``dest`` inside the mounted root filesystem ``root``.

    Without ``owner`` files belong to root, or keep their owner with ``keep_owner`` (COPY
    --from another stage or image, as docker does)."""
    who = owner or Owner(0, 0)
    each = owner if owner is not None or keep_owner else who
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    to_dir = dest.endswith("/") or dest.endswith("/.") or len(sources) > 1
    if len(sources) > 1 and not (dest.endswith("/")):
        raise BuildError("When using COPY with more than one source file, the destination "
                         "must be a directory and end with a /")
    target_root = secure_join(root, dest)
    for source in sources:
        st = os.lstat(source.path)  # symlinks were resolved inside the root already
        codec = _archive_codec(source.path) if extract and stat.S_ISREG(st.st_mode) else None
        if stat.S_ISDIR(st.st_mode) or codec is not None:
            created = not os.path.isdir(target_root)
            _mkdirs(root, target_root, who)
            if codec is not None:
                _extract(source.path, codec, target_root)
                continue
            for name in sorted(os.listdir(source.path)):
                _copy_entry(os.path.join(source.path, name), os.path.join(target_root, name),
                            each, chmod)
            if created:
                os.chmod(target_root, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
            continue
        if to_dir or os.path.isdir(target_root):
            target = secure_join(root, posixpath.join(dest, posixpath.basename(source.rel)))
        else:
            target = target_root
        _mkdirs(root, os.path.dirname(target), who)
        _copy_entry(source.path, target, each, chmod)


def make_dirs(root: str, path: str) -> None:
    """WORKDIR: the directory ``path`` (and its parents) in the root, as root, 0755."""
    _mkdirs(root, secure_join(root, path), Owner(0, 0))
