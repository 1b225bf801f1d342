"""The OCI runtime's command line (runc's), for what conmon does not do: start, kill, delete."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from .errors import EngineError


@dataclass
class OCIRuntime:
    path: str
    root: str
    args: tuple[str, ...] = ()  # daemon.json's runtimeArgs, before the subcommand

    async def _run(self, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.path, *self.args, "--root", self.root, *args, stdin=asyncio.subprocess.DEVNULL,
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

    async def delete(self, container_id: str) -> None:
        await self._run("delete", "--force", container_id, check=False)
