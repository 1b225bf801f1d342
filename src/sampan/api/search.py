"""GET /images/search: `docker search`, over the registry client's search.

The term names the registry as a reference does (``127.0.0.1:5000/name`` searches that
registry for ``name``; a term without a registry searches Docker Hub).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .. import registry
from ..engine import InvalidParameter
from ..images.reference import DEFAULT_DOMAIN
from .images import _registry_error, credentials
from .server import filters, reply, route

DEFAULT_LIMIT = 25
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def split_term(term: str) -> tuple[str, str]:
    """(registry domain, search term), as Docker's splitReposSearchTerm."""
    first, sep, rest = term.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return DEFAULT_DOMAIN, term
    return first, rest


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", "")
    if not text:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise InvalidParameter(f"limit: invalid value {text!r}") from None
    if not 1 <= limit <= 100:
        raise InvalidParameter(f"limit {limit} is outside the range of [1, 100]")
    return limit


def _bool_filter(wanted: dict[str, list[str]], key: str) -> bool | None:
    values = wanted.get(key)
    if not values:
        return None
    if values[-1].lower() not in _BOOLS:
        raise InvalidParameter(f"invalid filter '{key}={values[-1]}'")
    return _BOOLS[values[-1].lower()]


async def search(request: web.Request) -> web.Response:
    term = request.query.get("term", "")
    if not term:
        raise InvalidParameter("term: a search term is required")
    limit = _limit(request)
    wanted = filters(request)
    for key in wanted:
        if key not in ("is-automated", "is-official", "stars"):
            raise InvalidParameter(f"invalid filter '{key}'")
    official = _bool_filter(wanted, "is-official")
    automated = _bool_filter(wanted, "is-automated")
    stars = 0
    for value in wanted.get("stars", []):
        try:
            stars = max(stars, int(value))
        except ValueError:
            raise InvalidParameter(f"invalid filter 'stars={value}'") from None
    domain, name = split_term(term)
    options = registry.RegistryOptions(credentials=credentials(request))
    try:
        found = await asyncio.to_thread(registry.search, name, domain, limit=limit,
                                        options=options)
    except registry.RegistryError as exc:
        raise _registry_error(exc) from None
    return reply([r.as_docker() for r in found
                  if (official is None or r.is_official == official)
                  and (automated is None or r.is_automated == automated)
                  and r.star_count >= stars])


def register(app: web.Application) -> None:
    route(app, "GET", "/images/search", search)
