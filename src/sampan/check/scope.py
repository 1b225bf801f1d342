"""What a check looks at: the data and exec roots, the open image store, the container
records and the network state, from a running sampand or opened offline (``offline``).

``since`` protects work in flight: with sampand running, a temp file, a partial download
or an unnamed snapshot made after it started may belong to an operation still going on,
so only older leftovers count (offline, nothing is in flight: everything counts).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine.record import Container
from ..images import ImageStore


@dataclass
class Scope:
    data_root: str
    exec_root: str
    cgroup_parent: str
    images: ImageStore
    containers: Callable[[], list[Container]]  # read again where a race matters
    network: Any  # engine.networking.Networking (its state; repairs through ``net_call``)
    net_call: Callable[..., Any] = field(default=lambda fn, *args: fn(*args))
    since: float | None = None  # only leftovers older than this (sampand's start) count
    verify_blobs: bool = True

    def old(self, when: float) -> bool:
        """Whether something made at ``when`` cannot belong to work in flight."""
        return self.since is None or when < self.since

    def old_path(self, path: str) -> bool:
        try:
            return self.old(os.lstat(path).st_mtime)
        except OSError:
            return False

    def container_ids(self) -> set[str]:
        return {c.id for c in self.containers()}
