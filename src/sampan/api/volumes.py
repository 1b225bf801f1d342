"""/volumes endpoints: list (filters dangling, name, driver, label), create, inspect,
remove (in use: 409, even forced, as dockerd) and prune (anonymous volumes only unless
all=true, from API 1.42 on; older clients prune every unused volume)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..engine import InvalidParameter
from .server import engine_of, filters, flag, json_body, reply, route


def _string_map(body: dict[str, Any], key: str) -> dict[str, str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidParameter(f"{key}: expected an object of strings")
    return value


async def list_(request: web.Request) -> web.Response:
    volumes = engine_of(request).volumes
    found = volumes.find(filters(request))
    return reply({"Volumes": [v.to_api() for v in found], "Warnings": None})


async def create(request: web.Request) -> web.Response:
    body = await json_body(request) or {}
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a VolumeCreateOptions object")
    name = body.get("Name") or ""
    driver = body.get("Driver") or ""
    if not isinstance(name, str) or not isinstance(driver, str):
        raise InvalidParameter("Name and Driver must be strings")
    volume, _ = engine_of(request).volumes.create(
        name, driver, labels=_string_map(body, "Labels"),
        options=_string_map(body, "DriverOpts"))
    return reply(volume.to_api(), status=201)


async def inspect(request: web.Request) -> web.Response:
    return reply(engine_of(request).volumes.get(request.match_info["name"]).to_api())


async def delete(request: web.Request) -> web.Response:
    engine_of(request).volumes.remove(request.match_info["name"], force=flag(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    version = tuple(int(p) for p in request["api_version"].split("."))
    removed, reclaimed = engine_of(request).volumes.prune(
        filters(request), all_volumes=version < (1, 42))
    return reply({"VolumesDeleted": removed or None, "SpaceReclaimed": reclaimed})


def register(app: web.Application) -> None:
    route(app, "GET", "/volumes", list_)
    route(app, "POST", "/volumes/create", create)
    route(app, "POST", "/volumes/prune", prune)
    route(app, "GET", "/volumes/{name}", inspect)
    route(app, "DELETE", "/volumes/{name}", delete)
