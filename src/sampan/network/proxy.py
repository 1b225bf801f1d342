"""A userland proxy for published ports the kernel cannot DNAT: IPv6's loopback.

IPv6 has no ``route_localnet``: a packet from ``::1`` is never routed out of the host,
so ``-p [::1]:8080:80`` (and ``[::1]`` reaching a ``[::]`` binding) cannot be served by
a rule, as dockerd's docker-proxy also finds. The socket that holds such a port listens
instead, and this proxy copies each TCP connection or UDP exchange to the container.
One thread runs an event loop for every proxied port of the daemon; a restarted daemon
serves them again (``serve`` from its restore), as it does its DNS sockets.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass, field

Target = tuple[str, int]
UDP_IDLE = 60.0  # seconds a UDP client's upstream socket lives without traffic


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


class _Udp(asyncio.DatagramProtocol):
    """Datagrams from each client go out of a socket of its own, replies come back."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.upstreams: dict[object, asyncio.DatagramTransport] = {}
        self.pending: set[asyncio.Future[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: object) -> None:
        upstream = self.upstreams.get(addr)
        if upstream is not None:
            upstream.sendto(data)
            return
        task = asyncio.ensure_future(self._open(addr, data))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _open(self, addr: object, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        outer = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _: object) -> None:
                if outer.transport is not None:
                    outer.transport.sendto(data, addr)  # type: ignore[arg-type]

        transport, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.target)
        self.upstreams[addr] = transport
        transport.sendto(first)
        loop.call_later(UDP_IDLE, self._expire, addr)

    def _expire(self, addr: object) -> None:
        transport = self.upstreams.pop(addr, None)
        if transport is not None:
            transport.close()

    def close(self) -> None:
        for transport in self.upstreams.values():
            transport.close()
        self.upstreams.clear()
        if self.transport is not None:
            self.transport.close()


@dataclass
class _Served:
    """One proxied port: its TCP server or UDP protocol, and the TCP connections open
    through it (closed with it: a stopped container's clients see the end at once)."""

    server: asyncio.AbstractServer | _Udp | None = None
    conns: set[asyncio.StreamWriter] = field(default_factory=set)

    def close(self) -> None:
        for writer in self.conns:
            writer.close()
        self.conns.clear()
        if self.server is not None:
            self.server.close()


class Proxy:
    """Proxied ports per owner (a container id), served by one thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._served: dict[str, list[_Served]] = {}
        self._lock = threading.Lock()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever,
                                                name="sampan-proxy", daemon=True)
                self._thread.start()
            return self._loop

    def serve(self, owner: str, held: socket.socket, target: Target) -> None:
        """Listen on (a duplicate of) ``held`` and copy to ``target``; the holder keeps
        its own descriptor, so either side may close first."""
        sock = held.dup()
        loop = self._ensure_loop()
        sock.setblocking(False)
        served = _Served()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.conns.add(writer)
            try:
                up_reader, up_writer = await asyncio.open_connection(*target)
            except OSError:
                writer.close()
                served.conns.discard(writer)
                return
            served.conns.add(up_writer)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                for w in (writer, up_writer):
                    w.close()
                    served.conns.discard(w)

        async def start() -> None:
            if sock.type == socket.SOCK_STREAM:
                served.server = await asyncio.start_server(handle, sock=sock)
                return
            protocol = _Udp(target)
            await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
            served.server = protocol

        try:
            asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        except BaseException:
            sock.close()
            raise
        with self._lock:
            self._served.setdefault(owner, []).append(served)

    def stop(self, owner: str) -> None:
        """Stop serving ``owner``'s ports and close the connections through them."""
        with self._lock:
            served = self._served.pop(owner, [])
            loop = self._loop
        if not served or loop is None:
            return

        async def close() -> None:
            for item in served:
                item.close()

        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), loop).result(10)

    def close(self) -> None:
        """Stop every proxy and the thread."""
        with self._lock:
            owners = list(self._served)
        for owner in owners:
            self.stop(owner)
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
