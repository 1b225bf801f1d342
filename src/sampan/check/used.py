"""What the records name: the blobs and layer snapshots that are not orphans.

Images (sampan.db) name their manifest, config and layer blobs and their layer chains;
the build cache (build/cache.db) names the layers of cached steps, which no image may
record. Both count, or a check would delete the cache's layers.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field

from .scope import Scope


@dataclass
class Used:
    blobs: set[str] = field(default_factory=set)
    chains: set[str] = field(default_factory=set)


def build_cache_db(scope: Scope) -> str:
    return os.path.join(scope.data_root, "build", "cache.db")


def gather(scope: Scope) -> Used:
    db = scope.images.db
    # Chains through image_layers, not the layers table: a row no image uses any more
    # is itself an orphan (``metadata``), and so is its snapshot.
    used = Used(blobs=set(db.blobs()), chains={r["chain_id"] for r in db.query(
        "SELECT DISTINCT chain_id FROM image_layers")})
    for r in db.query("SELECT id, manifest_digest, index_digest FROM images"):
        used.blobs.update(d for d in (r["id"], r["manifest_digest"], r["index_digest"]) if d)
    used.blobs.update(r["blob_digest"] for r in db.query(
        "SELECT DISTINCT blob_digest FROM image_layers"))
    path = build_cache_db(scope)
    if os.path.exists(path):
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
            for (state,) in conn.execute("SELECT state FROM steps"):
                for layer in json.loads(state).get("layers") or []:
                    used.chains.add(layer["chain_id"])
                    used.blobs.add(layer["blob_digest"])
    return used
