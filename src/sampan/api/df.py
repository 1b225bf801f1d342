"""GET /system/df: `docker system df` (and `-v`)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..engine import InvalidParameter
from ..engine.df import usage
from .server import engine_of, reply, route

TYPES = ("container", "image", "volume", "build-cache")


async def get(request: web.Request) -> web.Response:
    types = set(request.query.getall("type", []))
    for kind in types:
        if kind not in TYPES:
            raise InvalidParameter(f"type: unknown object type: {kind}")
    engine = engine_of(request)
    return reply(await asyncio.to_thread(usage, engine.images, engine.containers.all(), types,
                                         engine.volumes))


def register(app: web.Application) -> None:
    route(app, "GET", "/system/df", get)
