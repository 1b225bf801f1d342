"""/images endpoints over the image store and the registry client."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import tempfile
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .. import images as imagelib
from .. import registry
from ..engine import Conflict, EngineError, InvalidParameter, NotFound
from ..errors import os_error_text
from ..images import ImageConflict, ImageError, ImageNotFound, InvalidReference
from ..images.rootfs import import_image
from .server import engine_of, filters, flag, reply, route

_CHUNK = 1 << 20


def _image_error(exc: Exception) -> EngineError:
    if isinstance(exc, ImageNotFound):
        return NotFound(str(exc))
    if isinstance(exc, ImageConflict):
        return Conflict(str(exc))
    if isinstance(exc, InvalidReference):
        return InvalidParameter(str(exc))
    return InvalidParameter(str(exc))


def _registry_error(exc: registry.RegistryError) -> EngineError:
    if isinstance(exc, registry.NotFound | registry.Unauthorized):
        return NotFound(str(exc))
    return EngineError(str(exc))


def credentials(request: web.Request) -> registry.Credentials | None:
    """X-Registry-Auth: base64url JSON with username/password or identitytoken."""
    header = request.headers.get("X-Registry-Auth")
    if not header:
        return None
    try:
        padded = header + "=" * (-len(header) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return None  # dockerd ignores an unreadable header too
    if not isinstance(data, dict):
        return None
    creds = registry.Credentials(username=str(data.get("username") or ""),
                                 password=str(data.get("password") or ""),
                                 identity_token=str(data.get("identitytoken") or ""))
    return creds or None


async def list_(request: web.Request) -> web.Response:
    try:
        return reply(engine_of(request).images.list_images(filters(request)))
    except ImageError as exc:
        raise _image_error(exc) from None


async def inspect(request: web.Request) -> web.Response:
    try:
        return reply(engine_of(request).images.inspect(request.match_info["name"]))
    except (ImageError, InvalidReference) as exc:
        raise _image_error(exc) from None


async def history(request: web.Request) -> web.Response:
    try:
        return reply(engine_of(request).images.history(request.match_info["name"]))
    except (ImageError, InvalidReference) as exc:
        raise _image_error(exc) from None


async def delete(request: web.Request) -> web.Response:
    try:
        items = engine_of(request).images.remove(request.match_info["name"],
                                                 force=flag(request, "force"))
    except (ImageError, InvalidReference) as exc:
        raise _image_error(exc) from None
    for item in items:
        for action, name in item.items():
            engine_of(request).image_event(action.lower(), name)
    return reply(items)


async def tag(request: web.Request) -> web.Response:
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidParameter("repository name must have at least one component")
    target = f"{repo}:{request.query['tag']}" if request.query.get("tag") else repo
    try:
        engine_of(request).images.tag(request.match_info["name"], target)
    except (ImageError, InvalidReference) as exc:
        raise _image_error(exc) from None
    engine_of(request).image_event("tag", target)
    return web.Response(status=201)


class _Progress:
    """Pull progress from the worker thread to the response, as Docker's JSON messages.

    The response starts with the first message after "Pulling from", so that a pull which
    fails at once (unknown image, denied) still gets a real error status.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def __call__(self, event: registry.ProgressEvent) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event.message())


async def create(request: web.Request) -> web.StreamResponse:
    if request.query.get("fromSrc"):
        return await _import(request)
    image = request.query.get("fromImage", "")
    if not image:
        raise InvalidParameter("fromImage: an image name is required")
    tag_ = request.query.get("tag", "")
    reference = image
    if tag_:
        reference += ("@" if tag_.startswith("sha256:") else ":") + tag_
    try:
        imagelib.parse_docker_ref(reference)
    except InvalidReference as exc:
        raise InvalidParameter(str(exc)) from None
    engine = engine_of(request)
    platform = request.query.get("platform") or None
    return await _stream(request, "pull", reference, lambda options, progress: registry.pull(
        engine.images, reference, platform, options=options, progress=progress))


async def _import(request: web.Request) -> web.StreamResponse:
    """`docker import`: the request body is a rootfs tarball, made a one-layer image."""
    if request.query["fromSrc"] != "-":
        raise InvalidParameter("fromSrc: only \"-\" (the request body) is supported; "
                               "sampand does not download tarballs")
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "")
    reference = (repo + (":" + tag_ if tag_ else "")) if repo else None
    engine = engine_of(request)
    with tempfile.TemporaryFile(dir=engine.options.data_root) as spool:
        while chunk := await request.content.read(_CHUNK):
            spool.write(chunk)
        spool.seek(0)
        try:
            image = await asyncio.to_thread(
                import_image, engine.images, spool, reference,
                changes=request.query.getall("changes", []),
                message=request.query.get("message", ""),
                platform=request.query.get("platform") or None)
        except (ImageError, InvalidReference) as exc:
            raise _image_error(exc) from None
    engine.image_event("import", image.id)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(json.dumps({"status": image.id}).encode() + b"\r\n")
    await response.write_eof()
    return response


async def push(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if request.query.get("tag"):
        name += ":" + request.query["tag"]
    engine = engine_of(request)
    return await _stream(request, "push", name, lambda options, progress: registry.push(
        engine.images, name, options=options, progress=progress))


# The first line of a pull or push is held back, so that a job failing at once (unknown
# image, access denied) still gets a real error status instead of an in-stream error.
_HELD = ("Pulling from", "The push refers to")


async def _stream(request: web.Request, action: str, reference: str,
                  job: Callable[[registry.RegistryOptions, _Progress], object],
                  ) -> web.StreamResponse:
    """Run a registry job in a thread, streaming its progress as Docker's JSON messages."""
    progress = _Progress(asyncio.get_running_loop())
    options = registry.RegistryOptions(
        credentials=credentials(request),
        insecure_registries=tuple(engine_of(request).options.insecure_registries),
        mirrors=tuple(engine_of(request).options.registry_mirrors))
    task = asyncio.create_task(asyncio.to_thread(job, options, progress))
    task.add_done_callback(lambda _: progress.queue.put_nowait(None))
    held: list[dict[str, Any]] = []
    response: web.StreamResponse | None = None
    while (message := await progress.queue.get()) is not None:
        held.append(message)
        if response is None and not str(message.get("status", "")).startswith(_HELD):
            response = await _start_stream(request)
        if response is not None:
            await _send(response, held)
    try:
        await task
        engine_of(request).image_event(action, reference)
    except (registry.RegistryError, ImageError, InvalidReference, OSError) as exc:
        if response is None:
            if isinstance(exc, OSError):
                raise
            if isinstance(exc, registry.RegistryError):
                raise _registry_error(exc) from None
            raise _image_error(exc) from None
        # a full data root (ENOSPC) ends the stream with docker's error message, not a
        # broken response
        text = os_error_text(exc) if isinstance(exc, OSError) else str(exc)
        held.append({"errorDetail": {"message": text}, "error": text})
    if response is None:
        response = await _start_stream(request)
    await _send(response, held)
    await response.write_eof()
    return response


async def _start_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    return response


async def _send(response: web.StreamResponse, messages: list[dict[str, Any]]) -> None:
    for item in messages:
        await response.write(json.dumps(item).encode() + b"\r\n")
    messages.clear()


async def prune(request: web.Request) -> web.Response:
    engine = engine_of(request)
    for key in filters(request):
        if key != "dangling":
            raise InvalidParameter(f"invalid filter '{key}'")
    deleted = await asyncio.to_thread(engine.images.prune)
    return reply({"ImagesDeleted": deleted or None, "SpaceReclaimed": 0})


async def load(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    with tempfile.TemporaryFile(dir=engine.options.data_root) as spool:
        while chunk := await request.content.read(_CHUNK):
            spool.write(chunk)
        spool.seek(0)
        try:
            messages = await asyncio.to_thread(imagelib.load, engine.images, spool)
        except ImageError as exc:
            raise InvalidParameter(str(exc)) from None
    for line in messages:
        engine.image_event("load", line.rsplit(" ", 1)[-1])
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for line in messages:
        await response.write(json.dumps({"stream": line + "\n"}).encode() + b"\r\n")
    await response.write_eof()
    return response


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    engine = engine_of(request)
    if not names:
        raise InvalidParameter("names: at least one image is required")
    with tempfile.TemporaryFile(dir=engine.options.data_root) as spool:
        try:
            await asyncio.to_thread(imagelib.save, engine.images, names, spool)
        except (ImageError, InvalidReference) as exc:
            raise _image_error(exc) from None
        size = spool.tell()
        spool.seek(0)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        response.content_length = size
        await response.prepare(request)
        while chunk := await asyncio.to_thread(spool.read, _CHUNK):
            await response.write(chunk)
    await response.write_eof()
    return response


async def get_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def get_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


def register(app: web.Application) -> None:
    route(app, "GET", "/images/json", list_)
    route(app, "POST", "/images/create", create)
    route(app, "POST", "/images/load", load)
    route(app, "POST", "/images/prune", prune)
    route(app, "GET", "/images/get", get_many)
    route(app, "GET", "/images/{name:.+}/json", inspect)
    route(app, "GET", "/images/{name:.+}/history", history)
    route(app, "GET", "/images/{name:.+}/get", get_one)
    route(app, "POST", "/images/{name:.+}/tag", tag)
    route(app, "POST", "/images/{name:.+}/push", push)
    route(app, "DELETE", "/images/{name:.+}", delete)
