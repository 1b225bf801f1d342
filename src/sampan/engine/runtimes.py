"""The OCI runtimes a container may run under (HostConfig.Runtime), as dockerd's ``runtimes``.

sampan-runtime is the default, runc is registered when installed, daemon.json adds others.
All of them share one state root (``--root``): each keeps its state under the container's
id, and a container only ever talks to the runtime it was created with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import InvalidParameter
from .monitor import MonitorConfig
from .ociruntime import OCIRuntime


@dataclass(frozen=True)
class RuntimeInfo:
    path: str
    args: tuple[str, ...] = ()


@dataclass
class Runtimes:
    entries: dict[str, RuntimeInfo]
    default: str
    root: str
    _cache: dict[str, OCIRuntime] = field(default_factory=dict)

    def resolve(self, name: str | None) -> str:
        """The runtime a create asks for (the default if none); docker's 400 if unknown."""
        name = name or self.default
        if name not in self.entries:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return name

    def get(self, name: str | None) -> OCIRuntime:
        name = self.resolve(name)
        if name not in self._cache:
            info = self.entries[name]
            self._cache[name] = OCIRuntime(info.path, self.root, info.args)
        return self._cache[name]

    def replace(self, entries: dict[str, RuntimeInfo], default: str) -> None:
        """A reloaded configuration's runtimes (a changed one is opened anew)."""
        for name, info in self.entries.items():
            if entries.get(name) != info:
                self._cache.pop(name, None)
        self.entries, self.default = entries, default

    def monitor_config(self, base: MonitorConfig, name: str | None) -> MonitorConfig:
        """conmon's settings for a container of runtime ``name``."""
        info = self.entries[self.resolve(name)]
        if info.path == base.runtime and info.args == base.runtime_args:
            return base
        return dataclasses.replace(base, runtime=info.path, runtime_args=info.args)

    def info(self) -> dict[str, dict[str, object]]:
        """``docker info``'s Runtimes."""
        return {name: {"path": e.path, **({"runtimeArgs": list(e.args)} if e.args else {})}
                for name, e in sorted(self.entries.items())}
