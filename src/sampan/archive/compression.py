"""Streaming decompression of layer blobs (gzip, zstd or none), detected from magic bytes.

Registries and `docker save` do not always label compression truthfully (a `layer.tar` may
be gzip'd), so the bytes decide, as Docker's DecompressStream does. Decompression runs in a
thread (zlib and zstd release the GIL while they work), so inflating the next megabytes
overlaps with writing the files of the previous ones, as `tar -xz` does with its gzip child.
"""

from __future__ import annotations

import io
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

from . import ArchiveError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Not layer formats (the image specs name gzip and zstd), but `docker import` takes them.
_TARBALL_ONLY = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_CHUNK = 1 << 20
_MAX_OUT = 4 << 20  # bounds what one compressed chunk may expand to in memory


def detect(head: bytes, tarball: bool = False) -> str:
    """"gzip", "zstd" or "" (uncompressed) for the first bytes of a blob; with ``tarball``
    (an import, not a layer) also "bzip2" and "xz"."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    for magic, name in _TARBALL_ONLY.items():
        if head.startswith(magic):
            if tarball:
                return name
            raise ArchiveError(f"{name}-compressed layers are not supported (gzip and zstd are)")
    return ""


def _gunzip(source: BinaryIO) -> Iterator[bytes]:
    """Inflate every gzip member of ``source``; a stream cut short is an error."""
    inflater = zlib.decompressobj(wbits=31)
    while True:
        data = source.read(_CHUNK)
        if not data:
            if not inflater.eof:
                raise ArchiveError("truncated gzip stream: the layer ends before its "
                                   "end-of-stream marker")
            return
        while data:
            try:
                out = inflater.decompress(data, _MAX_OUT)
            except zlib.error as exc:
                raise ArchiveError(f"corrupt gzip stream: {exc}") from None
            if out:
                yield out
            data = inflater.unconsumed_tail
            if inflater.eof:
                rest = inflater.unused_data
                if rest.strip(b"\0"):  # another member (multi-stream gzip, like pigz writes)
                    inflater = zlib.decompressobj(wbits=31)
                    data = rest
            elif not data and len(out) == _MAX_OUT:
                data = b""
                while True:  # output still pending inside zlib from input it consumed
                    out = inflater.decompress(b"", _MAX_OUT)
                    if not out:
                        break
                    yield out


def _unzstd(source: BinaryIO) -> Iterator[bytes]:
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True,
                                                       closefd=False)
    with reader:
        while True:
            try:
                out = reader.read(_CHUNK)
            except zstandard.ZstdError as exc:
                raise ArchiveError(f"corrupt zstd stream: {exc}") from None
            if not out:
                return
            yield out


def _legacy(codec: str) -> Callable[[BinaryIO], Iterator[bytes]]:
    def produce(source: BinaryIO) -> Iterator[bytes]:
        import bz2
        import lzma

        engine: Any = bz2.BZ2Decompressor() if codec == "bzip2" else lzma.LZMADecompressor()
        while data := source.read(_CHUNK):
            try:
                yield engine.decompress(data)
            except (OSError, lzma.LZMAError) as exc:
                raise ArchiveError(f"corrupt {codec} stream: {exc}") from None
        if not engine.eof:
            raise ArchiveError(f"truncated {codec} stream")
    return produce


class _Prefetch(io.RawIOBase):
    """A reader of chunks produced by ``produce`` in a background thread."""

    def __init__(self, produce: Callable[[], Iterator[bytes]], depth: int = 8) -> None:
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(produce,), daemon=True,
                                        name="layer-decompress")
        self._thread.start()

    def _run(self, produce: Callable[[], Iterator[bytes]]) -> None:
        try:
            for chunk in produce():
                if self._stop.is_set():
                    return
                self._queue.put(chunk)
            self._queue.put(b"")
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._queue.put(exc)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            if self._done:
                return 0
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return 0
            self._pending = memoryview(item)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            with suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        super().close()


@contextmanager
def decompressed(stream: BinaryIO, tarball: bool = False) -> Iterator[BinaryIO]:
    """A reader of the uncompressed tar in ``stream`` (``tarball``: see `detect`)."""
    buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    codec = detect(buffered.peek(8)[:8], tarball)
    if not codec:
        yield buffered
        return
    produce = {"gzip": _gunzip, "zstd": _unzstd}.get(codec) or _legacy(codec)
    with _Prefetch(lambda: produce(buffered)) as reader:
        yield reader  # type: ignore[misc]
