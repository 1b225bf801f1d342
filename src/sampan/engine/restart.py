"""Restart policies (no, on-failure[:N], always, unless-stopped) as dockerd's restart manager
applies them.

When a container exits, ``Restarts.exited`` decides from its policy, its exit code, whether
the user stopped it and how long it ran; a restart waits docker's back-off first: 100 ms,
doubled after each restart up to a minute, and back to 100 ms once a run lasted 10 s.
While it waits the container is ``restarting``. ``stop`` (and ``kill`` with the stop signal
or SIGKILL) holds the next restart back; a manual ``start`` clears that and the count.
At daemon start ``at_daemon_start`` is docker's rule for containers found not running:
``always`` restarts them, ``unless-stopped`` unless the user stopped them, ``on-failure``
after a failure within its retry budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .errors import InvalidParameter
from .record import Container, parse_rfc3339

log = logging.getLogger("sampand")

FIRST_DELAY = 0.1  # seconds
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # a run this long resets the back-off
POLICIES = ("no", "always", "unless-stopped", "on-failure")


@dataclass(frozen=True)
class Policy:
    name: str = "no"
    maximum_retry_count: int = 0

    @property
    def restarts(self) -> bool:
        return self.name != "no"


def parse_policy(raw: Any) -> Policy:
    """HostConfig.RestartPolicy, checked as dockerd checks it (400 naming the field)."""
    if raw is None:
        return Policy()
    if not isinstance(raw, dict):
        raise InvalidParameter("HostConfig.RestartPolicy: expected an object")
    name = raw.get("Name") or "no"
    count = raw.get("MaximumRetryCount") or 0
    if not isinstance(name, str) or name not in POLICIES:
        raise InvalidParameter(f"HostConfig.RestartPolicy.Name: invalid restart policy: "
                               f"unknown policy '{name}'; use one of 'no', 'always', "
                               "'on-failure', or 'unless-stopped'")
    if not isinstance(count, int) or isinstance(count, bool):
        raise InvalidParameter("HostConfig.RestartPolicy.MaximumRetryCount: expected integer")
    if count < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be "
                               "negative")
    if count and name != "on-failure":
        raise InvalidParameter("invalid restart policy: maximum retry count can only be "
                               "used with 'on-failure'")
    return Policy(name, count)


def policy_of(c: Container) -> Policy:
    try:
        return parse_policy(c.host_config.get("RestartPolicy"))
    except InvalidParameter:
        return Policy()


def wants_restart(policy: Policy, exit_code: int, manually_stopped: bool,
                  restart_count: int) -> bool:
    """Docker's decision (restartmanager.ShouldRestart) without the back-off."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


@dataclass
class Backoff:
    delay: float = 0.0

    def next(self, ran_for: float) -> float:
        """The wait before the next restart, after a run of ``ran_for`` seconds."""
        if ran_for >= RESET_AFTER:
            self.delay = 0.0
        self.delay = FIRST_DELAY if self.delay == 0 else min(self.delay * 2, MAX_DELAY)
        return self.delay


def ran_for(c: Container) -> float:
    started, finished = parse_rfc3339(c.state.started_at), parse_rfc3339(c.state.finished_at)
    return max(0.0, finished - started) if started and finished else 0.0


class Restarts:
    """Pending restarts, their back-off and the holds put by ``stop``."""

    def __init__(self, start: Callable[[str], Awaitable[None]],
                 failed: Callable[[Container, Exception], None]) -> None:
        self._start = start  # starts a container without resetting its restart state
        self._failed = failed
        self._backoff: dict[str, Backoff] = {}
        self._held: set[str] = set()
        self._pending: dict[str, asyncio.Task[None]] = {}
        # Set once the daemon has restored its networking: a restart made before would have
        # its fresh network namespace swept as a leftover by that restore.
        self.daemon_ready = asyncio.Event()

    def hold(self, container_id: str) -> None:
        """The next exit is the user's doing: no restart for it (dockerd's ExitOnNext)."""
        self._held.add(container_id)
        self.cancel(container_id)

    def reset(self, c: Container) -> None:
        """A manual start: forget holds, back-off and the count, as dockerd does."""
        self.cancel(c.id)
        self._held.discard(c.id)
        self._backoff.pop(c.id, None)
        c.restart_count = 0
        c.manually_stopped = False

    def cancel(self, container_id: str) -> bool:
        """Drop a pending restart; whether there was one."""
        task = self._pending.pop(container_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    def forget(self, container_id: str) -> None:
        self.cancel(container_id)
        self._held.discard(container_id)
        self._backoff.pop(container_id, None)

    def exited(self, c: Container) -> bool:
        """Schedule a restart of ``c`` if its policy wants one (it is then ``restarting``)."""
        held = c.id in self._held
        self._held.discard(c.id)
        policy = policy_of(c)
        if held or not wants_restart(policy, c.state.exit_code, c.manually_stopped,
                                     c.restart_count):
            return False
        delay = self._backoff.setdefault(c.id, Backoff()).next(ran_for(c))
        self._schedule(c, delay)
        return True

    def at_daemon_start(self, c: Container) -> bool:
        """Docker's restart of a stopped container when the daemon comes up."""
        if c.state.status not in ("exited", "restarting"):
            return False
        if not wants_restart(policy_of(c), c.state.exit_code, c.manually_stopped,
                             c.restart_count):
            return False
        self._schedule(c, 0.0)
        return True

    def _schedule(self, c: Container, delay: float) -> None:
        c.restart_count += 1
        c.state.status = "restarting"
        self.cancel(c.id)
        self._pending[c.id] = asyncio.get_running_loop().create_task(self._run(c, delay))

    async def _run(self, c: Container, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.daemon_ready.wait()
        self._pending.pop(c.id, None)
        try:
            await self._start(c.id)
        except Exception as exc:  # docker gives up after a failed restart
            log.warning("restarting %s: %s", c.id[:12], exc)
            self._failed(c, exc)
