"""GET /events: past events since ``since``, then live ones until ``until`` (or forever),
filtered as Docker filters them, one JSON object per line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from aiohttp import web

from ..engine import InvalidParameter
from .server import engine_of, filters, route

FILTERS = ("type", "event", "container", "image", "label", "network")


def _time(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidParameter(f"{name}: invalid timestamp {value!r}") from None


async def events(request: web.Request) -> web.StreamResponse:
    wanted = filters(request)
    for key in wanted:
        if key not in FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
    since, until = _time(request, "since"), _time(request, "until")
    log = engine_of(request).events
    queue = log.subscribe()
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        past = log.since(since) if since is not None else []
        for event in past:
            if (until is None or event.time_nano <= until * 1e9) and event.matches(wanted):
                await response.write(json.dumps(event.message()).encode() + b"\n")
        seen = {id(e) for e in past}
        while until is None or time.time() < until:
            timeout = None if until is None else max(0.0, until - time.time())
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                break
            if id(event) not in seen and event.matches(wanted):
                await response.write(json.dumps(event.message()).encode() + b"\n")
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
    except ConnectionResetError:
        pass
    finally:
        log.unsubscribe(queue)
    return response


def register(app: web.Application) -> None:
    route(app, "GET", "/events", events)
