"""The warm fork server behind ``sampand --monitor=sampan``.

sampand is threaded and must never fork; a fresh ``sampan-runtime`` per container pays an
interpreter's start-up and the runtime's imports (most of a container's start). So sampand
starts this helper once: a single-threaded interpreter (``-I -S``) that imports the
runtime and the monitor, freezes its objects out of the garbage collector's reach (so the
forked children share its pages instead of copying them on the first collection) and
then, per request, forks a monitor (``warmmonitor``) that creates the container and
watches it. The monitor is double-forked and in its own session, as conmon is: sampand,
the children's subreaper, adopts it, and it outlives both sampand and this helper.

A request is one SOCK_SEQPACKET message on a socketpair: the launch as JSON with the
write end of a sync pipe, on which the monitor answers as conmon does (``{"data": pid}``
or ``{"data": -1, "message": ...}``). The helper exits when sampand closes its end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

from ..kernel import unixsock

_MAX_REQUEST = 1 << 16


def serve(fd: int) -> None:
    """The helper's loop (in its own process)."""
    import gc

    from ..runtime import container  # noqa: F401 - imported once here, not per container
    from . import warmmonitor

    sock = unixsock.from_fd(fd)
    gc.collect()
    gc.freeze()
    while True:
        try:
            payload, fds = unixsock.recv_fds(sock, _MAX_REQUEST, 1)
        except InterruptedError:
            continue
        if not payload:
            return
        if not fds:
            continue
        middle = os.fork()
        if middle == 0:
            try:
                sock.close()
                null = os.open(os.devnull, os.O_RDWR)
                for std in (0, 1, 2):
                    os.dup2(null, std)
                os.close(null)
                if os.fork() == 0:
                    warmmonitor.run(json.loads(payload), fds[0])
            finally:
                os._exit(0)
        os.close(fds[0])
        os.waitpid(middle, 0)


class Zygote:
    """sampand's side: starts the helper on first use, sends it launches."""

    def __init__(self, exec_root: str = "") -> None:
        # on the helper's command line (inherited by the monitors) only so that they can
        # be told apart, as conmons are by their arguments
        self.exec_root = exec_root
        self._lock = threading.Lock()
        self._sock: unixsock.Socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _ensure(self) -> unixsock.Socket:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return self._sock
        self.close()
        ours, theirs = unixsock.seqpacket_pair()
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (f"import sys; sys.path.insert(0, {src!r}); "
                f"from sampan.engine.zygote import serve; serve({theirs.fileno()})")
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code, self.exec_root], pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, close_fds=True)
        theirs.close()
        self._sock = ours
        return ours

    def launch(self, request: dict[str, Any], sync_fd: int) -> None:
        """Hand a launch to the helper; the monitor answers on ``sync_fd``'s pipe."""
        payload = json.dumps(request).encode()
        with self._lock:
            sock = self._ensure()
            unixsock.send_fds(sock, payload, [sync_fd])

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
