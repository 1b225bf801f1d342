"""The OCI runtime, for what conmon does not do: start, kill, delete, ps,
pause and resume, update and stats.

Any runtime is driven through runc's command line. sampan's own runtime is also a library
of this package, so with it these calls are made in-process (in a worker thread): each
saves a fresh interpreter's start-up, about 40 ms, on a container's way in and out.
``create`` always goes through conmon, which must be the container's parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import EngineError

T = TypeVar("T")


@dataclass
class OCIRuntime:
    path: str
    root: str
    args: tuple[str, ...] = ()  # daemon.json's runtimeArgs, before the subcommand
    _library: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if os.path.basename(self.path) == "sampan-runtime" and not self.args:
            from ..runtime.container import Runtime

            self._library = Runtime(self.root)

    async def _call(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        from ..cgroups import CgroupError
        from ..runtime.hooks import HookError
        from ..runtime.state import ContainerError

        try:
            return await asyncio.to_thread(fn, *args)
        except (ContainerError, CgroupError, HookError, OSError) as exc:
            raise EngineError(f"{name}: {exc}") from None

    async def _run(self, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.path, *self.args, "--root", self.root, *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if check and proc.returncode != 0:
            raise EngineError(f"{args[0]}: {err.decode(errors='replace').strip() or out.decode()}")
        return out.decode(errors="replace")

    async def start(self, container_id: str) -> None:
        if self._library is not None:
            await self._call("start", self._library.start, container_id)
        else:
            await self._run("start", container_id)

    async def kill(self, container_id: str, signal: int) -> None:
        if self._library is not None:
            await self._call("kill", self._library.kill, container_id, signal)
        else:
            await self._run("kill", container_id, str(signal))

    async def pids(self, container_id: str) -> list[int]:
        """The processes of the container (runc's ``ps --format json``)."""
        if self._library is not None:
            return await self._call("ps", self._library.pids, container_id)
        out = await self._run("ps", "--format", "json", container_id)
        try:
            pids = json.loads(out or "[]")
        except ValueError:
            raise EngineError(f"ps: unexpected output from the runtime: {out[:200]!r}") \
                from None
        return [int(p) for p in pids or []]

    async def status(self, container_id: str) -> str:
        """The runtime's view of the container (``state``'s status: running, paused…)."""
        if self._library is not None:
            state = await self._call("state", self._library.state, container_id)
        else:
            try:
                state = json.loads(await self._run("state", container_id))
            except ValueError:
                raise EngineError("state: unexpected output from the runtime") from None
        return str(state.get("status", ""))

    async def pause(self, container_id: str) -> None:
        await self._run("pause", container_id)

    async def resume(self, container_id: str) -> None:
        await self._run("resume", container_id)

    async def update(self, container_id: str, resources_file: str) -> None:
        """Apply an OCI LinuxResources document to the running container's cgroup."""
        await self._run("update", "--resources", resources_file, container_id)

    async def stats(self, container_id: str) -> dict[str, Any]:
        """runc's ``events --stats``: the cgroup's counters (its ``data``)."""
        out = await self._run("events", "--stats", container_id)
        try:
            data = json.loads(out.splitlines()[0] if out else "{}").get("data")
        except (ValueError, AttributeError):
            raise EngineError(f"events: unexpected output from the runtime: {out[:200]!r}") \
                from None
        return data if isinstance(data, dict) else {}

    async def delete(self, container_id: str) -> None:
        """Forced and quiet: used to clear leftovers, so an absent container is fine."""
        if self._library is None:
            await self._run("delete", "--force", container_id, check=False)
        elif os.path.isdir(os.path.join(self.root, container_id)):
            with contextlib.suppress(EngineError):
                await self._call("delete", self._library.delete, container_id, True)
