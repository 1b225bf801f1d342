"""Docker's event stream (GET /events): what happened to containers and images, kept in a
bounded in-memory log for ``since`` and fanned out to the connected listeners."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

HISTORY = 1024


@dataclass(frozen=True)
class Event:
    type: str  # "container" | "image"
    action: str  # "create", "start", "die", "destroy", "pull", "tag", "delete", …
    id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = field(default_factory=time.time_ns)

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Type": self.type, "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes}, "scope": "local",
            "time": self.time_nano // 1_000_000_000, "timeNano": self.time_nano}
        if self.type == "container":  # the fields of API versions before 1.22, still sent
            out.update({"status": self.action, "id": self.id,
                        "from": self.attributes.get("image", "")})
        return out

    def matches(self, filters: dict[str, list[str]]) -> bool:
        checks = {
            "type": [self.type], "event": [self.action],
            "container": [self.id, self.attributes.get("name", "")] if self.type == "container"
            else [],
            "image": [self.id, self.attributes.get("image", "")],
            "network": [self.id, self.attributes.get("name", "")] if self.type == "network"
            else [],
        }
        for key, values in filters.items():
            if key == "label":
                if not all(self.attributes.get(k) == v if sep else k in self.attributes
                           for k, sep, v in (want.partition("=") for want in values)):
                    return False
            elif key in checks and values and not any(
                    v == c or (len(v) >= 12 and c.startswith(v)) for v in values
                    for c in checks[key]):
                return False
        return True


class EventLog:
    def __init__(self) -> None:
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._listeners: set[asyncio.Queue[Event]] = set()

    def publish(self, event: Event) -> None:
        self._history.append(event)
        for queue in self._listeners:
            queue.put_nowait(event)

    def since(self, seconds: float) -> list[Event]:
        return [e for e in self._history if e.time_nano >= seconds * 1e9]

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._listeners.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._listeners.discard(queue)
