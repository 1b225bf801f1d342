"""The Snapshotter interface (containerd's model) and the bookkeeping both backends share.

A snapshot is a directory tree named by a key. ``prepare`` makes an *active* (writable)
snapshot on top of a *committed* parent, ``view`` a read-only one, ``commit`` turns an
active snapshot into a committed one under a new name (images name theirs by chain ID, so
a layer is unpacked once and shared), ``remove`` deletes one that has no children. The
metadata lives in sqlite; directories are created before their row and deleted after it,
so a crash leaves at worst an orphan directory that ``cleanup`` removes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import sqlite3
import stat
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, ClassVar

from ..archive.changes import Change
from ..archive.unpack import ApplyResult
from ..archive.writer import LayerEntry, Owners, write_layer
from ..metadata import Database
from .mount import Mount

if TYPE_CHECKING:
    from ..trash import Trash

ACTIVE, VIEW, COMMITTED = "active", "view", "committed"
OWNERS_FILE = "owners.json"  # see set_owners


class SnapshotError(Exception):
    """A snapshot operation that cannot be done (the message says why)."""


class SnapshotNotFound(SnapshotError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class SnapshotExists(SnapshotError):
    pass


@dataclass(frozen=True)
class Info:
    key: str
    kind: str  # ACTIVE, VIEW or COMMITTED
    parent: str | None
    created: float
    directory: str  # the snapshot's own directory (backend-specific layout below it)


@dataclass(frozen=True)
class Usage:
    size: int  # bytes on disk (allocated blocks), hardlinked inodes counted once
    inodes: int


class _Meta(Database):
    SCHEMA = (
        """CREATE TABLE IF NOT EXISTS snapshots (
               key TEXT PRIMARY KEY,
               dir TEXT NOT NULL UNIQUE,
               kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
               parent TEXT REFERENCES snapshots(key),
               created REAL NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent)",
    )


def disk_usage(path: str) -> Usage:
    seen: set[tuple[int, int]] = set()
    size = inodes = 0
    stack = [path]
    while stack:
        current = stack.pop()
        st = os.lstat(current)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        size += st.st_blocks * 512
        inodes += 1
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(current) as entries:
                stack.extend(e.path for e in entries)
    return Usage(size, inodes)


class Snapshotter(ABC):
    name: ClassVar[str]

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(os.path.join(self.root, "snapshots"), mode=0o700, exist_ok=True)
        self._meta = _Meta(os.path.join(self.root, "metadata.db"))
        # The daemon's: removed snapshots' files are unlinked off its path (trash.py).
        self.trash: Trash | None = None

    # Queries ------------------------------------------------------------------------------

    def _info(self, row: sqlite3.Row) -> Info:
        return Info(key=row["key"], kind=row["kind"], parent=row["parent"],
                    created=row["created"],
                    directory=os.path.join(self.root, "snapshots", row["dir"]))

    def stat(self, key: str) -> Info:
        rows = self._meta.query("SELECT * FROM snapshots WHERE key = ?", (key,))
        if not rows:
            raise SnapshotNotFound(f"snapshot {key!r} does not exist")
        return self._info(rows[0])

    def exists(self, key: str) -> bool:
        return bool(self._meta.query("SELECT 1 FROM snapshots WHERE key = ?", (key,)))

    def walk(self) -> list[Info]:
        return [self._info(r) for r in self._meta.query("SELECT * FROM snapshots ORDER BY key")]

    def parents(self, info: Info) -> list[Info]:
        """The committed snapshots below ``info``, nearest first."""
        chain: list[Info] = []
        parent = info.parent
        while parent is not None:
            below = self.stat(parent)
            chain.append(below)
            parent = below.parent
        return chain

    # Life cycle ---------------------------------------------------------------------------

    def prepare(self, key: str, parent: str | None = None) -> list[Mount]:
        """A new writable snapshot on top of the committed ``parent``; how to mount it."""
        return self._create(key, parent, ACTIVE)

    def view(self, key: str, parent: str | None = None) -> list[Mount]:
        """A new read-only snapshot of the committed ``parent``."""
        return self._create(key, parent, VIEW)

    def _create(self, key: str, parent: str | None, kind: str) -> list[Mount]:
        if not key:
            raise SnapshotError("a snapshot key must not be empty")
        if self.exists(key):
            raise SnapshotExists(f"snapshot {key!r} already exists")
        parent_info = self.stat(parent) if parent is not None else None
        if parent_info is not None and parent_info.kind != COMMITTED:
            raise SnapshotError(f"parent {parent!r} is {parent_info.kind}, not committed")
        name = secrets.token_hex(6)
        directory = os.path.join(self.root, "snapshots", name)
        os.mkdir(directory, 0o700)
        try:
            self._populate(directory, parent_info)
            with self._meta.transaction() as db:
                if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
                    raise SnapshotExists(f"snapshot {key!r} already exists")
                if parent is not None and not db.execute(
                        "SELECT 1 FROM snapshots WHERE key = ? AND kind = 'committed'",
                        (parent,)).fetchone():
                    raise SnapshotNotFound(f"parent snapshot {parent!r} was removed")
                db.execute("INSERT INTO snapshots (key, dir, kind, parent, created) "
                           "VALUES (?, ?, ?, ?, ?)", (key, name, kind, parent, time.time()))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return self.mounts(key)

    def mounts(self, key: str) -> list[Mount]:
        info = self.stat(key)
        if info.kind == COMMITTED:
            raise SnapshotError(f"snapshot {key!r} is committed: mount a view of it instead")
        return self._mounts(info, self.parents(info))

    def read_mounts(self, key: str) -> list[Mount]:
        """Read-only mounts of what the snapshot ``key`` holds now, its own changes included:
        `export` reads a container through these, even while the container runs."""
        info = self.stat(key)
        return self._mounts(dataclasses.replace(info, kind=VIEW), [info, *self.parents(info)])

    def commit(self, key: str, name: str) -> None:
        """Make the active snapshot ``key`` a committed one called ``name``."""
        with self._meta.transaction() as db:
            row = db.execute("SELECT kind FROM snapshots WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise SnapshotNotFound(f"snapshot {key!r} does not exist")
            if row["kind"] != ACTIVE:
                raise SnapshotError(f"snapshot {key!r} is {row['kind']}: only an active "
                                    "snapshot can be committed")
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (name,)).fetchone():
                raise SnapshotExists(f"snapshot {name!r} already exists")
            db.execute("UPDATE snapshots SET key = ?, kind = 'committed' WHERE key = ?",
                       (name, key))

    def remove(self, key: str) -> None:
        """Remove a snapshot without children (unmount it first)."""
        with self._meta.transaction() as db:
            row = db.execute("SELECT dir FROM snapshots WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise SnapshotNotFound(f"snapshot {key!r} does not exist")
            children = [r["key"] for r in db.execute(
                "SELECT key FROM snapshots WHERE parent = ? ORDER BY key LIMIT 3", (key,))]
            if children:
                raise SnapshotError(f"snapshot {key!r} has children ({', '.join(children)}): "
                                    "remove them first")
            db.execute("DELETE FROM snapshots WHERE key = ?", (key,))
        self._discard(os.path.join(self.root, "snapshots", row["dir"]))

    def _discard(self, directory: str) -> None:
        if self.trash is not None:
            self.trash.discard(directory)
            return
        doomed = os.path.join(os.path.dirname(directory), "rm-" + os.path.basename(directory))
        os.rename(directory, doomed)
        shutil.rmtree(doomed)

    def cleanup(self) -> list[str]:
        """Remove directories no snapshot names (a crash's leftovers); what was removed."""
        known = {r["dir"] for r in self._meta.query("SELECT dir FROM snapshots")}
        base = os.path.join(self.root, "snapshots")
        removed = []
        for name in sorted(os.listdir(base)):
            if name not in known:
                path = os.path.join(base, name)
                if os.path.ismount(path) or any(os.path.ismount(os.path.join(path, d))
                                                 for d in ("fs", "merged")):
                    continue
                shutil.rmtree(path)
                removed.append(name)
        return removed

    def usage(self, key: str) -> Usage:
        """Disk used by the snapshot itself (not by its parents, for layered backends)."""
        return disk_usage(self.fs(self.stat(key)))

    def close(self) -> None:
        self._meta.close()

    # Layers -------------------------------------------------------------------------------

    def fs(self, info: Info) -> str:
        """The directory holding the snapshot's own files."""
        return os.path.join(info.directory, "fs")

    def apply(self, key: str, stream: BinaryIO) -> ApplyResult:
        """Unpack a layer tar into the active snapshot ``key``."""
        info = self.stat(key)
        if info.kind != ACTIVE:
            raise SnapshotError(f"snapshot {key!r} is {info.kind}: layers go into active ones")
        return self._apply(info, self.parents(info), stream)

    def diff(self, key: str) -> list[Change]:
        """What the snapshot ``key`` changed over its parent (`docker diff`)."""
        info = self.stat(key)
        return self._diff(info, self.parents(info))

    def entries(self, key: str) -> Iterable[LayerEntry]:
        """The snapshot's changes over its parent as layer entries (what ``write_diff``
        writes), for callers that filter them before writing a layer."""
        info = self.stat(key)
        return self._entries(info, self.parents(info))

    def lower_dirs(self, key: str) -> list[str]:
        """The directories of the snapshot's parents, nearest first."""
        return [self.fs(p) for p in self.parents(self.stat(key))]

    def set_owners(self, key: str, owners: Owners) -> None:
        """Record that the snapshot's own files carry a remapped container's host ids
        (--userns-remap), so that its layer is written with the container's."""
        path = os.path.join(self.stat(key).directory, OWNERS_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump({"uids": owners.uids, "gids": owners.gids}, f)
        os.replace(path + ".tmp", path)

    def owners(self, info: Info) -> Owners | None:
        try:
            with open(os.path.join(info.directory, OWNERS_FILE)) as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        return Owners(tuple(tuple(r) for r in data["uids"]),
                      tuple(tuple(r) for r in data["gids"]))

    def write_diff(self, key: str, out: BinaryIO) -> tuple[str, int]:
        """A layer tar of the snapshot's changes into ``out``: (diff ID, length)."""
        return write_layer(self.entries(key), out)

    # Backend ------------------------------------------------------------------------------

    @abstractmethod
    def _populate(self, directory: str, parent: Info | None) -> None:
        """Lay out a new snapshot's directory."""

    @abstractmethod
    def _mounts(self, info: Info, parents: list[Info]) -> list[Mount]: ...

    @abstractmethod
    def _apply(self, info: Info, parents: list[Info], stream: BinaryIO) -> ApplyResult: ...

    @abstractmethod
    def _diff(self, info: Info, parents: list[Info]) -> list[Change]: ...

    @abstractmethod
    def _entries(self, info: Info, parents: list[Info]) -> Iterable[LayerEntry]: ...
