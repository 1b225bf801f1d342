"""Where blobs came from: (digest, registry, repository), for cross-repository mounts.

A push to ``registry/app`` of a layer pulled from ``registry/base`` need not upload it:
the registry can link it from ``base`` (a mount). Docker keeps the same knowledge
("v2 metadata"); here it is a small sqlite table beside the image database, written after
each pull and push.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..metadata import Database


class BlobSources(Database):
    SCHEMA = (
        """CREATE TABLE IF NOT EXISTS blob_sources (
               digest TEXT NOT NULL,
               registry TEXT NOT NULL,
               repository TEXT NOT NULL,
               seen REAL NOT NULL DEFAULT (julianday('now')),
               PRIMARY KEY (digest, registry, repository))""",
    )

    @classmethod
    def beside(cls, store_root: str) -> BlobSources:
        return cls(os.path.join(store_root, "registry-sources.db"))

    def record(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO blob_sources (digest, registry, repository) VALUES (?, ?, ?) "
                "ON CONFLICT DO UPDATE SET seen = julianday('now')",
                [(d, registry, repository) for d in digests])

    def repositories(self, registry: str, digest: str) -> list[str]:
        """Repositories of ``registry`` known to hold ``digest``, most recent first."""
        return [r["repository"] for r in self.query(
            "SELECT repository FROM blob_sources WHERE registry = ? AND digest = ? "
            "ORDER BY seen DESC", (registry, digest))]
