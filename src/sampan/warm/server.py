"""The warm fork server: a single-threaded helper that forks per-container monitors.

sampand starts it (``engine/zygote.py``) as ``python -I -S``: it imports the runtime and
the monitor once, freezes its objects out of the garbage collector's reach (so forked
children share its pages instead of copying them on the first collection) and then, per
request, double-forks a monitor (``monitor.py``) in its own session, as conmon is:
sampand, the children's subreaper, adopts it, and it outlives both sampand and this helper.
Nothing of the engine is imported here (not even threading, whose after-fork hooks would
dirty some 400 KiB of every monitor's memory).
"""

from __future__ import annotations

import os

from ..kernel import unixsock
from ..oci import jsonio as json

_MAX_REQUEST = 1 << 16


def serve(fd: int) -> None:
    """The helper's loop (in its own process)."""
    import gc
    import termios  # noqa: F401 - for containers with a terminal (runtime/container.py)

    from ..cgroups import devices, v1, v2  # noqa: F401 - imported once here, not per container
    from ..kernel import caps, seccomp_bpf  # noqa: F401
    from ..kernel import syscalls as k
    from ..oci.decode import prepare
    from ..oci.spec import Spec
    from ..runtime import container, init  # noqa: F401 - init: what its children run
    from ..runtime.sealed import exe_is_protected
    from . import monitor

    if not exe_is_protected():  # sampand starts it from a protected copy; never otherwise
        os.write(2, b"sampan.warm.server: not running from a protected copy of the "
                    b"interpreter (CVE-2019-5736): refusing to create containers\n")
        return
    sock = unixsock.from_fd(fd)
    k.set_name("sampan-warm")  # not the number of the fd it was executed through
    caps.last_cap()
    prepare(Spec)  # what every container's spec decode would resolve again
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
                    monitor.run(json.loads(payload), fds[0])
            finally:
                os._exit(0)
        os.close(fds[0])
        os.waitpid(middle, 0)
