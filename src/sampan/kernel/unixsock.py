"""Unix sockets with file-descriptor passing, on the `_socket` extension alone.

The `socket` module wraps `_socket` in enums and selectors (and `array` pulls in
collections): a few milliseconds to import, paid on every container start for one
socketpair and one SCM_RIGHTS message.
"""

from __future__ import annotations

import _socket
import struct

Socket = _socket.socket


def seqpacket_pair() -> tuple[Socket, Socket]:
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    return a, b


def connect(path: str) -> Socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def from_fd(fd: int) -> Socket:
    return _socket.socket(fileno=fd)


def inet_dgram() -> Socket:
    return _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)


def send_fds(sock: Socket, payload: bytes, fds: list[int]) -> None:
    sock.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                              struct.pack(f"{len(fds)}i", *fds))])


def recv_fds(sock: Socket, size: int, max_fds: int) -> tuple[bytes, list[int]]:
    payload, ancdata, _flags, _addr = sock.recvmsg(size, _socket.CMSG_LEN(max_fds * 4))
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4])
    return payload, fds
