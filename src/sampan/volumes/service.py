"""Volumes as the engine and the API use them: names (random for anonymous ones), the
containers that use each (a volume in use is never removed), list filters and prune.

References are kept in memory: the container records are the truth, and the engine hands
every container's volumes back (``acquire``) when it loads them at start-up.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable

from .driver import LocalDriver
from .errors import InvalidVolume, VolumeInUse, VolumeNotFound
from .record import ANONYMOUS_LABEL, DRIVER, Volume

LIST_FILTERS = ("dangling", "name", "driver", "label")
PRUNE_FILTERS = ("label", "label!", "all")
_TRUE, _FALSE = ("true", "1"), ("false", "0")

EventSink = Callable[[str, str, dict[str, str]], None]


def _bool_filter(key: str, values: list[str]) -> bool:
    wanted = {v.lower() for v in values}
    if not wanted <= {*_TRUE, *_FALSE}:
        raise InvalidVolume(f"invalid filter '{key}={values[0]}'")
    return bool(wanted & set(_TRUE))


def _labels_match(labels: dict[str, str], wants: list[str]) -> bool:
    """Every ``key`` or ``key=value`` of ``wants`` holds."""
    for want in wants:
        key, sep, value = want.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def size_of(path: str) -> int:
    """Bytes of the regular files under ``path``, each inode once (docker's reclaimed space)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class VolumeService:
    def __init__(self, root: str, on_event: EventSink | None = None) -> None:
        self.driver = LocalDriver(root)
        self._refs: dict[str, set[str]] = {}
        self.on_event: EventSink = on_event or (lambda action, name, attrs: None)

    # Lookup --------------------------------------------------------------------------------

    def get(self, name: str) -> Volume:
        return self.driver.get(name)

    def users(self, name: str) -> list[str]:
        return sorted(self._refs.get(name, ()))

    def find(self, filters: dict[str, list[str]] | None = None) -> list[Volume]:
        filters = {k: v for k, v in (filters or {}).items() if v}
        for key in filters:
            if key not in LIST_FILTERS:
                raise InvalidVolume(f"invalid filter '{key}'")
        dangling = _bool_filter("dangling", filters["dangling"]) \
            if "dangling" in filters else None
        out = []
        for v in self.driver.all():
            if dangling is not None and dangling == bool(self._refs.get(v.name)):
                continue
            if "name" in filters and not any(n in v.name for n in filters["name"]):
                continue
            if "driver" in filters and not any(d in v.driver for d in filters["driver"]):
                continue
            if "label" in filters and not _labels_match(v.labels or {}, filters["label"]):
                continue
            out.append(v)
        return out

    # Create and remove ---------------------------------------------------------------------

    def create(self, name: str = "", driver: str = "", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, ref: str | None = None,
               ) -> tuple[Volume, bool]:
        """The volume ``name``, created if new (True then); no name: a new anonymous one.
        ``ref`` (a container ID) holds it from the start, so no prune can slip in."""
        if driver not in ("", DRIVER):
            raise VolumeNotFound(f"error looking up volume plugin {driver}: plugin "
                                 f'"{driver}" not found')
        if not name:
            name = secrets.token_hex(32)
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        volume, created = self.driver.create(name, labels, options)
        if ref is not None:
            self.acquire(name, ref)
        if created:
            self.on_event("create", name, {"driver": volume.driver})
        return volume, created

    def remove(self, name: str, force: bool = False) -> None:
        """Docker's rule: a volume in use is refused (force only forgives a missing one)."""
        if not self.driver.exists(name):
            if force:
                return
            self.driver.get(name)
        users = self.users(name)
        if users:
            raise VolumeInUse(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.driver.remove(name)
        self._refs.pop(name, None)
        self.on_event("destroy", name, {"driver": DRIVER})

    def prune(self, filters: dict[str, list[str]] | None = None,
              all_volumes: bool = False) -> tuple[list[str], int]:
        """Remove unused local volumes without mount options (anonymous ones only, unless
        ``all_volumes`` or the ``all`` filter); their names and the bytes freed."""
        filters = {k: v for k, v in (filters or {}).items() if v}
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise InvalidVolume(f"invalid filter '{key}'")
        if "all" in filters:
            all_volumes = all_volumes or _bool_filter("all", filters["all"])
        removed, reclaimed = [], 0
        for v in self.driver.all():
            labels = v.labels or {}
            if self._refs.get(v.name) or v.options or (not all_volumes and not v.anonymous):
                continue
            if "label" in filters and not _labels_match(labels, filters["label"]):
                continue
            if "label!" in filters and any(_labels_match(labels, [w])
                                           for w in filters["label!"]):
                continue
            size = size_of(v.mountpoint)
            self.driver.remove(v.name)
            self.on_event("destroy", v.name, {"driver": DRIVER})
            removed.append(v.name)
            reclaimed += size
        self.on_event("prune", "", {"reclaimed": str(reclaimed)})
        return removed, reclaimed

    # Users ---------------------------------------------------------------------------------

    def acquire(self, name: str, ref: str) -> None:
        self.get(name)
        self._refs.setdefault(name, set()).add(ref)

    def release(self, name: str, ref: str) -> None:
        refs = self._refs.get(name)
        if refs is not None:
            refs.discard(ref)
            if not refs:
                del self._refs[name]

    def mount(self, name: str, ref: str) -> str:
        path = self.driver.mount(name, ref)
        self.on_event("mount", name, {"container": ref, "driver": DRIVER})
        return path

    def unmount(self, name: str, ref: str) -> None:
        if self.driver.exists(name):
            self.driver.unmount(name, ref)
            self.on_event("unmount", name, {"container": ref, "driver": DRIVER})
