"""Pull and push progress, as Docker's JSON messages describe it.

Each event is one line of what `docker pull` draws: a layer's short ID, a status
("Pulling fs layer", "Downloading", "Download complete", "Already exists", "Pull complete",
"Pushing", "Pushed", "Mounted from …") and byte counts, so the CLI can draw the same bars
and the engine API can stream the same ``{"status", "id", "progressDetail"}`` objects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Pull statuses (per layer)
PULLING_FS_LAYER = "Pulling fs layer"
WAITING = "Waiting"
DOWNLOADING = "Downloading"
VERIFYING = "Verifying Checksum"
DOWNLOAD_COMPLETE = "Download complete"
ALREADY_EXISTS = "Already exists"
EXTRACTING = "Extracting"
PULL_COMPLETE = "Pull complete"
RETRYING = "Retrying"
# Push statuses (per layer)
PREPARING = "Preparing"
PUSHING = "Pushing"
PUSHED = "Pushed"
LAYER_EXISTS = "Layer already exists"
MOUNTED_FROM = "Mounted from"


@dataclass(frozen=True)
class ProgressEvent:
    """One progress line: ``id`` is a layer's short ID (or a tag), None for a whole-image
    message; ``current``/``total`` are bytes while a layer moves."""

    status: str
    id: str | None = None
    current: int | None = None
    total: int | None = None
    digest: str | None = None  # the full digest of the layer blob
    aux: dict[str, Any] | None = None  # push result: {"Tag", "Digest", "Size"}

    def message(self) -> dict[str, Any]:
        """The event as dockerd's JSON message (`/images/create`, `/images/{name}/push`)."""
        out: dict[str, Any] = {"status": self.status}
        if self.id is not None:
            out["id"] = self.id
        if self.current is not None:
            detail: dict[str, int] = {"current": self.current}
            if self.total is not None:
                detail["total"] = self.total
            out["progressDetail"] = detail
        elif self.id is not None:
            out["progressDetail"] = {}
        if self.aux is not None:
            out["aux"] = self.aux
        return out

    def __str__(self) -> str:
        text = f"{self.id}: {self.status}" if self.id else self.status
        if self.current is not None and self.total:
            text += f" {self.current}/{self.total}"
        return text


ProgressCallback = Callable[[ProgressEvent], None]


def short_id(digest: str) -> str:
    """The 12 hex digits Docker shows for a layer."""
    return digest.split(":", 1)[-1][:12]


class Reporter:
    """Calls the callback from any worker thread, one event at a time, and rate-limits
    the byte counts of a layer so a fast registry does not flood a terminal."""

    def __init__(self, callback: ProgressCallback | None, interval: float = 0.1) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._interval = interval
        self._last: dict[str, float] = {}

    def __call__(self, status: str, id: str | None = None, **kwargs: Any) -> None:
        if self._callback is None:
            return
        with self._lock:
            self._callback(ProgressEvent(status, id, **kwargs))

    def bytes(self, status: str, id: str, current: int, total: int | None,
              digest: str | None = None) -> None:
        """A byte-count update; dropped if the layer reported less than ``interval`` ago,
        unless it is the last."""
        if self._callback is None:
            return
        now = time.monotonic()
        key = f"{status}:{id}"
        with self._lock:
            if current != total and now - self._last.get(key, 0.0) < self._interval:
                return
            self._last[key] = now
            self._callback(ProgressEvent(status, id, current=current, total=total,
                                         digest=digest))
