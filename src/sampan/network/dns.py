"""The embedded DNS server of user networks: container names answered, the rest forwarded.

As dockerd's 127.0.0.11: for each container on a user network the daemon opens a UDP
socket *inside the container's namespace*, bound to 127.0.0.11:53, and serves every
such socket from one thread. A query for a name registered on one of the container's
networks (container name, alias, short id) is answered from memory with A records;
any other query is relayed to the upstream resolvers from the daemon's own namespace,
so a host resolver on loopback (systemd-resolved's 127.0.0.53) keeps working. Names of
other networks are not answered: they resolve only as the upstream resolves them.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from sampan.network import netlink

ADDRESS = "127.0.0.11"
TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_RD = 0x0100
FLAG_RA = 0x0080
RCODE_SERVFAIL = 2
TTL = 600
FORWARD_TIMEOUT = 5.0
_HEADER = struct.Struct("!HHHHHH")


@dataclass(frozen=True)
class Question:
    """The first question of a query, and where it ends in the packet."""

    name: str
    qtype: int
    qclass: int
    end: int


def parse_question(packet: bytes) -> Question | None:
    """The question of a standard query, or None for anything this server passes on."""
    if len(packet) < _HEADER.size:
        return None
    _id, flags, qdcount, _an, _ns, _ar = _HEADER.unpack_from(packet)
    if flags & FLAG_QR or (flags >> 11) & 0xF or qdcount != 1:
        return None
    labels, pos = [], _HEADER.size
    while True:
        if pos >= len(packet):
            return None
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0 or pos + length > len(packet):
            return None
        labels.append(packet[pos:pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack_from("!HH", packet, pos)
    return Question(".".join(labels).lower(), qtype, qclass, pos + 4)


Address = IPv4Address | IPv6Address


def answer(packet: bytes, question: Question, addresses: Sequence[Address]) -> bytes:
    """An authoritative answer to ``packet``: A records for an A query, AAAA for AAAA
    (a name's addresses of the other family give an empty answer, not an error)."""
    (qid, flags) = struct.unpack_from("!HH", packet)
    version = {TYPE_A: 4, TYPE_AAAA: 6}.get(question.qtype)
    records = [a for a in addresses if a.version == version]
    header = _HEADER.pack(qid, FLAG_QR | FLAG_AA | FLAG_RA | (flags & FLAG_RD), 1,
                          len(records), 0, 0)
    body = packet[_HEADER.size:question.end]
    for address in records:
        # name: a pointer to the question's name at offset 12
        body += struct.pack("!HHHIH", 0xC00C, question.qtype, CLASS_IN, TTL,
                            len(address.packed)) + address.packed
    return header + body


def servfail(packet: bytes) -> bytes:
    (qid, flags) = struct.unpack_from("!HH", packet)
    return _HEADER.pack(qid, FLAG_QR | FLAG_RA | (flags & FLAG_RD) | RCODE_SERVFAIL, 0, 0, 0, 0)


@dataclass
class _Forward:
    """A relayed query: the container socket and peer to answer, and when to give up."""

    client: socket.socket
    peer: tuple[str, int]
    query: bytes
    deadline: float
    upstreams: list[tuple[str, int]] = field(default_factory=list)


class DnsServer:
    """One thread serving every container's 127.0.0.11 socket."""

    def __init__(self, upstreams: Sequence[tuple[str, int]] = ()) -> None:
        self.upstreams = list(upstreams)
        self._records: dict[str, dict[str, list[Address]]] = {}
        self._clients: dict[str, socket.socket] = {}
        self._networks_of: dict[socket.socket, tuple[str, ...]] = {}
        self._upstreams_of: dict[socket.socket, list[tuple[str, int]]] = {}
        self._forwards: dict[socket.socket, _Forward] = {}
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stopping = False
        self._todo: list[tuple[str, socket.socket]] = []
        self._thread = threading.Thread(target=self._loop, name="sampan-dns", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close every socket."""
        self._stopping = True
        os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join()
        self._run_todo()
        for sock in [*self._networks_of, *self._forwards]:
            sock.close()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def add_name(self, network: str, name: str, address: Address) -> None:
        with self._lock:
            names = self._records.setdefault(network, {})
            names.setdefault(name.lower(), []).append(address)

    def remove_address(self, network: str, address: Address) -> None:
        """Forget every name of ``address`` on ``network`` (a container leaving it)."""
        with self._lock:
            names = self._records.get(network, {})
            for name in list(names):
                names[name] = [a for a in names[name] if a != address]
                if not names[name]:
                    del names[name]

    def serve(self, container_id: str, netns: str | int, networks: Sequence[str],
              upstreams: Sequence[tuple[str, int]] = ()) -> None:
        """Listen on 127.0.0.11:53 inside ``netns`` for a container on ``networks``;
        other names go to ``upstreams`` (the container's ``--dns``) or the server's."""
        with netlink.netns_fd(netns) as fd, netlink.in_netns(fd):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((ADDRESS, 53))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        with self._lock:
            self._clients[container_id] = sock
            self._networks_of[sock] = tuple(networks)
            if upstreams:
                self._upstreams_of[sock] = list(upstreams)
        self._later("register", sock)

    def set_networks(self, container_id: str, networks: Sequence[str]) -> None:
        """The networks whose names ``container_id`` sees (after a connect or disconnect)."""
        with self._lock:
            self._networks_of[self._clients[container_id]] = tuple(networks)

    def unserve(self, container_id: str) -> None:
        with self._lock:
            sock = self._clients.pop(container_id, None)
            if sock is None:
                return
            del self._networks_of[sock]
            self._upstreams_of.pop(sock, None)
        self._later("close", sock)

    def _later(self, action: str, sock: socket.socket) -> None:
        """Have the serving thread (the selector's only user) register or close ``sock``."""
        with self._lock:
            self._todo.append((action, sock))
        os.write(self._wake_w, b"x")

    def _run_todo(self) -> None:
        with self._lock:
            todo, self._todo = self._todo, []
        for action, sock in todo:
            if action == "register":
                self._selector.register(sock, selectors.EVENT_READ)
            else:
                self._selector.unregister(sock)
                sock.close()

    def _lookup(self, networks: tuple[str, ...], name: str) -> list[Address] | None:
        with self._lock:
            for network in networks:
                found = self._records.get(network, {}).get(name)
                if found:
                    return list(found)
        return None

    def _loop(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(timeout=1.0):
                if key.fileobj == self._wake_r:
                    os.read(self._wake_r, 4096)
                    self._run_todo()
                    continue
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock in self._forwards:
                    self._relay_back(sock)
                elif sock in self._networks_of:
                    self._query(sock)
            self._expire()

    def _query(self, sock: socket.socket) -> None:
        try:
            packet, peer = sock.recvfrom(4096)
        except OSError:
            return
        question = parse_question(packet)
        if question is not None and question.qclass == CLASS_IN:
            found = self._lookup(self._networks_of.get(sock, ()), question.name)
            if found is not None:
                self._send(sock, answer(packet, question, found), peer)
                return
        if question is None and len(packet) < _HEADER.size:
            return
        upstreams = self._upstreams_of.get(sock) or self.upstreams
        self._forward(_Forward(sock, peer, packet, 0.0, list(upstreams)))

    def _forward(self, fwd: _Forward) -> None:
        """Send the query to the next upstream, or SERVFAIL when none is left."""
        while fwd.upstreams:
            upstream = fwd.upstreams.pop(0)
            out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                out.setblocking(False)
                out.connect(upstream)
                out.send(fwd.query)
            except OSError:
                out.close()
                continue
            fwd.deadline = time.monotonic() + FORWARD_TIMEOUT
            self._forwards[out] = fwd
            self._selector.register(out, selectors.EVENT_READ)
            return
        self._send(fwd.client, servfail(fwd.query), fwd.peer)

    def _drop_forward(self, out: socket.socket) -> _Forward:
        fwd = self._forwards.pop(out)
        self._selector.unregister(out)
        out.close()
        return fwd

    def _relay_back(self, out: socket.socket) -> None:
        try:
            reply = out.recv(65535)
        except OSError:  # refused: try the next upstream
            fwd = self._drop_forward(out)
            self._forward(fwd)
            return
        fwd = self._drop_forward(out)
        if fwd.client in self._networks_of:
            self._send(fwd.client, reply, fwd.peer)

    def _expire(self) -> None:
        now = time.monotonic()
        for out, fwd in list(self._forwards.items()):
            if fwd.deadline < now:
                self._drop_forward(out)
                self._forward(fwd)

    @staticmethod
    def _send(sock: socket.socket, packet: bytes, peer: tuple[str, int]) -> None:
        # the container went away or its buffer is full: it will retry
        with suppress(OSError):
            sock.sendto(packet, peer)
