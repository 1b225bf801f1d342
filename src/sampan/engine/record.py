"""What the engine remembers about a container, persisted as JSON (see ``store``)."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ns: int | None = None) -> str:
    """Docker's timestamps: RFC 3339 in UTC with nanoseconds (trailing zeros dropped)."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if frac:
        text += f".{frac:09d}".rstrip("0")
    return text + "Z"


def parse_rfc3339(text: str) -> float:
    """Unix time (with fractions) of one of our RFC 3339 timestamps; 0 for the zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    body = text.rstrip("Z")
    whole, _, frac = body.partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + (float("0." + frac) if frac else 0.0)


@dataclass
class State:
    status: str = "created"  # created | running | paused | restarting | exited | removing | dead
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    oom_killed: bool = False
    health: dict[str, Any] | None = None  # Docker's State.Health (see ``health``)

    @property
    def running(self) -> bool:
        """A process runs (a paused one too, as Docker counts it)."""
        return self.status in ("running", "paused")


@dataclass
class Monitor:
    """The monitor (sampan's or conmon) of a running container; its start time tells a
    reused pid apart."""

    pid: int = 0
    start_time: int = 0


@dataclass
class Container:
    id: str
    name: str  # without Docker's leading slash
    created: str
    image: str  # as the client named it
    image_id: str
    path: str
    args: list[str]
    config: dict[str, Any]  # Docker's Config as inspect shows it, image defaults merged
    host_config: dict[str, Any]
    state: State = field(default_factory=State)
    monitor: Monitor = field(default_factory=Monitor)
    restart_count: int = 0
    manually_stopped: bool = False  # by stop or kill: restart policies hold back (``restart``)
    mounted: bool = False  # the root filesystem is mounted at <dir>/rootfs
    mounts: list[dict[str, Any]] = field(default_factory=list)  # mounts.MountPoint's

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def to_json(self) -> dict[str, Any]:
        """For json.dump only: shallow (asdict's deep copy of config and host_config was
        a noticeable part of each of a start's saves)."""
        return {**vars(self), "state": dict(vars(self.state)),
                "monitor": dict(vars(self.monitor))}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Container:
        data = dict(data)
        data["state"] = State(**data.get("state", {}))
        data["monitor"] = Monitor(**data.get("monitor", {}))
        return cls(**data)
