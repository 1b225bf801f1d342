"""The build cache: a step's result, found again by what made it.

The key is a digest of the parent state's ID (so any change above invalidates everything
below), the instruction as it will be recorded (with build args in use and expanded
values) and, for COPY/ADD, the hash of the files read. The value is the resulting state.
Entries live in sqlite in the data root, so they survive a restart; an entry whose layers
are gone from the store (an `rmi` removed them) is a miss. ``prune`` forgets the entries
its filter picks (see ``prune``) and removes the layers and blobs only they held.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from ..content import BlobNotFound
from ..images.store import ImageStore
from ..metadata import Database
from ..snapshots import SnapshotError
from .layers import Layer, State, usable


class _CacheDB(Database):
    SCHEMA = (
        """CREATE TABLE IF NOT EXISTS steps (
               key TEXT PRIMARY KEY,
               state TEXT NOT NULL,
               created REAL NOT NULL,
               last_used REAL NOT NULL)""",
    )


@dataclass(frozen=True)
class PruneResult:
    removed: list[str]  # cache keys
    reclaimed: int  # bytes of blobs deleted


@dataclass(frozen=True)
class Entry:
    """One cached step: what ``builder prune`` filters look at."""

    key: str
    state: State
    created: float
    last_used: float

    @property
    def size(self) -> int:
        """The bytes of the layer this step added (0 for a config step)."""
        history = self.state.document.get("history") or [{}]
        if history[-1].get("empty_layer") or not self.state.layers:
            return 0
        return self.state.layers[-1].blob_size

    @property
    def description(self) -> str:
        """The step as the history records it (``/bin/sh -c echo hi``)."""
        history = self.state.document.get("history") or [{}]
        return str(history[-1].get("created_by", ""))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.state.config.get("Labels") or {})

    @property
    def parent(self) -> str:
        """The ID of the state the step started from."""
        return str(self.state.config.get("Image") or "")


def step_key(parent_id: str, created_by: str, content: str = "") -> str:
    digest = hashlib.sha256()
    for part in (parent_id, created_by, content):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class BuildCache:
    def __init__(self, root: str, store: ImageStore) -> None:
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.db = _CacheDB(os.path.join(root, "cache.db"))
        self.store = store
        store.add_holder(self.held)

    def held(self) -> tuple[set[str], set[str]]:
        """The chain IDs and blob digests of every cached step's layers."""
        layers = [la for e in self.entries() for la in e.state.layers]
        return {la.chain_id for la in layers}, {la.blob_digest for la in layers}

    def close(self) -> None:
        self.db.close()

    def get(self, key: str) -> State | None:
        rows = self.db.query("SELECT state FROM steps WHERE key = ?", (key,))
        if not rows:
            return None
        state = State.from_json(json.loads(rows[0]["state"]))
        if not usable(self.store, state):
            return None
        with self.db.transaction() as db:
            db.execute("UPDATE steps SET last_used = ? WHERE key = ?", (time.time(), key))
        return state

    def put(self, key: str, state: State) -> None:
        now = time.time()
        with self.db.transaction() as db:
            db.execute("INSERT OR REPLACE INTO steps (key, state, created, last_used) "
                       "VALUES (?, ?, ?, ?)", (key, json.dumps(state.to_json()), now, now))

    def entries(self) -> list[Entry]:
        """Every cached step, least recently used first."""
        rows = self.db.query("SELECT key, state, created, last_used FROM steps "
                             "ORDER BY last_used, created")
        return [Entry(r["key"], State.from_json(json.loads(r["state"])), r["created"],
                      r["last_used"]) for r in rows]

    def prune(self, select: Callable[[Entry], bool] | None = None,
              keep_bytes: int = 0) -> PruneResult:
        """Forget the entries ``select`` picks (all without it), least recently used
        first, and only until the cache's layers take at most ``keep_bytes`` (when set), as
        buildkit's keep-storage does; then remove the layers and blobs only they held."""
        entries = self.entries()
        picked = [e for e in entries if select is None or select(e)]
        if keep_bytes > 0:
            total = sum(e.size for e in entries)
            doomed: list[Entry] = []
            for entry in picked:
                if total <= keep_bytes:
                    break
                doomed.append(entry)
                total -= entry.size
            picked = doomed
        if not picked:
            return PruneResult([], 0)
        gone = {e.key for e in picked}
        with self.db.transaction() as db:
            db.executemany("DELETE FROM steps WHERE key = ?", [(k,) for k in gone])
        kept = [la for e in entries if e.key not in gone for la in e.state.layers]
        return PruneResult([e.key for e in picked], self._drop_layers(
            [la for e in picked for la in e.state.layers], kept))

    def _drop_layers(self, layers: list[Layer], kept: list[Layer]) -> int:
        """Remove the snapshots and blobs of ``layers`` that neither ``kept`` nor an image
        uses; the bytes of blobs deleted."""
        kept_chains = {la.chain_id for la in kept}
        kept_blobs = {la.blob_digest for la in kept}
        chains = {la.chain_id: la.blob_digest for la in layers
                  if la.chain_id not in kept_chains}
        used_chains = self.store.db.chains()
        protected = self.store.db.blobs() | kept_blobs
        reclaimed = 0
        progress = True
        doomed = [c for c in chains if c not in used_chains]
        while progress and doomed:  # children before parents
            progress = False
            for chain in list(doomed):
                try:
                    if self.store.snapshots.exists(chain):
                        self.store.snapshots.remove(chain)
                except SnapshotError:
                    continue
                doomed.remove(chain)
                progress = True
        for chain, blob in chains.items():
            if chain in used_chains or blob in protected or chain in doomed:
                continue
            with suppress(BlobNotFound, FileNotFoundError):
                reclaimed += self.store.content.size(blob)
                self.store.content.delete(blob)
        return reclaimed
