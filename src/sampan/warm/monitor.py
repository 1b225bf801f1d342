"""sampan's own per-container monitor, forked warm: conmon's job without conmon.

The helper (``server.py``) forks one of these per container with the runtime's modules
already imported, so a container's start pays no interpreter start-up and no imports: the
monitor creates the container in-process (``Runtime.create``, the container's init is its
child) and then does for the engine what conmon does, with conmon's files and formats, so
the rest of the engine cannot tell them apart:

- the container's stdout and stderr (pipes, or the pty's master) go to the k8s-file
  journal (``<time> stdout|stderr F|P <data>``), replaced by a fresh file past the size
  limit, and to every client of the attach socket (SOCK_SEQPACKET, one tag byte 2 or 3
  then the data); what a client writes goes to the container's stdin, and a client's
  end of input closes that stdin unless it is left open;
- ``<bundle>/winsz`` takes "<height> <width>" lines and resizes the pty;
- the exit code goes to ``<exit-dir>/<id>`` (128+n for signal n), ``oom`` to the persist
  directory when the kernel OOM-killed a process of the container; then it exits.
"""

from __future__ import annotations

import _socket
import fcntl
import os
import select
import struct
import termios
import time
from contextlib import suppress

from ..kernel import signals
from ..kernel import syscalls as k
from ..oci import jsonio as json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ATTACH_STDOUT, ATTACH_STDERR = 2, 3
_TAGS = {ATTACH_STDOUT: b"stdout", ATTACH_STDERR: b"stderr"}
_CHUNK = 65536


class Journal:
    """The k8s-file journal conmon writes: one line per line of output, P for a part."""

    def __init__(self, path: str, size_max: int) -> None:
        self.path, self.size_max = path, size_max
        self.fd = -1
        self.size = 0
        if path:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                              0o600)
            self.size = os.fstat(self.fd).st_size

    def write(self, tag: int, data: bytes) -> None:
        if self.fd < 0 or not data:
            return
        now = time.time_ns()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)).encode() + \
            b".%09dZ " % (now % 10**9) + _TAGS[tag]
        lines = data.split(b"\n")
        out = [stamp + b" F " + line + b"\n" for line in lines[:-1]]
        if lines[-1]:
            out.append(stamp + b" P " + lines[-1] + b"\n")
        blob = b"".join(out)
        try:
            if self.size_max > 0 and self.size + len(blob) > self.size_max:
                self._replace()
            _write_all(self.fd, blob)
        except OSError:
            # A full disk (or any write error) loses this output for the log, as conmon
            # does, but never the monitor: attached clients still get it, and the exit code
            # is still recorded. A line cut short is taken back, so the journal stays whole.
            with suppress(OSError):
                os.ftruncate(self.fd, self.size)
            return
        self.size += len(blob)

    def _replace(self) -> None:
        """A fresh journal under the same name (the shipper notices the new inode)."""
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                     0o600)
        try:
            os.rename(tmp, self.path)
        except OSError:
            os.close(fd)
            raise
        os.close(self.fd)
        self.fd, self.size = fd, 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Monitor:
    """One container's monitor, from ``create`` to its exit code."""

    def __init__(self, req: dict[str, Any]) -> None:
        self.req = req
        self.cid: str = req["id"]
        self.poll = select.poll()
        self.outputs: dict[int, int] = {}  # fd → attach tag
        self.stdin = -1  # where client input goes (a pipe's write end or the pty master)
        self.pty = -1
        self.clients: dict[int, _socket.socket] = {}
        self.inputs_open: set[int] = set()  # clients whose input still flows
        self.pid = 0
        self.status: int | None = None

    # ---- set-up ---------------------------------------------------------------------------

    def create(self) -> int:
        """Create the container with our stdio plumbing as its fds 0-2; its pid.

        The work is done in a child (the "creator") that exits when the container is
        created: the memory it dirties (the spec decoded, the runtime's bookkeeping) goes
        with it, so the monitor stays small. We are the subreaper the container's init is
        reparented to.
        """
        from ..kernel import unixsock

        req = self.req
        k.set_child_subreaper()
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        stdio = [null, null, null]
        theirs: list[int] = []  # the creator's ends, closed here once it has them
        if not req["tty"]:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            self.outputs = {out_r: ATTACH_STDOUT, err_r: ATTACH_STDERR}
            stdio[1:] = [out_w, err_w]
            if req["stdin"]:
                stdio[0], self.stdin = os.pipe2(os.O_CLOEXEC)
            theirs = [fd for fd in stdio if fd != null]
        ours, reply = unixsock.seqpacket_pair()
        creator = os.fork()
        if creator == 0:
            ours.close()
            _create(req, stdio, reply)
        reply.close()
        for fd in (*theirs, null):
            os.close(fd)
        try:
            payload, fds = unixsock.recv_fds(ours, 65536, 1)
        finally:
            ours.close()
            os.waitpid(creator, 0)
        answer = json.loads(payload or b'{"error": "the runtime exited during create"}')
        if "error" in answer:
            raise RuntimeError(answer["error"])
        if fds:
            self.pty = self.stdin = fds[0]
            self.outputs = {fds[0]: ATTACH_STDOUT}
        self.pid = int(answer["pid"])
        return self.pid

    def listen(self) -> None:
        """The attach socket (through <socket-dir>/<id[:12]>, a link to the bundle) and the
        winsz fifo, before the engine hears of the container."""
        req = self.req
        link = os.path.join(req["socket_dir"], self.cid[:12])
        with suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(req["bundle"], link)
        path = os.path.join(link, "attach")
        with suppress(FileNotFoundError):
            os.unlink(path)
        # `_socket`, not `socket`: that one imports enum and re into every monitor
        self.server = _socket.socket(_socket.AF_UNIX,
                                     _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        self.server.bind(path)
        self.server.listen(16)
        self.server.setblocking(False)
        self.poll.register(self.server.fileno(), select.POLLIN)
        self.winsz = -1
        if req["tty"]:
            fifo = os.path.join(req["bundle"], "winsz")
            with suppress(FileNotFoundError):
                os.unlink(fifo)
            os.mkfifo(fifo, 0o600)
            self.winsz = os.open(fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            self.poll.register(self.winsz, select.POLLIN)

    # ---- the loop ---------------------------------------------------------------------------

    def run(self, journal: Journal) -> int:
        """Serve until the container has exited and its output is drained; its exit code."""
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signals.set_wakeup_fd(wake_w)
        signals.install(signals.SIGCHLD, lambda *_: None)
        self.poll.register(wake_r, select.POLLIN)
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.poll.register(fd, select.POLLIN)
        self._reap()
        while self.outputs or self.status is None:
            for fd, events in self.poll.poll():
                if fd == wake_r:
                    with suppress(BlockingIOError):
                        os.read(wake_r, 512)
                    self._reap()
                elif fd in self.outputs:
                    self._output(fd, journal)
                elif fd == self.server.fileno():
                    self._accept()
                elif fd in self.clients:
                    self._input(fd, events)
                elif fd == self.winsz:
                    self._resize()
            if self.status is not None and self.pty >= 0:
                # a pty's master reads EIO once the last slave holder is gone; drain it
                self._drain_all(journal)
        return self.status if self.status is not None else 255

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = os.waitstatus_to_exitcode(status)
                if self.status < 0:
                    self.status = 128 - self.status

    def _output(self, fd: int, journal: Journal) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty has no slave left
            data = b""
        if not data:
            self._close_output(fd)
            return
        tag = self.outputs[fd]
        journal.write(tag, data)
        packet = bytes([tag]) + data
        for cfd, client in list(self.clients.items()):
            try:
                client.send(packet)
            except BlockingIOError:
                pass  # a slow client loses output rather than stalling the container
            except OSError:
                self._drop(cfd)

    def _drain_all(self, journal: Journal) -> None:
        for fd in list(self.outputs):
            while fd in self.outputs:
                try:
                    data = os.read(fd, _CHUNK)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._close_output(fd)
                    break
                journal.write(self.outputs[fd], data)
                for cfd, client in list(self.clients.items()):
                    try:
                        client.send(bytes([self.outputs[fd]]) + data)
                    except OSError:
                        self._drop(cfd)
        self.outputs.clear()

    def _close_output(self, fd: int) -> None:
        self.outputs.pop(fd, None)
        with suppress(KeyError, ValueError):
            self.poll.unregister(fd)
        if fd != self.pty:
            os.close(fd)

    def _accept(self) -> None:
        try:
            fd, _ = self.server._accept()  # type: ignore[attr-defined]
        except OSError:
            return
        client = _socket.socket(fileno=fd)
        client.setblocking(False)
        self.clients[fd] = client
        self.inputs_open.add(fd)
        self.poll.register(fd, select.POLLIN)

    def _input(self, fd: int, events: int) -> None:
        client = self.clients[fd]
        try:
            data = client.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if self.stdin >= 0:
                with suppress(OSError):
                    _write_all(self.stdin, data)
            return
        # the client's end of input (or it is gone): stdin closes unless left open
        self.inputs_open.discard(fd)
        with suppress(KeyError, ValueError):
            self.poll.unregister(fd)
        if not self.req["leave_stdin_open"] and self.stdin >= 0 and self.stdin != self.pty:
            os.close(self.stdin)
            self.stdin = -1
        if events & (select.POLLHUP | select.POLLERR):
            self._drop(fd)

    def _drop(self, fd: int) -> None:
        client = self.clients.pop(fd, None)
        self.inputs_open.discard(fd)
        with suppress(KeyError, ValueError):
            self.poll.unregister(fd)
        if client is not None:
            client.close()

    def _resize(self) -> None:
        try:
            data = os.read(self.winsz, 512)
        except OSError:
            return
        for line in data.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and self.pty >= 0:
                with suppress(OSError):
                    fcntl.ioctl(self.pty, termios.TIOCSWINSZ,
                                struct.pack("HHHH", int(parts[0]), int(parts[1]), 0, 0))

    # ---- the end ---------------------------------------------------------------------------

    def finish(self, code: int) -> None:
        req = self.req
        if req["persist_dir"] and self._oom_killed():
            with suppress(OSError), open(os.path.join(req["persist_dir"], "oom"), "w"):
                pass
        path = os.path.join(req["exit_dir"], self.cid)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(str(code))
        os.rename(tmp, path)
        for fd in list(self.clients):
            self._drop(fd)

    def _oom_killed(self) -> bool:
        from ..runtime.container import Runtime

        try:
            return Runtime(self.req["runtime_root"]).oom_killed(self.cid)
        except Exception:  # a state that cannot be read tells of no OOM kill
            return False


def _create(req: dict[str, Any], stdio: list[int], reply: Any) -> None:
    """The creator (a child of the monitor): ``Runtime.create``, answered on ``reply``."""
    from ..kernel import unixsock
    from ..runtime.container import Runtime

    try:
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        started = Runtime(req["runtime_root"]).create(
            req["id"], req["bundle"], pid_file=os.path.join(req["bundle"], "pidfile"),
            detach_terminal=False)
        answer = json.dumps({"pid": started.pid}).encode()
        if started.pty_master >= 0:
            unixsock.send_fds(reply, answer, [started.pty_master])
        else:
            reply.send(answer)
    except BaseException as exc:  # every failure is the engine's to report
        with suppress(OSError):
            reply.send(json.dumps({"error": str(exc) or type(exc).__name__}).encode())
    finally:
        os._exit(0)


def run(req: dict[str, Any], sync_fd: int) -> None:
    """The monitor process's whole life (in a process forked for it; never returns)."""
    code = 1
    try:
        os.setsid()
        # (its comm was the fd number it was executed through: see engine/zygote.py)
        k.set_name("sampan-monitor")
        mon = Monitor(req)
        try:
            journal = Journal(req["log_path"] if req["logging"] else "", req["log_size_max"])
            mon.listen()
            pid = mon.create()
            with open(os.path.join(req["bundle"], "conmon.pid"), "w") as f:
                f.write(f"{os.getpid()}\n")
        except Exception as exc:  # every failure is the engine's to report
            _reply(sync_fd, {"data": -1, "message": str(exc) or type(exc).__name__,
                             "monitor": os.getpid()})
            return
        _reply(sync_fd, {"data": pid, "monitor": os.getpid()})
        mon.finish(mon.run(journal))
        code = 0
    finally:
        os._exit(code)


def _reply(fd: int, message: dict[str, Any]) -> None:
    with suppress(OSError):
        _write_all(fd, json.dumps(message).encode() + b"\n")
    with suppress(OSError):
        os.close(fd)

