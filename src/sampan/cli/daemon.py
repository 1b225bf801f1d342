"""sampand: the engine daemon, serving the Docker Engine API on a Unix socket.

Containers keep running when it stops (each has its own monitor) and are adopted again
when it starts: live restore is always on.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import stat
import sys
from contextlib import suppress

from aiohttp import web

from .. import __version__
from ..api import make_app
from ..engine import Engine, EngineOptions
from ..engine.engine import DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT, default_runtime
from ..engine.spec import CGROUP_PARENT

DEFAULT_HOST = "unix:///run/sampan/sampan.sock"
SHUTDOWN_TIMEOUT = 5.0  # for requests in flight (waits, follows, attaches) at shutdown
log = logging.getLogger("sampand")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sampand", description=__doc__.splitlines()[0])
    p.add_argument("-H", "--host", default=DEFAULT_HOST,
                   help=f"socket to listen on (unix:///path; default {DEFAULT_HOST})")
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT,
                   help=f"images and containers (default {DEFAULT_DATA_ROOT})")
    p.add_argument("--exec-root", default=DEFAULT_EXEC_ROOT,
                   help=f"runtime state, exit files, attach sockets (default "
                        f"{DEFAULT_EXEC_ROOT})")
    p.add_argument("--runtime", default=None,
                   help="OCI runtime binary (default: sampan-runtime)")
    p.add_argument("--conmon", default="conmon", help="conmon binary")
    p.add_argument("--cgroup-parent", default=CGROUP_PARENT,
                   help=f"parent cgroup of the containers' cgroups (default {CGROUP_PARENT})")
    p.add_argument("--pidfile", default=None)
    p.add_argument("-D", "--debug", action="store_true")
    p.add_argument("-v", "--version", action="version", version=f"sampand {__version__}")
    return p.parse_args(argv)


def socket_path(host: str) -> str:
    if not host.startswith("unix://"):
        raise SystemExit(f"sampand: unsupported host {host!r}: only unix:///path for now")
    path = host.removeprefix("unix://")
    if not path.startswith("/"):
        raise SystemExit(f"sampand: {host!r}: the socket path must be absolute")
    return path


def lock(exec_root: str) -> int:
    """Hold <exec-root>/sampand.lock for our lifetime: one daemon per exec root."""
    os.makedirs(exec_root, mode=0o711, exist_ok=True)
    fd = os.open(os.path.join(exec_root, "sampand.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(f"sampand: another sampand is running with exec root {exec_root}") \
            from None
    return fd


async def serve(args: argparse.Namespace) -> None:
    path = socket_path(args.host)
    lock(os.path.abspath(args.exec_root))
    options = EngineOptions(data_root=os.path.abspath(args.data_root),
                            exec_root=os.path.abspath(args.exec_root),
                            runtime=args.runtime or default_runtime(), conmon=args.conmon,
                            cgroup_parent=args.cgroup_parent)
    engine = Engine(options)
    await engine.start()
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    runner = web.AppRunner(make_app(engine), access_log=log if args.debug else None,
                           handle_signals=False)
    await runner.setup()
    site = web.UnixSite(runner, path, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await site.start()
    os.chmod(path, 0o660)
    ours = os.stat(path).st_ino
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    log.info("sampand %s listening on %s", __version__, args.host)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down (containers keep running)")
    await runner.cleanup()
    engine.close()
    with suppress(FileNotFoundError):
        if os.stat(path).st_ino == ours:  # not a successor's socket
            os.unlink(path)
    if args.pidfile:
        with suppress(FileNotFoundError):
            os.unlink(args.pidfile)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if os.geteuid() != 0:
        print("sampand: must run as root", file=sys.stderr)
        return 1
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
