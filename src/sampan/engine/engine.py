"""The engine: the image store and the containers, with the paths and tools they use."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field

from ..images import ImageStore
from . import monitor
from .containers import Containers, set_subreaper
from .events import Event, EventLog
from .execs import Execs
from .health import Healthchecks
from .ociruntime import OCIRuntime
from .record import Container
from .spec import CGROUP_PARENT
from .store import ContainerStore

DEFAULT_DATA_ROOT = "/var/lib/sampan"
DEFAULT_EXEC_ROOT = "/run/sampan"


def default_runtime() -> str:
    """sampan-runtime beside this interpreter (the venv's), else on PATH, else runc."""
    beside = os.path.join(os.path.dirname(sys.executable), "sampan-runtime")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("sampan-runtime") or shutil.which("runc") or "runc"


@dataclass
class EngineOptions:
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT  # runtime state, exit files, attach sockets
    runtime: str = field(default_factory=default_runtime)
    conmon: str = "conmon"
    snapshotter: str | None = None
    cgroup_parent: str = CGROUP_PARENT  # containers' cgroups are <parent>/<id>


class Engine:
    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.started = time.time()
        os.makedirs(options.data_root, mode=0o711, exist_ok=True)
        os.makedirs(options.exec_root, mode=0o711, exist_ok=True)
        self.images = ImageStore(options.data_root, options.snapshotter)
        self.monitors = monitor.MonitorConfig(
            runtime=options.runtime, runtime_root=os.path.join(options.exec_root, "runtime"),
            exit_dir=os.path.join(options.exec_root, "exits"),
            socket_dir=os.path.join(options.exec_root, "s"), conmon=options.conmon)
        self.runtime = OCIRuntime(options.runtime, self.monitors.runtime_root)
        self.containers = Containers(
            self.images, ContainerStore(os.path.join(options.data_root, "containers")),
            self.monitors, self.runtime, options.cgroup_parent)
        self.execs = Execs(self.containers, self.monitors)
        self.events = EventLog()
        self.health = Healthchecks(
            self.execs, lambda c, status: self._container_event(f"health_status: {status}", c),
            self.containers.store.save)
        self.containers.watchers.append(self.health)
        self.containers.on_change = self._container_event

    def _container_event(self, action: str, c: Container) -> None:
        attributes = {**(c.config.get("Labels") or {}), "image": c.image, "name": c.name}
        if action == "die":
            attributes["exitCode"] = str(c.state.exit_code)
        self.events.publish(Event("container", action, c.id, attributes))

    def image_event(self, action: str, name: str) -> None:
        self.events.publish(Event("image", action, name, {"name": name}))

    async def start(self) -> None:
        set_subreaper()
        await self.containers.restore()

    def close(self) -> None:
        self.health.close()
        self.containers.close()
        self.images.close()
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
