"""/exec endpoints: create a session in a running container, start it (detached, or
attached over a hijacked connection), inspect it, resize its terminal."""

from __future__ import annotations

from aiohttp import web

from ..engine import EngineError, InvalidParameter
from .containers import pump
from .hijack import MULTIPLEXED_STREAM, RAW_STREAM, frame, hijack
from .server import engine_of, json_body, reply, route


async def create(request: web.Request) -> web.Response:
    session = engine_of(request).execs.create(request.match_info["id"],
                                              await json_body(request))
    return reply({"Id": session.id}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    body = await json_body(request) or {}
    if not isinstance(body, dict):
        raise InvalidParameter("exec start: expected a JSON object")
    execs = engine_of(request).execs
    session = execs.startable(request.match_info["id"])
    if body.get("Detach"):
        await execs.start(session.id, detach=True)
        return reply({}, status=200)
    tty = bool(session.config.tty)
    # Hijack first, then start: output must not reach a client still reading the headers
    # (docker-py reads the stream from the raw socket, past its HTTP buffer).
    response, conn = await hijack(request, RAW_STREAM if tty else MULTIPLEXED_STREAM)
    try:
        try:
            attachment = await execs.start(session.id, detach=False,
                                           size=_console_size(body))
        except EngineError as exc:
            # dockerd's way: the error as the process's output (a stdout frame unless on a
            # TTY); the client then reads the session's exit code, 126
            text = str(exc).strip().encode() + b"\r\n"
            await conn.write(text if tty else frame(1, text))
            return response
        assert attachment is not None
        conn.on_lost(attachment.stop)
        try:
            await pump(conn, attachment, tty)
            if not attachment.detached:
                await session.done.wait()  # the client asks for the exit code next
        finally:
            attachment.close()
    finally:
        conn.close()
    return response


def _console_size(body: dict[str, object]) -> tuple[int, int] | None:
    size = body.get("ConsoleSize")
    if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size) \
            and size[0] > 0 and size[1] > 0:
        return size[0], size[1]
    return None


async def inspect(request: web.Request) -> web.Response:
    return reply(engine_of(request).execs.get(request.match_info["id"]).inspect())


async def resize(request: web.Request) -> web.Response:
    try:
        height, width = int(request.query.get("h", 0)), int(request.query.get("w", 0))
    except ValueError:
        raise InvalidParameter("resize: h and w must be integers") from None
    engine_of(request).execs.resize(request.match_info["id"], height, width)
    return web.Response(status=200)


def register(app: web.Application) -> None:
    route(app, "POST", "/containers/{id}/exec", create)
    route(app, "POST", "/exec/{id}/start", start)
    route(app, "POST", "/exec/{id}/resize", resize)
    route(app, "GET", "/exec/{id}/json", inspect)
