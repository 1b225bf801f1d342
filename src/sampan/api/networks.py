"""/networks endpoints: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..engine import InvalidParameter, netviews
from ..engine.netmodel import Network
from ..engine.networking import Networking
from ..engine.record import parse_rfc3339
from .server import engine_of, filters, json_body, reply, route

LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
PRUNE_FILTERS = ("label", "label!", "until")


def _labelled(net: Network, wanted: list[str]) -> bool:
    for want in wanted:
        key, sep, value = want.partition("=")
        if key not in net.labels or (sep and net.labels[key] != value):
            return False
    return True


def _matches(service: Networking, net: Network, wanted: dict[str, list[str]]) -> bool:
    checks = {
        "name": lambda v: v in net.name,
        "id": lambda v: net.id.startswith(v),
        "driver": lambda v: v == net.driver,
        "scope": lambda v: v == "local",
        "type": lambda v: v == ("custom" if net.user_defined else "builtin"),
        "dangling": lambda v: (v in ("1", "true")) == (
            net.user_defined and not service.members(net)),
    }
    for key, values in wanted.items():
        if key == "label":
            if not _labelled(net, values):
                return False
        elif values and not any(checks[key](v) for v in values):
            return False
    return True


def _check_filters(wanted: dict[str, list[str]], allowed: tuple[str, ...]) -> None:
    for key in wanted:
        if key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}'")


def _view(request: web.Request, net: Network) -> dict[str, Any]:
    engine = engine_of(request)
    running = {c.id: c for c in engine.containers.all()}
    return netviews.network_json(engine.networking, net, running)


async def list_(request: web.Request) -> web.Response:
    service = engine_of(request).networking
    wanted = filters(request)
    _check_filters(wanted, LIST_FILTERS)
    return reply([_view(request, n) for n in service.all() if _matches(service, n, wanted)])


async def inspect(request: web.Request) -> web.Response:
    net = engine_of(request).networking.get(request.match_info["id"])
    return reply(_view(request, net))


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    service = engine_of(request).networking
    net = await service.run(service.create, body)
    return reply({"Id": net.id, "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    service = engine_of(request).networking
    await service.run(service.remove, request.match_info["id"])
    return web.Response(status=204)


def _container_ref(body: Any) -> str:
    if not isinstance(body, dict) or not body.get("Container"):
        raise InvalidParameter("Container: a container is required")
    return str(body["Container"])


async def connect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    body = await json_body(request)
    c = engine.containers.get(_container_ref(body))
    await engine.networking.run(engine.networking.connect, request.match_info["id"], c, body)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    body = await json_body(request)
    c = engine.containers.get(_container_ref(body))
    await engine.networking.run(engine.networking.disconnect, request.match_info["id"], c,
                                bool(body.get("Force")))
    return web.Response(status=200)


def _until(values: list[str]) -> float | None:
    if not values:
        return None
    text = values[0]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise InvalidParameter(f"invalid filter 'until={text}'") from None


async def prune(request: web.Request) -> web.Response:
    service = engine_of(request).networking
    wanted = filters(request)
    _check_filters(wanted, PRUNE_FILTERS)
    until = _until(wanted.get("until", []))
    keep = [n.id for n in service.all()
            if not _labelled(n, wanted.get("label", []))
            or any(_labelled(n, [v]) for v in wanted.get("label!", []))
            or (until is not None and parse_rfc3339(n.created) > until)]
    return reply({"NetworksDeleted": await service.run(service.prune, keep) or None})


def register(app: web.Application) -> None:
    route(app, "GET", "/networks", list_)
    route(app, "POST", "/networks/create", create)
    route(app, "POST", "/networks/prune", prune)
    route(app, "GET", "/networks/{id}", inspect)
    route(app, "DELETE", "/networks/{id}", remove)
    route(app, "POST", "/networks/{id}/connect", connect)
    route(app, "POST", "/networks/{id}/disconnect", disconnect)
