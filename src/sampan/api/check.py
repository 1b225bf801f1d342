"""POST /sampan/system/check: sampan's own extension (no docker client calls it), the
system check run inside sampand. ``repair=1`` repairs what is safe; ``verify=0`` skips
re-hashing the blobs. Work in flight is left alone: only leftovers older than this
sampand's start count (``check.Scope.since``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..engine import Engine
from ..engine.record import Container
from .server import engine_of, flag, reply, route

LOCK = web.AppKey("check-lock", asyncio.Lock)


def _containers(engine: Engine) -> list[Container]:
    """The engine's containers, read from the check's thread (a change on the event
    loop meanwhile makes the copy fail: read again)."""
    for _ in range(20):
        try:
            return engine.containers.all()
        except RuntimeError:
            continue
    return engine.containers.all()


async def post(request: web.Request) -> web.Response:
    from ..check import Scope, run

    engine = engine_of(request)
    options = engine.options
    scope = Scope(data_root=options.data_root, exec_root=options.exec_root,
                  cgroup_parent=options.cgroup_parent, images=engine.images,
                  containers=lambda: _containers(engine), network=engine.networking,
                  net_call=engine.networking.run_sync, since=engine.started,
                  verify_blobs=flag(request, "verify", True))
    async with request.app[LOCK]:  # one check at a time
        report = await asyncio.to_thread(run, scope, flag(request, "repair"))
    return reply(report.to_json())


def register(app: web.Application) -> None:
    app[LOCK] = asyncio.Lock()
    route(app, "POST", "/sampan/system/check", post)
