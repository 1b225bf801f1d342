"""sampand: the engine daemon, serving the Docker Engine API.

Configured as dockerd is: daemon.json (``--config-file``, default /etc/sampan/daemon.json)
and the matching flags, a key given in both being an error. Containers keep running when
it stops (each has its own monitor) and are adopted again when it starts, unless
``live-restore`` is false.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import fcntl
import logging
import os
import signal
import sys
from contextlib import suppress
from typing import TYPE_CHECKING, Any, NoReturn

from .. import __version__
from ..engine.daemonconfig import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_HOST,
    MONITORS,
    ConfigError,
    DaemonConfig,
    key_value,
    load_file,
    merge,
    pool_flag,
    ulimit_flag,
)

if TYPE_CHECKING:
    from ..engine import Engine

SHUTDOWN_TIMEOUT = 5.0  # for requests in flight (waits, follows, attaches) at shutdown
log = logging.getLogger("sampand")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # a bad flag exits 1, as a bad key does
        self.print_usage(sys.stderr)
        self.exit(1, f"sampand: {message}\n")


def _parser() -> argparse.ArgumentParser:
    """Every flag that has a daemon.json key stores under that key (dest), default None,
    so that the flags actually given can be told apart."""
    p = _Parser(prog="sampand", description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--config-file", default=None,
        help=f"daemon configuration file (default {DEFAULT_CONFIG_FILE})")
    add("-H", "--host", dest="hosts", action="append",
        help=f"socket to listen on, repeatable: unix:///path, tcp://host:port (mutual TLS "
             f"only), fd:// (systemd) (default {DEFAULT_HOST})")
    add("--data-root", dest="data-root", help="images and containers (default /var/lib/sampan)")
    add("--exec-root", dest="exec-root",
        help="runtime state, exit files, attach sockets (default /run/sampan)")
    add("--insecure-registry", dest="insecure-registries", action="append",
        help="registry reached over plain HTTP (host[:port] or CIDR), repeatable")
    add("--registry-mirror", dest="registry-mirrors", action="append",
        help="preferred registry mirror, repeatable")
    add("--log-driver", dest="log-driver", help="default log driver (json-file)")
    add("--log-opt", dest="log-opts", action="append", help="default log option k=v")
    add("--default-address-pool", dest="default-address-pools", action="append",
        help="pool for bridge networks: base=172.30.0.0/16,size=24")
    add("-b", "--bridge", dest="bridge",
        help="the default network's bridge (default sampan0); its nft table is named after it")
    add("--firewall-backend", dest="firewall-backend", choices=("iptables", "nftables"),
        help="packet filter for NAT and published ports (default nftables where nft exists)")
    add("--add-runtime", dest="runtimes", action="append",
        help="register an OCI runtime: name=path")
    add("--default-runtime", dest="default-runtime",
        help="runtime of containers that name none (default sampan-runtime)")
    add("--live-restore", dest="live-restore", nargs="?", const=True, type=_bool,
        help="keep containers running when sampand stops (default true)")
    add("--userns-remap", dest="userns-remap",
        help="map containers' root to a user's /etc/subuid range: default | user[:group]")
    add("--default-ulimit", dest="default-ulimits", action="append",
        help="default ulimit of containers: name=soft[:hard]")
    add("-D", "--debug", dest="debug", action="store_const", const=True)
    add("--label", dest="labels", action="append", help="daemon label key=value, repeatable")
    add("-G", "--group", dest="group", help="group of the unix sockets (default sampan)")
    add("--cgroup-parent", dest="cgroup-parent",
        help="parent cgroup of the containers' cgroups (default /sampan)")
    add("--tls", dest="tls", action="store_const", const=True, help="serve TLS")
    add("--tlsverify", dest="tlsverify", action="store_const", const=True,
        help="serve TLS and require client certificates signed by --tlscacert")
    add("--tlscacert", dest="tlscacert", help="CA that signs client certificates")
    add("--tlscert", dest="tlscert", help="server certificate")
    add("--tlskey", dest="tlskey", help="server key")
    add("-p", "--pidfile", dest="pidfile")
    add("--seccomp-profile", dest="seccomp-profile",
        help="default seccomp profile (docker's format, or 'unconfined')")
    add("--no-new-privileges", dest="no-new-privileges", action="store_const", const=True,
        help="set no_new_privs in new containers")
    add("--conmon", default="conmon", help="conmon binary")
    add("--monitor", dest="monitor", choices=MONITORS,
        help="per-container monitor: sampan's own, forked from a warm helper (default; "
             "containers of other runtimes and exec sessions still use conmon), or conmon")
    add("-v", "--version", action="version", version=f"sampand {__version__}")
    return p


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def _flags(ns: argparse.Namespace) -> dict[str, Any]:
    """The flags given, by daemon.json key, in daemon.json's shapes."""
    raw = {k: v for k, v in vars(ns).items()
           if v is not None and k not in ("config_file", "conmon")}
    if "log-opts" in raw:
        raw["log-opts"] = dict(key_value(v, "log-opt") for v in raw["log-opts"])
    if "default-address-pools" in raw:
        raw["default-address-pools"] = [pool_flag(v) for v in raw["default-address-pools"]]
    if "runtimes" in raw:
        raw["runtimes"] = {name: {"path": path} for name, path in
                           (key_value(v, "add-runtime") for v in raw["runtimes"])}
    if "default-ulimits" in raw:
        raw["default-ulimits"] = dict(ulimit_flag(v) for v in raw["default-ulimits"])
    return raw


def configure(argv: list[str] | None = None) -> tuple[DaemonConfig, argparse.Namespace]:
    """The merged configuration; ConfigError says what is wrong, naming the key."""
    ns = _parser().parse_args(argv)
    path = ns.config_file or DEFAULT_CONFIG_FILE
    flags = _flags(ns)
    try:
        file = load_file(path, required=ns.config_file is not None)
    except ConfigError as exc:
        raise ConfigError(f"unable to configure the daemon with file {path}: {exc}") from None
    try:
        config = merge(flags, file)
    except ConfigError as exc:
        where = f" with file {path}" if file else ""
        raise ConfigError(f"unable to configure the daemon{where}: {exc}") from None
    if not config.hosts:
        config.hosts = [DEFAULT_HOST]
    return config, ns


def lock(exec_root: str) -> int:
    """Hold <exec-root>/sampand.lock for our lifetime: one daemon per exec root."""
    os.makedirs(exec_root, mode=0o711, exist_ok=True)
    fd = os.open(os.path.join(exec_root, "sampand.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"another sampand is running with exec root {exec_root}") from None
    return fd


def _collect_garbage(engine: Engine) -> None:
    """What a crash left in the image store (unpack snapshots, blobs and layers nothing
    holds, temporary files), removed before the first request can start a pull."""
    try:
        removed = engine.images.gc()
    except Exception as exc:  # (a layer it cannot remove now is left for the next start)
        log.warning("image store garbage collection: %s", exc)
        return
    if removed["snapshots"] or removed["blobs"]:
        log.info("removed %d snapshots and %d blobs nothing holds",
                 len(removed["snapshots"]), len(removed["blobs"]))


async def serve(config: DaemonConfig, conmon: str, path: str = DEFAULT_CONFIG_FILE,
                flags: dict[str, Any] | None = None) -> None:
    from aiohttp import web

    from ..api import make_app
    from ..api.listeners import TLSOptions, listen_backlog, open_listeners
    from ..engine import Engine
    from ..engine.daemonconfig import socket_group

    lock(os.path.abspath(config.exec_root))
    # --tls alone (server-only TLS) is not enough for TCP: sampand insists on --tlsverify.
    tls = TLSOptions(verify=config.tlsverify, cacert=config.tlscacert, cert=config.tlscert,
                     key=config.tlskey)
    listeners = open_listeners(config.hosts, socket_group(config), tls)
    options = config.engine_options(conmon)
    engine = Engine(options)
    await engine.start()
    app = make_app(engine)  # (the build cache it opens holds layers no image records)
    await asyncio.to_thread(_collect_garbage, engine)
    runner = web.AppRunner(app, access_log=log if config.debug else None,
                           handle_signals=False)
    await runner.setup()
    for listener in listeners:
        site = web.SockSite(runner, listener.sock, ssl_context=listener.ssl_context,
                            shutdown_timeout=SHUTDOWN_TIMEOUT, backlog=listen_backlog())
        await site.start()
        log.info("sampand %s listening on %s", __version__, listener.host)
    if config.pidfile:
        with open(config.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    current = config

    def on_hup() -> None:  # dockerd's reload of daemon.json's reloadable keys
        nonlocal current
        from ..engine.reload import reload

        log.info("SIGHUP: reloading the configuration from %s", path)
        current = reload(engine, current, path, flags or {}) or current

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await stopping.wait()
    if engine.options.live_restore:
        log.info("shutting down (containers keep running)")
    else:
        log.info("shutting down: stopping the containers (live-restore is off)")
        await engine.stop_all()
    await runner.cleanup()
    engine.close()
    for listener in listeners:
        listener.close()
    if config.pidfile:
        with suppress(FileNotFoundError):
            os.unlink(config.pidfile)


def main(argv: list[str] | None = None) -> int:
    try:
        config, ns = configure(argv)
    except ConfigError as exc:
        print(f"sampand: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.DEBUG if config.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if os.geteuid() != 0:
        print("sampand: must run as root", file=sys.stderr)
        return 1
    # As dockerd's SIGUSR1: every thread's stack to the log, the daemon going on; written
    # by the interpreter's C handler, so it works while the event loop is stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        asyncio.run(serve(config, ns.conmon, ns.config_file or DEFAULT_CONFIG_FILE,
                          _flags(ns)))
    except ConfigError as exc:
        print(f"sampand: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
