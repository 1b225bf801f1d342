"""The hijacked connection of attach, run and exec: stdin forwarded, the output written
back (raw with a TTY, else demultiplexed from 8-byte frames), the terminal in raw mode
and resized on SIGWINCH.

One thread and one select loop: `threading` and `signal` (enums) are not imported.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # typeshed describes only `signal`
import os
import select
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .http import Response

_HEADER = struct.Struct(">BxxxL")


class Demux:
    """Docker's multiplexed stream: [stream, 0, 0, 0, size (big endian)] + data."""

    def __init__(self, write: Callable[[int, bytes], None]) -> None:
        self.write = write
        self.pending = b""

    def feed(self, data: bytes) -> None:
        self.pending += data
        while len(self.pending) >= 8:
            stream, size = _HEADER.unpack_from(self.pending)
            if stream > 2 or self.pending[1:4] != b"\0\0\0":
                # not a frame: a daemon's plain error text; show it rather than drop it
                self.write(2, self.pending)
                self.pending = b""
                return
            if len(self.pending) < 8 + size:
                return
            payload = self.pending[8:8 + size]
            self.pending = self.pending[8 + size:]
            self.write(2 if stream == 2 else 1, payload)


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        data = data[n:]


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    """(height, width) of the terminal on ``fd``."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


class RawTerminal:
    """stdin in raw mode for the session's length (as the Go CLI's term.SetRawTerminal)."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None

    def __enter__(self) -> RawTerminal:
        import termios
        import tty

        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def detach_sequence(keys: str | None) -> bytes:
    """docker's --detach-keys ("ctrl-p,ctrl-q" by default) as the bytes typed."""
    out = bytearray()
    for key in (keys or "ctrl-p,ctrl-q").split(","):
        key = key.strip().lower()
        if key.startswith("ctrl-") and len(key) == 6:
            ch = key[5]
            out.append(ord(ch) - ord("a") + 1 if ch.isalpha() else
                       {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch, 0))
        elif len(key) == 1:
            out.append(ord(key))
    return bytes(out)


def pump(response: Response, tty: bool, stdin: bool,
         resize: Callable[[int, int], None] | None = None) -> bytes:
    """Copy until the daemon closes the stream; the last bytes sent from stdin (to tell
    a detach from an exit). ``stdin`` forwards fd 0 (closing our write side at its
    end); ``resize`` is called with the terminal's size now and on each SIGWINCH."""
    sock = response.sock
    demux = None if tty else Demux(_write)
    first = response.reader.buf
    response.reader.buf = b""
    if first:
        if demux is None:
            _write(1, first)
        else:
            demux.feed(first)
    wake_r = wake_w = -1
    old_handler = None
    if resize is not None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        old_wakeup = _signal.set_wakeup_fd(wake_w)
        old_handler = _signal.signal(_signal.SIGWINCH, lambda *_: None)
        size = terminal_size()
        if size:
            resize(*size)
    reading_stdin = stdin
    tail = b""
    try:
        while True:
            watch = [sock.fileno()]
            if reading_stdin:
                watch.append(0)
            if wake_r >= 0:
                watch.append(wake_r)
            ready, _, _ = select.select(watch, [], [])
            if wake_r in ready:
                while True:
                    try:
                        if not os.read(wake_r, 64):
                            break
                    except BlockingIOError:
                        break
                size = terminal_size()
                if size and resize is not None:
                    resize(*size)
            if 0 in ready:
                data = os.read(0, 32768)
                if data:
                    tail = (tail + data)[-16:]
                    sock.sendall(data)
                else:
                    reading_stdin = False
                    try:
                        sock.shutdown(1)  # SHUT_WR: the container sees stdin's end
                    except OSError:
                        pass
            if sock.fileno() in ready:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    break
                if demux is None:
                    _write(1, data)
                else:
                    demux.feed(data)
    finally:
        if old_handler is not None:
            _signal.signal(_signal.SIGWINCH, old_handler)
            _signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)
        sock.close()
    return tail
