"""The engine: the image store and the containers, with the paths and tools they use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..images import ImageStore
from ..network.bridge import DEFAULT_BRIDGE
from ..network.ipam import DEFAULT_POOLS, Pool
from ..trash import Trash
from . import monitor, orphans
from .containers import Containers, set_subreaper
from .daemonconfig import (
    DEFAULT_DATA_ROOT,
    DEFAULT_EXEC_ROOT,
    DEFAULT_RUNTIME,
    ContainerDefaults,
    builtin_runtimes,
)
from .events import Event, EventLog
from .execs import Execs
from .health import Healthchecks
from .mounts import Mounts
from .networking import Networking
from .ociruntime import OCIRuntime
from .record import Container
from .runtimes import RuntimeInfo, Runtimes
from .spec import CGROUP_PARENT
from .store import ContainerStore
from .zygote import Zygote

log = logging.getLogger("sampand")


def default_runtime() -> str:
    """The path of sampan-runtime (beside this interpreter, else on PATH)."""
    return builtin_runtimes()[DEFAULT_RUNTIME].path


def _builtin_infos() -> dict[str, RuntimeInfo]:
    return {name: RuntimeInfo(e.path) for name, e in builtin_runtimes().items()}


@dataclass
class EngineOptions:
    """The engine's settings; sampand fills them from daemon.json and its flags
    (``DaemonConfig.engine_options``)."""

    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT  # runtime state, exit files, attach sockets
    runtime: str = field(default_factory=default_runtime)  # the default runtime's path
    conmon: str = "conmon"
    # "sampan": monitors forked by a warm zygote (zygote.py), or "conmon"
    monitor: str = "sampan"
    snapshotter: str | None = None
    cgroup_parent: str = CGROUP_PARENT  # containers' cgroups are <parent>/<id>
    # OCI runtimes by name (HostConfig.Runtime) and the one used when none is named.
    runtimes: dict[str, RuntimeInfo] = field(default_factory=_builtin_infos)
    default_runtime: str = DEFAULT_RUNTIME
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    # default-address-pools for the bridge networks' IPAM.
    address_pools: list[Pool] = field(default_factory=lambda: list(DEFAULT_POOLS))
    bridge: str = DEFAULT_BRIDGE  # the default network's bridge (and its nft table's name)
    firewall_backend: str = ""  # iptables | nftables | "" (nftables if installed)
    container_defaults: ContainerDefaults = field(default_factory=ContainerDefaults)
    live_restore: bool = True  # false: containers are stopped when sampand stops
    debug: bool = False
    labels: list[str] = field(default_factory=list)  # the daemon's (docker info's Labels)
    userns_remap: str = ""  # daemon.json's userns-remap (engine/userns.py)


class Engine:
    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.started = time.time()
        os.makedirs(options.data_root, mode=0o711, exist_ok=True)
        os.makedirs(options.exec_root, mode=0o711, exist_ok=True)
        self.images = ImageStore(options.data_root, options.snapshotter)
        self.trash = Trash(os.path.join(options.data_root, "trash"))
        self.images.snapshots.trash = self.trash
        self.monitors = monitor.MonitorConfig(
            runtime=options.runtime, runtime_root=os.path.join(options.exec_root, "runtime"),
            exit_dir=os.path.join(options.exec_root, "exits"),
            socket_dir=os.path.join(options.exec_root, "s"), conmon=options.conmon,
            kind=options.monitor,
            zygote=Zygote(options.exec_root) if options.monitor == "sampan" else None)
        self.runtime = OCIRuntime(options.runtime, self.monitors.runtime_root)
        self.runtimes = Runtimes(self._runtime_entries(), options.default_runtime,
                                 self.monitors.runtime_root)
        self.networking = Networking(options.data_root, options.exec_root,
                                     pools=options.address_pools, bridge=options.bridge,
                                     firewall=options.firewall_backend)
        self.containers = Containers(
            self.images,
            ContainerStore(os.path.join(options.data_root, "containers"), self.trash),
            self.monitors, self.runtime, options.cgroup_parent, network=self.networking)
        self.networking.lookup = self.containers.find
        self.networking.on_event = self._network_event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unwatch_orphans: Callable[[], None] | None = None
        self.containers.runtimes = self.runtimes
        self.containers.defaults = options.container_defaults
        if options.userns_remap:
            from .daemonconfig import ConfigError
            from .userns import Remap, RemapError

            try:
                self.containers.userns = Remap.load(options.userns_remap, options.data_root,
                                                   self.images.snapshots.name)
            except RemapError as exc:
                raise ConfigError(str(exc)) from None
        self.execs = Execs(self.containers, self.monitors, self._container_event)
        self.events = EventLog()
        self.health = Healthchecks(self.execs, self._container_event,
                                   self.containers.store.save)
        self.containers.watchers.append(self.health)
        from ..volumes import VolumeService

        self.volumes = VolumeService(os.path.join(options.data_root, "volumes"),
                                     on_event=self._volume_event)
        self.containers.mounts = Mounts(self.volumes)
        self.containers.on_change = self._container_event

    def _runtime_entries(self) -> dict[str, RuntimeInfo]:
        entries = dict(self.options.runtimes)
        if self.options.default_runtime not in entries:  # options made without a registry
            entries[self.options.default_runtime] = RuntimeInfo(self.options.runtime)
        return entries

    async def stop_all(self) -> None:
        """Stop every running container (sampand stopping with live-restore off)."""
        running = [c for c in self.containers.all() if c.state.running]
        self.containers.shutting_down = True

        async def stop(c: Container) -> Any:
            try:
                await self.containers.stop(c.id)
            except Exception as exc:
                log.warning("stopping %s: %s", c.id[:12], exc)

        await asyncio.gather(*(stop(c) for c in running))

    def _container_event(self, action: str, c: Container,
                         extra: dict[str, str] | None = None) -> None:
        attributes = {**(c.config.get("Labels") or {}), **(extra or {}), "image": c.image,
                      "name": c.name}
        if action == "die":
            attributes["exitCode"] = str(c.state.exit_code)
        self.events.publish(Event("container", action, c.id, attributes))

    def _network_event(self, action: str, net: Any, container_id: str) -> None:
        """From the network service's thread: published on the event loop's."""
        attributes = {"name": net.name, "type": net.driver}
        if container_id:
            attributes["container"] = container_id
        event = Event("network", action, net.id, attributes)
        try:
            if self._loop is None:
                raise RuntimeError("no loop yet")
            self._loop.call_soon_threadsafe(self.events.publish, event)
        except RuntimeError:  # before the loop runs, or after it closed
            self.events.publish(event)

    def _volume_event(self, action: str, name: str, attributes: dict[str, str]) -> None:
        self.events.publish(Event("volume", action, name, attributes))

    def image_event(self, action: str, name: str) -> None:
        self.events.publish(Event("image", action, name, {"name": name}))

    async def start(self) -> None:
        set_subreaper()
        self._loop = asyncio.get_running_loop()
        self._unwatch_orphans = orphans.watch(self._loop, lambda: {
            c.monitor.pid for c in self.containers.all() if c.monitor.pid})
        await self.networking.run(self.networking.start)
        await self.containers.restore()
        self._drop_stale_pins()
        await self.networking.run(
            self.networking.restore, {c.id: c for c in self.containers.all() if c.state.running})
        self.containers.restarts.daemon_ready.set()

    def _drop_stale_pins(self) -> None:
        """A create cut short by a crash pinned its image for a container it never
        recorded: without this, `rmi` would refuse for ever ("image is being used")."""
        known = {c.id for c in self.containers.all()}
        for row in self.images.db.query("SELECT image_id, holder FROM image_users"):
            if row["holder"] not in known:
                log.info("image %s: dropping the pin of unknown container %s",
                         row["image_id"][7:19], row["holder"][:12])
                self.images.unpin(row["image_id"], row["holder"])

    def close(self) -> None:
        if self._unwatch_orphans is not None:
            self._unwatch_orphans()
            self._unwatch_orphans = None
        if self.monitors.zygote is not None:
            self.monitors.zygote.close()
        self.health.close()
        self.containers.close()
        self.networking.run_sync(self.networking.close,
                                 any(c.state.running for c in self.containers.all()))
        self.images.close()
        self.trash.close()
        self._remove_cgroup_parent()

    def _remove_cgroup_parent(self) -> None:
        """The parent of the containers' cgroups goes with the daemon when no container
        is left in it (rmdir refuses a cgroup that still has children)."""
        from ..cgroups import CgroupError, open_cgroup

        try:
            paths = open_cgroup(f"{self.options.cgroup_parent.rstrip('/')}/x", "x").paths
        except (CgroupError, OSError):
            return
        for path in set(paths.values()):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))
