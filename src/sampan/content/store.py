"""A content-addressed blob store: blobs/<algorithm>/<hex>, written only once verified.

Every blob is written to a private file, hashed as it arrives, checked against the expected
digest and size, fsync'd and renamed into place: a reader never sees a partial or wrong blob,
and a digest mismatch leaves nothing behind. Downloads of a known descriptor are keyed by
digest under ingest/, so an interrupted pull resumes where it stopped (``ingest_offset``).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Any, BinaryIO

from ..oci.image import digest_of, new_hash, parse_digest

_CHUNK = 1 << 20


class ContentError(Exception):
    """A blob cannot be stored or read."""


class BlobNotFound(ContentError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class DigestMismatch(ContentError):
    """The bytes do not hash to the digest they were announced with."""


class SizeMismatch(ContentError):
    """More bytes arrived than the descriptor's size."""


class ShortBlob(ContentError):
    """The source ended before the descriptor's size; the partial data is kept for resume."""

    def __init__(self, digest: str, received: int, expected: int) -> None:
        super().__init__(f"blob {digest}: source ended after {received} of {expected} bytes "
                         "(partial data kept: the next ingest resumes)")
        self.received = received
        self.expected = expected


class IngestLocked(ContentError):
    """Another writer is ingesting the same blob right now."""


def _chunks(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(source, "read", None)
    if read is None:
        yield from source
        return
    while chunk := read(_CHUNK):
        yield chunk


def _write_all(fd: int, data: bytes | bytearray | memoryview, path: str) -> None:
    """Write all of ``data``; a failure names the file (a full disk: "<path>: No space
    left on device", not a bare errno)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        for sub in ("blobs", "ingest", "tmp"):
            os.makedirs(os.path.join(self.root, sub), mode=0o700, exist_ok=True)

    # Reading ------------------------------------------------------------------------------

    def path(self, digest: str) -> str:
        algorithm, encoded = parse_digest(digest)
        return os.path.join(self.root, "blobs", algorithm, encoded)

    def has(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found in the content store") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found in the content store") from None

    def read(self, digest: str, limit: int = 16 << 20) -> bytes:
        """A small blob (manifest, config) in memory; ``limit`` guards against huge ones."""
        if self.size(digest) > limit:
            raise ContentError(f"blob {digest} is larger than {limit} bytes")
        with self.open(digest) as f:
            return f.read()

    def walk(self) -> Iterator[tuple[str, int]]:
        """(digest, size) of every blob."""
        blobs = os.path.join(self.root, "blobs")
        for algorithm in sorted(os.listdir(blobs)):
            for encoded in sorted(os.listdir(os.path.join(blobs, algorithm))):
                yield (f"{algorithm}:{encoded}",
                       os.stat(os.path.join(blobs, algorithm, encoded)).st_size)

    def verify(self, digest: str) -> None:
        """Re-hash a stored blob (a consistency check of the disk, not of the network)."""
        hasher = new_hash(digest)
        with self.open(digest) as f:
            for chunk in _chunks(f):
                hasher.update(chunk)
        actual = f"{hasher.name}:{hasher.hexdigest()}"
        if actual != digest:
            raise DigestMismatch(f"stored blob {digest} is corrupt: its content hashes to "
                                 f"{actual}")

    # Writing ------------------------------------------------------------------------------

    def _ingest_dir(self, digest: str) -> str:
        algorithm, encoded = parse_digest(digest)
        return os.path.join(self.root, "ingest", f"{algorithm}-{encoded}")

    def ingest_offset(self, digest: str) -> int:
        """How many bytes of ``digest`` an interrupted ingest already holds."""
        try:
            return os.stat(os.path.join(self._ingest_dir(digest), "data")).st_size
        except FileNotFoundError:
            return 0

    def abort(self, digest: str) -> None:
        """Drop the partial data of an interrupted ingest."""
        shutil.rmtree(self._ingest_dir(digest), ignore_errors=True)

    def _publish(self, fd: int, tmp_path: str, digest: str) -> str:
        os.fsync(fd)
        os.fchmod(fd, 0o444)
        final = self.path(digest)
        os.makedirs(os.path.dirname(final), mode=0o700, exist_ok=True)
        os.replace(tmp_path, final)
        _fsync_dir(os.path.dirname(final))
        return final

    def ingest(self, source: BinaryIO | Iterable[bytes], digest: str, size: int | None = None,
               *, resume: bool = True) -> str:
        """Store the blob ``digest`` read from ``source``; its path.

        With ``resume`` the bytes already held for ``digest`` are kept and ``source`` must
        continue after them (``ingest_offset``). A blob already stored is not read again.
        """
        parse_digest(digest)
        if self.has(digest):
            return self.path(digest)
        work = self._ingest_dir(digest)
        os.makedirs(work, mode=0o700, exist_ok=True)
        lock = os.open(os.path.join(work, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IngestLocked(f"blob {digest} is being written by another ingest") \
                    from None
            data_path = os.path.join(work, "data")
            fd = os.open(data_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                return self._ingest_into(fd, data_path, source, digest, size, resume, work)
            finally:
                os.close(fd)
        finally:
            os.close(lock)

    def _ingest_into(self, fd: int, data_path: str, source: BinaryIO | Iterable[bytes],
                     digest: str, size: int | None, resume: bool, work: str) -> str:
        hasher = new_hash(digest)
        offset = os.fstat(fd).st_size if resume else 0
        if size is not None and offset > size:
            offset = 0
        os.ftruncate(fd, offset)
        done = 0
        while done < offset:  # hashlib cannot save its state: re-read what is there
            chunk = os.pread(fd, min(_CHUNK, offset - done), done)
            if not chunk:
                break
            hasher.update(chunk)
            done += len(chunk)
        os.lseek(fd, offset, os.SEEK_SET)
        total = offset
        for chunk in _chunks(source):
            total += len(chunk)
            if size is not None and total > size:
                shutil.rmtree(work, ignore_errors=True)
                raise SizeMismatch(f"blob {digest}: more data than the expected {size} bytes")
            hasher.update(chunk)
            _write_all(fd, chunk, data_path)
        if size is not None and total < size:
            raise ShortBlob(digest, total, size)
        actual = f"{hasher.name}:{hasher.hexdigest()}"
        if actual != digest:
            shutil.rmtree(work, ignore_errors=True)
            raise DigestMismatch(f"blob {digest}: content hashes to {actual} (digest mismatch)")
        path = self._publish(fd, data_path, digest)
        shutil.rmtree(work, ignore_errors=True)
        return path

    def put(self, data: bytes, algorithm: str = "sha256") -> str:
        """Store bytes that are all in memory; their digest."""
        digest = digest_of(data, algorithm)
        self.ingest([data], digest, len(data), resume=False)
        return digest

    def writer(self, algorithm: str = "sha256") -> ContentWriter:
        """A writer for a blob whose digest is known only at the end (layers sampan makes)."""
        return ContentWriter(self, algorithm)

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found in the content store") from None

    def clean_tmp(self) -> None:
        """Remove writers' leftovers after a crash; only when no writer is active."""
        tmp = os.path.join(self.root, "tmp")
        for name in os.listdir(tmp):
            with suppress(FileNotFoundError):
                os.unlink(os.path.join(tmp, name))


class ContentWriter:
    """Write, then ``commit`` (optionally checking an expected digest) or discard."""

    def __init__(self, store: ContentStore, algorithm: str) -> None:
        self._store = store
        self._hash = new_hash(algorithm)
        self._path = os.path.join(store.root, "tmp", secrets.token_hex(16))
        self._fd: int | None = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                                       os.O_CLOEXEC, 0o600)
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        assert self._fd is not None, "writer already closed"
        self._hash.update(data)
        _write_all(self._fd, data, self._path)
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        return f"{self._hash.name}:{self._hash.hexdigest()}"

    def commit(self, expected: str | None = None) -> str:
        """Publish the blob; its digest (DigestMismatch if not ``expected``)."""
        assert self._fd is not None, "writer already closed"
        digest = self.digest
        if expected is not None and expected != digest:
            self.discard()
            raise DigestMismatch(f"blob {expected}: content hashes to {digest} "
                                 "(digest mismatch)")
        try:
            self._store._publish(self._fd, self._path, digest)
        finally:
            os.close(self._fd)
            self._fd = None
        return digest

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            with suppress(FileNotFoundError):
                os.unlink(self._path)

    def __enter__(self) -> ContentWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.discard()

