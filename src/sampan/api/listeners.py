"""The sockets sampand serves the API on: unix sockets, TCP with mutual TLS, systemd's.

As dockerd: a unix socket is owned by root and the API group (mode 0660); ``fd://`` takes
the sockets systemd passed (LISTEN_PID/LISTEN_FDS, all of them or ``fd://<number|name>``);
TCP is served only with mutual TLS: a client without a certificate signed by the CA is
refused during the handshake, before it can send a request.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
from contextlib import suppress
from dataclasses import dataclass, field

from ..engine.daemonconfig import ConfigError, parse_host

SD_LISTEN_FDS_START = 3


def listen_backlog() -> int:
    """The kernel's own ceiling, as Go's net package (and so dockerd) uses: a burst of
    clients must queue, not fail with EAGAIN as they do against a 128-entry queue."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(128, int(f.read()))
    except (OSError, ValueError):
        return socket.SOMAXCONN


@dataclass
class TLSOptions:
    verify: bool = False
    cacert: str = ""
    cert: str = ""
    key: str = ""


@dataclass
class Listener:
    host: str
    sock: socket.socket
    ssl_context: ssl.SSLContext | None = None
    path: str = ""  # a unix socket we created (and remove at shutdown)
    inode: int = 0

    def close(self) -> None:
        self.sock.close()
        if self.path:
            with suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == self.inode:  # not a successor's socket
                    os.unlink(self.path)


@dataclass
class _Activated:
    """The sockets systemd handed over, each taken at most once."""

    fds: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)


def tls_context(tls: TLSOptions) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by the CA."""
    for key, value in (("tlscacert", tls.cacert), ("tlscert", tls.cert), ("tlskey", tls.key)):
        if not value:
            raise ConfigError(f"{key}: required to serve TCP with --tlsverify")
        if not os.path.isfile(value):
            raise ConfigError(f"{key}: {value}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert, tls.key)
        context.load_verify_locations(cafile=tls.cacert)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"tlscert/tlskey/tlscacert: cannot load: {exc}") from None
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _activated() -> _Activated:
    """LISTEN_FDS for this process (LISTEN_PID must be ours), then forgotten, as
    sd_listen_fds(unset_environment=1) does, so children do not take them too."""
    pid, count = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    names = os.environ.get("LISTEN_FDNAMES", "")
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return _Activated()
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)))
    for fd in fds:
        os.set_inheritable(fd, False)
    return _Activated(fds, names.split(":") if names else [])


def _from_systemd(host: str, which: str, activated: _Activated) -> list[socket.socket]:
    if not activated.fds:
        raise ConfigError(f"hosts: {host}: no sockets were passed by systemd (LISTEN_FDS "
                          "unset or for another process)")
    if not which or which == "*":
        chosen = [fd for fd in activated.fds if fd not in activated.taken]
    elif which.isdigit():
        if int(which) not in activated.fds:
            raise ConfigError(f"hosts: {host}: fd {which} was not passed by systemd "
                              f"(passed: {activated.fds})")
        chosen = [int(which)]
    else:
        chosen = [fd for fd, name in zip(activated.fds, activated.names, strict=False)
                  if name == which]
        if not chosen:
            raise ConfigError(f"hosts: {host}: no socket named {which!r} was passed by "
                              "systemd")
    activated.taken.update(chosen)
    return [socket.socket(fileno=fd) for fd in chosen]


def _unix(path: str, gid: int) -> tuple[socket.socket, int]:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # a stale socket of an earlier run (the lock says none runs)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)  # never reachable by others, not even for an instant
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chown(path, 0, gid)
        os.chmod(path, 0o660)
        sock.listen(listen_backlog())
    except OSError as exc:
        sock.close()
        raise ConfigError(f"hosts: unix://{path}: {exc.strerror}") from None
    return sock, os.stat(path).st_ino


def _tcp(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"hosts: tcp://{address}: {exc}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(listen_backlog())
    except OSError as exc:
        sock.close()
        raise ConfigError(f"hosts: tcp://{address}: {exc.strerror}") from None
    return sock


def _require_mtls(host: str, tls: TLSOptions) -> ssl.SSLContext:
    if not tls.verify:
        raise ConfigError(f"hosts: {host}: sampand serves TCP only with mutual TLS: "
                          "set --tlsverify with --tlscacert, --tlscert and --tlskey")
    return tls_context(tls)


def open_listeners(hosts: list[str], gid: int, tls: TLSOptions) -> list[Listener]:
    """Bind every host; on any error close what was opened and raise ConfigError."""
    out: list[Listener] = []
    activated = _activated() if any(h.startswith("fd://") for h in hosts) else _Activated()
    try:
        for host in hosts:
            scheme, address = parse_host(host)
            if scheme == "unix":
                sock, inode = _unix(address, gid)
                out.append(Listener(host, sock, path=address, inode=inode))
            elif scheme == "tcp":
                context = _require_mtls(host, tls)  # before binding anything
                out.append(Listener(host, _tcp(address), context))
            else:
                for sock in _from_systemd(host, address, activated):
                    context = None
                    if sock.family in (socket.AF_INET, socket.AF_INET6):
                        context = _require_mtls(host, tls)
                    out.append(Listener(host, sock, context))
    except BaseException:
        for listener in out:
            listener.close()
        raise
    return out
