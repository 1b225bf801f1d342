"""POST /build (the classic builder's protocol) and POST /build/prune.

The body is the build context as a tar; the answer is a JSON stream: ``{"stream": ...}``
lines as the classic builder prints them, ``{"aux": {"ID": ...}}`` for the result and
``{"errorDetail": {"code": ..., "message": ...}, "error": ...}`` when the build fails (the
docker CLI exits with that code). ``rm`` (default true) removes a RUN step's container once
the step worked, ``forcerm`` also when it failed; otherwise containers are kept, as dockerd
keeps them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import tempfile
from typing import Any

from aiohttp import web

from ..build.builder import Builder, BuildOptions
from ..build.cache import BuildCache
from ..build.context import open_context
from ..build.errors import BuildError
from ..build.prune import parse_filters
from ..build.pulling import RegistryAccess, wanted_platform
from ..engine import InvalidParameter
from ..errors import os_error_text
from .server import engine_of, filters, flag, reply, route

_CHUNK = 1 << 20
CACHE_KEY = web.AppKey("build_cache", BuildCache)
log = logging.getLogger("sampand")


def _json_param(request: web.Request, name: str) -> dict[str, Any]:
    text = request.query.get(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidParameter(f"{name}: invalid JSON") from None
    if not isinstance(value, dict):
        raise InvalidParameter(f"{name}: expected a JSON object")
    return value


def _registry(request: web.Request) -> RegistryAccess:
    """The daemon's registry settings and X-Registry-Config: base64url JSON of
    {registry: {username, password, identitytoken}} (an unreadable one is ignored, as by
    dockerd)."""
    from .. import registry

    engine = engine_of(request)
    options = registry.RegistryOptions(
        insecure_registries=tuple(engine.options.insecure_registries),
        mirrors=tuple(engine.options.registry_mirrors))
    auths: dict[str, registry.Credentials] = {}
    header = request.headers.get("X-Registry-Config")
    if header:
        try:
            data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        except (binascii.Error, ValueError):
            data = {}
        for host, entry in (data.items() if isinstance(data, dict) else []):
            if isinstance(entry, dict):
                creds = registry.Credentials(
                    username=str(entry.get("username") or ""),
                    password=str(entry.get("password") or ""),
                    identity_token=str(entry.get("identitytoken") or ""))
                if creds:
                    auths[str(host)] = creds
    return RegistryAccess(options=options, auths=auths)


def _options(request: web.Request) -> BuildOptions:
    query = request.query
    if query.get("version") == "2":
        raise InvalidParameter("version: BuildKit is not supported by sampand; build with "
                               "DOCKER_BUILDKIT=0 (the classic builder)")
    if query.get("remote"):
        raise InvalidParameter("remote: sampand builds from the request body only")
    platform = query.get("platform") or None
    try:
        wanted_platform(platform)
    except BuildError as exc:
        raise InvalidParameter(str(exc)) from None
    args = _json_param(request, "buildargs")
    labels = _json_param(request, "labels")
    return BuildOptions(
        tags=query.getall("t", []), dockerfile=query.get("dockerfile") or "Dockerfile",
        build_args={str(k): (None if v is None else str(v)) for k, v in args.items()},
        labels={str(k): str(v) for k, v in labels.items()}, target=query.get("target", ""),
        no_cache=flag(request, "nocache"), pull=flag(request, "pull"), quiet=flag(request, "q"),
        network_mode=query.get("networkmode", ""), platform=platform,
        remove=flag(request, "rm") if query.get("rm") else True,
        force_remove=flag(request, "forcerm"), registry=_registry(request))


def _cache(request: web.Request) -> BuildCache:
    return request.app[CACHE_KEY]


async def build(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    options = _options(request)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)

    async def emit(message: dict[str, Any]) -> None:
        await response.write(json.dumps(message).encode() + b"\r\n")

    work = os.path.join(engine.options.data_root, "build", "tmp")
    os.makedirs(work, mode=0o700, exist_ok=True)
    context = None
    try:
        with tempfile.TemporaryFile(dir=work) as spool:
            while chunk := await request.content.read(_CHUNK):
                spool.write(chunk)
            spool.seek(0)
            context = await asyncio.to_thread(open_context, spool, options.dockerfile, work)
        builder = Builder(engine, _cache(request), context, options, emit)
        await builder.build()
    except BuildError as exc:
        await emit({"errorDetail": {"code": exc.code, "message": str(exc)}, "error": str(exc)})
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:
        log.exception("build")
        text = os_error_text(exc) if isinstance(exc, OSError) else str(exc)  # a full disk
        await emit({"errorDetail": {"message": text}, "error": text})
    finally:
        if context is not None:
            await asyncio.to_thread(context.close)
    await response.write_eof()
    return response


async def prune(request: web.Request) -> web.Response:
    """``all``, ``filters`` (see build.prune) and ``keep-storage`` (``reserved-space`` from
    API 1.48 on): the cache is pruned, least recently used first, down to that many bytes."""
    keep = 0
    for name in ("keep-storage", "reserved-space"):
        text = request.query.get(name)
        if text:
            try:
                keep = max(keep, int(text))
            except ValueError:
                raise InvalidParameter(f"{name} is in bytes and expects an integer, got "
                                       f"{text}") from None
    wanted = filters(request)
    try:
        select = parse_filters(wanted)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None
    result = await asyncio.to_thread(_cache(request).prune, select if wanted else None, keep)
    return reply({"CachesDeleted": result.removed or None, "SpaceReclaimed": result.reclaimed})


async def _close(app: web.Application) -> None:
    app[CACHE_KEY].close()


def register(app: web.Application) -> None:
    from .server import ENGINE_KEY

    engine = app[ENGINE_KEY]
    app[CACHE_KEY] = BuildCache(os.path.join(engine.options.data_root, "build"), engine.images)
    app.on_cleanup.append(_close)
    route(app, "POST", "/build", build)
    route(app, "POST", "/build/prune", prune)
