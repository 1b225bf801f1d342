"""A small HTTP/1.1 client over a unix (or TCP) socket.

`http.client` costs about 45 ms to import (email parsing, ssl, socket's enums), paid by
every `sampan run`. The Engine API needs little of it: one request per connection,
Content-Length, chunked and read-to-close bodies, and the connection upgrade that
attach and exec use (``101 UPGRADED``, then the socket is the container's stdio).
"""

from __future__ import annotations

import _socket

from ...oci import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

_BUF = 65536


class ConnectError(OSError):
    """The daemon's socket cannot be reached."""


class ProtocolError(OSError):
    """The daemon answered something that is not HTTP/1.x."""


def connect(host: str) -> _socket.socket:
    """A connected socket for ``unix:///path`` or ``tcp://host:port``."""
    try:
        if host.startswith("unix://"):
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            target: Any = host[len("unix://"):]
        elif host.startswith(("tcp://", "http://")):
            address = host.split("://", 1)[1].rstrip("/")
            name, _, port = address.rpartition(":")
            sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            target = (name or "127.0.0.1", int(port or 2375))
        else:
            raise ConnectError(f"unsupported host {host!r}: use unix:///path or tcp://h:p")
    except ValueError:
        raise ConnectError(f"invalid host {host!r}") from None
    try:
        sock.connect(target)
    except OSError as exc:
        sock.close()
        raise ConnectError(exc.errno, exc.strerror) from None
    return sock


class Reader:
    """Buffered reads from a socket."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.sock.recv(_BUF)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line, self.buf = self.buf[:end + 1], self.buf[end + 1:]
                return line
            if not self._fill():
                line, self.buf = self.buf, b""
                return line

    def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ProtocolError("connection closed in the middle of a response")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_some(self) -> bytes:
        """What is buffered, else one recv; b"" at the end."""
        if not self.buf:
            self._fill()
        data, self.buf = self.buf, b""
        return data


class Response:
    def __init__(self, sock: _socket.socket, reader: Reader, status: int, reason: str,
                 headers: dict[str, str]) -> None:
        self.sock, self.reader = sock, reader
        self.status, self.reason, self.headers = status, reason, headers
        self._done = False
        self.head = False  # the answer to a HEAD: headers only

    def chunks(self) -> Iterator[bytes]:
        """The body piece by piece, as the daemon sends it."""
        if self._done:
            return
        self._done = True
        if self.head:
            self.close()
            return
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                yield from self._chunked()
            elif "content-length" in self.headers:
                left = int(self.headers["content-length"])
                while left > 0:
                    data = self.reader.read_some()
                    if not data:
                        raise ProtocolError("connection closed in the middle of a body")
                    if len(data) > left:
                        data = data[:left]
                    left -= len(data)
                    yield data
            elif self.status not in (204, 304):
                while data := self.reader.read_some():
                    yield data
        finally:
            self.close()

    def _chunked(self) -> Iterator[bytes]:
        while True:
            size_line = self.reader.readline()
            if not size_line:
                raise ProtocolError("connection closed in the middle of a chunked body")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            data = self.reader.read_exactly(size)
            self.reader.read_exactly(2)
            yield data

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def json(self) -> Any:
        data = self.read()
        return jsonio.loads(data) if data.strip() else None

    def lines(self) -> Iterator[bytes]:
        """Newline-separated records (the JSON message streams)."""
        pending = b""
        for data in self.chunks():
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield line
        if pending.strip():
            yield pending

    def json_stream(self) -> Iterator[Any]:
        for line in self.lines():
            yield jsonio.loads(line)

    def close(self) -> None:
        self._done = True
        self.sock.close()


def _quote(text: str) -> str:
    safe = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
    out = []
    for ch in text:
        if ch in safe:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode())
    return "".join(out)


def query_string(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if item is True or item is False:
                item = "1" if item else "0"
            parts.append(f"{_quote(key)}={_quote(str(item))}")
    return "?" + "&".join(parts) if parts else ""


def send(host: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[_socket.socket, Reader]:
    """Send one request; the socket and a reader for the answer."""
    sock = connect(host)
    lines = [f"{method} {path} HTTP/1.1", "Host: docker", "User-Agent: sampan"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    try:
        sock.sendall(head + body if body is not None and len(body) < _BUF else head)
        if body is not None and len(body) >= _BUF:
            sock.sendall(body)
    except OSError:
        sock.close()
        raise
    return sock, Reader(sock)


def send_stream(host: str, method: str, path: str, chunks: Iterator[bytes],
                headers: dict[str, str] | None = None) -> tuple[_socket.socket, Reader]:
    """Send a request whose body is streamed with chunked encoding (load, import, cp)."""
    sock, reader = send(host, method, path, None,
                        {**(headers or {}), "Transfer-Encoding": "chunked"})
    try:
        for chunk in chunks:
            if chunk:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        sock.close()
        raise
    return sock, reader


def receive(sock: _socket.socket, reader: Reader) -> Response:
    """Read the status line and headers (skipping 100 Continue)."""
    while True:
        line = reader.readline()
        if not line:
            sock.close()
            raise ProtocolError("the daemon closed the connection without answering")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            sock.close()
            raise ProtocolError(f"not an HTTP answer: {line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            h = reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            key, _, value = h.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if status != 100:
            return Response(sock, reader, status, parts[2] if len(parts) > 2 else "",
                            headers)


def request(host: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> Response:
    response = receive(*send(host, method, path, body, headers))
    response.head = method == "HEAD"
    return response
