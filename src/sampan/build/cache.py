"""The build cache: a step's result, found again by what made it.

The key is a digest of the parent state's ID (so any change above invalidates everything
below), the instruction as it will be recorded (with build args in use and expanded
values) and, for COPY/ADD, the hash of the files read. The value is the resulting state.
Entries live in sqlite in the data root, so they survive a restart; an entry whose layers
are gone from the store (an `rmi` removed them) is a miss. ``prune`` forgets every entry
and removes the layers and blobs only the cache held.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import suppress
from dataclasses import dataclass

from ..content import BlobNotFound
from ..images.store import ImageStore
from ..metadata import Database
from ..snapshots import SnapshotError
from .layers import State, usable


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

    def prune(self) -> PruneResult:
        rows = self.db.query("SELECT key, state FROM steps")
        keys = [r["key"] for r in rows]
        chains: dict[str, str] = {}  # chain -> blob, top layers last
        for row in rows:
            for la in State.from_json(json.loads(row["state"])).layers:
                chains[la.chain_id] = la.blob_digest
        with self.db.transaction() as db:
            db.execute("DELETE FROM steps")
        used_chains = self.store.db.chains()
        used_blobs = self.store.db.blobs()
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
            if chain in used_chains or blob in used_blobs or chain in doomed:
                continue
            with suppress(BlobNotFound, FileNotFoundError):
                reclaimed += self.store.content.size(blob)
                self.store.content.delete(blob)
        return PruneResult(keys, reclaimed)
