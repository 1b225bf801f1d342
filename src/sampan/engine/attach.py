"""A client's connection to a container's stdio, through conmon's attach socket.

The socket is SOCK_SEQPACKET: each packet read is a stream tag (2 stdout, 3 stderr) and the
data; what is written goes to the container's stdin; shutting down our write side closes
the container's stdin (unless it was started with stdin left open). An attachment made
before the container starts waits until ``start`` connects it, before the process runs, so
no output is missed (`docker run` attaches first).
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

from .monitor import ATTACH_STDERR, ATTACH_STDOUT

STDOUT, STDERR = 1, 2  # Docker's stream numbers (the multiplexed frames' first byte)


class Attachment:
    def __init__(self, *, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self._sock: socket.socket | None = None
        loop = asyncio.get_running_loop()
        self.connected: asyncio.Future[bool] = loop.create_future()
        # conmon drops stdin that arrives before the process runs: input waits for this.
        self.running: asyncio.Future[bool] = loop.create_future()

    def connect(self, path: str) -> None:
        """Connect to conmon's attach socket (from the event loop's thread)."""
        if self.connected.done():
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            self.connected.set_result(False)
            return
        sock.setblocking(False)
        self._sock = sock
        self.connected.set_result(True)

    def adopt(self, sock: socket.socket) -> None:
        """Use a socket already connected (exec sessions connect it themselves)."""
        self._sock = sock
        if not self.connected.done():
            self.connected.set_result(True)

    def started(self) -> None:
        """The container's process runs: stdin may flow."""
        if not self.running.done():
            self.running.set_result(self._sock is not None)

    def abandon(self) -> None:
        """The container will not run for this attachment (removed, failed to start)."""
        if not self.connected.done():
            self.connected.set_result(False)
        if not self.running.done():
            self.running.set_result(False)

    async def recv(self) -> tuple[int, bytes] | None:
        """The next chunk of output as (Docker stream number, data); None at the end."""
        if not await self.connected or self._sock is None:
            return None
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await loop.sock_recv(self._sock, 65536)
            except OSError:
                return None
            if not packet:
                return None
            tag, data = packet[0], packet[1:]
            if tag == ATTACH_STDOUT and self.stdout:
                return STDOUT, data
            if tag == ATTACH_STDERR and self.stderr:
                return STDERR, data

    async def send(self, data: bytes) -> None:
        if self.stdin and await self.running and self._sock is not None:
            with suppress(OSError):
                await asyncio.get_running_loop().sock_sendall(self._sock, data)

    async def close_stdin(self) -> None:
        if self.stdin and await self.running and self._sock is not None:
            with suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.abandon()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
