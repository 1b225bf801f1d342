"""`docker top`: the host's ps output, reduced to the container's processes."""

from __future__ import annotations

import asyncio
from typing import Any

from .errors import EngineError, InvalidParameter


async def top(pids: list[int], ps_args: str = "-ef") -> dict[str, Any]:
    """Docker's answer: ``Titles`` and the ``Processes`` rows whose PID is one of ``pids``."""
    args = ps_args.split()
    if any(not a.startswith("-") and not a.isalnum() for a in args):
        raise InvalidParameter(f"ps_args: invalid arguments {ps_args!r}")
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise EngineError(f"ps: {err.decode(errors='replace').strip()}")
    lines = out.decode(errors="replace").splitlines()
    if not lines:
        raise EngineError("ps: no output")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidParameter(f"ps_args: couldn't find PID field in ps output for {ps_args!r}")
    column = titles.index("PID")
    wanted = {str(p) for p in pids}
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > column and fields[column] in wanted:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}
