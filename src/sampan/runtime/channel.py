"""The message channel between the runtime and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, so each JSON message is one read, and
it carries file descriptors (the pty master) with SCM_RIGHTS. If the other side dies the
read returns b"" at once, so a crashed init can never leave the runtime waiting.
"""

from __future__ import annotations

from ..kernel import unixsock
from ..oci import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

class ChannelClosed(Exception):
    """The peer exited before sending what was expected."""


class Channel:
    def __init__(self, sock: unixsock.Socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = unixsock.seqpacket_pair()
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, kind: str, fds: list[int] | None = None, **data: Any) -> None:
        payload = jsonio.dumps({"type": kind, **data}).encode()
        try:
            if fds:
                unixsock.send_fds(self.sock, payload, fds)
            else:
                self.sock.send(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The peer is gone: what it sent before it went (its "error") says why; else
            # it exited without a word ("Broken pipe" would tell the user nothing).
            _raise_reported(self.recv()[0])
            raise ChannelClosed(_EXITED) from None

    def recv(self) -> tuple[dict[str, Any], list[int]]:
        try:
            payload, fds = unixsock.recv_fds(self.sock, 65536, 4)
        except ConnectionResetError:
            # The peer exited with a message of ours unread (an init that failed before it
            # read "placed"): the kernel reports that first, once, ahead of what the peer
            # sent before it exited (its "error"), which the next read returns.
            payload, fds = unixsock.recv_fds(self.sock, 65536, 4)
        if not payload:
            raise ChannelClosed(_EXITED)
        message: dict[str, Any] = jsonio.loads(payload)
        return message, fds

    def expect(self, *kinds: str) -> tuple[dict[str, Any], list[int]]:
        """Receive one message of one of ``kinds``; an ``error`` from the peer is raised."""
        message, fds = self.recv()
        _raise_reported(message)
        if message["type"] not in kinds:
            raise SetupError(f"internal error: expected {kinds}, got {message['type']!r}")
        return message, fds

    def close(self) -> None:
        self.sock.close()


class SetupError(Exception):
    """Container set-up failed inside the new namespaces; the message says where."""


_EXITED = "the container process exited during set-up"


def _raise_reported(message: dict[str, Any]) -> None:
    """The peer's "error" message, raised."""
    if message["type"] == "error":
        raise SetupError(message.get("message", "unknown error"))
