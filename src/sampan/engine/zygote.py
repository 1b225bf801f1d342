"""sampand's side of the warm fork server (``sampand --monitor=sampan``).

sampand is threaded and must never fork, and a fresh ``sampan-runtime`` per container pays
an interpreter's start-up and the runtime's imports (most of a container's start). So
sampand starts one helper (``sampan.warm.server``) on first use and hands it each launch:
one SOCK_SEQPACKET message on a socketpair, the launch as JSON with the write end of a
sync pipe on which the monitor answers as conmon does (``{"data": pid}`` or
``{"data": -1, "message": ...}``). The helper exits when sampand closes its end.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from ..kernel import unixsock

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
class Zygote:
    """sampand's side: starts the helper on first use, sends it launches."""

    # subprocess and threading are imported here, in sampand, not in the helper: threading's
    # after-fork hooks alone would dirty some 400 KiB of every monitor's memory.
    def __init__(self, exec_root: str = "") -> None:
        import threading

        # on the helper's command line (inherited by the monitors) only so that they can
        # be told apart, as conmons are by their arguments
        self.exec_root = exec_root
        self._lock = threading.Lock()
        self._sock: unixsock.Socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _ensure(self) -> unixsock.Socket:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return self._sock
        import subprocess

        self.close()
        ours, theirs = unixsock.seqpacket_pair()
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (f"import sys; sys.path.insert(0, {src!r}); "
                f"from sampan.warm.server import serve; serve({theirs.fileno()})")
        # From a protected copy of the interpreter (CVE-2019-5736's second half, as
        # sampan-runtime re-executes itself): the monitors it forks create containers, and
        # their stages' /proc/self/exe must not be the host's writable interpreter.
        from ..runtime.sealed import protected_copy

        exe = protected_copy()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", code, self.exec_root],
                executable=f"/proc/self/fd/{exe}", pass_fds=(theirs.fileno(), exe),
                stdin=subprocess.DEVNULL, close_fds=True)
        finally:
            os.close(exe)
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
        import subprocess

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
