"""/containers endpoints: create, start, stop, kill, wait, delete, inspect, list, logs,
attach and resize."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from typing import Any

from aiohttp import web

from ..engine import Conflict, EngineError, InvalidParameter, netviews, stats, update, views
from ..engine import logs as logfile
from ..engine.attach import parse_detach_keys
from ..engine.df import add_sizes
from ..engine.record import Container
from ..engine.top import top
from .hijack import MULTIPLEXED_STREAM, RAW_STREAM, Hijacked, frame, hijack
from .server import engine_of, filters, flag, json_body, reply, route

FOLLOW_INTERVAL = 0.1


def _int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {value!r}") from None


def _graph(request: web.Request, c: Container) -> dict[str, Any]:
    images = engine_of(request).images
    snapshots = images.snapshots
    data: dict[str, str] = {}
    if snapshots.exists(c.id):
        info = snapshots.stat(c.id)
        data = {"UpperDir": snapshots.fs(info), "WorkDir": info.directory + "/work",
                "MergedDir": engine_of(request).containers.directory(c) + "/rootfs",
                "LowerDir": ":".join(snapshots.fs(p) for p in snapshots.parents(info))}
    return {"Data": data or None, "Name": snapshots.name}


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    engine = engine_of(request)
    container = engine.containers.create(request.query.get("name") or None, body)
    return reply({"Id": container.id, "Warnings": []}, status=201)


async def inspect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    log_path = engine.containers.log_path(c) \
        if engine.containers.log_options(c).driver != "none" else ""
    return reply(views.inspect(c, engine.containers.directory(c), log_path,
                               _graph(request, c),
                               network=netviews.container_settings(engine.networking, c)))


async def list_(request: web.Request) -> web.Response:
    engine = engine_of(request)
    wanted = filters(request)
    for key in wanted:
        if key not in views.FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
    for status in wanted.get("status", []):
        if status not in views.STATUSES:
            raise InvalidParameter(f"invalid filter 'status={status}'")
    show_all = flag(request, "all")
    limit = _int(request, "limit") or (1 if flag(request, "latest") else None)
    chosen = [c for c in engine.containers.all()
              if (show_all or limit or c.state.running or "status" in wanted)
              and views.matches(c, wanted)]
    if limit and limit > 0:
        chosen = chosen[:limit]
    out = []
    for c in chosen:
        settings = netviews.container_settings(engine.networking, c)
        out.append(views.summary(c, settings, netviews.port_list(settings)))
    if flag(request, "size"):
        await asyncio.to_thread(add_sizes, engine.images, chosen, out)
    return reply(out)


async def start(request: web.Request) -> web.Response:
    await engine_of(request).containers.start(request.match_info["id"])
    return web.Response(status=204)


async def stop(request: web.Request) -> web.Response:
    timeout = _int(request, "t")
    if timeout is None:
        timeout = _int(request, "timeout")
    await engine_of(request).containers.stop(request.match_info["id"], timeout,
                                             request.query.get("signal"))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    await engine_of(request).containers.restart(
        request.match_info["id"], _int(request, "t"), request.query.get("signal"))
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    await engine_of(request).containers.kill(request.match_info["id"],
                                             request.query.get("signal") or None)
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    condition = request.query.get("condition", "not-running") or "not-running"
    c = containers.get(request.match_info["id"])
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: {condition!r}")
    future = containers.waiter(c, condition)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)  # the client starts the container once it has this
    status = await future
    body: dict[str, Any] = {"StatusCode": status.code}
    body["Error"] = {"Message": status.error} if status.error else None
    with contextlib.suppress(ConnectionResetError):  # the client gave up waiting
        await response.write(json.dumps(body).encode() + b"\n")
        await response.write_eof()
    return response


async def delete(request: web.Request) -> web.Response:
    await engine_of(request).containers.remove(request.match_info["id"],
                                               force=flag(request, "force"),
                                               volumes=flag(request, "v"))
    return web.Response(status=204)


async def resize(request: web.Request) -> web.Response:
    height, width = _int(request, "h") or 0, _int(request, "w") or 0
    engine_of(request).containers.resize(request.match_info["id"], height, width)
    return web.Response(status=200)


async def logs(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    c = containers.get(request.match_info["id"])
    stdout, stderr = flag(request, "stdout"), flag(request, "stderr")
    if not (stdout or stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    tail_text = request.query.get("tail", "all")
    try:
        tail = None if tail_text in ("all", "") else max(0, int(tail_text))
    except ValueError:
        raise InvalidParameter(f"invalid value for tail: {tail_text!r}") from None
    since = float(request.query.get("since") or 0)
    until = float(request.query.get("until") or 0)
    timestamps, follow = flag(request, "timestamps"), flag(request, "follow")
    if containers.log_options(c).driver == "none":
        raise NotImplementedByDriver("configured logging driver does not support reading")
    with contextlib.suppress(OSError):
        containers.shipper(c).ship()
    response = web.StreamResponse(
        status=200, headers={"Content-Type": RAW_STREAM if c.tty else MULTIPLEXED_STREAM})
    await response.prepare(request)
    exited = containers.exited_event(c)
    chosen = functools.partial(logfile.wanted, stdout=stdout, stderr=stderr, since=since,
                               until=until)

    async def send(entries: list[logfile.LogEntry]) -> None:
        for entry in entries:
            if not chosen(entry):
                continue
            data = (entry.time.encode() + b" " + entry.data) if timestamps else entry.data
            stream = 1 if entry.stream == logfile.STDOUT else 2
            await response.write(data if c.tty else frame(stream, data))

    # Both taken in one step: the snapshot ends where the follower's entries begin.
    snapshot = logfile.Snapshot(containers.log_path(c))
    follower = logfile.Follower(containers.shipper(c)) if follow else None
    try:
        start, skip = (0, 0), 0
        if tail is not None:  # found reading backwards, then streamed: memory stays bounded
            index, offset, skip = await asyncio.to_thread(snapshot.tail_start, tail, chosen)
            start = (index, offset)
        for batch in snapshot.batches(start):
            if skip:
                shown = [e for e in batch if chosen(e)]
                batch, skip = shown[skip:], max(0, skip - len(shown))
            await send(batch)
        snapshot.close()
        while follower is not None and not (until and until < time.time()):
            if batch := follower.read():
                await send(batch)
                continue
            if not c.state.running:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exited.wait(), FOLLOW_INTERVAL)
            with contextlib.suppress(OSError):
                containers.shipper(c).ship()
        await response.write_eof()
    except ConnectionResetError:  # the client stopped following
        pass
    finally:
        snapshot.close()
        if follower is not None:
            follower.close()
    return response


class NotImplementedByDriver(EngineError):
    status = 501


async def attach(request: web.Request) -> web.StreamResponse:
    containers = engine_of(request).containers
    c = containers.get(request.match_info["id"])
    if not flag(request, "stream") and not flag(request, "logs"):
        raise InvalidParameter("Bad parameters: you must choose at least one of stream or "
                               "logs")
    want_in = flag(request, "stdin")
    want_out, want_err = flag(request, "stdout"), flag(request, "stderr")
    detach_keys = parse_detach_keys(request.query.get("detachKeys"))
    att = containers.attach(c.id, stdin=want_in, stdout=want_out, stderr=want_err)
    if c.tty and att.stdin:
        att.watch_for_detach(detach_keys)
    response, conn = await hijack(request, RAW_STREAM if c.tty else MULTIPLEXED_STREAM)
    conn.on_lost(att.stop)
    try:
        if flag(request, "logs"):
            past = logfile.Snapshot(containers.log_path(c))
            try:
                for batch in past.batches():
                    for entry in batch:
                        if logfile.wanted(entry, stdout=want_out, stderr=want_err):
                            stream = 1 if entry.stream == logfile.STDOUT else 2
                            await conn.write(entry.data if c.tty
                                             else frame(stream, entry.data))
            finally:
                past.close()
        if flag(request, "stream"):
            await pump(conn, att, c.tty)
            if att.detached:
                containers.on_change("detach", c)
    finally:
        att.close()
        conn.close()
    return response


async def pump(conn: Hijacked, att: Any, tty: bool) -> None:
    """Copy stdin from the client and the output to it until the output ends."""

    async def stdin() -> None:
        while data := await conn.read():
            await att.send(data)
        await att.close_stdin()

    feeder = asyncio.create_task(stdin()) if att.stdin else None
    try:
        while (item := await att.recv()) is not None:
            stream, data = item
            if not await conn.write(data if tty else frame(stream, data)):
                break
    finally:
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder


async def rename(request: web.Request) -> web.Response:
    engine_of(request).containers.rename(request.match_info["id"],
                                         request.query.get("name", ""))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    for key in filters(request):
        raise InvalidParameter(f"invalid filter '{key}'")
    removed = await engine_of(request).containers.prune()
    return reply({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})


async def top_(request: web.Request) -> web.Response:
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    if not c.state.running:
        raise Conflict(f"Container {c.id} is not running")
    pids = await engine.containers.runtime_of(c).pids(c.id)
    return reply(await top(pids, request.query.get("ps_args") or "-ef"))


_CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}


async def changes(request: web.Request) -> web.Response:
    """`docker diff`: the container layer's changes, Kind 0 changed, 1 added, 2 deleted."""
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    found = await asyncio.to_thread(engine.images.snapshots.diff, c.id)
    return reply([{"Path": ch.path, "Kind": _CHANGE_KINDS[ch.kind]} for ch in found] or None)


async def pause(request: web.Request) -> web.Response:
    await engine_of(request).containers.pause(request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await engine_of(request).containers.unpause(request.match_info["id"])
    return web.Response(status=204)


async def update_(request: web.Request) -> web.Response:
    engine = engine_of(request)
    warnings = await update.update(engine.containers, request.match_info["id"],
                                   await json_body(request))
    return reply({"Warnings": warnings})


STATS_INTERVAL = 1.0


async def stats_(request: web.Request) -> web.StreamResponse:
    """One document (stream=false; one-shot=true without precpu_stats) or one a second."""
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    stream = flag(request, "stream", default=True)
    one_shot = flag(request, "one-shot")
    if stream and one_shot:
        raise InvalidParameter("cannot have stream=true and one-shot=true")
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    previous: dict[str, Any] | None = None
    try:
        if not c.state.running:
            await response.write(json.dumps(stats.not_running(c)).encode() + b"\n")
        else:
            if not stream and not one_shot:  # as dockerd: a sample before, for the CPU %
                previous = await stats.sample(engine.containers.runtime_of(c), c)
                await asyncio.sleep(STATS_INTERVAL)
            while c.state.running:
                current = await stats.sample(engine.containers.runtime_of(c), c)
                doc = stats.with_previous(dict(current), previous)
                await response.write(json.dumps(doc).encode() + b"\n")
                if not stream:
                    break
                previous = current
                await asyncio.sleep(STATS_INTERVAL)
        await response.write_eof()
    except ConnectionResetError:  # the client stopped reading
        pass
    except EngineError:  # the container stopped between two samples
        if stream:
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
        else:
            raise
    return response


def register(app: web.Application) -> None:
    route(app, "POST", "/containers/{id}/pause", pause)
    route(app, "POST", "/containers/{id}/unpause", unpause)
    route(app, "POST", "/containers/{id}/update", update_)
    route(app, "GET", "/containers/{id}/stats", stats_)
    route(app, "POST", "/containers/create", create)
    route(app, "GET", "/containers/json", list_)
    route(app, "GET", "/containers/{id}/json", inspect)
    route(app, "POST", "/containers/{id}/start", start)
    route(app, "POST", "/containers/{id}/stop", stop)
    route(app, "POST", "/containers/{id}/restart", restart)
    route(app, "POST", "/containers/{id}/kill", kill)
    route(app, "POST", "/containers/{id}/wait", wait)
    route(app, "POST", "/containers/{id}/resize", resize)
    route(app, "POST", "/containers/{id}/attach", attach)
    route(app, "GET", "/containers/{id}/logs", logs)
    route(app, "POST", "/containers/{id}/rename", rename)
    route(app, "GET", "/containers/{id}/top", top_)
    route(app, "GET", "/containers/{id}/changes", changes)
    route(app, "POST", "/containers/prune", prune)
    route(app, "DELETE", "/containers/{id}", delete)
