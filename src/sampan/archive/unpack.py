"""Unpacking one layer tar into a snapshot directory, as Docker's applyLayer does, but safely.

No entry may touch anything outside the target: absolute names, ``..`` escapes, hardlinks
leading out and entries below a symlinked parent are rejected with an error naming the
entry (Docker instead chroots into the target; moby rebases absolute names, sampan refuses
them). Only this process writes the target while it unpacks, so checking that every parent
is a real directory (remembering the ones already checked) closes the symlink route without
an openat walk per entry.

Two whiteout modes:
  * overlay: the target is an overlayfs upper directory; ``.wh.x`` becomes a 0/0 character
    device and ``.wh..wh..opq`` the ``trusted.overlay.opaque=y`` xattr, and missing parents
    or hardlink targets are copied up from the lower layers;
  * direct: the target already holds the lower layers' files (plain-copy snapshots);
    whiteouts delete them.
"""

from __future__ import annotations

import base64
import binascii
import errno
import io
import os
import shutil
import stat
import tarfile
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..oci.image import new_hash
from . import ArchiveError, BreakoutError
from .compression import decompressed

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# A layer must not steer overlayfs (redirects, origins, opaque flags) through its xattrs.
_FORBIDDEN_XATTR_PREFIX = "trusted.overlay."
_CHUNK = 1 << 20
_MAX_ID = 2**32 - 2  # (uid_t)-1 would mean "leave the owner alone" to chown
_MAX_DEV = 2**32 - 1  # major and minor are 32-bit in dev_t
_MAX_SECONDS = 2**62  # far past any filesystem's range, but inside time_t's


@dataclass
class ApplyResult:
    diff_id: str
    tar_size: int  # length of the uncompressed tar stream
    size: int  # bytes of content (files, symlink targets), hardlinks counted once: docker's Size


class _HashingReader(io.RawIOBase):
    """Hashes and counts everything read through it: the diff ID is the digest of the tar."""

    def __init__(self, inner: BinaryIO, algorithm: str) -> None:
        self._inner = inner
        self.hash = new_hash(algorithm)
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._inner.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.hash.update(memoryview(buffer)[:n])
            self.count += n
        return n or 0

    def drain(self) -> None:
        buffer = bytearray(_CHUNK)
        while self.readinto(buffer):
            pass


class ForwardReader:
    """A buffered stream tarfile may treat as seekable, as long as it only seeks forward.

    tarfile's own stream mode re-slices its buffer on every 512-byte header read; this keeps
    header reads cheap and lets file data be read straight through.
    """

    mode = "rb"

    def __init__(self, raw: Any) -> None:
        self._buffer = io.BufferedReader(raw, _CHUNK)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        data = self._buffer.read(size)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise io.UnsupportedOperation("a layer stream can only move forward")
        while self._pos < pos:
            if not self.read(min(pos - self._pos, _CHUNK)):
                break
        return self._pos


def clean_name(name: str) -> str:
    """The path of a tar entry relative to the layer root, or BreakoutError."""
    if name.startswith("/"):
        raise BreakoutError(f"layer entry {name!r}: absolute path (entries must be relative)")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise BreakoutError(f"layer entry {name!r}: path leads outside the layer")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def header_problem(member: tarfile.TarInfo) -> str | None:
    """What makes ``member``'s header unusable (values the kernel cannot take), or None.

    tarfile decodes base-256 numbers and pax records without bounds; a layer must fail
    here with the entry named, not as an OverflowError halfway through a chown.
    """
    if "\0" in member.name:
        return "NUL byte in the name"
    if "\0" in member.linkname:
        return "NUL byte in the link target"
    if not (0 <= member.uid <= _MAX_ID and 0 <= member.gid <= _MAX_ID):
        return f"owner {member.uid}:{member.gid} is out of range"
    if (member.ischr() or member.isblk()) and not (0 <= member.devmajor <= _MAX_DEV
                                                   and 0 <= member.devminor <= _MAX_DEV):
        return f"device number {member.devmajor}:{member.devminor} is out of range"
    for name in ("mtime", "atime"):
        text = member.pax_headers.get(name)
        value = member.mtime if name == "mtime" and text is None else text
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            return f"invalid {name} {value!r}"
        if not -_MAX_SECONDS < seconds < _MAX_SECONDS:  # also false for nan
            return f"invalid {name} {value!r}"
    return None


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def lower_lookup(lowers: Sequence[str], rel: str) -> tuple[str, os.stat_result] | None:
    """The entry ``rel`` as an overlay mount of ``lowers`` (top first) would show it."""
    layers = list(lowers)
    found: tuple[str, os.stat_result] | None = None
    comps = rel.split("/")
    for depth in range(1, len(comps) + 1):
        prefix = "/".join(comps[:depth])
        visible: list[str] = []
        found = None
        for layer in layers:
            path = os.path.join(layer, prefix)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if is_whiteout(st):
                break
            if found is None:
                found = (path, st)
            if not stat.S_ISDIR(st.st_mode):
                break
            visible.append(layer)
            if is_opaque(path):
                break
        if found is None or (depth < len(comps) and not stat.S_ISDIR(found[1].st_mode)):
            return None
        layers = visible
    return found


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    """The xattrs in ``member``'s pax headers; ValueError names one that cannot be set."""
    out: dict[str, bytes] = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            data = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
            try:
                data = base64.b64decode(value + "=" * (-len(value) % 4))
            except binascii.Error:
                raise ValueError(f"xattr {name!r}: value is not base64") from None
        else:
            continue
        if not name or "\0" in name:
            raise ValueError(f"invalid xattr name {name!r}")
        out[name] = data
    return out


def copy_xattrs(src: str, dst: str | int) -> None:
    """Copy ``src``'s xattrs (but overlayfs' own) onto ``dst``."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return
        raise
    for name in names:
        if not name.startswith(_FORBIDDEN_XATTR_PREFIX):
            value = os.getxattr(src, name, follow_symlinks=False)
            if isinstance(dst, int):
                os.setxattr(dst, name, value)
            else:
                os.setxattr(dst, name, value, follow_symlinks=False)


def copy_entry(src: str, st: os.stat_result, dst: str) -> None:
    """Copy one non-directory entry with its content, owner, mode, xattrs and times."""
    times = (st.st_atime_ns, st.st_mtime_ns)
    if stat.S_ISREG(st.st_mode):
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            with open(src, "rb") as source:
                remaining = st.st_size
                while remaining > 0:
                    copied = os.copy_file_range(source.fileno(), fd, remaining)
                    if copied == 0:
                        break
                    remaining -= copied
            os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            copy_xattrs(src, fd)
            os.utime(fd, ns=times)
        finally:
            os.close(fd)
        return
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    else:
        os.mknod(dst, st.st_mode, st.st_rdev)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    copy_xattrs(src, dst)
    os.utime(dst, ns=times, follow_symlinks=False)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@dataclass(frozen=True)
class CopyOptions:
    """What `docker cp` into a container asks of an unpack beyond a layer's."""

    owner: tuple[int, int] | None = None  # every entry chowned to (uid, gid)
    no_overwrite_dir_non_dir: bool = False  # a directory never replaces a file or back


class _Unpacker:
    def __init__(self, root: str, overlay: bool, lowers: Sequence[str],
                 options: CopyOptions | None = None) -> None:
        self.root = os.path.abspath(root)
        self.overlay = overlay
        self.lowers = list(lowers)
        self.options = options or CopyOptions()
        self.dirs_ok: set[str] = {""}  # relative paths known to be real directories
        self.unpacked: set[str] = set()
        self.dir_times: list[tuple[str, int, int]] = []
        self.size = 0
        self.name = ""

    def after(self) -> str:
        return f" after entry {self.name!r}" if self.name else ""

    def fail(self, message: str) -> ArchiveError:
        return ArchiveError(f"layer entry {self.name!r}: {message}")

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    # Parents -------------------------------------------------------------------------------

    def ensure_parent(self, parent: str) -> None:
        if parent in self.dirs_ok:
            return
        comps = parent.split("/")
        for depth in range(1, len(comps) + 1):
            prefix = "/".join(comps[:depth])
            if prefix in self.dirs_ok:
                continue
            try:
                st = os.lstat(self.path(prefix))
            except FileNotFoundError:
                self.make_parent(prefix)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise BreakoutError(f"layer entry {self.name!r}: parent {prefix!r} is a "
                                        "symlink")
                if not stat.S_ISDIR(st.st_mode):
                    raise self.fail(f"parent {prefix!r} is not a directory")
            self.dirs_ok.add(prefix)

    def make_parent(self, prefix: str) -> None:
        path = self.path(prefix)
        found = lower_lookup(self.lowers, prefix) if self.overlay else None
        if found is None:
            os.mkdir(path, 0o755)
            return
        source, st = found
        if stat.S_ISLNK(st.st_mode):
            raise BreakoutError(f"layer entry {self.name!r}: parent {prefix!r} is a symlink "
                                "(in a lower layer)")
        if not stat.S_ISDIR(st.st_mode):
            raise self.fail(f"parent {prefix!r} is not a directory (in a lower layer)")
        os.mkdir(path, 0o700)
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, stat.S_IMODE(st.st_mode))
        copy_xattrs(source, path)
        self.dir_times.append((path, st.st_atime_ns, st.st_mtime_ns))

    # Removal -------------------------------------------------------------------------------

    def remove(self, rel: str, keep_dir: bool = False) -> None:
        """Remove whatever is at ``rel`` (a directory too, unless ``keep_dir``)."""
        path = self.path(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(path)
            prefix = rel + "/"
            self.dirs_ok = {d for d in self.dirs_ok if d != rel and not d.startswith(prefix)}
        else:
            os.unlink(path)

    def clear_dir(self, rel: str) -> None:
        """An opaque directory in direct mode: drop what this layer did not put there."""
        with os.scandir(self.path(rel)) as entries:
            children = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        for name, is_dir in children:
            child = f"{rel}/{name}" if rel else name
            if child in self.unpacked:
                if is_dir:
                    self.clear_dir(child)
            else:
                self.remove(child)

    # Entries -------------------------------------------------------------------------------

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.name = member.name
        problem = header_problem(member)
        if problem:
            raise self.fail(problem)
        rel = clean_name(member.name)
        if not rel:
            return  # the layer root: Docker leaves the target's own metadata alone
        parent, _, base = rel.rpartition("/")
        self.ensure_parent(parent)
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(parent, base, member)
            return
        path = self.path(rel)
        if self.options.no_overwrite_dir_non_dir:
            self.check_overwrite(path, member)
        if member.isdir():
            self.directory(rel, path, member)
        else:
            self.remove(rel)
            if member.isreg():
                self.regular(tar, member, path)
            elif member.issym():
                os.symlink(member.linkname, path)
                self.size += len(os.fsencode(member.linkname))
                self.metadata(path, member, symlink=True)
            elif member.islnk():
                self.hardlink(member, path)
            elif member.ischr() or member.isblk() or member.isfifo():
                kind = (stat.S_IFCHR if member.ischr() else
                        stat.S_IFBLK if member.isblk() else stat.S_IFIFO)
                os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
                self.metadata(path, member)
            else:
                raise self.fail(f"unsupported entry type {member.type!r}")
        self.unpacked.add(rel)

    def check_overwrite(self, path: str, member: tarfile.TarInfo) -> None:
        """Docker's NoOverwriteDirNonDir: refuse to swap a directory and a non-directory."""
        try:
            is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
        except FileNotFoundError:
            return
        if is_dir and not member.isdir():
            raise ArchiveError(f"cannot overwrite directory {path!r} with non-directory "
                               f"{member.name!r}")
        if member.isdir() and not is_dir:
            raise ArchiveError(f"cannot overwrite non-directory {path!r} with directory "
                               f"{member.name!r}")

    def directory(self, rel: str, path: str, member: tarfile.TarInfo) -> None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                self.remove(rel)
                os.mkdir(path, 0o700)
        self.metadata(path, member, directory=True)
        self.dirs_ok.add(rel)

    def regular(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            stream: Any = tar.fileobj
            if member.sparse is not None or stream.tell() != member.offset_data:
                stream = tar.extractfile(member)
            read = stream.read
            remaining = member.size
            while remaining > 0:
                chunk = read(min(remaining, _CHUNK))
                if not chunk:
                    raise self.fail("the layer ends inside this file (truncated tar)")
                _write_all(fd, chunk)
                remaining -= len(chunk)
            self.metadata(fd, member)
        finally:
            os.close(fd)
        self.size += member.size

    def hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        try:
            target = clean_name(member.linkname)
        except BreakoutError:
            raise BreakoutError(f"layer entry {self.name!r}: hardlink to {member.linkname!r} "
                                "leads outside the layer") from None
        if not target:
            raise self.fail("hardlink to the layer root")
        self.ensure_parent(target.rpartition("/")[0])
        source = self.path(target)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            found = lower_lookup(self.lowers, target) if self.overlay else None
            if found is None:
                raise self.fail(f"hardlink target {member.linkname!r} does not exist") from None
            st = found[1]
            if not stat.S_ISDIR(st.st_mode):
                copy_entry(found[0], st, source)  # copy-up: link within this layer
        if stat.S_ISDIR(st.st_mode):
            raise self.fail(f"hardlink target {member.linkname!r} is a directory")
        os.link(source, path, follow_symlinks=False)

    def whiteout(self, parent: str, base: str, member: tarfile.TarInfo) -> None:
        if base == WHITEOUT_OPAQUE:
            if self.overlay:
                os.setxattr(self.path(parent), OPAQUE_XATTR, b"y", follow_symlinks=False)
            else:
                self.clear_dir(parent)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to apply
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise self.fail("whiteout of an invalid name")
        rel = f"{parent}/{victim}" if parent else victim
        self.remove(rel)
        if self.overlay:
            path = self.path(rel)
            os.mknod(path, stat.S_IFCHR, 0)
            os.chown(path, member.uid, member.gid, follow_symlinks=False)

    def metadata(self, target: str | int, member: tarfile.TarInfo, *, symlink: bool = False,
                 directory: bool = False) -> None:
        """Owner, then mode (chown clears setuid), then xattrs (chown clears file caps)."""
        uid, gid = self.options.owner or (member.uid, member.gid)
        if isinstance(target, int):
            os.fchown(target, uid, gid)
            os.fchmod(target, member.mode)
        else:
            os.chown(target, uid, gid, follow_symlinks=False)
            if not symlink:
                os.chmod(target, member.mode)
        try:
            xattrs = _xattrs(member)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        for name, value in xattrs.items():
            if name.startswith(_FORBIDDEN_XATTR_PREFIX):
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, value)
                else:
                    os.setxattr(target, name, value, follow_symlinks=False)
            except OSError as exc:
                # As Docker: a filesystem without xattrs, or user.* on a symlink or device.
                if exc.errno == errno.ENOTSUP or (exc.errno == errno.EPERM and
                                                  not name.startswith("security.")):
                    continue
                raise self.fail(f"cannot set xattr {name}: {exc.strerror}") from None
        mtime = int(member.mtime * 1_000_000_000)
        atime_text = member.pax_headers.get("atime")
        atime = max(mtime, int(float(atime_text) * 1_000_000_000)) if atime_text else mtime
        if directory:
            assert isinstance(target, str)
            self.dir_times.append((target, atime, mtime))  # children change it: set it last
        else:
            os.utime(target, ns=(atime, mtime), follow_symlinks=isinstance(target, int))

    def finish(self) -> None:
        for path, atime, mtime in reversed(self.dir_times):
            os.utime(path, ns=(atime, mtime), follow_symlinks=False)


# tarfile reports a malformed header as TarError, but also as ValueError, OverflowError or
# UnicodeError from its number and pax parsing.
_TAR_FAULTS = (tarfile.TarError, ValueError, OverflowError, UnicodeError, EOFError)


def tar_members(fileobj: Any, after: Callable[[], str] = str,
                ) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Every member of the tar stream ``fileobj``; a malformed header is an ArchiveError
    (``after()`` says where). What the caller does with a member is not guarded here."""
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:")  # noqa: SIM115 (closed below)
    except _TAR_FAULTS as exc:
        raise ArchiveError(f"invalid layer tar: {exc}") from None
    with tar:
        while True:
            try:
                member = tar.next()
            except _TAR_FAULTS as exc:
                raise ArchiveError(f"invalid layer tar{after()}: {exc}") from None
            if member is None:
                return
            yield tar, member


def apply_layer(stream: BinaryIO, root: str, *, overlay: bool = False,
                lowers: Sequence[str] = (), algorithm: str = "sha256",
                options: CopyOptions | None = None) -> ApplyResult:
    """Unpack the (possibly compressed) layer ``stream`` into ``root``.

    ``lowers`` are the layers below (top first) for overlay mode. On error the target is left
    half-written: the caller discards the snapshot. Nothing outside ``root`` is touched.
    """
    unpacker = _Unpacker(root, overlay, lowers, options)
    with decompressed(stream) as plain:
        hashing = _HashingReader(plain, algorithm)
        try:
            for tar, member in tar_members(ForwardReader(hashing), unpacker.after):
                unpacker.entry(tar, member)
            hashing.drain()
        except tarfile.TarError as exc:  # reading a sparse file's data
            raise ArchiveError(f"invalid layer tar{unpacker.after()}: {exc}") from None
        except ArchiveError:
            raise
        except OSError as exc:
            raise unpacker.fail(exc.strerror or str(exc)) from None
    unpacker.finish()
    return ApplyResult(diff_id=f"{hashing.hash.name}:{hashing.hash.hexdigest()}",
                       tar_size=hashing.count, size=unpacker.size)


def measure_layer(stream: BinaryIO, algorithm: str = "sha256") -> ApplyResult:
    """What ``apply_layer`` would report for ``stream``, without writing anything."""
    with decompressed(stream) as plain:
        hashing = _HashingReader(plain, algorithm)
        size = 0
        for _, member in tar_members(ForwardReader(hashing)):
            if member.isreg():
                size += member.size
            elif member.issym():
                size += len(os.fsencode(member.linkname))
        hashing.drain()
    return ApplyResult(diff_id=f"{hashing.hash.name}:{hashing.hash.hexdigest()}",
                       tar_size=hashing.count, size=size)
