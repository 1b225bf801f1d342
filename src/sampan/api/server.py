"""Routing, API versions and errors.

Every route answers both unversioned and under ``/v<major>.<minor>/``; a version below
``MIN_API_VERSION`` gets Docker's "too old" 400, one above ``API_VERSION`` its "too new".
Engine errors become ``{"message": …}`` with the status they carry.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..engine import Engine, InvalidParameter, NotModified
from ..errors import StatusError, os_error_text

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
ENGINE_KEY = web.AppKey("engine", Engine)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger("sampand")
_VERSION_RE = re.compile(r"^/v([0-9]+)\.([0-9]+)(/|$)")


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def reply(data: Any, status: int = 200) -> web.Response:
    """A JSON answer. The Content-Type is exactly application/json: the Go client reads
    error messages only then."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


def error(status: int, message: str) -> web.Response:
    return reply({"message": message}, status=status)


@web.middleware
async def versions(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = _VERSION_RE.match(request.path)
    if match:
        wanted = (int(match.group(1)), int(match.group(2)))
        text = f"{wanted[0]}.{wanted[1]}"
        if wanted < _version(MIN_API_VERSION):
            return error(400, f"client version {text} is too old. Minimum supported API "
                         f"version is {MIN_API_VERSION}, please upgrade your client to a "
                         "newer version")
        if wanted > _version(API_VERSION):
            return error(400, f"client version {text} is too new. Maximum supported API "
                         f"version is {API_VERSION}")
        request["api_version"] = text
    else:
        request["api_version"] = API_VERSION
    return await handler(request)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except NotModified:
        return web.Response(status=304)
    except StatusError as exc:
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, exc)
        return error(exc.status, str(exc))
    except web.HTTPNotFound:
        return error(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return error(405, "method not allowed")
    except web.HTTPException:
        raise
    except OSError as exc:  # a full disk: "<path>: no space left on device", as dockerd
        log.warning("%s %s: %s", request.method, request.path, exc)
        return error(500, os_error_text(exc))
    except Exception as exc:
        log.exception("%s %s", request.method, request.path)
        return error(500, str(exc) or type(exc).__name__)
    return response


def route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register ``path`` unversioned and versioned."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, r"/{_version:v[0-9]+\.[0-9]+}" + path, handler)


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE_KEY]


async def json_body(request: web.Request) -> Any:
    """The request's JSON (None if empty); invalid JSON is Docker's 400."""
    data = await request.read()
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise InvalidParameter(f"invalid JSON: {exc}") from None


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter as Docker reads them (1/true/True; 0/false/empty)."""
    value = request.query.get(name)
    if value is None:
        return default
    return value.lower() not in ("", "0", "false", "no")


def filters(request: web.Request) -> dict[str, list[str]]:
    """The ``filters`` parameter: {"key": ["v"]} or the old {"key": {"v": true}}."""
    text = request.query.get("filters")
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidParameter(f"invalid filter: {text}") from None
    if not isinstance(raw, dict):
        raise InvalidParameter(f"invalid filter: {text}")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            raise InvalidParameter(f"invalid filter: {key}")
    return out


def make_app(engine: Engine) -> web.Application:
    from . import (
        archive,
        build,
        check,
        commit,
        containers,
        df,
        events,
        execs,
        images,
        networks,
        search,
        system,
        volumes,
    )

    app = web.Application(middlewares=[errors, versions], client_max_size=1 << 30)
    app[ENGINE_KEY] = engine
    system.register(app)
    images.register(app)
    containers.register(app)
    execs.register(app)
    events.register(app)
    archive.register(app)
    commit.register(app)
    df.register(app)
    search.register(app)
    networks.register(app)
    volumes.register(app)
    build.register(app)
    check.register(app)
    return app
