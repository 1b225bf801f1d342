"""Docker's connection hijacking for attach and exec streams.

The client asks with ``Connection: Upgrade`` / ``Upgrade: tcp``; we answer ``101 UPGRADED``
and from then on the socket carries the container's raw stdio both ways (the Go client
accepts nothing else). The transport is taken from aiohttp by giving it our own protocol,
so a client that half-closes (stdin ended) still receives the output that follows.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from aiohttp import web

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


def frame(stream: int, data: bytes) -> bytes:
    """One multiplexed frame: stream (1 stdout, 2 stderr), three zero bytes, big-endian
    length, data."""
    return struct.pack(">BxxxL", stream, len(data)) + data


class _UnframedResponse(web.StreamResponse):
    """A response whose body is written raw: no chunked encoding, no length."""

    _length_check = False


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False
        self.lost_callbacks: list[Callable[[], None]] = []
        self._writable = asyncio.Event()
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        self.incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self.incoming.put_nowait(b"")
        return True  # keep our side open: the output may not be over

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.incoming.put_nowait(b"")
        self._writable.set()
        for callback in self.lost_callbacks:
            callback()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def drain(self) -> None:
        await self._writable.wait()


class Hijacked:
    """The client's socket after the upgrade."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self.transport = transport
        self.protocol = protocol

    async def read(self) -> bytes:
        """Bytes from the client; b"" once it closed its side."""
        if self.protocol.closed and self.protocol.incoming.empty():
            return b""
        return await self.protocol.incoming.get()

    async def write(self, data: bytes) -> bool:
        """Send ``data``; False once the client is gone."""
        if self.protocol.closed or self.transport.is_closing():
            return False
        self.transport.write(data)
        await self.protocol.drain()
        return not self.protocol.closed

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the client's connection is gone altogether (not when it
        only closed its sending side): an attachment then stops waiting for output."""
        if self.protocol.closed:
            callback()
        else:
            self.protocol.lost_callbacks.append(callback)

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


async def hijack(request: web.Request, content_type: str,
                 ) -> tuple[web.StreamResponse, Hijacked]:
    """Answer the upgrade and take the connection over."""
    upgrade = "upgrade" in request.headers.get("Connection", "").lower()
    if upgrade:
        response: web.StreamResponse = _UnframedResponse(
            status=101, reason="UPGRADED",
            headers={"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"})
    else:
        response = _UnframedResponse(status=200, headers={"Content-Type": content_type})
        response.force_close()
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    # Ours before the answer goes out: the client sends stdin as soon as it reads it.
    protocol = _Protocol()
    transport.set_protocol(protocol)
    await response.prepare(request)
    return response, Hijacked(transport, protocol)
