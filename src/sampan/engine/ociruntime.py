"""The OCI runtime's command line (runc's), for what conmon does not do: start, kill, delete,
pause and resume, update and stats."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from .errors import EngineError


@dataclass
class OCIRuntime:
    path: str
    root: str

    async def _run(self, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.path, "--root", self.root, *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if check and proc.returncode != 0:
            raise EngineError(f"{args[0]}: {err.decode(errors='replace').strip() or out.decode()}")
        return out.decode(errors="replace")

    async def start(self, container_id: str) -> None:
        await self._run("start", container_id)

    async def kill(self, container_id: str, signal: int) -> None:
        await self._run("kill", container_id, str(signal))

    async def pids(self, container_id: str) -> list[int]:
        """The processes of the container (runc's ``ps --format json``)."""
        out = await self._run("ps", "--format", "json", container_id)
        try:
            pids = json.loads(out or "[]")
        except ValueError:
            raise EngineError(f"ps: unexpected output from the runtime: {out[:200]!r}") \
                from None
        return [int(p) for p in pids or []]

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
        await self._run("delete", "--force", container_id, check=False)
