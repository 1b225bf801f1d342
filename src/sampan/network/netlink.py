"""Netlink sockets through pyroute2, on the host or inside a network namespace.

pyroute2 costs 200 ms to import, so it is imported on first use: an engine that runs
only --network none or host containers never pays for it. A socket inside another
namespace is opened by this thread joining the namespace just long enough to create it
(setns of a network namespace is per thread, so the daemon's other threads stay where
they are, and no helper process is forked as pyroute2's own NetNS does).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sampan.kernel import syscalls
from sampan.network.errors import NotFound

CLONE_NEWNET = 0x40000000


def ipr() -> Any:
    """A pyroute2 ``IPRoute`` in this thread's namespace; use it as a context manager."""
    from pyroute2 import IPRoute

    return IPRoute()


def index(name: str) -> int | None:
    """The ifindex of ``name`` in this thread's namespace, or None when there is none.

    One ioctl, where pyroute2's link_lookup dumps every link (a millisecond per call).
    """
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def error_code(exc: BaseException) -> int | None:
    """The errno of a netlink error (pyroute2's NetlinkError carries it as ``code``)."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


@contextmanager
def netns_fd(netns: str | int) -> Iterator[int]:
    """An fd of ``netns``: a path such as /proc/<pid>/ns/net, or an fd the caller owns."""
    if isinstance(netns, int):
        yield netns
        return
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"network namespace {netns} does not exist") from None
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def in_netns(fd: int) -> Iterator[None]:
    """Run the block with this thread in the namespace ``fd``; back home at its end.

    Only sockets are made in such a block: a socket stays in the namespace it was
    created in, whatever the thread does afterwards.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(fd, CLONE_NEWNET)
        try:
            yield
        finally:
            syscalls.setns(home, CLONE_NEWNET)
    finally:
        os.close(home)


