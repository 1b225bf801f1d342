"""Containers' life cycle: create, start, stop, kill, wait, remove, attach, and finding them
again after a restart of the daemon.

Each running container has a conmon (``monitor``); the engine watches that process with a
pidfd and, when it exits, reads the exit code it recorded, deletes the runtime's state,
unmounts the root filesystem and wakes the waiters. Records are saved after each change
(``store``), so all of this survives the daemon: containers that ran on stay adopted,
containers that exited meanwhile are found exited, with their exit code.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..cgroups.lockwarm import LockWarmer
from ..images import ImageNotFound, ImageStore
from ..images.store import ImageError
from ..kernel import syscalls as k
from ..runtime.state import awaits_start
from ..snapshots import SnapshotError, mount_all, unmount_all, volatile
from . import health, logs, monitor
from .attach import Attachment
from .config import as_list, check_name, parse_config, parse_host_config, parse_signal
from .daemonconfig import ContainerDefaults
from .errors import Conflict, EngineError, InvalidParameter, NotFound, NotModified
from .mounts import Mounts, copy_up_all
from .names import random_name
from .networking import Networking
from .ociruntime import OCIRuntime
from .record import Container, rfc3339
from .restart import Restarts
from .runtimes import Runtimes
from .shapes import check_create_body
from .spec import CGROUP_PARENT, build_spec, security_options
from .store import ContainerStore
from .userns import Remap

log = logging.getLogger("sampand")

DEFAULT_STOP_TIMEOUT = 10
KILL_GRACE = 10.0  # how long a SIGKILLed container may take to be reported gone
WAIT_CONDITIONS = ("not-running", "next-exit", "removed", "")

# Docker's container.Config as inspect shows it: every field, zero values included.
CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {},
}


@dataclass
class ExitStatus:
    code: int
    error: str = ""


class Watcher(Protocol):
    """What follows a container's runs (healthchecks): told of starts and exits."""

    def started(self, c: Container, adopted: bool) -> None: ...

    def exited(self, c: Container) -> None: ...


@dataclass
class _Live:
    """What the daemon holds for a container in memory only."""

    waiters: list[tuple[str, asyncio.Future[ExitStatus]]] = field(default_factory=list)
    pending: list[Attachment] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    unwatch: Callable[[], None] | None = None  # cancels the watch on the monitor
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    # while a start runs, its outcome (started or not): a command that ends at once has
    # its exit handled after the start, not in the middle of it
    started: asyncio.Future[bool] | None = None
    # a `restart` is stopping it: that exit neither removes an AutoRemove container nor
    # unmounts its root filesystem (as dockerd's HasBeenManuallyRestarted)
    restarting_manually: bool = False


class Containers:
    def __init__(self, images: ImageStore, store: ContainerStore, monitors: monitor.MonitorConfig,
                 runtime: OCIRuntime, cgroup_parent: str = CGROUP_PARENT,
                 network: Networking | None = None) -> None:
        self.cgroup_parent = cgroup_parent
        self.cgroup_lock = LockWarmer()
        self.network = network or Networking(os.path.dirname(store.root),
                                             os.path.dirname(monitors.runtime_root))
        self.images = images
        self.store = store
        self.monitors = monitors
        self.runtime = runtime
        # The daemon's configuration (set by the Engine): runtimes by name, defaults.
        self.runtimes: Runtimes | None = None
        self.defaults = ContainerDefaults()
        self._all: dict[str, Container] = {}
        self._live: dict[str, _Live] = {}
        self.on_change: Callable[[str, Container], None] = lambda action, c: None
        self.restarts = Restarts(self._auto_restart, self._restart_failed)
        # sampand stopping its containers (live-restore off) is not the user stopping them:
        # unless-stopped ones come back with it, as with dockerd
        self.shutting_down = False
        self.shippers = logs.Shippers()
        self.watchers: list[Watcher] = []
        self.mounts: Mounts | None = None  # volumes and mounts, set by the engine
        self.userns: Remap | None = None  # --userns-remap, set by the engine

    # Lookup -------------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """A container by full ID, name (with or without its slash) or unique ID prefix."""
        if ref in self._all:
            return self._all[ref]
        name = ref.lstrip("/")
        for c in self._all.values():
            if c.name == name:
                return c
        if ref:
            matches = [c for i, c in self._all.items() if i.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def find(self, container_id: str) -> Container | None:
        return self._all.get(container_id)

    def all(self) -> list[Container]:
        return sorted(self._all.values(), key=lambda c: c.created, reverse=True)

    def directory(self, c: Container) -> str:
        return self.store.dir(c.id)

    def log_path(self, c: Container) -> str:
        """Docker's LogPath: the json-file log (``logs``)."""
        return os.path.join(self.directory(c), f"{c.id}-json.log")

    def log_options(self, c: Container) -> logs.LogOptions:
        try:
            return logs.parse_log_config(c.host_config.get("LogConfig"))
        except InvalidParameter:
            return logs.LogOptions()

    def shipper(self, c: Container) -> logs.Shipper:
        return self.shippers.get(c.id, self.directory(c), self.log_path(c), self.log_options(c))

    def persist_dir(self, c: Container) -> str:
        return os.path.join(self.directory(c), "monitor")

    def runtime_of(self, c: Container) -> OCIRuntime:
        """The OCI runtime the container was created with (HostConfig.Runtime)."""
        if self.runtimes is None:
            return self.runtime
        return self.runtimes.get(c.host_config.get("Runtime"))

    def monitors_of(self, c: Container) -> monitor.MonitorConfig:
        """conmon's settings for the container's runtime."""
        if self.runtimes is None:
            return self.monitors
        return self.runtimes.monitor_config(self.monitors, c.host_config.get("Runtime"))

    def _daemon_defaults(self, host: dict[str, Any]) -> dict[str, Any]:
        """HostConfig with the daemon's runtime and log config where it names none."""
        if self.runtimes is not None:
            host["Runtime"] = self.runtimes.resolve(host.get("Runtime"))
        # dockerd's mergeAndVerifyLogConfig: the default driver where none is named, and
        # with the default driver, the default options the request does not set
        given = host.get("LogConfig") or {}
        default = self.defaults.log_config
        driver = given.get("Type") or default["Type"]
        options = dict(given.get("Config") or {})
        if driver == default["Type"]:
            options = {**default["Config"], **options}
        host["LogConfig"] = {"Type": driver, "Config": options}
        return host

    def _live_of(self, c: Container) -> _Live:
        return self._live.setdefault(c.id, _Live())

    # Create -------------------------------------------------------------------------------

    def create(self, name: str | None, body: Any) -> Container:
        if not isinstance(body, dict):
            raise InvalidParameter("config cannot be empty in order to create a container")
        config = parse_config(body)
        check_create_body(body)
        health.check(body.get("Healthcheck"))
        host_raw = body.get("HostConfig") or {}
        security_options(parse_host_config(host_raw))
        if self.userns is not None:
            self.userns.check(host_raw)
        # networking: the mode and networks asked for (404 for an unknown network)
        mode, memberships = self.network.check_create(host_raw, body.get("NetworkingConfig"),
                                                      self.get)
        host_raw = {**host_raw, "NetworkMode": mode}
        if not config.image:
            raise InvalidParameter("Config.Image: an image is required")
        if name:
            name = check_name(name)
            for other in self._all.values():
                if other.name == name:
                    raise Conflict(
                        f'Conflict. The container name "/{name}" is already in use by '
                        f'container "{other.id}". You have to remove (or rename) that '
                        "container to be able to reuse that name.")
        else:
            name = random_name({c.name for c in self._all.values()})
        try:
            image = self.images.get(config.image)
        except ImageNotFound:
            raise NotFound(f"No such image: {config.image}") from None
        except ImageError as exc:
            raise InvalidParameter(str(exc)) from None
        effective = self._merge_image_config(body, image.raw_config.get("config") or {})
        args = [*(as_list(effective["Entrypoint"]) or []), *(as_list(effective["Cmd"]) or [])]
        if not args:
            raise InvalidParameter("No command specified")
        if config.stop_signal:
            parse_signal(config.stop_signal)
        container_id = secrets.token_hex(32)
        if not effective.get("Hostname"):  # dockerd's default: the host's, or the short id
            effective["Hostname"] = (socket.gethostname() if mode == "host"
                                     else container_id[:12])
        mounts = [] if self.mounts is None else self.mounts.create(
            container_id, host_raw, effective, image.raw_config.get("config") or {}, self.get)
        container = Container(
            id=container_id, name=name, created=rfc3339(), image=config.image,
            image_id=image.id, path=args[0], args=args[1:], config=effective,
            host_config=self._daemon_defaults(self._host_config(host_raw)), mounts=mounts)
        try:
            directory = self.store.create_dir(container.id)
        except BaseException:
            if self.mounts is not None:
                self.mounts.release(container, remove_anonymous=True)
            raise
        try:
            os.mkdir(os.path.join(directory, "rootfs"), 0o755)
            self.images.snapshots.prepare(container.id, image.top_layer)
            self.images.pin(image.id, container.id)
            self.store.save(container)
            self.network.created(container, memberships)
        except BaseException:
            with suppress(Exception):
                self.images.unpin(image.id, container.id)
            with suppress(Exception):
                self.images.snapshots.remove(container.id)
            self.store.remove(container.id)
            if self.mounts is not None:
                self.mounts.release(container, remove_anonymous=True)
            raise
        self._all[container.id] = container
        self.on_change("create", container)
        return container

    @staticmethod
    def _merge_image_config(body: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
        """Docker's merge of the image's defaults into the create request's Config."""
        config = dict(CONFIG_DEFAULTS)
        config.update({k: v for k, v in body.items()
                       if k not in ("HostConfig", "NetworkingConfig")})
        env = list(config.get("Env") or [])
        keys = {e.partition("=")[0] for e in env}
        env += [e for e in image.get("Env") or [] if e.partition("=")[0] not in keys]
        config["Env"] = env
        if not config.get("Entrypoint"):
            if not config.get("Cmd"):
                config["Cmd"] = image.get("Cmd")
            if config.get("Entrypoint") is None:
                config["Entrypoint"] = image.get("Entrypoint")
        for key in ("WorkingDir", "User", "StopSignal"):
            if not config.get(key) and image.get(key):
                config[key] = image[key]
        config["Labels"] = {**(image.get("Labels") or {}), **(config.get("Labels") or {})}
        health.merge(config, image)
        if image.get("ExposedPorts"):  # networking: -P publishes the image's ports too
            config["ExposedPorts"] = {**image["ExposedPorts"], **(config.get("ExposedPorts") or {})}
        return config

    @staticmethod
    def _host_config(raw: dict[str, Any]) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "Binds": None, "NetworkMode": "default", "PortBindings": {},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
            "CapAdd": None, "CapDrop": None, "Privileged": False, "ReadonlyRootfs": False,
            "Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "CpuShares": 0, "PidsLimit": None,
            "ShmSize": 67108864,
        }
        out = {**defaults, **{k: v for k, v in raw.items() if v is not None}}
        if not out.get("NetworkMode"):
            out["NetworkMode"] = "default"
        return out

    # Start --------------------------------------------------------------------------------

    async def start(self, ref: str, auto: bool = False) -> None:
        c = self.get(ref)
        live = self._live_of(c)
        async with live.lock:
            if c.state.status == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.running:
                raise NotModified()
            if not auto:
                self.restarts.reset(c)
            if c.state.status == "removing":
                raise Conflict(f"container {c.id} is marked for removal and cannot be started")
            before = c.state.status
            try:
                # the kernel's cgroup lock kept ready for the runtime's placement of the init
                with self.cgroup_lock.held():
                    await self._start(c, live)
                if live.started is not None and not live.started.done():
                    live.started.set_result(True)
            except Exception as exc:
                for att in live.pending:
                    att.abandon()
                live.pending.clear()
                if live.unwatch is not None:  # the failure is handled here, not as an exit
                    live.unwatch()
                    live.unwatch = None
                    monitor.on_exit(c.monitor.pid, lambda: None)  # only reap it
                c.state.status = before
                c.state.pid = 0
                c.state.exit_code = start_failure_code(str(exc))
                c.state.error = str(exc)
                await self._teardown(c)
                self.store.save(c)
                error = exc if isinstance(exc, EngineError) else EngineError(str(exc))
                if not isinstance(exc, EngineError):
                    log.exception("starting %s", c.id)
                auto_remove = bool(c.host_config.get("AutoRemove"))
            else:
                return
            finally:
                if live.started is not None and not live.started.done():
                    # a failed start is handled above, its exit with it: whoever waits
                    # for that exit (an `rm -f` during the start) goes on
                    live.started.set_result(False)
                    live.exited.set()
        if auto_remove:  # as dockerd: a container that cannot start is not kept either
            with suppress(EngineError):
                await self.remove(c.id, force=True, volumes=True)
        raise error

    def _mount_rootfs(self, c: Container, rootfs: str, remap: Remap | None) -> None:
        """The container's snapshot at ``rootfs``; volatile (no syncs) when AutoRemove
        throws the writable layer away at the exit, unless the kernel does not know the
        option (EINVAL before 5.10)."""
        mounts = self.images.snapshots.mounts(c.id)
        throwaway = bool(c.host_config.get("AutoRemove"))
        for attempt in ([volatile(mounts), mounts] if throwaway else [mounts]):
            try:
                if remap:
                    remap.mount_rootfs(self.images.snapshots, c.id, rootfs, attempt)
                else:
                    mount_all(attempt, rootfs)
                return
            except OSError as exc:
                if attempt is mounts or exc.errno != errno.EINVAL:
                    raise

    async def _start(self, c: Container, live: _Live) -> None:
        directory = self.directory(c)
        rootfs = os.path.join(directory, "rootfs")
        await self.runtime_of(c).delete(c.id)  # leftovers of an earlier run
        monitor.clear(self.monitors, c.id)
        remap = self.userns if self.userns and self.userns.applies(c.host_config) else None
        if not c.mounted:
            self._mount_rootfs(c, rootfs, remap)
            c.mounted = True
            self.store.save(c)
        if self.mounts is not None:  # volumes mounted, copy-up of the image's content
            await asyncio.to_thread(copy_up_all, self.mounts.setup(c, rootfs))
        image = self.images.get(c.image_id)
        sandbox = await self.network.run(self.network.prepare, c, self.get)
        spec = build_spec(c, image.config, rootfs, directory, self.cgroup_parent,
                          self.defaults, sandbox=sandbox, remap=remap)
        with open(os.path.join(directory, "config.json"), "w") as f:
            f.write(json.dumps(spec))  # (dumps: the C encoder; dump is pure Python)
        options = self.log_options(c)
        self.shipper(c).reset()
        os.makedirs(self.persist_dir(c), mode=0o700, exist_ok=True)
        monitor.clear_oom(self.persist_dir(c))
        job = monitor.Launch(
            container_id=c.id, name=c.name, bundle=directory,
            log_path=os.path.join(directory, logs.JOURNAL), log_size_max=options.journal_limit,
            logging=options.driver != "none", persist_dir=self.persist_dir(c),
            tty=c.tty, stdin=bool(c.config.get("OpenStdin")),
            # as dockerd: a TTY's stdin outlives its attachments (a detach must not end it)
            leave_stdin_open=c.tty or not c.config.get("StdinOnce"))
        mon, pid = await asyncio.to_thread(monitor.launch, self.monitors_of(c), job)
        with suppress(OSError):
            self.shipper(c).ship()  # hold the journal open from the start
        c.monitor = mon
        c.state.pid = pid
        attached = list(live.pending)
        live.pending.clear()
        for att in attached:
            att.connect(self.monitors.attach_path(c.id))
        live.exited = asyncio.Event()
        # Running from here on: the process may exit before ``runtime start`` returns, and
        # the exit handling (from the watch) must find it running.
        c.state.status = "running"
        c.state.error = ""
        c.state.exit_code = 0
        c.state.oom_killed = False
        c.state.started_at = rfc3339()
        self.store.save(c)  # (one save for the monitor, the pid and the state)
        live.started = asyncio.get_running_loop().create_future()
        self._watch(c)
        await self.runtime_of(c).start(c.id)
        for att in attached:
            att.started()
        self._following(c, adopted=False)
        self.on_change("start", c)

    def _following(self, c: Container, adopted: bool) -> None:
        """A run begins (or is adopted): ship its logs, tell the watchers."""
        self.shippers.follow(c.id, self.shipper(c))
        for watcher in self.watchers:
            watcher.started(c, adopted)

    async def _auto_restart(self, container_id: str) -> None:
        await self.start(container_id, auto=True)
        self.on_change("restart", self.get(container_id))

    def _restart_failed(self, c: Container, exc: Exception) -> None:
        if c.state.status == "restarting":
            c.state.status = "exited"
            c.state.error = str(exc)
            self.store.save(c)
            self._wake(c, ExitStatus(c.state.exit_code, c.state.error), ("not-running", ""))

    # Exit ---------------------------------------------------------------------------------

    def _watch(self, c: Container) -> None:
        """Call ``_exited`` when the container's conmon exits."""
        live = self._live_of(c)
        if live.unwatch is None:
            live.unwatch = monitor.on_exit(c.monitor.pid, lambda: self._monitor_exited(c.id))

    def _monitor_exited(self, container_id: str) -> None:
        live = self._live.get(container_id)
        if live is not None:
            live.unwatch = None
        asyncio.get_running_loop().create_task(self._exited(container_id))

    async def _exited(self, container_id: str) -> None:
        c = self._all.get(container_id)
        if c is None:
            return
        live = self._live_of(c)
        if live.started is not None and not await asyncio.shield(live.started):
            return
        result = monitor.read_exit_code(self.monitors, c.id)
        code, when = result if result is not None else (255, None)
        if result is None and not c.state.error:
            c.state.error = "the container's monitor exited without recording an exit code"
        was_running = c.state.running or c.state.status in ("created", "restarting")
        # (not when the exit comes from a removal already under way)
        auto_remove = bool(c.host_config.get("AutoRemove")) and c.state.status != "removing" \
            and not live.restarting_manually
        if c.state.status != "removing":
            c.state.status = "exited"
        c.state.exit_code = code
        c.state.pid = 0
        c.state.finished_at = rfc3339(int(when * 1e9) if when else None)
        c.state.oom_killed = monitor.oom_killed(self.persist_dir(c))
        self.shippers.stop(c.id)
        with suppress(OSError):
            self.shipper(c).ship()  # conmon has written everything: ship the rest
        for watcher in self.watchers:
            watcher.exited(c)
        restarting = torn_down = False
        try:
            await self._teardown(c)
            torn_down = True
            restarting = c.state.status == "exited" and self.restarts.exited(c)
            if auto_remove and not restarting:
                # recorded once, here: the removal below goes on from it (and restore()
                # finishes it after a crash)
                c.state.status = "removing"
            self.store.save(c)
        except OSError as exc:
            # A full data root (a container filled it) must not hide the exit from those
            # waiting; the state stays in memory and is saved with the next change.
            log.error("releasing or recording the exit of %s: %s", c.id[:12], exc)
        self._wake(c, ExitStatus(code, c.state.error), ("not-running", "next-exit", ""))
        live.exited.set()
        if was_running:
            self.on_change("die", c)
        if restarting:
            return
        if auto_remove:
            try:
                await self.remove(c.id, force=True, volumes=True, torn_down=torn_down)
            except EngineError as exc:
                log.warning("auto-removing %s: %s", c.id[:12], exc)

    async def _teardown(self, c: Container) -> None:
        """Release what a run held: the runtime's state and cgroup with the monitor's files,
        the network, the mounts. None of the three needs another, and most of each is the
        kernel's work (cgroups, namespaces and mounts going), so they go at once."""
        results = await asyncio.gather(
            self._release_runtime(c), self.network.run(self.network.release, c),
            self._release_mounts(c), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _release_runtime(self, c: Container) -> None:
        await self.runtime_of(c).delete(c.id)
        monitor.clear(self.monitors, c.id)
        c.monitor = monitor.Monitor()

    async def _release_mounts(self, c: Container) -> None:
        if self.mounts is not None:
            self.mounts.teardown(c)
        if c.mounted and not self._live_of(c).restarting_manually:
            # (kept across a restart: a volatile layer, once unmounted, never mounts again)
            try:
                await asyncio.to_thread(unmount_all, os.path.join(self.directory(c), "rootfs"))
                c.mounted = False
            except OSError as exc:
                log.warning("unmounting %s: %s", c.id, exc)

    def _wake(self, c: Container, status: ExitStatus, conditions: tuple[str, ...]) -> None:
        live = self._live_of(c)
        keep = []
        for condition, future in live.waiters:
            if condition in conditions:
                if not future.done():
                    future.set_result(status)
            else:
                keep.append((condition, future))
        live.waiters = keep

    # Stop, kill, wait ---------------------------------------------------------------------

    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        c = self.get(ref)
        number = parse_signal(sig, signal.SIGKILL)
        if c.state.status == "paused":
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is paused. "
                           "Unpause the container before stopping or killing")
        if not c.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        c.manually_stopped = not self.shutting_down
        stop_signal = c.config.get("StopSignal")
        if not stop_signal or number in (signal.SIGKILL, parse_signal(stop_signal)):
            self.restarts.hold(c.id)  # as dockerd's ExitOnNext: this exit is not restarted
        self.store.save(c)
        await self._signal(c, number)
        self.on_change("kill", c)

    async def _signal(self, c: Container, number: int) -> None:
        try:
            await self.runtime_of(c).kill(c.id, number)
        except EngineError:
            if c.state.running:
                raise

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if c.state.status == "restarting":  # between two runs: only the restart to cancel
            self.restarts.hold(c.id)
            c.manually_stopped = not self.shutting_down
            c.state.status = "exited"
            self.store.save(c)
            self._wake(c, ExitStatus(c.state.exit_code, c.state.error), ("not-running", ""))
            self.on_change("stop", c)
            return
        if not c.state.running:
            raise NotModified()
        live = self._live_of(c)
        number = parse_signal(sig or c.config.get("StopSignal"), signal.SIGTERM)
        if timeout is None:
            timeout = c.config.get("StopTimeout") or DEFAULT_STOP_TIMEOUT
        exited = live.exited
        c.manually_stopped = not self.shutting_down
        self.restarts.hold(c.id)
        self.store.save(c)
        await self._signal(c, number)
        if c.state.status == "paused":  # the signal is delivered once it thaws
            await self.unpause(c.id)
        try:
            await asyncio.wait_for(exited.wait(), None if timeout < 0 else timeout)
        except TimeoutError:
            await self._signal(c, signal.SIGKILL)
            await self._killed(c, exited)
        self.on_change("stop", c)

    async def restart(self, ref: str, timeout: int | None = None,
                      sig: str | None = None) -> None:
        """Stop it if it runs, and start it again on the same writable layer; as dockerd's,
        a `--rm` container comes back (it is removed at its next exit)."""
        c = self.get(ref)
        live = self._live_of(c)
        if c.state.running or c.state.status == "restarting":
            live.restarting_manually = True
            try:
                await self.stop(c.id, timeout, sig)  # returns once the exit is handled
            finally:
                live.restarting_manually = False
        await self.start(c.id)
        self.on_change("restart", c)

    async def _killed(self, c: Container, exited: asyncio.Event) -> None:
        """Wait until the exit of a SIGKILLed container has been handled. The process dies
        at once, but its exit is handled (mounts, network, cgroups released) in turn with
        every other container's, which under load takes longer than any fixed grace (the
        load test saw 500s): past KILL_GRACE wait on, as dockerd does, unless the process
        itself still lives."""
        try:
            await asyncio.wait_for(exited.wait(), KILL_GRACE)
            return
        except TimeoutError:
            if c.state.running and _lives(c.state.pid):
                raise EngineError(f"cannot stop container {c.id}: it did not exit after "
                                  "SIGKILL") from None
        await exited.wait()

    async def wait(self, ref: str, condition: str = "not-running") -> ExitStatus:
        c = self.get(ref)
        if condition not in WAIT_CONDITIONS:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        return await self.waiter(c, condition)

    def waiter(self, c: Container, condition: str) -> asyncio.Future[ExitStatus]:
        """A future for ``condition``, registered now (before a start that may follow)."""
        future: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        # as dockerd, a container between two runs of its restart policy counts as running
        if condition in ("not-running", "") and not c.state.running \
                and c.state.status != "restarting":
            future.set_result(ExitStatus(c.state.exit_code, c.state.error))
        else:
            self._live_of(c).waiters.append((condition, future))
        return future

    # Remove -------------------------------------------------------------------------------

    async def remove(self, ref: str, force: bool = False, volumes: bool = False, *,
                     torn_down: bool = False) -> None:
        """``volumes``: its anonymous volumes go too (``rm -v``); named ones never.
        ``torn_down``: the exit's handling has released the run and recorded the removal
        (AutoRemove)."""
        c = self.get(ref)
        live = self._live_of(c)
        if c.state.status == "restarting":
            if not force:
                raise Conflict("You cannot remove a restarting container. Stop the container "
                               "before attempting removal or force remove")
            self.restarts.hold(c.id)
            c.state.status = "exited"
        if c.state.status == "paused" and force:
            await self.unpause(c.id)  # a frozen process takes SIGKILL only once thawed
        if c.state.running:
            if not force:
                raise Conflict(f"cannot remove container \"/{c.name}\": container is running: "
                               "stop the container before removing or force remove")
            self.restarts.hold(c.id)
            exited = live.exited
            await self._signal(c, signal.SIGKILL)
            await self._killed(c, exited)
            if c.id not in self._all:  # AutoRemove got there first
                return
        async with live.lock:
            if c.id not in self._all:
                return
            if not torn_down:
                await self._release_for_removal(c)
            try:
                if self.images.snapshots.exists(c.id):
                    self._remove_snapshot(c)
            except SnapshotError as exc:
                c.state.status = "dead"
                self.store.save(c)
                raise EngineError(f"removing the container's filesystem: {exc}") from None
            with suppress(Exception):
                self.images.unpin(c.image_id, c.id)
            await self.network.run(self.network.forget, c)
            with suppress(OSError):
                os.unlink(os.path.join(self.directory(c), "rootfs"))
            self.store.remove(c.id)
            del self._all[c.id]
            if self.mounts is not None:
                self.mounts.release(c, remove_anonymous=volumes)
        for att in live.pending:
            att.abandon()
        self.restarts.forget(c.id)
        self.shippers.drop(c.id)
        self._wake(c, ExitStatus(c.state.exit_code), ("removed", "not-running", "next-exit", ""))
        self._live.pop(c.id, None)
        self.on_change("destroy", c)

    async def _release_for_removal(self, c: Container) -> None:
        """Record the removal under way, then release what the last run held."""
        c.state.status = "removing"
        try:
            self.store.save(c)
        except OSError as exc:
            # A full data root must not keep the container whose removal frees it: go on
            # without the marker (a crash now leaves the old record to reconcile).
            log.warning("marking %s as removing: %s", c.id[:12], exc)
        try:
            await self._teardown(c)
        except OSError as exc:  # the data root is full: free the container's writes
            log.warning("releasing %s: %s; again after discarding its writes", c.id[:12], exc)
            self._discard_writes(c)
            await self._teardown(c)

    def _remove_snapshot(self, c: Container) -> None:
        try:
            self.images.snapshots.remove(c.id)
        except Exception:  # e.g. a full data root: once more, with its writes freed first
            self._discard_writes(c)
            self.images.snapshots.remove(c.id)

    def _discard_writes(self, c: Container) -> None:
        """Empty a removed container's writable layer first: when the container filled
        the data root, releasing the rest (records, the snapshot's transaction) needs the
        space."""
        if self.images.snapshots.exists(c.id):
            _empty(self.images.snapshots.fs(self.images.snapshots.stat(c.id)))

    def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        if not new_name:
            raise InvalidParameter("name: a new name is required")
        name = check_name(new_name)
        other = next((o for o in self._all.values() if o.name == name), None)
        if other is not None and other.id != c.id:
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by '
                           f'container "{other.id}". You have to remove (or rename) that '
                           "container to be able to reuse that name.")
        c.name = name
        self.store.save(c)
        self.network.renamed(c)  # its names on user networks, at once
        self.on_change("rename", c)

    async def prune(self) -> list[str]:
        """Remove every container that is not running; their IDs."""
        doomed = [c.id for c in self.all() if c.state.status in ("created", "exited", "dead")]
        removed = []
        for container_id in doomed:
            with suppress(EngineError):
                await self.remove(container_id)
                removed.append(container_id)
        return removed

    # Attach -------------------------------------------------------------------------------

    def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool) -> Attachment:
        c = self.get(ref)
        att = Attachment(stdin=stdin and bool(c.config.get("OpenStdin")), stdout=stdout,
                         stderr=stderr)
        if c.state.running:
            att.connect(self.monitors.attach_path(c.id))
            att.started()
        elif c.state.status in ("created", "exited"):
            self._live_of(c).pending.append(att)
        else:
            raise Conflict(f"cannot attach to a container in state {c.state.status}")
        return att

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        monitor.resize(self.directory(c), height, width)

    def exited_event(self, c: Container) -> asyncio.Event:
        return self._live_of(c).exited

    # Daemon start and stop ----------------------------------------------------------------

    async def restore(self) -> None:
        """Find the stored containers again: adopt running ones, settle ones that exited."""
        for c in self.store.load_all():
            self._all[c.id] = c
            if self.mounts is not None:
                self.mounts.adopt(c)
            live = self._live_of(c)
            if c.state.status == "removing":
                with suppress(EngineError):
                    await self.remove(c.id, force=True)
            elif c.state.running and c.monitor.pid and monitor.alive(c.monitor):
                self._watch(c)
                self._following(c, adopted=True)
                await self._finish_start(c)
                await self._settle_pause(c)
                log.info("adopted running container %s", c.id[:12])
            elif c.state.running:
                await self._exited(c.id)  # a restart policy applies as to any exit
            else:
                live.exited.set()
                # A start cut short by a crash (not yet recorded as running) may leave a
                # monitor and a created container blocked before its command: undo them.
                if c.mounted or c.monitor.pid or os.path.isdir(
                        os.path.join(self.runtime_of(c).root, c.id)):
                    await self._teardown(c)
                if c.state.status == "restarting":
                    c.state.status = "exited"
                self.restarts.at_daemon_start(c)
                self.store.save(c)

    async def _finish_start(self, c: Container) -> None:
        """sampand died during the runtime's start, or between recording the start and
        it: finish it, or the container would look running and never run. If the init
        was released already, only the fifo is left to remove (start would wait for ever
        for a writer that is gone)."""
        state_dir = os.path.join(self.runtime_of(c).root, c.id)
        if not awaits_start(state_dir, c.state.pid):
            with suppress(FileNotFoundError):
                os.unlink(os.path.join(state_dir, "exec.fifo"))
            return
        try:
            await self.runtime_of(c).start(c.id)
        except EngineError as exc:
            log.warning("finishing the start of %s: %s", c.id[:12], exc)

    # Pause ---------------------------------------------------------------------------------

    async def _settle_pause(self, c: Container) -> None:
        """A crash between the freezer and the record (a pause, or a commit's pause cut
        short) leaves them disagreeing: trust the cgroup, so that a frozen container is
        known as paused (and `rm -f` thaws it before SIGKILL can take)."""
        try:
            frozen = await self.runtime_of(c).status(c.id) == "paused"
        except EngineError as exc:
            log.warning("reading the state of %s: %s", c.id[:12], exc)
            return
        if frozen != (c.state.status == "paused"):
            c.state.status = "paused" if frozen else "running"
            self.store.save(c)

    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        if c.state.status == "paused":
            raise Conflict(f"Container {c.id} is already paused")
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        await self.runtime_of(c).pause(c.id)
        if c.state.status == "running":
            c.state.status = "paused"
            self.store.save(c)
        self.on_change("pause", c)

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if c.state.status != "paused":
            raise Conflict(f"Container {c.id} is not paused")
        await self.runtime_of(c).resume(c.id)
        if c.state.status == "paused":  # not if it exited as soon as it thawed
            c.state.status = "running"
            self.store.save(c)
        self.on_change("unpause", c)

    def close(self) -> None:
        """Stop watching (the containers and their monitors run on)."""
        self.shippers.close()
        for live in self._live.values():
            if live.unwatch is not None:
                live.unwatch()
                live.unwatch = None


def start_failure_code(message: str) -> int:
    """The exit code Docker records when a container cannot start (as its CLI's)."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message:
        return 126
    return 128


def set_subreaper() -> None:
    """Orphaned conmons (double-forked) become our children, so we reap them."""
    with suppress(OSError):
        k.set_child_subreaper()


def _empty(directory: str) -> None:
    import shutil

    with suppress(FileNotFoundError):
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with suppress(OSError):
                    os.unlink(path)


def _lives(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return pid > 0 and f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
