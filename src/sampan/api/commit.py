"""POST /commit: `docker commit`, a container's changes as a new image."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..engine import InvalidParameter
from ..engine.commit import CommitRequest, commit, frozen
from ..images import ImageError, InvalidReference
from .server import engine_of, flag, json_body, reply, route


async def post(request: web.Request) -> web.Response:
    engine = engine_of(request)
    query = request.query
    c = engine.containers.get(query.get("container", ""))
    repo, tag = query.get("repo", ""), query.get("tag", "")
    if tag and not repo:
        raise InvalidParameter("tag: a tag needs a repository (repo)")
    body = await json_body(request)
    if body is not None and not isinstance(body, dict):
        raise InvalidParameter("config: expected a JSON object")
    job = CommitRequest(reference=(repo + (":" + tag if tag else "")) if repo else None,
                        comment=query.get("comment", ""), author=query.get("author", ""),
                        changes=query.getall("changes", []), config=body or None)
    try:
        async with frozen(engine.containers, c, flag(request, "pause", default=True)):
            image = await asyncio.to_thread(commit, engine.images, c, job)
            engine.containers.on_change("commit", c)  # before the unpause, as dockerd
    except (ImageError, InvalidReference) as exc:
        raise InvalidParameter(str(exc)) from None
    if job.reference:
        engine.image_event("tag", job.reference)
    return reply({"Id": image.id}, status=201)


def register(app: web.Application) -> None:
    route(app, "POST", "/commit", post)
