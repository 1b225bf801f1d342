"""Staying with a container process in the foreground (``run`` and ``exec`` without -d).

The runtime forwards the signals it receives, copies between its terminal and the pty
master when the process has a TTY (resizing it on SIGWINCH), reaps what is reparented to
it as a subreaper, and returns the process's exit status as a shell would report it.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import select
import struct
import sys

from ..kernel import signals as signal
from ..kernel import syscalls as k
from . import warmup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG, signal.SIGKILL,
                  signal.SIGSTOP, signal.SIGPIPE}


def exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _copy_winsize(src: int, dst: int) -> None:
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _raw_terminal(fd: int) -> list[Any] | None:
    """Put our terminal in raw mode; what to restore, or None if it is no terminal."""
    if fd < 0 or not os.isatty(fd):
        return None
    import termios  # (only with a terminal: shared libraries to load)
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    return saved


def _forwarded() -> set[int]:
    return signal.valid_signals() - _NOT_FORWARDED


def hold() -> None:
    """Block the signals ``wait`` forwards until it runs: one sent between the container's
    start and ``wait`` is then forwarded, instead of killing the runtime."""
    signal.block(_forwarded())


def wait(pid: int, pty_master: int = -1) -> int:
    """Wait for ``pid`` while forwarding signals; return its exit code (128+n if killed)."""
    # The collector is off for the start (scripts/sampan-runtime); this may last. What the
    # start made lives until the exit: frozen, the first collection does not go through
    # it all (about 1 ms, in the middle of the container's start).
    gc.freeze()
    gc.enable()
    warmup.release()  # (killed once the init was placed)
    pidfd = k.pidfd_open(pid)
    rsig, wsig = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(wsig)
    handlers = {}
    for s in signal.valid_signals() - _NOT_FORWARDED | {signal.SIGWINCH}:
        try:
            handlers[s] = signal.install(s, lambda *_: None)
        except (OSError, ValueError):  # the few the C library keeps for itself
            continue
    signal.unblock(_forwarded())  # those held since the start arrive now
    try:
        stdin = sys.stdin.fileno() if pty_master >= 0 else -1
        if pty_master >= 0 and os.isatty(stdin):
            _copy_winsize(stdin, pty_master)
        saved = _raw_terminal(stdin)
        try:
            _loop(pid, pidfd, rsig, pty_master, stdin)
        finally:
            if saved is not None:
                import termios

                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        _, status = os.waitpid(pid, 0)
        _reap_orphans()
        return exit_status(status)
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for s, h in handlers.items():
            signal.install(s, h)
        for fd in (pidfd, rsig, wsig):
            os.close(fd)


def _loop(pid: int, pidfd: int, rsig: int, master: int, stdin: int) -> None:
    readers = [pidfd, rsig]
    if master >= 0:
        readers.append(master)
        if stdin >= 0:
            readers.append(stdin)
    while True:
        try:
            ready, _, _ = select.select(readers, [], [])
        except InterruptedError:
            continue
        if rsig in ready:
            for num in os.read(rsig, 512):
                if num == signal.SIGWINCH and master >= 0 and stdin >= 0:
                    _copy_winsize(stdin, master)
                elif num not in _NOT_FORWARDED:
                    try:
                        os.kill(pid, num)
                    except ProcessLookupError:
                        pass
        if master >= 0 and master in ready and not _pump(master, sys.stdout.fileno()):
            readers.remove(master)
        if stdin >= 0 and stdin in ready and not _pump(stdin, master):
            readers.remove(stdin)
        if pidfd in ready:
            if master >= 0 and master in readers:
                _drain(master, sys.stdout.fileno())
            return


def _pump(src: int, dst: int) -> bool:
    try:
        data = os.read(src, 65536)
    except OSError as exc:
        if exc.errno == errno.EIO:  # the pty's other side closed
            return False
        raise
    if not data:
        return False
    while data:
        data = data[os.write(dst, data):]
    return True


def _drain(master: int, dst: int) -> None:
    while select.select([master], [], [], 0)[0] and _pump(master, dst):
        pass


def _reap_orphans() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
