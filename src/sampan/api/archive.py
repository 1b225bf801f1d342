"""/containers/{id}/archive (`docker cp`) and /containers/{id}/export."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import BinaryIO

from aiohttp import web

from ..engine import InvalidParameter
from ..engine.archive import ContainerFiles
from .server import engine_of, flag, route

_CHUNK = 1 << 20
STAT_HEADER = "X-Docker-Container-Path-Stat"


def _files(request: web.Request) -> ContainerFiles:
    return ContainerFiles(engine_of(request).containers)


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("bad parameter: path cannot be empty")
    return path


async def head(request: web.Request) -> web.Response:
    files = _files(request)
    ref, path = request.match_info["id"], _path(request)
    c = files.containers.get(ref)
    async with files.root(c) as root:
        info = await asyncio.to_thread(files.stat, root, c, ref, path)
    return web.Response(status=200, headers={STAT_HEADER: info.header()})


async def get(request: web.Request) -> web.StreamResponse:
    files = _files(request)
    info, chunks = await files.get(request.match_info["id"], _path(request))
    return await _send(request, chunks, {STAT_HEADER: info.header()})


async def put(request: web.Request) -> web.Response:
    await _files(request).put(
        request.match_info["id"], _path(request), request.content.iter_chunked(_CHUNK),
        copy_uid_gid=flag(request, "copyUIDGID"),
        no_overwrite_dir_non_dir=flag(request, "noOverwriteDirNonDir"))
    return web.Response(status=200)


async def export(request: web.Request) -> web.StreamResponse:
    """`docker export`: the tar of the container's filesystem, read through a read-only
    mount of its snapshot (so a running container is exported as it is now)."""
    from ..images import export_container

    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    chunks = from_thread(lambda out: export_container(engine.images, c.id, out))
    response = await _send(request, chunks, {})
    engine.containers.on_change("export", c)
    return response


async def _send(request: web.Request, chunks: AsyncIterator[bytes],
                headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(status=200,
                                  headers={"Content-Type": "application/x-tar", **headers})
    try:
        first = await anext(chunks, b"")
        await response.prepare(request)
        try:
            if first:
                await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:  # the client stopped reading (it has what it wanted)
            pass
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    return response


async def from_thread(job: Callable[[BinaryIO], object]) -> AsyncIterator[bytes]:
    """What ``job`` writes to its file (in a worker thread), as chunks; the job's error is
    raised at the end, before the response is complete."""
    read_fd, write_fd = os.pipe()
    writer = os.fdopen(write_fd, "wb")

    def run() -> None:
        with writer:
            job(writer)

    task = asyncio.create_task(asyncio.to_thread(run))
    try:
        while chunk := await asyncio.to_thread(os.read, read_fd, _CHUNK):
            yield chunk
        await task
    finally:
        os.close(read_fd)  # a job still writing gets EPIPE and ends
        with suppress(Exception):
            await task


def register(app: web.Application) -> None:
    route(app, "HEAD", "/containers/{id}/archive", head)
    route(app, "GET", "/containers/{id}/archive", get)
    route(app, "PUT", "/containers/{id}/archive", put)
    route(app, "GET", "/containers/{id}/export", export)
