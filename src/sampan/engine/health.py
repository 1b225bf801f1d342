"""Healthchecks as dockerd runs them (daemon/health.go).

Config.Healthcheck (or the image's HEALTHCHECK, merged field by field at create) names a
test: ``["CMD", args…]``, ``["CMD-SHELL", "cmd"]`` (run by ``/bin/sh -c``) or ``["NONE"]``.
While a container runs, a probe runs every Interval (every StartInterval during the
StartPeriod while it is still ``starting``) as an exec session through ``Execs``, so it sees
the container as ``docker exec`` does. A probe that outlives Timeout is killed and counts as
a failure (exit -1). Exit 0 makes the container ``healthy`` and resets FailingStreak;
Retries failures in a row make it ``unhealthy`` (failures during the start period do not
count until a probe succeeded). State.Health keeps the last five results, and each change
of status is a ``health_status: <status>`` event. Each probe is an exec session, so it
shows in the events as every exec does (exec_create, exec_start, exec_die: see execs.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import EngineError, InvalidParameter
from .record import Container, parse_rfc3339, rfc3339

if TYPE_CHECKING:
    from .execs import Execs

log = logging.getLogger("sampand")

SECOND = 1_000_000_000  # the API's durations are in nanoseconds
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000  # 1 ms
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


@dataclass(frozen=True)
class HealthConfig:
    test: list[str]  # the command to exec
    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int


def check(raw: Any) -> None:
    """Config.Healthcheck as dockerd validates it at create (400 naming the field)."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise InvalidParameter("Config.Healthcheck: expected an object")
    test = raw.get("Test")
    if test is not None and (not isinstance(test, list)
                             or not all(isinstance(t, str) for t in test)):
        raise InvalidParameter("Config.Healthcheck.Test: expected a list of strings")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidParameter(f"Config.Healthcheck.Test: unknown type {test[0]!r} "
                               "(want NONE, CMD or CMD-SHELL)")
    for key in _DURATIONS:
        value = raw.get(key) or 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidParameter(f"Config.Healthcheck.{key}: expected integer")
        if value and value < MIN_DURATION:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    retries = raw.get("Retries") or 0
    if not isinstance(retries, int) or isinstance(retries, bool):
        raise InvalidParameter("Config.Healthcheck.Retries: expected integer")
    if retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


def merge(config: dict[str, Any], image: dict[str, Any]) -> None:
    """Docker's merge of the image's HEALTHCHECK into the container's Config.Healthcheck."""
    theirs = image.get("Healthcheck")
    if not isinstance(theirs, dict):
        return
    ours = config.get("Healthcheck")
    if not isinstance(ours, dict):
        config["Healthcheck"] = dict(theirs)
        return
    merged = dict(ours)
    for key in ("Test", *_DURATIONS, "Retries"):
        if not merged.get(key) and theirs.get(key):
            merged[key] = theirs[key]
    config["Healthcheck"] = merged


def parse(config: dict[str, Any]) -> HealthConfig | None:
    """The healthcheck a container runs, None without one (or with NONE)."""
    raw = config.get("Healthcheck")
    if not isinstance(raw, dict):
        return None
    test = raw.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        shell = config.get("Shell") or ["/bin/sh", "-c"]
        args = [*shell, " ".join(test[1:])]
    elif test[0] == "CMD":
        args = list(test[1:])
    else:
        return None
    if not args:
        return None

    def seconds(key: str, default: float) -> float:
        value = raw.get(key) or 0
        return value / SECOND if value else default

    return HealthConfig(
        test=args, interval=seconds("Interval", DEFAULT_INTERVAL),
        timeout=seconds("Timeout", DEFAULT_TIMEOUT),
        start_period=seconds("StartPeriod", 0.0),
        start_interval=seconds("StartInterval", DEFAULT_START_INTERVAL),
        retries=raw.get("Retries") or DEFAULT_RETRIES)


def duration_text(seconds: float) -> str:
    """Go's time.Duration text for the timeout message (30s, 1.5s, 500ms)."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


@dataclass
class Probe:
    start: str
    end: str
    exit_code: int
    output: str

    def json(self) -> dict[str, Any]:
        return {"Start": self.start, "End": self.end, "ExitCode": self.exit_code,
                "Output": self.output}


def record(c: Container, cfg: HealthConfig, probe: Probe) -> str | None:
    """Apply a probe's result to State.Health; the new status if it changed."""
    health = c.state.health or {"Status": STARTING, "FailingStreak": 0, "Log": []}
    before = health["Status"]
    health["Log"] = [*health.get("Log", []), probe.json()][-MAX_LOG_ENTRIES:]
    if probe.exit_code == 0:
        health["FailingStreak"] = 0
        health["Status"] = HEALTHY
    else:
        in_start_period = (before == STARTING and parse_rfc3339(probe.start)
                           - parse_rfc3339(c.state.started_at) < cfg.start_period)
        if not in_start_period:
            health["FailingStreak"] = health.get("FailingStreak", 0) + 1
            if health["FailingStreak"] >= cfg.retries:
                health["Status"] = UNHEALTHY
    c.state.health = health
    return health["Status"] if health["Status"] != before else None


class Healthchecks:
    """A probing task per running container that has a healthcheck (a ``Watcher``)."""

    def __init__(self, execs: Execs, event: Callable[[str, Container, dict[str, str]], None],
                 save: Callable[[Container], None]) -> None:
        self.execs = execs
        self._event = event
        self._save = save
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def started(self, c: Container, adopted: bool) -> None:
        cfg = parse(c.config)
        self._cancel(c.id)
        if cfg is None:
            return
        if not adopted or c.state.health is None:
            c.state.health = {"Status": STARTING, "FailingStreak": 0, "Log": []}
            self._save(c)
        self._tasks[c.id] = asyncio.get_running_loop().create_task(self._run(c, cfg))

    def exited(self, c: Container) -> None:
        self._cancel(c.id)

    def _cancel(self, container_id: str) -> None:
        task = self._tasks.pop(container_id, None)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        for container_id in list(self._tasks):
            self._cancel(container_id)

    async def _run(self, c: Container, cfg: HealthConfig) -> None:
        while True:
            status = (c.state.health or {}).get("Status")
            starting = status == STARTING and (
                time.time() - parse_rfc3339(c.state.started_at) < cfg.start_period)
            await asyncio.sleep(cfg.start_interval if starting else cfg.interval)
            if not c.state.running:
                return
            if c.state.status == "paused":
                continue
            try:
                probe = await self.probe(c, cfg)
            except EngineError as exc:  # the container stopped under the probe
                log.debug("healthcheck of %s: %s", c.id[:12], exc)
                if not c.state.running:
                    return
                probe = Probe(rfc3339(), rfc3339(), -1, str(exc))
            if not c.state.running:
                return
            changed = record(c, cfg, probe)
            self._save(c)
            if changed:
                self._event(f"health_status: {changed}", c, {})

    async def probe(self, c: Container, cfg: HealthConfig) -> Probe:
        """Run the test once as an exec session; its result."""
        start = rfc3339()
        session = self.execs.create(c.id, {"Cmd": cfg.test, "AttachStdout": True,
                                           "AttachStderr": True})
        output = bytearray()
        truncated = False
        try:
            att = await self.execs.start(session.id, detach=False)
            assert att is not None

            async def collect() -> None:
                nonlocal truncated
                while (item := await att.recv()) is not None:
                    room = MAX_OUTPUT - len(output)
                    output.extend(item[1][:max(room, 0)])
                    truncated = truncated or len(item[1]) > room
                await session.done.wait()

            try:
                await asyncio.wait_for(collect(), cfg.timeout)
            except TimeoutError:
                if session.pid:
                    with suppress(ProcessLookupError):
                        os.kill(session.pid, signal.SIGKILL)
                with suppress(TimeoutError):  # its exit (and so its exec_die event)
                    await asyncio.wait_for(session.done.wait(), 5)
                text = output.decode(errors="replace") + ("..." if truncated else "")
                return Probe(start, rfc3339(), -1, "Health check exceeded timeout "
                             f"({duration_text(cfg.timeout)})" + (f": {text}" if text else ""))
            finally:
                att.close()
        finally:
            self.execs.discard(session.id)
        code = session.exit_code if session.exit_code is not None else -1
        text = output.decode(errors="replace") + ("..." if truncated else "")
        return Probe(start, rfc3339(), code, text)


def status_suffix(c: Container) -> str:
    """What ``docker ps`` adds to ``Up …``: `` (healthy)``, `` (health: starting)``."""
    health = c.state.health
    if not health or parse(c.config) is None:
        return ""
    status = health.get("Status", "")
    return f" (health: {status})" if status == STARTING else f" ({status})"
