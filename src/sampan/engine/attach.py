"""A client's connection to a container's stdio, through conmon's attach socket.

The socket is SOCK_SEQPACKET: each packet read is a stream tag (2 stdout, 3 stderr) and the
data; what is written goes to the container's stdin; shutting down our write side closes
the container's stdin (unless it was started with stdin left open). An attachment made
before the container starts waits until ``start`` connects it, before the process runs, so
no output is missed (`docker run` attaches first).

A client attached with stdin to a TTY leaves with the detach keys (ctrl-p,ctrl-q unless it
names others, in docker's ``ctrl-a,x`` notation): as dockerd does, the daemon watches the
input for them, holds back a prefix of them until it knows, and ends the attachment on the
whole sequence while the container keeps running.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

from .errors import InvalidParameter
from .monitor import ATTACH_STDERR, ATTACH_STDOUT

STDOUT, STDERR = 1, 2  # Docker's stream numbers (the multiplexed frames' first byte)
DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
_CTRL = "@abcdefghijklmnopqrstuvwxyz[\\]^_"  # ctrl-<c> is the byte _CTRL.index(c)


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's detach key notation: comma-separated single characters, ``ctrl-<c>`` for
    c in a-z @ [ \\ ] ^ _, or ``DEL``; empty means the default (ctrl-p,ctrl-q)."""
    if not text:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out += key.encode()
        elif len(key) == 6 and key.startswith("ctrl-") and key[5] in _CTRL:
            out.append(_CTRL.index(key[5]))
        elif key == "DEL":
            out.append(127)
        else:
            raise InvalidParameter(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class EscapeScanner:
    """Finds the detach sequence in a client's input, which may arrive split anywhere."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""  # a prefix of the keys, not passed on yet

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the input to pass on, whether the sequence was typed)."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    return bytes(out), True
                self.held = candidate
                continue
            out += self.held
            self.held = b""
            if self.keys.startswith(bytes([byte])):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


class Attachment:
    def __init__(self, *, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self._sock: socket.socket | None = None
        self._escape: EscapeScanner | None = None
        self.detached = False
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

    def watch_for_detach(self, keys: bytes) -> None:
        """End the attachment when the client types ``keys`` (TTY attachments)."""
        self._escape = EscapeScanner(keys)

    async def send(self, data: bytes) -> None:
        if self._escape is not None:
            data, detach = self._escape.feed(data)
            if detach:
                self.detached = True
                self._escape = None
                await self._write(data)
                self.stop()
                return
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        if data and self.stdin and await self.running and self._sock is not None:
            with suppress(OSError):
                await asyncio.get_running_loop().sock_sendall(self._sock, data)

    def stop(self) -> None:
        """Stop the output (``recv`` returns None) without closing the container's stdin:
        the client detached or went away."""
        self._escape = None
        if self._sock is not None:
            with suppress(OSError):
                self._sock.shutdown(socket.SHUT_RD)
        self.abandon()

    async def close_stdin(self) -> None:
        if self.stdin and await self.running and self._sock is not None:
            with suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.abandon()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
